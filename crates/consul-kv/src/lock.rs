//! Leader election: [`Lock`], from [`Client::lock`](crate::Client::lock).

use std::fmt;
use std::future::IntoFuture;

use bytes::Bytes;
use consul_kv_proto::kv as op;
use consul_kv_proto::txn::TxnOp;
use consul_kv_proto::{Behavior, Consistency, KvPair, SessionId, WriteOutcome};
use tokio::sync::watch;

use crate::holding::{holder_setters, HolderConfig, Holding, LockError, LockLost, LockStatus};
use crate::kv::Kv;
use crate::scope::BoxFuture;
use crate::session::SessionKeeper;
use crate::Result;

/// The flags the Go client's `api.Lock` stores on its key (`LockFlagValue`); this lock uses
/// the same, so Go and Rust contenders recognise each other's lock keys.
pub const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;

/// Configures and acquires a [`Lock`]; from [`Client::lock`](crate::Client::lock).
///
/// `.await` waits until the lock is held; [`try_acquire`](Self::try_acquire) tries once.
#[must_use = "a lock builder does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct LockBuilder {
    config: HolderConfig,
    key: String,
}

impl LockBuilder {
    pub(crate) fn new(kv: Kv, key: String, value: Bytes) -> Self {
        Self {
            config: HolderConfig::new(kv, value, "Consul API Lock"),
            key,
        }
    }

    holder_setters!();

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
        self.config
            .acquire_retrying(|| self.clone().run(false))
            .await
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
                .config
                .read_key(&self.key, None, self.config.wait)
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
        let (session, keeper) = self.config.create_session(Behavior::Release).await?;
        match self.contend(&session, &keeper, once).await {
            Ok(true) => Ok(Some(Lock::start(self.config, self.key, session, keeper))),
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
        let c = &self.config;
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
    config: HolderConfig,
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
    fn start(config: HolderConfig, key: String, session: SessionId, keeper: SessionKeeper) -> Self {
        let get = op::Get::new(key.clone())
            .with_options(config.kv.scope.read_options())
            .consistency(Consistency::Consistent);
        let held_by = {
            let session = session.clone();
            move |v: &Option<KvPair>| v.as_ref().and_then(|p| p.session.as_ref()) == Some(&session)
        };
        let holding = Holding::start(&config.kv, get, held_by, session, keeper);
        Self {
            config,
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

    /// The fence for work done under this lock: a transaction operation (`check-session` on
    /// the lock key) that fails unless this lock's session still holds the key. Put it first
    /// in every transaction that writes on the lock's behalf, through any client: Consul then
    /// refuses the write of a holder that lost the lock, even one that does not know it yet
    /// ([`is_held`](Self::is_held) and [`lost`](Self::lost) learn of a loss late when the
    /// holder's agent stalls).
    ///
    /// ```no_run
    /// # async fn demo(client: consul_kv::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let lock = client.lock("jobs/leader").await?;
    /// let written = client
    ///     .kv()
    ///     .txn()
    ///     .op(lock.fence())
    ///     .set("jobs/state", "step 2")
    ///     .await?;
    /// if !written.is_committed() {
    ///     // No longer the holder: nothing was written.
    /// }
    /// # Ok(()) }
    /// ```
    pub fn fence(&self) -> TxnOp {
        TxnOp::check_session(self.key.clone(), self.holding.session.clone())
    }

    /// A transaction on this lock's client that starts with [`fence`](Self::fence): add the
    /// writes, then `.await` it. It resolves to [`TxnOutcome::RolledBack`](crate::TxnOutcome)
    /// when the lock was lost.
    pub fn fenced(&self) -> crate::TxnRequest {
        self.config.kv.txn().op(self.fence())
    }

    /// Releases the key (writing the lock's value back, as Consul replaces it) and destroys
    /// the session. Resolves to `true` when the key was still held and is now released.
    ///
    /// # Errors
    /// An [`Error`](crate::Error) when the release fails. The session is destroyed in any case (or, if that
    /// fails too, expires by its TTL).
    pub async fn release(mut self) -> Result<bool> {
        self.holding.stop_monitor();
        let release = op::Set::release(
            self.key.clone(),
            self.holding.session.clone(),
            self.config.value.clone(),
        )
        .flags(LOCK_FLAG)
        .with_options(self.config.kv.scope.write_options());
        let released = self.config.kv.client.exec.execute(&release).await;
        self.holding.stop(released.is_ok()).await?;
        Ok(released?.is_applied())
    }
}
