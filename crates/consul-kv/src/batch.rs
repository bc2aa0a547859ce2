//! Writing many keys: [`Kv::put_all`], [`Kv::put_all_with_flags`] and [`Kv::import`].
//!
//! The entries are written in transactions that respect Consul's limits (128 operations and
//! 512 KiB of request body per transaction, see [`TxnLimits`]): each transaction is atomic,
//! **the whole is not**. When one fails, [`PutAllError`] says which one, which keys it held
//! and what the transactions before it committed.

use std::collections::HashMap;
use std::fmt;
use std::future::IntoFuture;
use std::task::Poll;

use consul_kv_proto::batch::{plan, Batch, ChunkError, TxnLimits};
use consul_kv_proto::export::{rewrite_prefix, ExportEntry};
use consul_kv_proto::http::StatusCode;
use consul_kv_proto::txn::{TxnOp, Verb};
use consul_kv_proto::{Cas, Index, IntoValue, TxnErrors};

use crate::kv::Kv;
use crate::scope::BoxFuture;
use crate::txn::TxnOutcome;
use crate::Error;

/// What a [`Kv::put_all`] (or [`Kv::import`]) wrote.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutAllReport {
    /// Entries written.
    pub entries: usize,
    /// Transactions committed.
    pub transactions: usize,
    /// Entries written with a plain `PUT` because their value fits a KV write (512 KiB) but
    /// not a transaction body once base64-encoded.
    pub single_writes: usize,
    /// Value bytes written.
    pub bytes: u64,
    /// Request body bytes sent for the committed writes.
    pub request_bytes: u64,
}

/// Progress of a [`Kv::put_all`], passed to its [`progress`](PutAllRequest::progress) callback
/// after each committed chunk.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutAllProgress {
    /// The chunk just committed (0-based).
    pub chunk: usize,
    /// How many chunks there are.
    pub chunks: usize,
    /// How many entries there are.
    pub total_entries: usize,
    /// What is committed so far.
    pub committed: PutAllReport,
}

/// Why a chunk of a [`Kv::put_all`] failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BatchFailure {
    /// An entry's key is not under the prefix being rewritten
    /// ([`rewrite_prefix`](PutAllRequest::rewrite_prefix)). Checked before anything is sent.
    #[error("key {key:?} is not under the prefix {prefix:?} being rewritten")]
    OutsidePrefix {
        /// The key.
        key: String,
        /// The prefix.
        prefix: String,
    },
    /// An entry is larger than Consul accepts. Checked before anything is sent.
    #[error("an entry is too large for Consul")]
    TooLarge(#[source] ChunkError),
    /// Consul rolled the transaction back (`409`), e.g. for lack of permission.
    #[error("the transaction was rolled back")]
    RolledBack(#[source] TxnErrors),
    /// The request failed. An invalid key fails this way before anything is sent.
    #[error("the request failed")]
    Consul(#[source] Error),
}

/// A [`Kv::put_all`] stopped at a chunk: no chunk was sent after it failed. The chunks in
/// [`committed_chunks`](Self::committed_chunks) are committed (see
/// [`committed`](Self::committed)).
///
/// When [`is_outcome_unknown`](Self::is_outcome_unknown) is true, the failed chunk itself may
/// or may not have been committed (each chunk is atomic: all of its keys or none).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
#[error("batch write stopped at chunk {} of {} ({} entries committed)", .chunk + 1, .chunks, .committed.entries)]
pub struct PutAllError {
    /// The failed chunk (0-based).
    pub chunk: usize,
    /// How many chunks there were.
    pub chunks: usize,
    /// The keys of the failed chunk.
    pub keys: Vec<String>,
    /// What was committed: every chunk in [`committed_chunks`](Self::committed_chunks).
    pub committed: PutAllReport,
    /// The chunks committed (sorted). With one chunk in flight at a time
    /// ([`concurrency(1)`](PutAllRequest::concurrency)) these are exactly the chunks before
    /// the failed one; with more, chunks after it that were already in flight may be among
    /// them. Chunks not listed were not committed (the failed one possibly excepted, see
    /// [`is_outcome_unknown`](Self::is_outcome_unknown)).
    pub committed_chunks: Vec<usize>,
    /// Why it failed.
    #[source]
    pub cause: BatchFailure,
}

impl PutAllError {
    /// The underlying Consul error, if the request failed.
    pub fn consul(&self) -> Option<&Error> {
        match &self.cause {
            BatchFailure::Consul(e) => Some(e),
            _ => None,
        }
    }

    /// Whether repeating the failed chunk (and the rest) may succeed.
    pub fn is_retryable(&self) -> bool {
        self.consul().is_some_and(Error::is_retryable)
    }

    /// Whether the failed chunk may have been committed after all.
    pub fn is_outcome_unknown(&self) -> bool {
        self.consul().is_some_and(Error::is_outcome_unknown)
    }

    /// The HTTP status Consul answered with, when it answered with an error.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.cause {
            BatchFailure::Consul(e) => e.status(),
            BatchFailure::RolledBack(_) => Some(StatusCode::CONFLICT),
            _ => None,
        }
    }
}

/// How many chunks of a [`Kv::put_all`] are in flight at once by default.
pub const DEFAULT_PUT_ALL_CONCURRENCY: usize = 4;

type ProgressFn = Box<dyn FnMut(&PutAllProgress) + Send + 'static>;

/// A [`Kv::put_all`], [`Kv::put_all_with_flags`] or [`Kv::import`] request. Resolves to a
/// [`PutAllReport`] or a [`PutAllError`].
#[must_use = "a request does nothing until it is awaited"]
pub struct PutAllRequest {
    kv: Kv,
    entries: Vec<ExportEntry>,
    limits: TxnLimits,
    rewrite: Option<(String, String)>,
    concurrency: usize,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for PutAllRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutAllRequest")
            .field("kv", &self.kv)
            .field("entries", &self.entries.len())
            .field("limits", &self.limits)
            .field("rewrite", &self.rewrite)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Kv {
    /// Writes every `(key, value)` of `entries`, in order, in as few transactions as Consul's
    /// limits allow (128 operations, 512 KiB of body each; see [`TxnLimits`]).
    ///
    /// **Each transaction is atomic; the whole is not.** A failure stops the writing and
    /// reports the failed chunk and what was already committed ([`PutAllError`]). Keys are
    /// checked before anything is sent. A key given twice is written once, with its last
    /// value. Up to [`concurrency`](PutAllRequest::concurrency) transactions are in flight at
    /// once. Flags are written as 0; see [`put_all_with_flags`](Self::put_all_with_flags).
    ///
    /// ```no_run
    /// # async fn demo(kv: consul_kv::Kv) -> Result<(), consul_kv::PutAllError> {
    /// let entries = (0..10_000).map(|i| (format!("load/{i:05}"), format!("value {i}")));
    /// let report = kv
    ///     .put_all(entries)
    ///     .progress(|p| eprintln!("{}/{} chunks", p.chunk + 1, p.chunks))
    ///     .await?;
    /// assert_eq!(report.entries, 10_000);
    /// assert_eq!(report.transactions, 79); // ⌈10,000 / 128⌉
    /// # Ok(()) }
    /// ```
    pub fn put_all<I, K, V>(&self, entries: I) -> PutAllRequest
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: IntoValue,
    {
        self.put_entries(
            entries
                .into_iter()
                .map(|(k, v)| ExportEntry::new(k, 0, v))
                .collect(),
        )
    }

    /// [`put_all`](Self::put_all) with flags: `(key, value, flags)`.
    pub fn put_all_with_flags<I, K, V>(&self, entries: I) -> PutAllRequest
    where
        I: IntoIterator<Item = (K, V, u64)>,
        K: Into<String>,
        V: IntoValue,
    {
        self.put_entries(
            entries
                .into_iter()
                .map(|(k, v, f)| ExportEntry::new(k, f, v))
                .collect(),
        )
    }

    /// Writes the entries of a `consul kv export` file (key, flags, value) through
    /// [`put_all`](Self::put_all): in transactions of up to 128 entries instead of the CLI's
    /// one `PUT` per key. Add [`rewrite_prefix`](PutAllRequest::rewrite_prefix) to move them
    /// under another prefix.
    ///
    /// The entries' `namespace` and `partition` are not applied; this handle's are
    /// ([`Kv::ns`], [`Kv::partition`]).
    ///
    /// ```no_run
    /// # async fn demo(kv: consul_kv::Kv) -> Result<(), Box<dyn std::error::Error>> {
    /// use consul_kv::ExportEntry;
    /// // A file written by `consul kv export app/`.
    /// let file = std::fs::read("app.json")?;
    /// let entries: Vec<ExportEntry> = serde_json::from_slice(&file)?;
    /// let report = kv.import(entries).rewrite_prefix("app/", "app-copy/").await?;
    /// println!("{} keys in {} transactions", report.entries, report.transactions);
    /// # Ok(()) }
    /// ```
    pub fn import<I>(&self, entries: I) -> PutAllRequest
    where
        I: IntoIterator,
        I::Item: Into<ExportEntry>,
    {
        self.put_entries(entries.into_iter().map(Into::into).collect())
    }

    fn put_entries(&self, entries: Vec<ExportEntry>) -> PutAllRequest {
        PutAllRequest {
            kv: self.clone(),
            entries,
            limits: TxnLimits::default(),
            rewrite: None,
            concurrency: DEFAULT_PUT_ALL_CONCURRENCY,
            progress: None,
        }
    }
}

impl PutAllRequest {
    /// The transaction limits to respect (default: Consul 1.14+ defaults). Use
    /// [`TxnLimits::before_1_14`] for older servers (64 operations).
    pub fn limits(mut self, limits: TxnLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Moves every key from under `from` to under `to` before writing (`from` = `""` adds
    /// `to` in front of every key). A key not under `from` fails the request before anything
    /// is sent ([`BatchFailure::OutsidePrefix`]).
    pub fn rewrite_prefix(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.rewrite = Some((from.into(), to.into()));
        self
    }

    /// How many chunks may be in flight at once (default [`DEFAULT_PUT_ALL_CONCURRENCY`], at
    /// least 1). Chunks hold disjoint keys, so the result is the same as one at a time; more
    /// in flight lets Consul commit them back to back. `1` commits them strictly in order.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Calls `f` after each committed chunk (in the order they commit).
    pub fn progress(mut self, f: impl FnMut(&PutAllProgress) + Send + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// How many entries will be written.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sends the request.
    ///
    /// # Errors
    /// [`PutAllError`]: the failed chunk, its keys, what the chunks before it committed, and
    /// why ([`BatchFailure`]).
    pub async fn send(self) -> Result<PutAllReport, PutAllError> {
        let Self {
            kv,
            entries,
            limits,
            rewrite,
            concurrency,
            mut progress,
        } = self;
        let early = |cause| PutAllError {
            chunk: 0,
            chunks: 0,
            keys: Vec::new(),
            committed: PutAllReport::default(),
            committed_chunks: Vec::new(),
            cause,
        };
        let mut ops = Vec::with_capacity(entries.len());
        for e in entries {
            let key = match &rewrite {
                None => e.key,
                Some((from, to)) => match rewrite_prefix(&e.key, from, to) {
                    Some(k) => k,
                    None => {
                        return Err(early(BatchFailure::OutsidePrefix {
                            key: e.key,
                            prefix: from.clone(),
                        }))
                    }
                },
            };
            if let Err(err) = consul_kv_proto::validate_key(&key, true) {
                let mut failure = early(BatchFailure::Consul(Error::from(err)));
                failure.keys.push(key);
                return Err(failure);
            }
            ops.push(TxnOp::set(key, e.value).with_flags(e.flags));
        }
        // A key given twice is written once, with its last value: chunks then hold disjoint
        // keys, so they may be in flight together and still end as a sequential write would.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            last.insert(op.key.as_str(), i);
        }
        if last.len() < ops.len() {
            let keep: Vec<bool> = (0..ops.len())
                .map(|i| last.get(ops[i].key.as_str()) == Some(&i))
                .collect();
            drop(last);
            let mut i = 0;
            ops.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        } else {
            drop(last);
        }
        let total_entries = ops.len();
        let batches = plan(ops, &limits).map_err(|e| early(BatchFailure::TooLarge(e)))?;
        let chunks = batches.len();
        let mut report = PutAllReport::default();
        let mut committed_chunks = Vec::new();
        let mut failure: Option<(usize, BatchFailure)> = None;
        let mut inflight: Vec<BoxFuture<'static, (usize, Result<(), Failed>)>> = Vec::new();
        let mut next_chunk = 0;
        loop {
            while failure.is_none() && inflight.len() < concurrency && next_chunk < chunks {
                let (kv, batch, chunk) = (kv.clone(), batches[next_chunk].clone(), next_chunk);
                inflight.push(Box::pin(
                    async move { (chunk, write_batch(&kv, &batch).await) },
                ));
                next_chunk += 1;
            }
            if inflight.is_empty() {
                break;
            }
            let (chunk, result) = std::future::poll_fn(|cx| {
                for i in 0..inflight.len() {
                    if let Poll::Ready(done) = inflight[i].as_mut().poll(cx) {
                        drop(inflight.swap_remove(i));
                        return Poll::Ready(done);
                    }
                }
                Poll::Pending
            })
            .await;
            let batch = &batches[chunk];
            match result {
                Ok(()) => {
                    report.entries += batch.len();
                    report.bytes += batch
                        .ops()
                        .iter()
                        .map(|o| o.value.as_ref().map_or(0, |v| v.len() as u64))
                        .sum::<u64>();
                    report.request_bytes += batch.body_len() as u64;
                    if matches!(batch, Batch::Alone(_)) {
                        report.single_writes += 1;
                    } else {
                        report.transactions += 1;
                    }
                    committed_chunks.push(chunk);
                    if let Some(f) = progress.as_mut() {
                        f(&PutAllProgress {
                            chunk,
                            chunks,
                            total_entries,
                            committed: report.clone(),
                        });
                    }
                }
                Err(failed) => {
                    let cause = match failed {
                        Failed::RolledBack(e) => BatchFailure::RolledBack(e),
                        // A plain `set` is never rejected; only a CAS is, which put_all does not
                        // send.
                        Failed::Rejected => BatchFailure::RolledBack(TxnErrors(Vec::new())),
                        Failed::Consul(e) => BatchFailure::Consul(e),
                    };
                    // Keep the first failed chunk in order; later ones were in flight beside it.
                    if failure.as_ref().is_none_or(|(c, _)| chunk < *c) {
                        failure = Some((chunk, cause));
                    }
                }
            }
        }
        match failure {
            None => Ok(report),
            Some((chunk, cause)) => {
                committed_chunks.sort_unstable();
                Err(PutAllError {
                    chunk,
                    chunks,
                    keys: batches[chunk].ops().iter().map(|o| o.key.clone()).collect(),
                    committed: report,
                    committed_chunks,
                    cause,
                })
            }
        }
    }
}

impl IntoFuture for PutAllRequest {
    type Output = Result<PutAllReport, PutAllError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// How writing one batch failed.
pub(crate) enum Failed {
    /// The transaction was rolled back with these per-operation errors.
    RolledBack(TxnErrors),
    /// A plain CAS write answered `false`.
    Rejected,
    /// The request failed.
    Consul(Error),
}

/// Sends one batch: a transaction, or a plain `PUT` for an [`Batch::Alone`] write.
pub(crate) async fn write_batch(kv: &Kv, batch: &Batch) -> Result<(), Failed> {
    match batch {
        Batch::Alone(op) => {
            let mut set = kv
                .set(op.key.clone(), op.value.clone().unwrap_or_default())
                .flags(op.flags);
            if op.verb == Verb::Cas {
                set = set.cas(Index::new_nonzero(op.index).map_or(Cas::Absent, Cas::ModifyIndex));
            }
            match set.await {
                Ok(true) => Ok(()),
                Ok(false) => Err(Failed::Rejected),
                Err(e) => Err(Failed::Consul(e)),
            }
        }
        _ => {
            let txn = batch.ops().iter().cloned().fold(kv.txn(), |t, op| t.op(op));
            match txn.await {
                Ok(TxnOutcome::Committed(_)) => Ok(()),
                Ok(TxnOutcome::RolledBack(errors)) => Err(Failed::RolledBack(TxnErrors(errors))),
                Err(e) => Err(Failed::Consul(e)),
            }
        }
    }
}
