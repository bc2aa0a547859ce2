//! `import --atomic-batches`: the entries of an export file written with the facade's
//! [`Kv::import`](consul_kv::Kv::import), in transactions within Consul's limits (operations
//! and body size per transaction, see [`TxnLimits`]), each transaction all-or-nothing.
//!
//! stdout stays what `consul kv import` prints (`Imported: KEY` per entry, printed once the
//! transaction holding it committed); a progress bar is drawn on stderr only when stderr is a
//! terminal.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;

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
    let keys: Arc<Vec<String>> = Arc::new(batch.iter().map(|e| e.key.clone()).collect());
    let mut limits = TxnLimits::default();
    if let Some(n) = a.batch_ops {
        limits = limits.with_max_ops(usize::try_from(n).unwrap_or(usize::MAX).max(1));
    }
    ui.flush();
    let pb = progress(keys.len(), "importing");
    let (bar, printed_keys) = (pb.clone(), Arc::clone(&keys));
    let mut printed = 0usize;
    let result = client
        .kv()
        .import(batch)
        .limits(limits)
        .progress(move |p| {
            // Entries are committed in order: print the ones this chunk committed.
            let upto = p.committed.entries.min(printed_keys.len());
            let mut out = Vec::new();
            for k in &printed_keys[printed..upto] {
                out.extend_from_slice(b"Imported: ");
                out.extend_from_slice(k.as_bytes());
                out.push(b'\n');
            }
            printed = upto;
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&out);
            let _ = stdout.flush();
            bar.set_position(upto as u64);
        })
        .await;
    pb.finish_and_clear();
    match result {
        Ok(_) => 0,
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
                     written before it): {why}",
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
