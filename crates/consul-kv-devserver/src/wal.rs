//! `--data FILE`: a write-ahead log with group commit, so that a write is on disk before its
//! answer is sent, and a `SIGKILL` loses nothing that was acknowledged.
//!
//! **Format.** The file starts with the 8-byte magic `CKVWAL1\n`, followed by records framed
//! as `length: u32 LE | crc32: u32 LE | payload`, the payload a JSON [`Record`]: first a
//! snapshot of every datacenter (KV entries, tombstones, sessions and table indexes), then one
//! redo record per write holding the state after the write of everything it touched.
//!
//! **Commit.** A write logs its record while it still holds its datacenter's lock (so the log
//! order is the index order), before its answer is sent. By default the record is written to
//! the file at once (`write(2)`): it is then in the kernel's page cache and survives the
//! process being killed (`SIGKILL`, a crash, an abort). With `fsync` (`--data-fsync`) it goes
//! to a batch that a flusher thread writes and `fdatasync`s, and the answer waits for that:
//! it then survives the machine losing power too. Writes that arrive during one `fdatasync`
//! share the next one (group commit).
//!
//! **Recovery.** At start the log is replayed; a torn or corrupt tail (short frame, bad
//! checksum, undecodable payload) is reported with its byte offset and cut off, never applied
//! half-way. The state is then compacted into a fresh file (written aside, synced, renamed over
//! the old one) that the new log appends to. Indexes never go backwards across a restart. A
//! file that holds `consul kv export` JSON (this server's former format) is imported into the
//! default datacenter.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::server::Shared;
use crate::state::durable::{DcSnapshot, Redo};
use crate::Error;

/// The answer to a write whose log record could not be written: Consul's plain-text 500.
pub(crate) fn not_durable() -> crate::reply::Resp {
    crate::reply::text(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "devserver: the data file could not be written",
    )
}

/// The first bytes of a log file.
const MAGIC: &[u8; 8] = b"CKVWAL1\n";

/// The largest record accepted when reading back (a longer length field is corruption).
const MAX_RECORD: usize = 1 << 30;

/// One log record.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    /// Every datacenter, by name.
    Snapshot(Vec<(String, DcSnapshot)>),
    /// One write to the named datacenter.
    Redo(String, Box<Redo>),
}

/// What recovery found in the data file at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records replayed.
    pub records: u64,
    /// Bytes of a torn or corrupt tail that were cut off (0 for a clean log).
    pub discarded_bytes: u64,
}

#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    appended: u64,
    closed: bool,
}

/// What the writers and the flusher thread share.
#[derive(Debug)]
struct Inner {
    path: PathBuf,
    file: Mutex<File>,
    /// `fdatasync` before an answer (group commit); otherwise `write(2)` before an answer.
    fsync: bool,
    pending: Mutex<Pending>,
    wake: Condvar,
    durable: tokio::sync::watch::Sender<u64>,
    failed: AtomicBool,
}

/// The open log. Without `fsync`, each record is written to the file (`write(2)`, in the
/// page cache: it survives the process being killed) by the write that produced it, before
/// its answer. With `fsync`, records collect in a batch that a flusher thread writes and
/// `fdatasync`s, and answers wait for it (it survives the machine losing power too).
#[derive(Debug)]
pub(crate) struct Wal {
    inner: Arc<Inner>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// CRC-32 (IEEE, reflected), bitwise: records are small and this runs once per record.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn frame(out: &mut Vec<u8>, rec: &Record) {
    // A record of our own types always serializes; fall back to an empty object, which
    // replay reports as corrupt rather than panicking here.
    let payload = serde_json::to_vec(rec).unwrap_or_else(|_| b"{}".to_vec());
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// Splits `data` (after the magic) into records; stops at the first torn or corrupt one and
/// returns the offset (from the start of `data`) where the good prefix ends.
fn read_records(data: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let Some(head) = data.get(pos..pos + 8) else {
            break;
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_RECORD {
            break;
        }
        let Some(payload) = data.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32(payload) != crc {
            break;
        }
        let Ok(rec) = serde_json::from_slice::<Record>(payload) else {
            break;
        };
        out.push(rec);
        pos += 8 + len;
    }
    (out, pos)
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::DataFile(path.to_owned(), e.to_string())
}

/// Writes a fresh log holding one snapshot of `shared` to `path` (aside, synced, renamed).
fn compact(path: &Path, shared: &Shared) -> std::io::Result<()> {
    let dcs = shared
        .dcs()
        .iter()
        .map(|dc| (dc.name.clone(), dc.lock().snapshot()))
        .collect();
    let mut bytes = MAGIC.to_vec();
    frame(&mut bytes, &Record::Snapshot(dcs));
    crate::export::save_atomic(path, &bytes)
}

impl Wal {
    /// Replays `path` into `shared`'s datacenters, compacts it, and opens it for appending.
    ///
    /// # Errors
    /// [`Error::DataFile`] when the file cannot be read or written, or holds neither a log nor
    /// `consul kv export` JSON.
    pub(crate) fn open(
        path: &Path,
        shared: &Shared,
        fsync: bool,
    ) -> Result<(Self, Recovery), Error> {
        let mut data = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut data).map_err(|e| io_err(path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, e)),
        }
        let now = std::time::Instant::now();
        let mut recovery = Recovery::default();
        if let Some(body) = data.strip_prefix(MAGIC.as_slice()) {
            let (records, good) = read_records(body);
            recovery.records = records.len() as u64;
            recovery.discarded_bytes = (body.len() - good) as u64;
            for rec in &records {
                let applied = match rec {
                    Record::Snapshot(dcs) => dcs.iter().try_for_each(|(name, snap)| {
                        match shared.dcs().iter().find(|d| &d.name == name) {
                            Some(dc) => dc.lock().restore(snap, now),
                            None => Ok(()),
                        }
                    }),
                    Record::Redo(name, redo) => {
                        match shared.dcs().iter().find(|d| &d.name == name) {
                            Some(dc) => dc.lock().apply(redo, now),
                            None => Ok(()),
                        }
                    }
                };
                applied.map_err(|e| io_err(path, format!("record does not apply: {e}")))?;
            }
            if recovery.discarded_bytes > 0 {
                tracing::warn!(
                    path = %path.display(),
                    offset = MAGIC.len() + good,
                    discarded_bytes = recovery.discarded_bytes,
                    "data file: torn or corrupt log tail cut off (writes after it were never acknowledged)"
                );
            }
        } else if data.iter().all(u8::is_ascii_whitespace) {
            // Empty or missing: a fresh store.
        } else if data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            let imported = crate::export::parse(&data).map_err(|e| io_err(path, e))?;
            if let Some(dc) = shared.default_dc() {
                dc.lock().import(imported);
            }
        } else {
            return Err(io_err(
                path,
                "neither a devserver log nor `consul kv export` JSON",
            ));
        }
        compact(path, shared).map_err(|e| io_err(path, e))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        let (durable, _) = tokio::sync::watch::channel(0);
        let inner = Arc::new(Inner {
            path: path.to_owned(),
            file: Mutex::new(file),
            fsync,
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            durable,
            failed: AtomicBool::new(false),
        });
        let flusher = if fsync {
            let inner = Arc::clone(&inner);
            Some(
                std::thread::Builder::new()
                    .name("devserver-wal".into())
                    .spawn(move || inner.flush_loop())
                    .map_err(|e| io_err(path, e))?,
            )
        } else {
            None
        };
        tracing::info!(
            path = %path.display(),
            records = recovery.records,
            "data file replayed"
        );
        let wal = Self {
            inner,
            flusher: Mutex::new(flusher),
        };
        Ok((wal, recovery))
    }

    /// Appends the redo record of one write to datacenter `dc` (called under its lock).
    pub(crate) fn append(&self, dc: &str, redo: Redo) {
        let rec = Record::Redo(dc.to_owned(), Box::new(redo));
        if !self.inner.fsync {
            let mut bytes = Vec::new();
            frame(&mut bytes, &rec);
            if let Err(e) = lock(&self.inner.file).write_all(&bytes) {
                self.inner.fail(&e);
            }
            return;
        }
        let mut p = lock(&self.inner.pending);
        frame(&mut p.buf, &rec);
        p.appended += 1;
        self.inner.wake.notify_one();
    }

    /// Waits until every record appended so far is on disk. `false` when the log could not
    /// be written (the write must not be acknowledged as durable).
    pub(crate) async fn wait_durable(&self) -> bool {
        if !self.inner.fsync {
            // Written by `append` already.
            return !self.inner.failed.load(Ordering::SeqCst);
        }
        let target = lock(&self.inner.pending).appended;
        let mut rx = self.inner.durable.subscribe();
        let _ = rx.wait_for(|d| *d >= target).await;
        !self.inner.failed.load(Ordering::SeqCst)
    }

    /// Stops the flusher after it has written everything appended.
    pub(crate) fn close(&self) {
        lock(&self.inner.pending).closed = true;
        self.inner.wake.notify_all();
        if let Some(t) = lock(&self.flusher).take() {
            let _ = t.join();
        }
        if let Err(e) = lock(&self.inner.file).sync_data() {
            self.inner.fail(&e);
        }
    }

    /// Writes a fresh compacted log (at a graceful stop).
    pub(crate) fn compact(&self, shared: &Shared) -> Result<(), Error> {
        compact(&self.inner.path, shared).map_err(|e| io_err(&self.inner.path, e))
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    fn fail(&self, e: &std::io::Error) {
        tracing::error!(path = %self.path.display(), error = %e, "data file write failed");
        self.failed.store(true, Ordering::SeqCst);
    }

    /// The flusher's loop: take the batch, write it, `fdatasync`, publish.
    fn flush_loop(&self) {
        loop {
            let (buf, seq) = {
                let mut p = lock(&self.pending);
                while p.buf.is_empty() && !p.closed {
                    p = self.wake.wait(p).unwrap_or_else(|e| e.into_inner());
                }
                if p.buf.is_empty() {
                    return;
                }
                (std::mem::take(&mut p.buf), p.appended)
            };
            let written = {
                let mut file = lock(&self.file);
                file.write_all(&buf).and_then(|()| file.sync_data())
            };
            if let Err(e) = written {
                self.fail(&e);
            }
            self.durable.send_replace(seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_at_the_last_good_record() {
        let mut data = Vec::new();
        for i in 0..3 {
            frame(
                &mut data,
                &Record::Snapshot(vec![(format!("dc{i}"), empty())]),
            );
        }
        let whole = data.len();
        let (recs, good) = read_records(&data);
        assert_eq!((recs.len(), good), (3, whole));
        // Torn: every cut inside the last record keeps exactly the first two.
        let (_, second_end) = read_records(&data[..whole - 1]);
        for cut in second_end..whole {
            let (recs, good) = read_records(&data[..cut]);
            assert_eq!((recs.len(), good), (2, second_end), "cut at {cut}");
        }
        // Corrupt: a flipped byte in the last payload is detected by its checksum.
        let mut bad = data.clone();
        bad[whole - 2] ^= 0x40;
        assert_eq!(read_records(&bad).0.len(), 2);
        // A length field past any sane size is corruption too.
        let mut bad = data[..second_end].to_vec();
        bad.extend_from_slice(&u32::MAX.to_le_bytes());
        bad.extend_from_slice(&[0; 4]);
        assert_eq!(read_records(&bad).1, second_end);
    }

    fn empty() -> DcSnapshot {
        crate::state::Dc::new(7, 1.0).snapshot()
    }
}
