//! Allocation counts of the proto parses, next to a bare typed serde parse of the same bytes.
//!
//! The counting allocator lives in the `consul-kv-bench-allocs` binary (so that it never
//! slows the timed benchmarks); it hands [`run`] a function that counts what one call
//! allocates. Each figure is one operation, measured alone on one thread.

use std::hint::black_box;

use bytes::Bytes;
use consul_kv_proto::http::Response;
use consul_kv_proto::kv::{self, wire::KvEntry};
use consul_kv_proto::Operation as _;

use crate::fixed::{Canned, Dataset};
use crate::micro::{PROTO, SERDE};

/// What one operation allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocResult {
    /// What was measured: `parse_get`, `parse_items`, `parse_keys`.
    pub name: String,
    /// Which implementation: `consul-kv-proto` or `serde typed`.
    pub implementation: String,
    /// Entries in the answer.
    pub entries: usize,
    /// Allocations and reallocations.
    pub allocs: u64,
    /// Bytes requested by them.
    pub bytes: u64,
}

impl AllocResult {
    /// The JSON line `consul-kv-bench-allocs` prints.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "allocs": self.name,
            "impl": self.implementation,
            "entries": self.entries,
            "allocs_per_op": self.allocs,
            "bytes_per_op": self.bytes,
        })
        .to_string()
    }
}

/// Counts what one call of the closure allocates: `(allocations, bytes)`.
pub type Counter = fn(&mut dyn FnMut()) -> (u64, u64);

/// Counts the proto parse and the serde baseline of each canned answer of `data`.
pub fn run(data: &Dataset, count: Counter) -> Vec<AllocResult> {
    let get_op = kv::Get::new(data.key.clone());
    let items_op = kv::ListItems::new(data.prefix.clone());
    let keys_op = kv::ListKeys::new(data.prefix.clone());
    let mut out = Vec::new();
    for (name, kind, entries) in [
        ("parse_get", Canned::Get, 1),
        ("parse_items", Canned::Items, data.keys),
        ("parse_keys", Canned::Keys, data.keys),
    ] {
        let response: Response<Bytes> = data.response(kind);
        let body = response.body().clone();
        // Warm up once (lazy statics, first-use allocations), then count one call.
        for measured in [false, true] {
            let mut input = Some(response.clone());
            let mut proto = || {
                if let Some(r) = input.take() {
                    match kind {
                        Canned::Get => drop(black_box(get_op.parse(r))),
                        Canned::Items => drop(black_box(items_op.parse(r))),
                        _ => drop(black_box(keys_op.parse(r))),
                    }
                }
            };
            let p = count(&mut proto);
            let mut serde = || match kind {
                Canned::Keys => drop(black_box(serde_json::from_slice::<Vec<String>>(&body))),
                _ => drop(black_box(serde_json::from_slice::<Vec<KvEntry>>(&body))),
            };
            let s = count(&mut serde);
            if measured {
                for (implementation, (allocs, bytes)) in [(PROTO, p), (SERDE, s)] {
                    out.push(AllocResult {
                        name: name.to_owned(),
                        implementation: implementation.to_owned(),
                        entries,
                        allocs,
                        bytes,
                    });
                }
            }
        }
    }
    out
}
