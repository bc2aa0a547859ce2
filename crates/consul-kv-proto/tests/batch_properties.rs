//! Property tests of the transaction planner and the export format: every plan keeps the
//! operations in order, respects every limit with exact body sizes, and is greedy; every export
//! round-trips through the CLI layout and through serde. Cases: `PROPTEST_CASES`, default
//! 10,000, at most 2,000 here: each case plans and serialises dozens of operations.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use consul_kv_proto::batch::{op_body_len, plan, Batch, ChunkError, TxnLimits};
use consul_kv_proto::export::{to_cli_json, ExportEntry};
use consul_kv_proto::txn::{Txn, TxnOp};
use consul_kv_proto::{Index, Operation, RequestContext};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
        .min(2_000)
}

fn key() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec![
                'a', '/', ' ', '"', '\\', '<', '&', 'é', '😀', '\u{2028}'
            ]),
            any::<char>(),
        ],
        1..12,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn op() -> impl Strategy<Value = TxnOp> {
    (
        key(),
        prop::collection::vec(any::<u8>(), 0..700),
        any::<u64>(),
        0..4u8,
    )
        .prop_map(|(k, v, n, verb)| match verb {
            0 => TxnOp::set(k, v).with_flags(n),
            1 => TxnOp::cas(k, v, Index::new(n.max(1))),
            2 => TxnOp::delete_cas(k, Index::new(n.max(1))),
            _ => TxnOp::delete(k),
        })
}

fn body_of(ops: &[TxnOp]) -> usize {
    Txn::new(ops.to_vec())
        .build(&RequestContext::new())
        .map(|r| r.body().len())
        // Keys Consul would refuse are refused by build; measure the JSON directly then.
        .unwrap_or_else(|_| 1 + ops.iter().map(|o| op_body_len(o) + 1).sum::<usize>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn plans_keep_order_respect_limits_and_are_greedy(
        ops in prop::collection::vec(op(), 0..16),
        max_ops in 1usize..8,
        max_body in 100usize..2000,
        max_value in 300usize..800,
    ) {
        let limits = TxnLimits::default()
            .with_max_ops(max_ops)
            .with_max_body_bytes(max_body)
            .with_max_value_bytes(max_value);
        match plan(ops.clone(), &limits) {
            Err(ChunkError::ValueTooLarge { key, size, max }) => {
                prop_assert!(size > max);
                prop_assert!(ops.iter().any(|o| o.key == key));
            }
            Err(ChunkError::OpTooLarge { size, max, .. }) => prop_assert!(size > max),
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
            Ok(batches) => {
                let flat: Vec<TxnOp> = batches.iter().flat_map(|b| b.ops().to_vec()).collect();
                prop_assert_eq!(&flat, &ops);
                for b in &batches {
                    prop_assert!(!b.is_empty());
                    match b {
                        Batch::Txn { ops, body_len } => {
                            prop_assert!(ops.len() <= max_ops);
                            prop_assert_eq!(*body_len, body_of(ops));
                            prop_assert!(*body_len <= max_body);
                        }
                        Batch::Alone(op) => {
                            prop_assert!(op_body_len(op) + 2 > max_body);
                            prop_assert!(op.value.as_ref().map_or(0, Bytes::len) <= max_value);
                        }
                        _ => prop_assert!(false, "unknown batch kind"),
                    }
                }
                for w in batches.windows(2) {
                    if let (Batch::Txn { ops: a, .. }, Batch::Txn { ops: b, .. }) = (&w[0], &w[1]) {
                        let mut more = a.clone();
                        more.push(b[0].clone());
                        prop_assert!(more.len() > max_ops || body_of(&more) > max_body);
                    }
                }
            }
        }
    }

    #[test]
    fn exports_round_trip(
        entries in prop::collection::vec(
            (key(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..64)),
            0..8,
        )
    ) {
        let entries: Vec<ExportEntry> = entries
            .into_iter()
            .map(|(k, f, v)| ExportEntry::new(k, f, v))
            .collect();
        let cli = to_cli_json(&entries);
        let back: Vec<ExportEntry> = serde_json::from_str(&cli).unwrap();
        prop_assert_eq!(&back, &entries);
        let pretty = serde_json::to_string_pretty(&entries).unwrap();
        let back: Vec<ExportEntry> = serde_json::from_str(&pretty).unwrap();
        prop_assert_eq!(&back, &entries);
        prop_assert!(!cli.contains('<') && !cli.contains('>') && !cli.contains('&'));
    }
}
