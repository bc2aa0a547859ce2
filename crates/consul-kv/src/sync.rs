//! [`Kv::sync`]: make a prefix hold a desired set of entries, writing only what differs,
//! without overwriting a concurrent edit.
//!
//! A sync reads the prefix once and computes a [`SyncPlan`] (added, changed and, when asked,
//! deleted keys). The plan can be printed or inspected (a dry run), then applied: every write
//! is conditional on the key's modify index **as seen when the plan was made** (`cas` with
//! that index, `cas` with 0 for a new key, `delete-cas`), in transactions within Consul's
//! limits. A key someone changed in between is not overwritten: it is reported as a
//! [`SyncConflict`], and the rest of its transaction is applied without it.

use std::collections::BTreeMap;
use std::fmt;
use std::future::IntoFuture;

use consul_kv_proto::batch::{plan, Batch, ChunkError, TxnLimits};
use consul_kv_proto::export::ExportEntry;
use consul_kv_proto::txn::TxnOp;
use consul_kv_proto::{Cas, Index, KvPair, TxnErrors};

use crate::batch::{write_batch, Failed};
use crate::kv::Kv;
use crate::scope::BoxFuture;
use crate::Error;

/// What a sync does to one key.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncAction {
    /// Create a key that does not exist (conditional on it still not existing).
    Add,
    /// Change the value or flags of a key (conditional on its modify index).
    Change,
    /// Delete a key absent from the desired set (conditional on its modify index).
    Delete,
}

impl fmt::Display for SyncAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Add => "add",
            Self::Change => "change",
            Self::Delete => "delete",
        })
    }
}

/// A key whose value or flags differ from the desired ones.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncChange {
    /// The key as it stood when the plan was made (its modify index is the CAS condition).
    pub current: KvPair,
    /// What it should hold.
    pub desired: ExportEntry,
}

/// The difference between a prefix and a desired set, from [`SyncRequest::plan`]. Print it
/// (`Display` lists `+ key`, `~ key`, `- key`), inspect it, then [`apply`](Self::apply) it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// The prefix.
    pub prefix: String,
    /// Keys to create.
    pub added: Vec<ExportEntry>,
    /// Keys to change.
    pub changed: Vec<SyncChange>,
    /// Keys to delete (only with [`SyncRequest::delete`]).
    pub deleted: Vec<KvPair>,
    /// Keys that already hold the desired value and flags.
    pub unchanged: usize,
    /// Keys under the prefix absent from the desired set, kept because deleting was not asked.
    pub kept: usize,
    limits: TxnLimits,
}

impl SyncPlan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many keys would be written or deleted.
    pub fn len(&self) -> usize {
        self.added.len() + self.changed.len() + self.deleted.len()
    }

    /// The conditional operations the plan applies, with what each does, in order: added,
    /// changed, deleted.
    ///
    /// ```
    /// use consul_kv::proto::txn::Verb;
    /// # fn demo(plan: &consul_kv::SyncPlan) {
    /// for (op, _action) in plan.operations() {
    ///     assert!(matches!(op.verb, Verb::Cas | Verb::DeleteCas));
    /// }
    /// # }
    /// ```
    pub fn operations(&self) -> Vec<(TxnOp, SyncAction)> {
        let mut ops = Vec::with_capacity(self.len());
        for e in &self.added {
            ops.push((
                TxnOp::cas(e.key.clone(), e.value.clone(), Cas::Absent).with_flags(e.flags),
                SyncAction::Add,
            ));
        }
        for c in &self.changed {
            ops.push((
                TxnOp::cas(
                    c.desired.key.clone(),
                    c.desired.value.clone(),
                    Cas::from(&c.current),
                )
                .with_flags(c.desired.flags),
                SyncAction::Change,
            ));
        }
        for d in &self.deleted {
            ops.push((
                TxnOp::delete_cas(d.key.clone(), Index::new(d.modify_index)),
                SyncAction::Delete,
            ));
        }
        ops
    }

    /// Applies the plan: every operation conditional on the index seen when the plan was made,
    /// in transactions within the plan's [`TxnLimits`]. A rejected condition becomes a
    /// [`SyncConflict`]; the other operations of that transaction are sent again without it.
    ///
    /// # Errors
    /// [`SyncError::Interrupted`] when a request fails, with what was applied before it.
    pub async fn apply(&self, kv: &Kv) -> Result<SyncReport, SyncError> {
        let tagged = self.operations();
        let actions: Vec<SyncAction> = tagged.iter().map(|(_, a)| *a).collect();
        let batches = plan(tagged.into_iter().map(|(op, _)| op), &self.limits)
            .map_err(SyncError::TooLarge)?;
        let mut report = SyncReport {
            plan: self.clone(),
            dry_run: false,
            applied: 0,
            transactions: 0,
            conflicts: Vec::new(),
        };
        let mut offset = 0;
        for batch in batches {
            let n = batch.len();
            let mut pending: Vec<(TxnOp, SyncAction)> = batch
                .ops()
                .iter()
                .cloned()
                .zip(actions[offset..offset + n].iter().copied())
                .collect();
            offset += n;
            let alone = matches!(batch, Batch::Alone(_));
            while !pending.is_empty() {
                let attempt = if alone {
                    batch.clone()
                } else {
                    Batch::Txn {
                        ops: pending.iter().map(|(op, _)| op.clone()).collect(),
                        body_len: 0,
                    }
                };
                match write_batch(kv, &attempt).await {
                    Ok(()) => {
                        report.applied += pending.len();
                        report.transactions += 1;
                        pending.clear();
                    }
                    Err(Failed::Rejected) => {
                        for (op, action) in pending.drain(..) {
                            report.conflicts.push(SyncConflict::new(
                                &op,
                                action,
                                format!("the key changed since the plan (index {})", op.index),
                            ));
                        }
                    }
                    Err(Failed::RolledBack(TxnErrors(errors))) => {
                        let mut failed: Vec<usize> = errors
                            .iter()
                            .map(|e| e.op_index)
                            .filter(|&i| i < pending.len())
                            .collect();
                        failed.sort_unstable();
                        failed.dedup();
                        if failed.is_empty() {
                            // A rollback that names no operation of ours: report them all.
                            let what = TxnErrors(errors).to_string();
                            for (op, action) in pending.drain(..) {
                                report
                                    .conflicts
                                    .push(SyncConflict::new(&op, action, what.clone()));
                            }
                        } else {
                            for &i in failed.iter().rev() {
                                let (op, action) = pending.remove(i);
                                let what = errors
                                    .iter()
                                    .find(|e| e.op_index == i)
                                    .map(|e| e.what.clone())
                                    .unwrap_or_default();
                                report.conflicts.push(SyncConflict::new(&op, action, what));
                            }
                        }
                    }
                    Err(Failed::Consul(source)) => {
                        return Err(SyncError::Interrupted {
                            applied: report.applied,
                            conflicts: report.conflicts,
                            source,
                        })
                    }
                }
            }
        }
        report.conflicts.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(report)
    }
}

impl fmt::Display for SyncPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.added {
            writeln!(
                f,
                "+ {} ({} bytes, flags {})",
                e.key,
                e.value.len(),
                e.flags
            )?;
        }
        for c in &self.changed {
            writeln!(
                f,
                "~ {} ({} → {} bytes, flags {} → {})",
                c.desired.key,
                c.current.value_bytes().len(),
                c.desired.value.len(),
                c.current.flags,
                c.desired.flags
            )?;
        }
        for d in &self.deleted {
            writeln!(f, "- {}", d.key)?;
        }
        write!(
            f,
            "{}: {} to add, {} to change, {} to delete, {} unchanged, {} kept",
            self.prefix,
            self.added.len(),
            self.changed.len(),
            self.deleted.len(),
            self.unchanged,
            self.kept
        )
    }
}

/// A planned operation whose condition no longer held: someone changed (or created) the key
/// after the plan was made. The key was left as that writer left it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConflict {
    /// The key.
    pub key: String,
    /// What the plan would have done.
    pub action: SyncAction,
    /// The modify index the plan expected (`0`: the key was expected not to exist).
    pub expected_index: u64,
    /// Consul's reason, e.g. `failed to set key "k", index is stale`.
    pub what: String,
}

impl SyncConflict {
    fn new(op: &TxnOp, action: SyncAction, what: String) -> Self {
        Self {
            key: op.key.clone(),
            action,
            expected_index: op.index,
            what,
        }
    }
}

/// What a [`Kv::sync`] did (or, for a dry run, would do).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// The plan.
    pub plan: SyncPlan,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Operations applied.
    pub applied: usize,
    /// Requests that committed (transactions, and plain writes of large values).
    pub transactions: usize,
    /// Operations not applied because the key changed after the plan, sorted by key.
    pub conflicts: Vec<SyncConflict>,
}

impl SyncReport {
    /// Whether every planned operation was applied (always true for an empty plan).
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty() && (self.dry_run || self.applied == self.plan.len())
    }
}

/// Why a [`Kv::sync`] failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A desired key is not under the prefix. Nothing was written.
    #[error("key {key:?} is not under the prefix {prefix:?}")]
    OutsidePrefix {
        /// The key.
        key: String,
        /// The prefix.
        prefix: String,
    },
    /// A desired value is larger than Consul accepts. Nothing was written.
    #[error("a desired entry is too large for Consul")]
    TooLarge(#[source] ChunkError),
    /// Reading the prefix failed, or a key is invalid. Nothing was written.
    #[error("the sync could not be planned")]
    Consul(#[source] Error),
    /// A request failed while applying: `applied` operations were committed before it; the
    /// failed request itself may have been applied when the error
    /// [`is_outcome_unknown`](Error::is_outcome_unknown). Running the sync again is safe:
    /// it plans from the current state.
    #[error("the sync stopped after {applied} operations")]
    Interrupted {
        /// Operations committed before the failure.
        applied: usize,
        /// Conflicts found before the failure.
        conflicts: Vec<SyncConflict>,
        /// The failure.
        #[source]
        source: Error,
    },
}

impl SyncError {
    /// The underlying Consul error, if any.
    pub fn consul(&self) -> Option<&Error> {
        match self {
            Self::Consul(e) | Self::Interrupted { source: e, .. } => Some(e),
            _ => None,
        }
    }

    /// Whether running the sync again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.consul()
            .is_some_and(|e| e.is_retryable() || e.is_outcome_unknown())
    }

    /// The HTTP status Consul answered with, when it answered with an error.
    pub fn status(&self) -> Option<consul_kv_proto::http::StatusCode> {
        self.consul().and_then(Error::status)
    }
}

impl Kv {
    /// Makes the keys under a byte `prefix` hold `desired` (full keys, each under the
    /// prefix; items are `(key, value)`, `(key, value, flags)` or [`ExportEntry`]), writing
    /// only what differs.
    ///
    /// Keys under the prefix that are not desired are kept unless
    /// [`delete(true)`](SyncRequest::delete) is set. [`plan`](SyncRequest::plan) returns the
    /// difference without writing, [`dry_run`](SyncRequest::dry_run) reports it as a
    /// [`SyncReport`]; awaiting the request plans and applies (see [`SyncPlan::apply`]).
    ///
    /// Every write is conditional on the modify index seen when planning, so a concurrent edit
    /// is never overwritten: it comes back in [`SyncReport::conflicts`].
    ///
    /// ```no_run
    /// # async fn demo(kv: consul_kv::Kv) -> Result<(), consul_kv::SyncError> {
    /// let desired = [("app/name", "web"), ("app/port", "8080")];
    /// let plan = kv.sync("app/", desired).delete(true).plan().await?;
    /// println!("{plan}"); // + app/port (4 bytes, flags 0) … app/: 1 to add, …
    /// let report = plan.apply(&kv).await?;
    /// for c in &report.conflicts {
    ///     eprintln!("{} changed meanwhile, left alone: {}", c.key, c.what);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn sync<I>(&self, prefix: impl Into<String>, desired: I) -> SyncRequest
    where
        I: IntoIterator,
        I::Item: Into<ExportEntry>,
    {
        SyncRequest {
            kv: self.clone(),
            prefix: prefix.into(),
            desired: desired.into_iter().map(Into::into).collect(),
            delete: false,
            dry_run: false,
            limits: TxnLimits::default(),
        }
    }
}

/// A [`Kv::sync`] request. Resolves to a [`SyncReport`].
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct SyncRequest {
    kv: Kv,
    prefix: String,
    desired: Vec<ExportEntry>,
    delete: bool,
    dry_run: bool,
    limits: TxnLimits,
}

impl SyncRequest {
    /// Whether to delete keys under the prefix that are not in the desired set (default:
    /// no).
    pub fn delete(mut self, delete: bool) -> Self {
        self.delete = delete;
        self
    }

    /// Plan only: the report holds the plan, and nothing is written.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// The transaction limits to respect (default: Consul 1.14+ defaults).
    pub fn limits(mut self, limits: TxnLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Reads the prefix and computes the plan; writes nothing.
    ///
    /// # Errors
    /// [`SyncError::OutsidePrefix`], [`SyncError::Consul`] (an invalid key, a failed read).
    pub async fn plan(self) -> Result<SyncPlan, SyncError> {
        let mut desired: BTreeMap<String, ExportEntry> = BTreeMap::new();
        for e in self.desired {
            if !e.key.starts_with(&self.prefix) {
                return Err(SyncError::OutsidePrefix {
                    key: e.key,
                    prefix: self.prefix,
                });
            }
            consul_kv_proto::validate_key(&e.key, true)
                .map_err(|err| SyncError::Consul(Error::from(err)))?;
            desired.insert(e.key.clone(), e);
        }
        let items = self
            .kv
            .items(self.prefix.clone())
            .await
            .map_err(SyncError::Consul)?;
        let mut current: BTreeMap<String, KvPair> =
            items.into_iter().map(|p| (p.key.clone(), p)).collect();
        let mut out = SyncPlan {
            prefix: self.prefix,
            added: Vec::new(),
            changed: Vec::new(),
            deleted: Vec::new(),
            unchanged: 0,
            kept: 0,
            limits: self.limits,
        };
        for (key, want) in desired {
            match current.remove(&key) {
                None => out.added.push(want),
                Some(have) if have.value_bytes() == &want.value[..] && have.flags == want.flags => {
                    out.unchanged += 1;
                }
                Some(have) => out.changed.push(SyncChange {
                    current: have,
                    desired: want,
                }),
            }
        }
        if self.delete {
            out.deleted = current.into_values().collect();
        } else {
            out.kept = current.len();
        }
        Ok(out)
    }

    /// Plans, then applies the plan (or only reports it, for a [`dry_run`](Self::dry_run)).
    ///
    /// # Errors
    /// As [`plan`](Self::plan) and [`SyncPlan::apply`].
    pub async fn send(self) -> Result<SyncReport, SyncError> {
        let kv = self.kv.clone();
        let dry_run = self.dry_run;
        let plan = self.plan().await?;
        if dry_run {
            return Ok(SyncReport {
                plan,
                dry_run: true,
                applied: 0,
                transactions: 0,
                conflicts: Vec::new(),
            });
        }
        plan.apply(&kv).await
    }
}

impl IntoFuture for SyncRequest {
    type Output = Result<SyncReport, SyncError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
