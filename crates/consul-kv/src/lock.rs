//! Leader election: [`Lock`], from [`Client::lock`](crate::Client::lock).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use consul_kv_proto::kv as op;
use consul_kv_proto::{Behavior, Consistency, Index, Indexed, KvPair, SessionId, WriteOutcome};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::kv::Kv;
use crate::scope::BoxFuture;
use crate::session::{SessionKeeper, SessionLost};
use crate::{Error, Result};

/// The flags the Go client's `api.Lock` stores on its key (`LockFlagValue`); this lock uses
/// the same, so Go and Rust contenders recognise each other's lock keys.
pub const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;

/// Why acquiring a [`Lock`] or a [`Semaphore`](crate::Semaphore) failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The key exists with flags that are not the lock's (or the semaphore's): it holds
    /// someone's data, or another kind of lock. It was left untouched.
    #[error("key {key:?} is in use with other flags ({flags:#x})")]
    Conflict {
        /// The key.
        key: String,
        /// Its flags.
        flags: u64,
    },
    /// The semaphore's `.lock` key was written with another limit.
    #[error(
        "semaphore limit conflict: the lock says {existing}, this holder asked for {requested}"
    )]
    LimitConflict {
        /// The limit stored in the lock.
        existing: usize,
        /// The limit asked for.
        requested: usize,
    },
    /// The semaphore's `.lock` key holds something that is not the Go layout.
    #[error("semaphore lock key {key:?} does not hold the expected JSON")]
    Corrupt {
        /// The key.
        key: String,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A semaphore needs a limit of at least 1 and a non-empty prefix.
    #[error("a semaphore needs a limit of at least 1 and a non-empty prefix")]
    InvalidLimit,
    /// The contender key could not be created (the session was invalidated meanwhile).
    #[error("could not create the semaphore contender key {key:?}")]
    Contender {
        /// The key.
        key: String,
    },
    /// The lock's session was lost while waiting.
    #[error("the session was lost while acquiring")]
    SessionLost(#[source] SessionLost),
    /// A Consul call failed.
    #[error(transparent)]
    Consul(#[from] Error),
}

/// Why a held [`Lock`] or [`Semaphore`](crate::Semaphore) slot was lost.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum LockLost {
    /// The session expired or could not be renewed for a whole TTL.
    #[error("the session was lost")]
    Session(#[source] SessionLost),
    /// The key is no longer held by this lock's session: the session was destroyed, the key
    /// was deleted, or it was released by someone else.
    #[error("the key is no longer held by this session")]
    Taken,
    /// Monitoring the key failed with an error that is not transient (such as `403`).
    #[error("the key could not be monitored")]
    Monitor(#[source] Arc<Error>),
}

/// Whether a [`Lock`] or [`Semaphore`](crate::Semaphore) is still held, as
/// [`subscribe`](Lock::subscribe) reports it.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum LockStatus {
    /// Held.
    Held,
    /// Lost, and why.
    Lost(LockLost),
}

impl LockStatus {
    /// Whether held.
    pub fn is_held(&self) -> bool {
        matches!(self, Self::Held)
    }
}

/// Settings shared by locks and semaphores.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub(crate) kv: Kv,
    pub(crate) value: Bytes,
    pub(crate) session_name: String,
    pub(crate) session_ttl: Duration,
    pub(crate) lock_delay: Option<Duration>,
    pub(crate) wait: Duration,
    pub(crate) retry: Duration,
}

impl Common {
    pub(crate) async fn create_session(
        &self,
        behavior: Behavior,
    ) -> Result<(SessionId, SessionKeeper)> {
        let sessions = crate::session::Sessions {
            client: self.kv.client.clone(),
            scope: self.kv.scope.clone(),
        };
        let mut create = sessions
            .create()
            .name(self.session_name.clone())
            .ttl(self.session_ttl)
            .behavior(behavior);
        if let Some(d) = self.lock_delay {
            create = create.lock_delay(d);
        }
        let session = create.await?;
        let keeper = session.keep_alive();
        Ok((session.id().clone(), keeper))
    }

    /// A read of one key, blocking on `index` when given.
    pub(crate) async fn read_key(
        &self,
        key: &str,
        index: Option<Index>,
        wait: Duration,
    ) -> Result<Indexed<Option<KvPair>>> {
        let mut get = op::Get::new(key).with_options(self.kv.scope.read_options());
        if let Some(i) = index {
            get = get.block(i, wait);
        }
        self.kv.client.exec.execute(&get).await
    }

    /// A read of a prefix, blocking on `index` when given.
    pub(crate) async fn read_prefix(
        &self,
        prefix: &str,
        index: Option<Index>,
        wait: Duration,
    ) -> Result<Indexed<Vec<KvPair>>> {
        let mut items = op::ListItems::new(prefix).with_options(self.kv.scope.read_options());
        if let Some(i) = index {
            items = items.block(i, wait);
        }
        self.kv.client.exec.execute(&items).await
    }
}

macro_rules! common_builder_setters {
    () => {
        /// The value stored with the key (the lock key, or the semaphore's contender key).
        /// Default empty.
        pub fn value(mut self, value: impl consul_kv_proto::IntoValue) -> Self {
            self.common.value = value.into_value();
            self
        }

        /// The name of the session created for it.
        pub fn session_name(mut self, name: impl Into<String>) -> Self {
            self.common.session_name = name.into();
            self
        }

        /// The TTL of the session created for it (default 15 s; Consul's minimum is 10 s). It
        /// is renewed every TTL/2 while held. A holder that dies stops renewing, and Consul
        /// frees its slot after up to twice the TTL.
        pub fn session_ttl(mut self, ttl: std::time::Duration) -> Self {
            self.common.session_ttl = ttl;
            self
        }

        /// The lock-delay of the session (Consul's default 15 s; at most 60 s): after the
        /// session is invalidated, nobody can acquire for this long.
        pub fn lock_delay(mut self, delay: std::time::Duration) -> Self {
            self.common.lock_delay = Some(delay);
            self
        }

        /// How long each blocking read waits while the lock is taken (default 15 s).
        pub fn wait_time(mut self, wait: std::time::Duration) -> Self {
            self.common.wait = wait;
            self
        }

        /// How long to wait before retrying while a lock-delay is in effect (default 2 s).
        /// The wait is itself a blocking read, so a change ends it early; the client sends
        /// about one request per second during a lock-delay, never a hot loop.
        pub fn lock_retry(mut self, retry: std::time::Duration) -> Self {
            self.common.retry = retry;
            self
        }
    };
}
pub(crate) use common_builder_setters;

impl Common {
    pub(crate) fn new(kv: Kv, value: Bytes, session_name: &str) -> Self {
        Self {
            kv,
            value,
            session_name: session_name.to_owned(),
            session_ttl: Duration::from_secs(15),
            lock_delay: None,
            wait: Duration::from_secs(15),
            retry: Duration::from_secs(2),
        }
    }
}

/// Configures and acquires a [`Lock`]; from [`Client::lock`](crate::Client::lock).
///
/// `.await` waits until the lock is held; [`try_acquire`](Self::try_acquire) tries once.
#[must_use = "a lock builder does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct LockBuilder {
    common: Common,
    key: String,
}

impl LockBuilder {
    pub(crate) fn new(kv: Kv, key: String, value: Bytes) -> Self {
        Self {
            common: Common::new(kv, value, "Consul API Lock"),
            key,
        }
    }

    common_builder_setters!();

    /// Waits until the lock is held.
    ///
    /// Creates a session (behavior `release`), keeps it alive, and waits for the key with
    /// blocking reads. While a lock-delay is in effect it retries on a timer
    /// ([`lock_retry`](Self::lock_retry)), never in a hot loop.
    ///
    /// Cancelling (dropping the future) stops the session's renewal; the session then expires by
    /// its TTL, releasing the key if it had been acquired.
    ///
    /// # Errors
    /// [`LockError::Conflict`] when the key holds data that is not a lock; a
    /// [`LockError::Consul`] error; [`LockError::SessionLost`]. The session is destroyed
    /// before the error is returned.
    pub async fn acquire(self) -> std::result::Result<Lock, LockError> {
        loop {
            // Without `once`, `run` returns only when the lock is held or on an error.
            if let Some(lock) = self.clone().run(false).await? {
                return Ok(lock);
            }
        }
    }

    /// Tries once: `Some(Lock)` when the key was free and is now held, `None` when another
    /// session holds it or a lock-delay is in effect.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub async fn try_acquire(self) -> std::result::Result<Option<Lock>, LockError> {
        self.run(true).await
    }

    async fn run(self, once: bool) -> std::result::Result<Option<Lock>, LockError> {
        if once {
            // Held by someone else: answer without creating a session.
            let read = self
                .common
                .read_key(&self.key, None, self.common.wait)
                .await?;
            if let Some(pair) = read.value {
                if pair.flags != LOCK_FLAG {
                    return Err(LockError::Conflict {
                        key: self.key,
                        flags: pair.flags,
                    });
                }
                if pair.session.is_some() {
                    return Ok(None);
                }
            }
        }
        let (session, keeper) = self.common.create_session(Behavior::Release).await?;
        match self.contend(&session, &keeper, once).await {
            Ok(true) => Ok(Some(Lock::start(self.common, self.key, session, keeper))),
            Ok(false) => {
                let _ = keeper.stop().await;
                Ok(None)
            }
            Err(e) => {
                let _ = keeper.stop().await;
                Err(e)
            }
        }
    }

    /// Go's `Lock` loop: wait while held, try when free, time out a lock-delay.
    async fn contend(
        &self,
        session: &SessionId,
        keeper: &SessionKeeper,
        once: bool,
    ) -> std::result::Result<bool, LockError> {
        let c = &self.common;
        let mut index = None;
        let mut wait = c.wait;
        loop {
            let read = tokio::select! {
                r = c.read_key(&self.key, index, wait) => r?,
                lost = keeper.lost() => return Err(LockError::SessionLost(lost)),
            };
            if let Some(pair) = &read.value {
                if pair.flags != LOCK_FLAG {
                    return Err(LockError::Conflict {
                        key: self.key.clone(),
                        flags: pair.flags,
                    });
                }
                match &pair.session {
                    Some(s) if s == session => return Ok(true),
                    Some(_) => {
                        if once {
                            return Ok(false);
                        }
                        // Held by someone else: block until the key changes.
                        index = Some(read.meta.last_index);
                        wait = c.wait;
                        continue;
                    }
                    None => {}
                }
            }
            let acquire = op::Set::acquire(self.key.clone(), session.clone(), c.value.clone())
                .flags(LOCK_FLAG)
                .with_options(c.kv.scope.write_options());
            match c.kv.client.exec.execute(&acquire).await {
                Ok(WriteOutcome::Applied) => return Ok(true),
                Ok(_) if once => return Ok(false),
                Ok(_) => {
                    // Rejected although the key showed no holder: a lock-delay is in effect
                    // (or someone was faster). Wait on a timer, as a short blocking read so that
                    // a new holder ends it early.
                    index = Some(read.meta.last_index);
                    wait = c.retry;
                }
                // The acquire may or may not have been applied: the next read tells.
                Err(e) if e.is_outcome_unknown() => index = None,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl IntoFuture for LockBuilder {
    type Output = std::result::Result<Lock, LockError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.acquire())
    }
}

/// A held leader-election lock on one key, compatible with the Go client's `api.Lock`
/// (the key carries flag [`LOCK_FLAG`]).
///
/// While it exists, a background task renews its session every TTL/2 and another watches the
/// key with consistent blocking reads. The lock can be lost at any time: Consul sessions
/// prefer liveness over safety. [`lost`](Self::lost) resolves, and
/// [`subscribe`](Self::subscribe) reports it, as soon as the key shows another session or
/// none (within a second of the session being destroyed), when renewals fail for 1.5 × TTL, or
/// when monitoring fails for good. On loss, renewal stops at once and the session is
/// destroyed.
///
/// **Release is explicit:** [`release`](Self::release) releases the key and destroys the
/// session. **Dropping a `Lock` does no I/O**: it only aborts the two tasks. The session then
/// expires by its TTL (Consul waits up to twice the TTL), the key is released, and the
/// session's lock-delay applies before anyone else can acquire it.
///
/// Acquiring and releasing **replace the key's value** with the lock's
/// [`value`](LockBuilder::value).
///
/// ```no_run
/// # async fn demo(client: consul_kv::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let lock = client.lock("service/web/leader").value("node-a").await?;
/// tokio::select! {
///     lost = lock.lost() => eprintln!("leadership lost: {lost}"),
///     _ = async { /* lead */ } => {}
/// }
/// lock.release().await?;
/// # Ok(()) }
/// ```
pub struct Lock {
    common: Common,
    key: String,
    holding: Holding,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("key", &self.key)
            .field("session", &self.holding.session)
            .field("status", &*self.holding.status.borrow())
            .finish_non_exhaustive()
    }
}

impl Lock {
    fn start(common: Common, key: String, session: SessionId, keeper: SessionKeeper) -> Self {
        let get = op::Get::new(key.clone())
            .with_options(common.kv.scope.read_options())
            .consistency(Consistency::Consistent);
        let held_by = {
            let session = session.clone();
            move |v: &Option<KvPair>| v.as_ref().and_then(|p| p.session.as_ref()) == Some(&session)
        };
        let holding = Holding::start(&common.kv, get, held_by, session, keeper);
        Self {
            common,
            key,
            holding,
        }
    }

    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The session holding it.
    pub fn session(&self) -> &SessionId {
        &self.holding.session
    }

    /// Whether it is still held, as far as this client knows.
    pub fn is_held(&self) -> bool {
        self.holding.is_held()
    }

    /// Resolves when the lock is lost; pending forever while it is held. Cancel-safe.
    pub async fn lost(&self) -> LockLost {
        self.holding.lost().await
    }

    /// A channel that reports [`LockStatus::Lost`] when the lock is lost.
    pub fn subscribe(&self) -> watch::Receiver<LockStatus> {
        self.holding.status.clone()
    }

    /// Releases the key (writing the lock's value back, as Consul replaces it) and destroys
    /// the session. Resolves to `true` when the key was still held and is now released.
    ///
    /// # Errors
    /// An [`Error`] when the release fails. The session is destroyed in any case (or, if that
    /// fails too, expires by its TTL).
    pub async fn release(mut self) -> Result<bool> {
        self.holding.stop_monitor();
        let release = op::Set::release(
            self.key.clone(),
            self.holding.session.clone(),
            self.common.value.clone(),
        )
        .flags(LOCK_FLAG)
        .with_options(self.common.kv.scope.write_options());
        let released = self.common.kv.client.exec.execute(&release).await;
        self.holding.stop(released.is_ok()).await?;
        Ok(released?.is_applied())
    }
}

/// The background half of a held lock or semaphore slot: the session keeper renewing the
/// session and the task monitoring the key(s). Dropping it does no I/O: it aborts the monitor,
/// and the keeper's own `Drop` aborts the renewal; the session then expires by its TTL.
pub(crate) struct Holding {
    pub(crate) session: SessionId,
    keeper: Option<SessionKeeper>,
    pub(crate) status: watch::Receiver<LockStatus>,
    monitor: JoinHandle<()>,
}

impl Holding {
    /// Starts monitoring `op` with consistent blocking reads: held while `held` is true.
    pub(crate) fn start<O>(
        kv: &Kv,
        op: O,
        held: impl Fn(&O::Value) -> bool + Send + 'static,
        session: SessionId,
        keeper: SessionKeeper,
    ) -> Self
    where
        O: consul_kv_proto::Blocking + Send + 'static,
        O::Value: Clone + PartialEq + Send,
    {
        let (tx, rx) = watch::channel(LockStatus::Held);
        let monitor = tokio::spawn(monitor(
            kv.clone(),
            op,
            held,
            session.clone(),
            keeper.lost_future(),
            keeper.abort_handle(),
            tx,
        ));
        Self {
            session,
            keeper: Some(keeper),
            status: rx,
            monitor,
        }
    }

    pub(crate) fn is_held(&self) -> bool {
        self.status.borrow().is_held()
    }

    /// Stops monitoring (before a release, which would otherwise be seen as a loss).
    pub(crate) fn stop_monitor(&self) {
        self.monitor.abort();
    }

    pub(crate) async fn lost(&self) -> LockLost {
        wait_lost(self.status.clone()).await
    }

    /// Stops monitoring and destroys the session. Its error is returned only when
    /// `report_errors` (the caller's own release went through); otherwise the caller's error
    /// wins and the session expires by its TTL if destroying it failed too.
    pub(crate) async fn stop(&mut self, report_errors: bool) -> Result<()> {
        self.monitor.abort();
        if let Some(keeper) = self.keeper.take() {
            let destroyed = keeper.stop().await;
            if report_errors {
                destroyed?;
            }
        }
        Ok(())
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        // No I/O here: abort the monitor; the keeper's own Drop aborts the renewal.
        self.monitor.abort();
    }
}

pub(crate) async fn wait_lost(mut rx: watch::Receiver<LockStatus>) -> LockLost {
    loop {
        if let LockStatus::Lost(l) = &*rx.borrow_and_update() {
            return l.clone();
        }
        if rx.changed().await.is_err() {
            // The monitor was stopped (released): nothing more will be reported.
            return std::future::pending().await;
        }
    }
}

/// The `wait` of the monitor's blocking reads. A change ends a read at once, so this only
/// bounds how often an idle monitor asks.
const MONITOR_WAIT: Duration = Duration::from_secs(60);

/// Watches the lock's key (or the semaphore's prefix) until the lock is lost, then stops the
/// renewal at once and destroys the session.
pub(crate) async fn monitor<O>(
    kv: Kv,
    op: O,
    held: impl Fn(&O::Value) -> bool + Send + 'static,
    session: SessionId,
    keeper_lost: impl Future<Output = SessionLost> + Send + 'static,
    keeper: tokio::task::AbortHandle,
    tx: watch::Sender<LockStatus>,
) where
    O: consul_kv_proto::Blocking + Send + 'static,
    O::Value: Clone + PartialEq + Send,
{
    let mut watcher = kv
        .client
        .exec
        .watch(op, crate::watch::default_options().wait(MONITOR_WAIT));
    tokio::pin!(keeper_lost);
    let reason = loop {
        tokio::select! {
            r = watcher.next() => match r {
                Ok(change) => {
                    if !held(&change.value) {
                        break LockLost::Taken;
                    }
                }
                Err(e) => break LockLost::Monitor(Arc::new(e)),
            },
            lost = &mut keeper_lost => break LockLost::Session(lost),
        }
    };
    keeper.abort();
    tracing::debug!(session = %session, reason = %reason, "lock lost");
    let _ = tx.send(LockStatus::Lost(reason));
    // Destroy the session now rather than leave it to its TTL: it belongs to this lock only.
    let mut destroy = consul_kv_proto::session::DestroySession::new(session);
    *destroy.options_mut() = kv.scope.write_options();
    let _ = tokio::time::timeout(Duration::from_secs(10), kv.client.exec.execute(&destroy)).await;
}
