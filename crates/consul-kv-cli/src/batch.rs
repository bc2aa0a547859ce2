//! Transactions within Consul's limits: `import --atomic-batches`, and the batching `sync`
//! uses.
//!
//! Consul refuses a transaction of more than 64 operations and a `/v1/txn` body over
//! `txn_max_req_len` (512 KiB by default). [`batches`] packs operations in order into
//! transactions under both limits, with a margin for the JSON around each operation; an
//! operation too large for any transaction goes alone through the plain KV endpoint
//! (atomic by itself).

use std::io::IsTerminal as _;

use bytes::Bytes;
use consul_kv::proto::txn::TxnOp;
use consul_kv::{Client, TxnOutcome};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::common::{full_chain, Ui};
use crate::gocompat::go_base64_decode;
use crate::gojson::Entry;
use crate::kvcmd::ImportArgs;

/// Consul's limit on operations per transaction.
pub const MAX_TXN_OPS: usize = 64;

/// The body budget per transaction: Consul's default `txn_max_req_len` (512 KiB) less a
/// margin for the enclosing JSON.
pub const MAX_TXN_BYTES: usize = 512 * 1024 - 8 * 1024;

/// The bytes one operation adds to a `/v1/txn` body, at most: the key escaped in the worst
/// case, the value in base64 and the fixed fields.
pub fn op_size(key: &str, value_len: usize) -> usize {
    128 + key.len() * 6 + value_len.div_ceil(3) * 4
}

/// One write of a batch: its key, value and flags.
#[derive(Debug, Clone)]
pub struct Write {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Bytes,
    /// The flags.
    pub flags: u64,
}

/// Where a run of writes goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Writes `start..end` go in one transaction.
    Txn(usize, usize),
    /// Write `i` is too large for a transaction: a plain PUT.
    Single(usize),
}

/// Packs `sizes` (the [`op_size`] of each operation, in order) into transactions of at most
/// `max_ops` operations and [`MAX_TXN_BYTES`] bytes.
pub fn batches(sizes: &[usize], max_ops: usize) -> Vec<Chunk> {
    let max_ops = max_ops.clamp(1, MAX_TXN_OPS);
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &s) in sizes.iter().enumerate() {
        if s > MAX_TXN_BYTES {
            if start < i {
                out.push(Chunk::Txn(start, i));
            }
            out.push(Chunk::Single(i));
            start = i + 1;
            bytes = 0;
            continue;
        }
        if i - start == max_ops || bytes + s > MAX_TXN_BYTES {
            out.push(Chunk::Txn(start, i));
            start = i;
            bytes = 0;
        }
        bytes += s;
    }
    if start < sizes.len() {
        out.push(Chunk::Txn(start, sizes.len()));
    }
    out
}

/// A progress bar on stderr when stderr is a terminal; hidden otherwise.
pub fn progress(len: usize, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_owned());
    pb
}

/// `import --atomic-batches`: every value is decoded first (nothing is written when one is
/// not base64), then the entries go in transactions; `Imported: KEY` is printed for each
/// entry once its transaction committed, as `consul kv import` prints it.
pub async fn import_batched(
    client: &Client,
    a: &ImportArgs,
    entries: Vec<Entry>,
    ui: &mut Ui,
) -> u8 {
    let mut writes = Vec::with_capacity(entries.len());
    for e in entries {
        let (value, err) = go_base64_decode(e.value.as_bytes());
        if let Some(at) = err {
            ui.error(format!(
                "Error base 64 decoding value for key {}: illegal base64 data at input byte {at}",
                e.key
            ));
            return 1;
        }
        writes.push(Write {
            key: format!("{}{}", a.prefix, e.key),
            value: Bytes::from(value),
            flags: e.flags,
        });
    }
    let max_ops = usize::try_from(a.batch_ops).unwrap_or(MAX_TXN_OPS);
    match write_all(client, &writes, max_ops, ui, true).await {
        Ok(()) => 0,
        Err(msg) => {
            ui.error(msg);
            1
        }
    }
}

/// Writes `writes` in transactions, in order. With `print`, prints `Imported: KEY` per write
/// once committed.
///
/// # Errors
/// A message naming the first key of the batch that failed; the batches before it are
/// committed, nothing of it or after it is.
pub async fn write_all(
    client: &Client,
    writes: &[Write],
    max_ops: usize,
    ui: &mut Ui,
    print: bool,
) -> Result<(), String> {
    let kv = client.kv();
    let sizes: Vec<usize> = writes
        .iter()
        .map(|w| op_size(&w.key, w.value.len()))
        .collect();
    let pb = progress(writes.len(), "importing");
    for chunk in batches(&sizes, max_ops) {
        let (start, end) = match chunk {
            Chunk::Txn(s, e) => (s, e),
            Chunk::Single(i) => (i, i + 1),
        };
        let first = &writes[start].key;
        match chunk {
            Chunk::Single(i) => {
                let w = &writes[i];
                kv.set(w.key.clone(), w.value.clone())
                    .flags(w.flags)
                    .await
                    .map_err(|e| {
                        format!("Error! Failed writing data for key {}: {}", w.key, full_chain(&e))
                    })?;
            }
            Chunk::Txn(s, e) => {
                let mut txn = kv.txn();
                for w in &writes[s..e] {
                    txn = txn.op(TxnOp::set(w.key.clone(), w.value.clone()).with_flags(w.flags));
                }
                match txn.await {
                    Ok(TxnOutcome::Committed(_)) => {}
                    Ok(TxnOutcome::RolledBack(errs)) => {
                        let why: Vec<String> = errs.iter().map(ToString::to_string).collect();
                        return Err(format!(
                            "Error! Batch of {} keys from {first} rolled back: {}",
                            e - s,
                            why.join("; ")
                        ));
                    }
                    Err(err) => {
                        return Err(format!(
                            "Error! Failed writing batch of {} keys from {first}: {}",
                            e - s,
                            full_chain(&err)
                        ));
                    }
                }
            }
        }
        if print {
            for w in &writes[start..end] {
                ui.info(format!("Imported: {}", w.key));
            }
        }
        pb.inc((end - start) as u64);
    }
    pb.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_op_and_byte_limits() {
        let sizes = vec![100; 130];
        assert_eq!(
            batches(&sizes, 64),
            vec![Chunk::Txn(0, 64), Chunk::Txn(64, 128), Chunk::Txn(128, 130)]
        );
        let big = MAX_TXN_BYTES / 2 + 1;
        assert_eq!(
            batches(&[big, big, 10], 64),
            vec![Chunk::Txn(0, 1), Chunk::Txn(1, 3)]
        );
        assert_eq!(
            batches(&[10, MAX_TXN_BYTES + 1, 10], 64),
            vec![Chunk::Txn(0, 1), Chunk::Single(1), Chunk::Txn(2, 3)]
        );
        assert_eq!(batches(&[], 64), vec![]);
        assert_eq!(batches(&[1, 1, 1], 2), vec![Chunk::Txn(0, 2), Chunk::Txn(2, 3)]);
    }
}
