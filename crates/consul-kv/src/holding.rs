//! What a [`Lock`](crate::Lock) and a [`Semaphore`](crate::Semaphore) share: their settings
//! ([`HolderConfig`], with the builder setters and the bounded retry of `acquire`), the
//! [`Holding`] that keeps a held key (session renewal and the monitor that reports a loss), and
//! the public [`LockError`], [`LockLost`] and [`LockStatus`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use consul_kv_proto::kv as op;
use consul_kv_proto::{Behavior, Index, Indexed, KvPair, SessionId};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::kv::Kv;
use crate::session::{SessionKeeper, SessionLost};
use crate::{Error, Result};

/// Why acquiring a [`Lock`](crate::Lock) or a [`Semaphore`](crate::Semaphore) failed.
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

/// Why a held [`Lock`](crate::Lock) or [`Semaphore`](crate::Semaphore) slot was lost.
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

/// Whether a [`Lock`](crate::Lock) or [`Semaphore`](crate::Semaphore) is still held, as
/// [`subscribe`](crate::Lock::subscribe) reports it.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum LockStatus {
    /// Held.
    Held,
    /// Lost, and why.
    Lost(LockLost),
}

impl LockError {
    /// Whether acquiring again may succeed: a transient Consul error (connect error, timeout,
    /// `429`, `503`, `500 No cluster leader`, leadership churn, `502`, `504`), an acquire whose
    /// outcome is unknown, or a session lost while waiting. `acquire` retries these itself
    /// for up to [`retry_for`](crate::LockBuilder::retry_for).
    ///
    /// A conflict with a foreign key, a limit mismatch or a bad setting is not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Consul(e) => e.is_retryable() || e.is_outcome_unknown(),
            Self::SessionLost(_) | Self::Contender { .. } => true,
            _ => false,
        }
    }
}

impl LockStatus {
    /// Whether held.
    pub fn is_held(&self) -> bool {
        matches!(self, Self::Held)
    }
}

/// Settings shared by locks and semaphores: where, how the session is made, how to wait.
#[derive(Debug, Clone)]
pub(crate) struct HolderConfig {
    pub(crate) kv: Kv,
    pub(crate) value: Bytes,
    pub(crate) session_name: String,
    pub(crate) session_ttl: Duration,
    pub(crate) lock_delay: Option<Duration>,
    pub(crate) wait: Duration,
    pub(crate) retry: Duration,
    pub(crate) retry_for: Duration,
}

impl HolderConfig {
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

macro_rules! holder_setters {
    () => {
        /// The value stored with the key (the lock key, or the semaphore's contender key).
        /// Default empty.
        pub fn value(mut self, value: impl consul_kv_proto::IntoValue) -> Self {
            self.config.value = value.into_value();
            self
        }

        /// The name of the session created for it.
        pub fn session_name(mut self, name: impl Into<String>) -> Self {
            self.config.session_name = name.into();
            self
        }

        /// The TTL of the session created for it (default 15 s; Consul's minimum is 10 s). It
        /// is renewed every TTL/2 while held. A holder that dies stops renewing, and Consul
        /// frees its slot after up to twice the TTL.
        pub fn session_ttl(mut self, ttl: std::time::Duration) -> Self {
            self.config.session_ttl = ttl;
            self
        }

        /// The lock-delay of the session (Consul's default 15 s; at most 60 s): after the
        /// session is invalidated, nobody can acquire for this long.
        pub fn lock_delay(mut self, delay: std::time::Duration) -> Self {
            self.config.lock_delay = Some(delay);
            self
        }

        /// How long each blocking read waits while the lock is taken (default 15 s).
        pub fn wait_time(mut self, wait: std::time::Duration) -> Self {
            self.config.wait = wait;
            self
        }

        /// How long to wait before retrying while a lock-delay is in effect (default 2 s).
        /// The wait is itself a blocking read, so a change ends it early; the client sends
        /// about one request per second during a lock-delay, never a hot loop.
        pub fn lock_retry(mut self, retry: std::time::Duration) -> Self {
            self.config.retry = retry;
            self
        }

        /// How long `acquire` (and `.await`) keeps retrying after a transient failure
        /// (default 30 s): a refused connection, a timeout, `429`/`503`, `500 No cluster
        /// leader` or leadership churn, an acquire whose outcome is unknown, a session lost
        /// while waiting (see [`LockError::is_retryable`](crate::LockError::is_retryable)).
        /// Each try starts over with a new session, after a pause that doubles from 250 ms to
        /// 5 s; once the next try would start later than this after the first, the last error
        /// is returned. `Duration::ZERO` returns the first error.
        ///
        /// This is on top of the client's own [`RetryPolicy`](crate::RetryPolicy), which
        /// retries a single request for a few seconds at most. `try_acquire` does not retry.
        pub fn retry_for(mut self, bound: std::time::Duration) -> Self {
            self.config.retry_for = bound;
            self
        }
    };
}
pub(crate) use holder_setters;

impl HolderConfig {
    pub(crate) fn new(kv: Kv, value: Bytes, session_name: &str) -> Self {
        Self {
            kv,
            value,
            session_name: session_name.to_owned(),
            session_ttl: Duration::from_secs(15),
            lock_delay: None,
            wait: Duration::from_secs(15),
            retry: Duration::from_secs(2),
            retry_for: DEFAULT_RETRY_FOR,
        }
    }

    /// Runs `attempt` until it holds the key, retrying [retryable](LockError::is_retryable)
    /// failures with a doubling pause (250 ms up to 5 s) while the next try would start within
    /// `retry_for` of the first. Each attempt starts afresh with a new session (the failed
    /// attempt destroyed its own, or it expires by its TTL).
    pub(crate) async fn acquire_retrying<T, F, Fut>(
        &self,
        mut attempt: F,
    ) -> std::result::Result<T, LockError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<Option<T>, LockError>>,
    {
        // Durations, not instants: a `retry_for` near `Duration::MAX` must not overflow.
        let started = Instant::now();
        let mut pause = RETRY_FIRST_PAUSE;
        loop {
            match attempt().await {
                Ok(Some(held)) => return Ok(held),
                // Without `once`, an attempt returns only when held or on an error.
                Ok(None) => {}
                Err(e)
                    if e.is_retryable()
                        && started.elapsed().saturating_add(pause) <= self.retry_for =>
                {
                    tracing::debug!(error = %e, ?pause, "acquire failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2).min(RETRY_MAX_PAUSE);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// How long `acquire` keeps retrying transient failures by default.
const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(30);
/// The first pause between two acquire attempts; it doubles up to [`RETRY_MAX_PAUSE`].
const RETRY_FIRST_PAUSE: Duration = Duration::from_millis(250);
const RETRY_MAX_PAUSE: Duration = Duration::from_secs(5);

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
