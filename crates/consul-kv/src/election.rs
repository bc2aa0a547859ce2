//! Leader election with announcements: [`Election`], from
//! [`Client::election`](crate::Client::election): campaign, proclaim, resign, observe, and
//! writes fenced on still being the leader.
//!
//! An election is a [`Lock`] key read by everyone: the leader is the session holding the key
//! and its announced value is the key's value. Because the key layout and flags are those of
//! [`Lock`] (and of the Go client's `api.Lock`), a Go process holding the lock shows up as the
//! leader to observers here, and a leader elected here is a lock holder to Go.

use std::fmt;
use std::future::IntoFuture;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use consul_kv_proto::txn::{TxnOp, TxnResponse};
use consul_kv_proto::{Cas, Consistency, Index, IntoValue, KvPair, SessionId, TxnOpError};
use futures_core::Stream;
use tokio::sync::watch;

use crate::holding::{LockError, LockLost, LockStatus};
use crate::kv::Kv;
use crate::lock::{Lock, LockBuilder, LOCK_FLAG};
use crate::scope::BoxFuture;
use crate::shared_watch::WatchHealth;
use crate::txn::TxnOutcome;
use crate::watch::KeyWatch;
use crate::{Error, Result};

/// An election on one key, from [`Client::election`](crate::Client::election) or
/// [`Kv::election`].
///
/// ```no_run
/// # async fn demo(client: consul_kv::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let election = client.election("service/web/leader");
///
/// // Followers: who leads, and what did it announce?
/// let mut observe = election.observe();
/// tokio::spawn(async move {
///     while let Some(leader) = observe.next().await {
///         println!("leader: {leader:?}"); // None while nobody leads
///     }
/// });
///
/// // Candidates: block until elected.
/// let leader = election.campaign("http://10.0.0.5:8080").await?;
/// leader.proclaim("http://10.0.0.5:9090").await?;           // announce without re-election
/// leader.fenced().set("service/web/epoch", "42").await?;    // only while still the leader
/// leader.resign().await?;
/// # Ok(()) }
/// ```
#[must_use = "an election does nothing until campaigned or observed"]
#[derive(Debug, Clone)]
pub struct Election {
    kv: Kv,
    key: String,
    builder: LockBuilder,
}

impl crate::Client {
    /// An election on `key`; see [`Election`].
    pub fn election(&self, key: impl Into<String>) -> Election {
        self.kv().election(key)
    }
}

impl Kv {
    /// An election on `key`, with this endpoint's datacenter, namespace, partition and token;
    /// see [`Election`].
    pub fn election(&self, key: impl Into<String>) -> Election {
        let key = key.into();
        Election {
            kv: self.clone(),
            builder: self.lock(key.clone()).session_name("Consul API Election"),
            key,
        }
    }
}

impl Election {
    /// The election's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The TTL of a candidate's session (default 15 s; see [`LockBuilder::session_ttl`]).
    pub fn session_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.builder = self.builder.session_ttl(ttl);
        self
    }

    /// The lock-delay of a candidate's session (Consul's default 15 s): after a leader's
    /// session is invalidated, nobody can be elected for this long.
    pub fn lock_delay(mut self, delay: std::time::Duration) -> Self {
        self.builder = self.builder.lock_delay(delay);
        self
    }

    /// How long each blocking read of a waiting candidate waits (default 15 s).
    pub fn wait_time(mut self, wait: std::time::Duration) -> Self {
        self.builder = self.builder.wait_time(wait);
        self
    }

    /// Waits until elected, announcing `value` (stored in the key), and returns the
    /// [`Leadership`]. Cancelling it before it resolves leaves no leader behind: the session
    /// it created stops being renewed and expires.
    ///
    /// # Errors
    /// As [`LockBuilder::acquire`]: [`LockError::Conflict`] when the key holds data that is
    /// not a lock, a Consul error, or the session lost while waiting.
    pub async fn campaign(
        &self,
        value: impl IntoValue,
    ) -> std::result::Result<Leadership, LockError> {
        let lock = self.builder.clone().value(value).acquire().await?;
        Ok(Leadership {
            kv: self.kv.clone(),
            lock,
        })
    }

    /// The current leader's value, read once (`None` when nobody leads).
    ///
    /// # Errors
    /// A Consul error.
    pub async fn leader(&self) -> Result<Option<Bytes>> {
        Ok(self
            .kv
            .get(self.key.clone())
            .await?
            .and_then(|k| leader_value(k.pair())))
    }

    /// A [`Stream`] of the current leader's value; see [`Observe`].
    pub fn observe(&self) -> Observe {
        Observe {
            watch: self.kv.watch(self.key.clone()),
            last: None,
        }
    }
}

/// The leader's value in the election key: the key is held by a session.
fn leader_value(pair: &KvPair) -> Option<Bytes> {
    pair.session
        .as_ref()
        .map(|_| pair.value.clone().unwrap_or_default())
}

/// Who leads, as seen through the election key: `(session, value)`, or `None`.
type Seen = Option<(SessionId, Bytes)>;

/// A [`Stream`] of the current leader's value, from [`Election::observe`].
///
/// **What it yields, exactly:** first the current state, then one item per change of it:
/// `Some(value)` when a session holds the key (the value it announced; a new leader, or the
/// same leader proclaiming a new value), `None` when nobody holds it (after a resignation, or
/// once a leader's session is invalidated; Consul then releases the key at once, and the
/// lock-delay only keeps new candidates out). A new leader announcing the same value as the
/// previous one yields again. Any holder counts, so a Go `api.Lock` holder is seen as the
/// leader.
///
/// It rides on the key's shared watch: failures are not items (read
/// [`health`](Self::health)), and a slow consumer skips to the newest state.
#[must_use = "a watch does nothing until it is polled"]
pub struct Observe {
    watch: KeyWatch,
    last: Option<Seen>,
}

impl Observe {
    /// The health of the underlying watch; see [`WatchHealth`].
    pub fn health(&self) -> WatchHealth {
        self.watch.health()
    }

    /// A receiver of the watch's [`WatchHealth`].
    pub fn health_receiver(&mut self) -> watch::Receiver<WatchHealth> {
        self.watch.health_receiver()
    }

    /// The next leader value.
    pub async fn next(&mut self) -> Option<Option<Bytes>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for Observe {
    type Item = Option<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match Pin::new(&mut this.watch).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(_))) => {}
                Poll::Ready(Some(Ok(key))) => {
                    let seen: Seen = key.and_then(|k| {
                        let session = k.session.clone()?;
                        Some((session, k.value.clone().unwrap_or_default()))
                    });
                    if this.last.as_ref() == Some(&seen) {
                        continue;
                    }
                    let item = seen.as_ref().map(|(_, v)| v.clone());
                    this.last = Some(seen);
                    return Poll::Ready(Some(item));
                }
            }
        }
    }
}

impl fmt::Debug for Observe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observe").finish_non_exhaustive()
    }
}

/// Why a leader's write was not applied.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// This session no longer holds the election key: another leader may be acting. Nothing
    /// was written.
    #[error("no longer leader")]
    NotLeader,
    /// Still the leader, but another check of the transaction failed (a CAS on the data, a
    /// `check-index`): nothing was written. The errors are Consul's, with the indexes of the
    /// caller's operations (the fence itself not counted).
    #[error("the write's own checks failed")]
    Conflict(Vec<TxnOpError>),
    /// The request failed; see the source. For a write,
    /// [`Error::is_outcome_unknown`] says whether it may have been applied.
    #[error("leader write failed")]
    Consul(#[from] Error),
}

/// Being the leader, from [`Election::campaign`]: proclaim, resign, fenced writes, and loss.
///
/// The leadership can be lost at any time (session invalidated, key taken away):
/// [`lost`](Self::lost) resolves then. Writes that must not happen after a loss go through
/// [`fenced`](Self::fenced). **Dropping it does no I/O**: the session then expires by its TTL;
/// [`resign`](Self::resign) steps down at once.
pub struct Leadership {
    kv: Kv,
    lock: Lock,
}

impl fmt::Debug for Leadership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leadership")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

impl Leadership {
    /// The election key.
    pub fn key(&self) -> &str {
        self.lock.key()
    }

    /// The session holding the key.
    pub fn session(&self) -> &SessionId {
        self.lock.session()
    }

    /// Whether still the leader, as far as this client knows.
    pub fn is_leader(&self) -> bool {
        self.lock.is_held()
    }

    /// Resolves when the leadership is lost; pending forever while held.
    pub async fn lost(&self) -> LockLost {
        self.lock.lost().await
    }

    /// A channel that reports [`LockStatus::Lost`] when the leadership is lost.
    pub fn subscribe(&self) -> watch::Receiver<LockStatus> {
        self.lock.subscribe()
    }

    /// Announces a new value without giving up the leadership: one transaction that checks
    /// the session still holds the key and writes `value` to it (a plain write keeps the
    /// key's session, so the lock stays held).
    ///
    /// # Errors
    /// [`FenceError::NotLeader`] when the key is no longer held by this session; a
    /// [`FenceError::Consul`] error.
    pub async fn proclaim(&self, value: impl IntoValue) -> std::result::Result<(), FenceError> {
        let key = self.key().to_owned();
        let op = TxnOp::set(key, value).with_flags(LOCK_FLAG);
        self.fenced().op(op).await.map(|_| ())
    }

    /// Steps down: releases the key and destroys the session. Observers see `None` at once.
    /// Resolves to `true` when the key was still held. As with [`Lock::release`], the released
    /// key holds the value given to [`campaign`](Election::campaign).
    ///
    /// # Errors
    /// As [`Lock::release`].
    pub async fn resign(self) -> Result<bool> {
        self.lock.release().await
    }

    /// A transaction applied only while this session still holds the election key: it starts
    /// with a `check-session` on the key, so a deposed leader's write is refused by Consul
    /// itself, with no window between a check and the write.
    pub fn fenced(&self) -> FencedTxn {
        FencedTxn {
            kv: self.kv.clone(),
            key: self.key().to_owned(),
            session: self.session().clone(),
            ops: Vec::new(),
        }
    }
}

/// A transaction fenced on the leadership, from [`Leadership::fenced`]. Add operations, then
/// `.await` it: it resolves to the results of the caller's operations, or to a
/// [`FenceError`] that tells "no longer leader" apart from a failed check on the data.
#[must_use = "a transaction does nothing until it is awaited"]
#[derive(Debug)]
pub struct FencedTxn {
    kv: Kv,
    key: String,
    session: SessionId,
    ops: Vec<TxnOp>,
}

impl FencedTxn {
    /// Adds any operation.
    pub fn op(mut self, op: TxnOp) -> Self {
        self.ops.push(op);
        self
    }

    /// `set`: writes `value` to `key`.
    pub fn set(self, key: impl Into<String>, value: impl IntoValue) -> Self {
        self.op(TxnOp::set(key, value))
    }

    /// `cas`: writes `value` if the key's modify index matches.
    pub fn cas(self, key: impl Into<String>, value: impl IntoValue, cas: impl Into<Cas>) -> Self {
        self.op(TxnOp::cas(key, value, cas))
    }

    /// `delete`: deletes one key.
    pub fn delete(self, key: impl Into<String>) -> Self {
        self.op(TxnOp::delete(key))
    }

    /// `delete-cas`: deletes `key` if its modify index is `index`.
    pub fn delete_cas(self, key: impl Into<String>, index: impl Into<Index>) -> Self {
        self.op(TxnOp::delete_cas(key, index.into()))
    }

    /// `check-index`: fails unless the key's modify index is `index`.
    pub fn check_index(self, key: impl Into<String>, index: impl Into<Index>) -> Self {
        self.op(TxnOp::check_index(key, index.into()))
    }

    /// `get`: reads `key` within the transaction.
    pub fn get(self, key: impl Into<String>) -> Self {
        self.op(TxnOp::get(key))
    }

    /// Sends the transaction.
    ///
    /// # Errors
    /// [`FenceError::NotLeader`], [`FenceError::Conflict`] or [`FenceError::Consul`].
    pub async fn send(self) -> std::result::Result<TxnResponse, FenceError> {
        let mut txn = self.kv.txn().check_session(self.key.clone(), &self.session);
        for op in self.ops {
            txn = txn.op(op);
        }
        match txn.send().await? {
            TxnOutcome::Committed(mut r) => {
                // The first result is the fence's own check.
                if !r.results.is_empty() {
                    r.results.remove(0);
                }
                Ok(r)
            }
            TxnOutcome::RolledBack(errors) => {
                if errors.iter().any(|e| e.op_index == 0) {
                    return Err(FenceError::NotLeader);
                }
                // Consul runs some checks before any operation (a lock-delay on a `lock`,
                // ACLs): then the fence itself was not evaluated. Ask the key.
                let holder = self
                    .kv
                    .get(self.key.clone())
                    .consistency(Consistency::Consistent)
                    .await?
                    .and_then(|k| k.session.clone());
                if holder.as_ref() != Some(&self.session) {
                    return Err(FenceError::NotLeader);
                }
                Err(FenceError::Conflict(
                    errors
                        .into_iter()
                        .map(|mut e| {
                            e.op_index = e.op_index.saturating_sub(1);
                            e
                        })
                        .collect(),
                ))
            }
        }
    }
}

impl IntoFuture for FencedTxn {
    type Output = std::result::Result<TxnResponse, FenceError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
