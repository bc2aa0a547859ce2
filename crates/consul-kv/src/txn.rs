//! Transactions: [`TxnRequest`], from [`Kv::txn`](crate::Kv::txn).

use std::future::IntoFuture;

use bytes::Bytes;
use consul_kv_proto::txn::{self as op, TxnOp};
use consul_kv_proto::{
    Cas, Consistency, Index, KvPair, ResponseError, SessionId, TxnOpError, WriteOptions,
};

use crate::kv::Kv;
use crate::scope::{common_setters, BoxFuture};
use crate::{Error, Result};

/// A KV transaction (`PUT /v1/txn`): the operations are applied atomically, all or none.
///
/// Add operations with the verb methods, then `.await` it. It resolves to a [`TxnOutcome`]:
/// the results of a committed transaction, or Consul's per-operation errors when it was rolled
/// back (`409`).
///
/// ```no_run
/// # async fn demo(kv: consul_kv::Kv) -> consul_kv::Result<()> {
/// use consul_kv::TxnOutcome;
/// let outcome = kv
///     .txn()
///     .check_not_exists("jobs/42/owner")
///     .set("jobs/42/owner", "worker-a")
///     .set("jobs/42/state", "running")
///     .get("jobs/42/state")
///     .await?;
/// match outcome {
///     TxnOutcome::Committed(r) => println!("{} results", r.results.len()),
///     TxnOutcome::RolledBack(errors) => println!("rolled back: {errors:?}"),
///     _ => {}
/// }
/// # Ok(()) }
/// ```
#[must_use = "a transaction does nothing until it is awaited"]
#[derive(Debug)]
pub struct TxnRequest {
    kv: Kv,
    ops: Vec<TxnOp>,
    consistency: Consistency,
    opts: WriteOptions,
}

/// What a transaction came to.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Every operation was applied. The results hold one entry per operation that returns one
    /// (`get`, `set`, `cas`, `lock`, `unlock`, `check-*`; `get-tree` may return many, deletes
    /// none), in request order. Writes return the entry without its value.
    Committed(op::TxnResponse),
    /// Nothing was applied (`409`): why each failing operation failed.
    RolledBack(Vec<TxnOpError>),
}

impl TxnOutcome {
    /// Whether the transaction was applied.
    pub fn is_committed(&self) -> bool {
        matches!(self, Self::Committed(_))
    }

    /// The result entries, when committed.
    pub fn results(&self) -> Option<&[KvPair]> {
        match self {
            Self::Committed(r) => Some(&r.results),
            Self::RolledBack(_) => None,
        }
    }

    /// The per-operation errors, when rolled back.
    pub fn errors(&self) -> Option<&[TxnOpError]> {
        match self {
            Self::Committed(_) => None,
            Self::RolledBack(e) => Some(e),
        }
    }
}

impl TxnRequest {
    pub(crate) fn new(kv: Kv) -> Self {
        Self {
            opts: kv.scope.write_options(),
            kv,
            ops: Vec::new(),
            consistency: Consistency::Default,
        }
    }

    fn common_mut(&mut self) -> &mut WriteOptions {
        &mut self.opts
    }

    common_setters!();

    /// The consistency of a read-only transaction (ignored when any operation writes).
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// Adds any operation.
    pub fn op(mut self, op: TxnOp) -> Self {
        self.ops.push(op);
        self
    }

    /// The operations so far.
    ///
    /// ```
    /// let client = consul_kv::Client::builder().build()?;
    /// let kv = client.kv();
    /// let txn = kv.txn().check_not_exists("a").set("a", "1").get("a");
    /// assert_eq!(txn.ops().len(), 3);
    /// # Ok::<(), consul_kv::Error>(())
    /// ```
    pub fn ops(&self) -> &[TxnOp] {
        &self.ops
    }

    /// `set`: writes `value` to `key`.
    pub fn set(self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.op(TxnOp::set(key, value))
    }

    /// `set` with flags.
    pub fn set_with_flags(
        self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
        flags: u64,
    ) -> Self {
        self.op(TxnOp::set(key, value).with_flags(flags))
    }

    /// `cas`: writes `value` if the key's modify index matches ([`Cas::Absent`]: if the key
    /// does not exist).
    pub fn cas(self, key: impl Into<String>, value: impl Into<Bytes>, cas: impl Into<Cas>) -> Self {
        self.op(TxnOp::cas(key, value, cas))
    }

    /// `lock`: acquires `key` for `session`. **Replaces the value** with `value`, like
    /// [`Kv::acquire`].
    pub fn lock(
        self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
        session: impl AsRef<SessionId>,
    ) -> Self {
        self.op(TxnOp::lock(key, value, session.as_ref().clone()))
    }

    /// `unlock`: releases `key` held by `session`. **Replaces the value** with `value`, like
    /// [`Kv::release`].
    pub fn unlock(
        self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
        session: impl AsRef<SessionId>,
    ) -> Self {
        self.op(TxnOp::unlock(key, value, session.as_ref().clone()))
    }

    /// `get`: reads `key`; the transaction fails if it does not exist.
    pub fn get(self, key: impl Into<String>) -> Self {
        self.op(TxnOp::get(key))
    }

    /// `get-or-empty`: reads `key`; an absent key gives an empty entry (Consul ≥ 1.14).
    pub fn get_or_empty(self, key: impl Into<String>) -> Self {
        self.op(TxnOp::get_or_empty(key))
    }

    /// `get-tree`: reads every key under a prefix.
    pub fn get_tree(self, prefix: impl Into<String>) -> Self {
        self.op(TxnOp::get_tree(prefix))
    }

    /// `check-index`: fails the transaction unless the key's modify index is `index`.
    pub fn check_index(self, key: impl Into<String>, index: impl Into<Index>) -> Self {
        self.op(TxnOp::check_index(key, index.into()))
    }

    /// `check-session`: fails the transaction unless `session` holds `key`.
    pub fn check_session(self, key: impl Into<String>, session: impl AsRef<SessionId>) -> Self {
        self.op(TxnOp::check_session(key, session.as_ref().clone()))
    }

    /// `check-not-exists`: fails the transaction if `key` exists.
    pub fn check_not_exists(self, key: impl Into<String>) -> Self {
        self.op(TxnOp::check_not_exists(key))
    }

    /// `delete`: deletes one key.
    pub fn delete(self, key: impl Into<String>) -> Self {
        self.op(TxnOp::delete(key))
    }

    /// `delete-tree`: deletes every key under a prefix.
    pub fn delete_tree(self, prefix: impl Into<String>) -> Self {
        self.op(TxnOp::delete_tree(prefix))
    }

    /// `delete-cas`: deletes `key` if its modify index is `index`.
    pub fn delete_cas(self, key: impl Into<String>, index: impl Into<Index>) -> Self {
        self.op(TxnOp::delete_cas(key, index.into()))
    }

    /// Sends the transaction.
    ///
    /// # Errors
    /// An [`Error`] for an invalid key or option, a transport failure or an error answer other
    /// than a rollback. A rollback is `Ok(TxnOutcome::RolledBack(..))`.
    pub async fn send(self) -> Result<TxnOutcome> {
        let mut t = op::Txn::new(self.ops).consistency(self.consistency);
        *t.options_mut() = self.opts;
        match self.kv.client.exec.execute(&t).await {
            Ok(r) => Ok(TxnOutcome::Committed(r)),
            Err(Error::Response(ResponseError::TxnRolledBack { errors })) => {
                Ok(TxnOutcome::RolledBack(errors.0))
            }
            Err(e) => Err(e),
        }
    }
}

impl IntoFuture for TxnRequest {
    type Output = Result<TxnOutcome>;
    type IntoFuture = BoxFuture<'static, Result<TxnOutcome>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
