//! `import --atomic-batches`: the entries of an export file written with the facade's
//! [`Kv::import`](consul_kv::Kv::import), in transactions within Consul's limits (operations
//! and body size per transaction, see [`TxnLimits`]), each transaction all-or-nothing.
//!
//! Several transactions may be in flight at once (the facade's default); a key given twice is
//! written once, with its last value, as a sequential import would leave it. On success stdout
//! is what `consul kv import` prints (`Imported: KEY` per entry, in the file's order); a
//! progress bar is drawn on stderr only when stderr is a terminal. On failure stdout stays
//! empty and stderr names the failed batch: each batch is all-or-nothing, other batches may be
//! committed.

use std::io::IsTerminal as _;

use consul_kv::{BatchFailure, Bytes, Client, ExportEntry, TxnLimits};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::common::{full_chain, Ui};
use crate::gocompat::go_base64_decode;
use crate::gojson::Entry;
use crate::kvcmd::ImportArgs;

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

/// `import --atomic-batches`. Every value is decoded first: nothing is written when one is not
/// base64 (or, checked by the facade before sending, a key is invalid or a value too large).
pub async fn import_batched(
    client: &Client,
    a: &ImportArgs,
    entries: Vec<Entry>,
    ui: &mut Ui,
) -> u8 {
    let mut batch = Vec::with_capacity(entries.len());
    for e in entries {
        let (value, err) = go_base64_decode(e.value.as_bytes());
        if let Some(at) = err {
            ui.error(format!(
                "Error base 64 decoding value for key {}: illegal base64 data at input byte {at}",
                e.key
            ));
            return 1;
        }
        batch.push(ExportEntry::new(
            format!("{}{}", a.prefix, e.key),
            e.flags,
            Bytes::from(value),
        ));
    }
    let keys: Vec<String> = batch.iter().map(|e| e.key.clone()).collect();
    let mut limits = TxnLimits::default();
    if let Some(n) = a.batch_ops {
        limits = limits.with_max_ops(usize::try_from(n).unwrap_or(usize::MAX).max(1));
    }
    let pb = progress(keys.len(), "importing");
    let bar = pb.clone();
    let result = client
        .kv()
        .import(batch)
        .limits(limits)
        .progress(move |p| bar.set_position(p.committed.entries as u64))
        .await;
    pb.finish_and_clear();
    match result {
        Ok(_) => {
            // Transactions may commit out of order: the lines come once all are in, in the
            // file's order, one per entry as `consul kv import` prints them.
            for k in &keys {
                ui.info(format!("Imported: {k}"));
            }
            0
        }
        Err(e) => {
            let first = e.keys.first().cloned().unwrap_or_default();
            let why = match &e.cause {
                BatchFailure::Consul(err) => full_chain(err),
                other => full_chain(other),
            };
            if e.chunks == 0 && first.is_empty() {
                ui.error(format!("Error! Nothing written: {why}"));
            } else if e.chunks == 0 {
                ui.error(format!("Error! Nothing written: key {first}: {why}"));
            } else {
                ui.error(format!(
                    "Error! Failed writing batch {} of {} ({} keys from {first}; {} keys \
                     committed in other batches): {why}",
                    e.chunk + 1,
                    e.chunks,
                    e.keys.len(),
                    e.committed.entries
                ));
            }
            1
        }
    }
}
