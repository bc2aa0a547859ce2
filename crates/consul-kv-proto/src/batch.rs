//! Splitting many KV operations into transactions Consul accepts.
//!
//! Consul refuses a `PUT /v1/txn` with `413` when it breaks any of three limits:
//!
//! - more than **128 operations** (Consul 1.14 and later; 64 before):
//!   `Transaction contains too many operations (129 > 128)`;
//! - a request body larger than `max(txn_max_req_len, kv_max_value_size)`, both **512 KiB**
//!   (524,288 bytes) by default; the check is on the body's byte count, so the base64 encoding
//!   of the values counts (4 bytes per 3);
//! - one decoded value larger than `kv_max_value_size` (512 KiB by default).
//!
//! [`plan`] splits a sequence of operations, in order, into transactions that respect all
//! three ([`TxnLimits`]). An operation whose body alone is over the request limit but whose
//! value is within `kv_max_value_size` (a value between about 384 and 512 KiB) cannot go
//! through `/v1/txn` at all; a `set` or `cas` like that becomes a [`Batch::Alone`], to be
//! written with a plain `PUT /v1/kv/<key>` (which accepts values up to `kv_max_value_size`).
//!
//! Each transaction is atomic; a sequence of them is not.
//!
//! ```
//! use consul_kv_proto::batch::{plan, Batch, TxnLimits};
//! use consul_kv_proto::txn::TxnOp;
//!
//! let ops = (0..300).map(|i| TxnOp::set(format!("k/{i:03}"), "v"));
//! let batches = plan(ops, &TxnLimits::default())?;
//! let sizes: Vec<usize> = batches.iter().map(Batch::len).collect();
//! assert_eq!(sizes, [128, 128, 44]);
//!
//! // 600 KiB of values: split by the body limit long before the operation limit.
//! let big = (0..6).map(|i| TxnOp::set(format!("big/{i}"), vec![b'x'; 100 * 1024]));
//! let batches = plan(big, &TxnLimits::default())?;
//! assert!(batches.len() >= 2);
//! assert!(batches.iter().all(|b| b.body_len() <= 512 * 1024));
//! # Ok::<(), consul_kv_proto::batch::ChunkError>(())
//! ```

use crate::txn::{wire, TxnOp, Verb};

/// Consul's operation cap per transaction since 1.14 (`maxTxnOps`).
pub const MAX_TXN_OPS: usize = 128;
/// Consul's operation cap per transaction before 1.14.
pub const MAX_TXN_OPS_BEFORE_1_14: usize = 64;
/// Consul's default `txn_max_req_len`: the largest transaction request body, in bytes.
pub const DEFAULT_TXN_MAX_REQ_LEN: usize = 512 * 1024;
/// Consul's default `kv_max_value_size`: the largest value, in bytes.
pub const DEFAULT_KV_MAX_VALUE_SIZE: usize = 512 * 1024;

/// The limits a transaction must respect. [`Default`] is Consul 1.14+ with default settings.
///
/// ```
/// use consul_kv_proto::batch::TxnLimits;
/// let l = TxnLimits::default();
/// assert_eq!((l.max_ops, l.max_body_bytes, l.max_value_bytes), (128, 524_288, 524_288));
/// assert_eq!(TxnLimits::before_1_14().max_ops, 64);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnLimits {
    /// Operations per transaction.
    pub max_ops: usize,
    /// Bytes per request body (`max(txn_max_req_len, kv_max_value_size)` on the server).
    pub max_body_bytes: usize,
    /// Bytes per decoded value (`kv_max_value_size`); also the largest plain `PUT` body.
    pub max_value_bytes: usize,
}

impl Default for TxnLimits {
    fn default() -> Self {
        Self {
            max_ops: MAX_TXN_OPS,
            max_body_bytes: DEFAULT_TXN_MAX_REQ_LEN,
            max_value_bytes: DEFAULT_KV_MAX_VALUE_SIZE,
        }
    }
}

impl TxnLimits {
    /// The limits of a Consul server older than 1.14 (64 operations per transaction).
    pub fn before_1_14() -> Self {
        Self {
            max_ops: MAX_TXN_OPS_BEFORE_1_14,
            ..Self::default()
        }
    }

    /// Sets the operation cap (at least 1).
    pub fn with_max_ops(mut self, n: usize) -> Self {
        self.max_ops = n.max(1);
        self
    }

    /// Sets the body limit, for a server with a raised `txn_max_req_len`.
    pub fn with_max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Sets the value limit, for a server with another `kv_max_value_size`.
    pub fn with_max_value_bytes(mut self, n: usize) -> Self {
        self.max_value_bytes = n;
        self
    }
}

/// An operation no transaction (and no plain write) can carry.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The value is larger than the server accepts for any write.
    #[error("value of key {key:?} is too large ({size} > {max} bytes)")]
    ValueTooLarge {
        /// The key.
        key: String,
        /// The value's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The operation alone is over the transaction body limit, and its verb has no plain
    /// `PUT` equivalent.
    #[error("operation on key {key:?} does not fit a transaction ({size} > {max} bytes)")]
    OpTooLarge {
        /// The key.
        key: String,
        /// The operation's body size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// The bytes one operation takes in a transaction body (its JSON object, without the comma
/// that separates it from the next).
///
/// A transaction body of operations with lengths `l1 … ln` is `2 + Σli + (n − 1)` bytes
/// long: `[`, the objects joined by `,`, `]`.
///
/// ```
/// use consul_kv_proto::batch::op_body_len;
/// use consul_kv_proto::txn::TxnOp;
/// // {"KV":{"Verb":"set","Key":"a","Value":"MQ=="}}
/// assert_eq!(op_body_len(&TxnOp::set("a", "1")), 46);
/// ```
pub fn op_body_len(op: &TxnOp) -> usize {
    // Serialising into a counter would avoid the buffer, but this is exact by construction:
    // it is the same serialisation `Txn::build` performs.
    serde_json::to_vec(&wire::TxnOp { kv: op.to_wire() }).map_or(usize::MAX, |v| v.len())
}

/// One request of a [`plan`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Batch {
    /// One transaction.
    Txn {
        /// Its operations, in the order given.
        ops: Vec<TxnOp>,
        /// Its request body size in bytes.
        body_len: usize,
    },
    /// A `set` or `cas` whose value fits a plain `PUT` but not a transaction body: write it
    /// with `PUT /v1/kv/<key>` (`?cas=` for `cas`, `?flags=` for its flags).
    Alone(TxnOp),
}

impl Batch {
    /// How many operations.
    pub fn len(&self) -> usize {
        match self {
            Self::Txn { ops, .. } => ops.len(),
            Self::Alone(_) => 1,
        }
    }

    /// Whether it has no operation (never true for a batch from [`plan`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The operations.
    pub fn ops(&self) -> &[TxnOp] {
        match self {
            Self::Txn { ops, .. } => ops,
            Self::Alone(op) => std::slice::from_ref(op),
        }
    }

    /// The request body size: the transaction body, or the value of a plain write.
    pub fn body_len(&self) -> usize {
        match self {
            Self::Txn { body_len, .. } => *body_len,
            Self::Alone(op) => op.value.as_ref().map_or(0, bytes::Bytes::len),
        }
    }
}

/// Splits `ops` into requests that respect `limits`, keeping their order. Consecutive
/// operations share a transaction until the next one would break the operation cap or the
/// body limit.
///
/// # Errors
/// [`ChunkError`] for an operation that no request can carry; nothing is split then.
pub fn plan(
    ops: impl IntoIterator<Item = TxnOp>,
    limits: &TxnLimits,
) -> Result<Vec<Batch>, ChunkError> {
    let mut out = Vec::new();
    let mut cur: Vec<TxnOp> = Vec::new();
    let mut cur_len = 2usize; // "[" and "]"
    let max_ops = limits.max_ops.max(1);
    for op in ops {
        let value_len = op.value.as_ref().map_or(0, bytes::Bytes::len);
        if value_len > limits.max_value_bytes {
            return Err(ChunkError::ValueTooLarge {
                key: op.key,
                size: value_len,
                max: limits.max_value_bytes,
            });
        }
        let len = op_body_len(&op);
        if len.saturating_add(2) > limits.max_body_bytes {
            if matches!(op.verb, Verb::Set | Verb::Cas) {
                if !cur.is_empty() {
                    out.push(Batch::Txn {
                        ops: std::mem::take(&mut cur),
                        body_len: cur_len,
                    });
                    cur_len = 2;
                }
                out.push(Batch::Alone(op));
                continue;
            }
            return Err(ChunkError::OpTooLarge {
                key: op.key,
                size: len.saturating_add(2),
                max: limits.max_body_bytes,
            });
        }
        let sep = usize::from(!cur.is_empty());
        if !cur.is_empty() && (cur.len() >= max_ops || cur_len + sep + len > limits.max_body_bytes)
        {
            out.push(Batch::Txn {
                ops: std::mem::take(&mut cur),
                body_len: cur_len,
            });
            cur_len = 2;
        }
        cur_len += usize::from(!cur.is_empty()) + len;
        cur.push(op);
    }
    if !cur.is_empty() {
        out.push(Batch::Txn {
            ops: cur,
            body_len: cur_len,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Operation;
    use crate::txn::Txn;
    use crate::RequestContext;

    fn body_of(ops: &[TxnOp]) -> usize {
        Txn::new(ops.to_vec())
            .build(&RequestContext::new())
            .unwrap()
            .body()
            .len()
    }

    #[test]
    fn op_cap_splits_129_into_128_and_1() {
        let ops: Vec<_> = (0..129).map(|i| TxnOp::set(format!("k{i}"), "v")).collect();
        let b = plan(ops, &TxnLimits::default()).unwrap();
        assert_eq!(b.iter().map(Batch::len).collect::<Vec<_>>(), [128, 1]);
        let b = plan(
            (0..129).map(|i| TxnOp::set(format!("k{i}"), "v")),
            &TxnLimits::before_1_14(),
        )
        .unwrap();
        assert_eq!(b.iter().map(Batch::len).collect::<Vec<_>>(), [64, 64, 1]);
    }

    #[test]
    fn body_lengths_are_exact_and_within_the_limit() {
        let limits = TxnLimits::default();
        let ops: Vec<_> = (0..60)
            .map(|i| TxnOp::set(format!("big/ü \"{i}\""), vec![b'x'; 10_000 + i * 7]).with_flags(3))
            .collect();
        let b = plan(ops.clone(), &limits).unwrap();
        assert!(b.len() >= 2);
        let mut seen = Vec::new();
        for batch in &b {
            let Batch::Txn { ops, body_len } = batch else {
                panic!("no alone write expected")
            };
            assert_eq!(*body_len, body_of(ops));
            assert!(*body_len <= limits.max_body_bytes);
            seen.extend(ops.iter().cloned());
        }
        assert_eq!(seen, ops, "order and content kept");
        // Greedy: each transaction but the last could not take the next operation.
        for w in b.windows(2) {
            let mut with_next = w[0].ops().to_vec();
            with_next.push(w[1].ops()[0].clone());
            assert!(body_of(&with_next) > limits.max_body_bytes || with_next.len() > 128);
        }
    }

    #[test]
    fn exact_fit_is_accepted() {
        let one = TxnOp::set("a", "1");
        let len = op_body_len(&one);
        let limits = TxnLimits::default().with_max_body_bytes(2 + 2 * len + 1);
        let b = plan(vec![one.clone(), one.clone(), one], &limits).unwrap();
        assert_eq!(b.iter().map(Batch::len).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(b[0].body_len(), 2 + 2 * len + 1);
    }

    #[test]
    fn oversized_values() {
        let limits = TxnLimits::default();
        // Fits a plain PUT (≤ 512 KiB) but not a transaction body once base64-encoded.
        let ops = vec![
            TxnOp::set("a", "1"),
            TxnOp::set("b", vec![0u8; 450 * 1024]),
            TxnOp::set("c", "3"),
        ];
        let b = plan(ops, &limits).unwrap();
        assert_eq!(b.len(), 3);
        assert!(matches!(&b[1], Batch::Alone(op) if op.key == "b"));
        assert_eq!(b[1].body_len(), 450 * 1024);
        // Larger than any write.
        let err = plan(vec![TxnOp::set("x", vec![0u8; 512 * 1024 + 1])], &limits).unwrap_err();
        assert!(matches!(err, ChunkError::ValueTooLarge { ref key, .. } if key == "x"));
        // A verb without a plain-PUT form.
        let err = plan(
            vec![TxnOp::lock(
                "l",
                vec![0u8; 450 * 1024],
                crate::SessionId::new("adf4238a-882b-9ddc-4a9d-5b6758e4159e").unwrap(),
            )],
            &limits,
        )
        .unwrap_err();
        assert!(matches!(err, ChunkError::OpTooLarge { .. }));
    }

    #[test]
    fn empty_input_plans_nothing() {
        assert!(plan(Vec::new(), &TxnLimits::default()).unwrap().is_empty());
    }
}
