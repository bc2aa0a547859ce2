//! Transactions: [`TxnRequest`], from [`Kv::txn`](crate::Kv::txn).

use consul_kv_proto::http::Method;
use consul_kv_proto::txn::{self as op, TxnOp, TxnResponse};
use consul_kv_proto::{
    Consistency, Index, IntoValue, KvPair, ResponseError, SessionId, TxnErrors, TxnOpError,
    WriteOptions,
};

use crate::kv::Kv;
use crate::meta::IntoCas;
use crate::scope::{common_setters, into_future};
use crate::{Client, Error, RequestTarget, Result};

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
/// }
/// # Ok(()) }
/// ```
#[must_use = "a transaction does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct TxnRequest {
    client: Client,
    ops: Vec<TxnOp>,
    consistency: Consistency,
    opts: WriteOptions,
}

/// What a transaction came to: committed or rolled back, nothing else (so a `match` needs no
/// catch-all arm).
///
/// [`into_result`](Self::into_result) turns a rollback into an [`Error`], for `?`:
///
/// ```no_run
/// # async fn demo(kv: consul_kv::Kv) -> consul_kv::Result<()> {
/// let committed = kv.txn().check_not_exists("jobs/42").set("jobs/42", "mine").await?.into_result()?;
/// println!("{} results", committed.results.len());
/// # Ok(()) }
/// ```
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

    /// The response when committed; a rollback as the error `.await` would have returned
    /// without [`TxnOutcome`]: [`ResponseError::TxnRolledBack`] (`409`), with every
    /// per-operation error behind `source()`.
    ///
    /// # Errors
    /// [`Error::Response`] holding [`ResponseError::TxnRolledBack`] when rolled back.
    pub fn into_result(self) -> Result<TxnResponse> {
        match self {
            Self::Committed(r) => Ok(r),
            Self::RolledBack(errors) => Err(Error::Response {
                request: Some(RequestTarget::new(Method::PUT, "/v1/txn")),
                error: ResponseError::TxnRolledBack {
                    errors: TxnErrors(errors),
                },
            }),
        }
    }
}

impl TxnRequest {
    pub(crate) fn new(kv: &Kv) -> Self {
        Self {
            client: kv.client.clone(),
            opts: kv.scope.write_options(),
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
    pub fn set(self, key: impl Into<String>, value: impl IntoValue) -> Self {
        self.op(TxnOp::set(key, value))
    }

    /// `set` with flags.
    pub fn set_with_flags(self, key: impl Into<String>, value: impl IntoValue, flags: u64) -> Self {
        self.op(TxnOp::set(key, value).with_flags(flags))
    }

    /// `cas`: writes `value` if the key's modify index matches ([`Cas::Absent`](crate::Cas::Absent): if the key
    /// does not exist).
    pub fn cas(self, key: impl Into<String>, value: impl IntoValue, cas: impl IntoCas) -> Self {
        self.op(TxnOp::cas(key, value, cas.into_cas()))
    }

    /// `lock`: acquires `key` for `session`. **Replaces the value** with `value`, like
    /// [`Kv::acquire`].
    pub fn lock(
        self,
        key: impl Into<String>,
        value: impl IntoValue,
        session: impl AsRef<SessionId>,
    ) -> Self {
        self.op(TxnOp::lock(key, value, session.as_ref().clone()))
    }

    /// `unlock`: releases `key` held by `session`. **Replaces the value** with `value`, like
    /// [`Kv::release`].
    pub fn unlock(
        self,
        key: impl Into<String>,
        value: impl IntoValue,
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
        match self.client.exec.execute(&t).await {
            Ok(r) => Ok(TxnOutcome::Committed(r)),
            Err(Error::Response {
                error: ResponseError::TxnRolledBack { errors },
                ..
            }) => Ok(TxnOutcome::RolledBack(errors.0)),
            Err(e) => Err(e),
        }
    }
}

into_future!(TxnRequest, TxnOutcome);
