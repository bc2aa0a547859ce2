//! The session endpoint: [`Sessions`], [`Session`], and the keep-alive [`SessionKeeper`].

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use consul_kv_proto::session::{self as op, ServiceCheck};
use consul_kv_proto::time::{instant_after, MAX_SESSION_TTL};
use consul_kv_proto::{Behavior, ReadOptions, SessionEntry, SessionId, WriteOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::meta::ConsulMeta;
use crate::scope::{common_setters, finish_read, into_future, read_setters, Scope};
use crate::{Client, Error, Result};

/// The session endpoint, from [`Client::session`].
///
/// Cheap to clone; [`dc`](Self::dc) and the other scope methods return a bound copy.
///
/// ```no_run
/// # async fn demo(client: consul_kv::Client) -> consul_kv::Result<()> {
/// use std::time::Duration;
/// use consul_kv::Behavior;
/// let session = client
///     .session()
///     .create()
///     .name("worker")
///     .ttl(Duration::from_secs(15))
///     .behavior(Behavior::Delete)
///     .await?;
/// let keeper = session.keep_alive(); // renews every TTL/2 until stopped
/// // ... hold locks with `session` ...
/// keeper.stop().await?; // stops renewing and destroys the session
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sessions {
    pub(crate) client: Client,
    pub(crate) scope: Scope,
}

crate::scope::scoped_handle!(
    Sessions,
    /// A copy bound to datacenter `dc`.
);

impl Sessions {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            scope: Scope::default(),
        }
    }

    /// Creates a session. Without settings it gets Consul's defaults: the agent's node, the
    /// `serfHealth` check, a 15 s lock-delay, behavior `release` and no TTL.
    pub fn create(&self) -> CreateSessionRequest {
        let mut op = op::CreateSession::new();
        *op.options_mut() = self.scope.write_options();
        CreateSessionRequest {
            sessions: self.clone(),
            op,
            ttl: None,
        }
    }

    /// Destroys a session; its locks are released (or their keys deleted, for behavior
    /// `delete`). Resolves to `true`, also for an unknown session.
    pub fn destroy(&self, id: impl AsRef<SessionId>) -> DestroySessionRequest {
        let mut op = op::DestroySession::new(id.as_ref().clone());
        *op.options_mut() = self.scope.write_options();
        DestroySessionRequest {
            sessions: self.clone(),
            op,
        }
    }

    /// Renews a TTL session. Resolves to the session as Consul now describes it (its TTL may be
    /// longer than asked, under load), or `None` when Consul no longer knows it: it expired or
    /// was destroyed.
    pub fn renew(&self, id: impl AsRef<SessionId>) -> RenewSessionRequest {
        let mut op = op::RenewSession::new(id.as_ref().clone());
        *op.options_mut() = self.scope.write_options();
        RenewSessionRequest {
            sessions: self.clone(),
            op,
        }
    }

    /// Reads one session; `None` when Consul does not know it.
    pub fn info(&self, id: impl AsRef<SessionId>) -> ReadSessionRequest {
        ReadSessionRequest {
            sessions: self.clone(),
            op: op::ReadSession::new(id.as_ref().clone()).with_options(self.scope.read_options()),
        }
    }

    /// Lists the sessions of one node.
    pub fn node(&self, node: impl Into<String>) -> ListNodeSessionsRequest {
        ListNodeSessionsRequest {
            sessions: self.clone(),
            node: node.into(),
            opts: self.scope.read_options(),
        }
    }

    /// Lists every session in the datacenter.
    pub fn list(&self) -> ListSessionsRequest {
        ListSessionsRequest {
            sessions: self.clone(),
            op: op::ListSessions::new().with_options(self.scope.read_options()),
        }
    }

    /// Starts renewing session `id` every `ttl / 2` in a background task; see
    /// [`SessionKeeper`]. The task is spawned on the current Tokio runtime: call this from
    /// within one.
    pub fn keep_alive(&self, id: impl AsRef<SessionId>, ttl: Duration) -> SessionKeeper {
        SessionKeeper::start(self.clone(), id.as_ref().clone(), Some(ttl))
    }
}

/// A session created by [`Sessions::create`]: its ID, plus the endpoint it came from.
///
/// Pass `&session` wherever a session ID is expected (`kv.acquire("k", &session)`); it derefs
/// to [`SessionId`]. Dropping it does nothing: a session lives until it is destroyed, or, with
/// a TTL, until it is not renewed for the TTL (Consul invalidates it after up to twice the
/// TTL). Use [`keep_alive`](Self::keep_alive) to renew it.
#[derive(Debug, Clone)]
pub struct Session {
    id: SessionId,
    ttl: Option<Duration>,
    sessions: Sessions,
}

impl Session {
    /// The session's ID.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The TTL it was created with.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// Renews it every TTL/2 in a background task until the [`SessionKeeper`] is stopped or
    /// dropped. For a session without a TTL, the keeper only waits to be stopped.
    ///
    /// The task is spawned on the current Tokio runtime: call this from within one.
    pub fn keep_alive(&self) -> SessionKeeper {
        SessionKeeper::start(self.sessions.clone(), self.id.clone(), self.ttl)
    }

    /// Destroys it. See [`Sessions::destroy`].
    ///
    /// # Errors
    /// As [`Sessions::destroy`].
    pub async fn destroy(&self) -> Result<bool> {
        self.sessions.destroy(&self.id).await
    }

    /// Renews it once. See [`Sessions::renew`].
    ///
    /// # Errors
    /// As [`Sessions::renew`].
    pub async fn renew(&self) -> Result<Option<SessionEntry>> {
        self.sessions.renew(&self.id).await
    }

    /// Reads it. See [`Sessions::info`].
    ///
    /// # Errors
    /// As [`Sessions::info`].
    pub async fn info(&self) -> Result<Option<SessionEntry>> {
        self.sessions.info(&self.id).await
    }
}

impl Deref for Session {
    type Target = SessionId;
    fn deref(&self) -> &SessionId {
        &self.id
    }
}

impl AsRef<SessionId> for Session {
    fn as_ref(&self) -> &SessionId {
        &self.id
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.id.fmt(f)
    }
}

/// Sessions listed by [`Sessions::list`] or [`Sessions::node`], with the meta of the read.
/// Derefs to `[SessionEntry]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionList {
    entries: Vec<SessionEntry>,
    meta: ConsulMeta,
}

crate::kv::list_result_impls!(SessionList, SessionEntry, entries);

impl SessionList {
    /// Whether session `id` is listed.
    pub fn contains(&self, id: impl AsRef<SessionId>) -> bool {
        let id = id.as_ref();
        self.entries.iter().any(|e| &e.id == id)
    }
}

// ---------------------------------------------------------------------------------------------
// Builders.

/// A [`Sessions::create`] request. Resolves to a [`Session`].
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct CreateSessionRequest {
    sessions: Sessions,
    op: op::CreateSession,
    ttl: Option<Duration>,
}

impl CreateSessionRequest {
    fn common_mut(&mut self) -> &mut WriteOptions {
        self.op.options_mut()
    }

    common_setters!();

    /// A name, for humans.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.op = self.op.name(name);
        self
    }

    /// The TTL: without a renewal for this long, Consul invalidates the session (after up to
    /// twice the TTL). Consul accepts 10 s to 24 h.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.op = self.op.ttl(ttl);
        self.ttl = Some(ttl);
        self
    }

    /// What happens to the session's locks when it is invalidated: [`Behavior::Release`]
    /// (default) releases them, [`Behavior::Delete`] deletes the keys.
    pub fn behavior(mut self, behavior: Behavior) -> Self {
        self.op = self.op.behavior(behavior);
        self
    }

    /// How long a lock released by this session's invalidation cannot be acquired again
    /// (default 15 s, at most 60 s; `Duration::ZERO` for none). During the delay, an acquire
    /// answers `false` although the key shows no session.
    pub fn lock_delay(mut self, delay: Duration) -> Self {
        self.op = self.op.lock_delay(delay);
        self
    }

    /// The node the session belongs to (default: the agent's).
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.op = self.op.node(node);
        self
    }

    /// The health checks (Consul's `Checks`); the session is invalidated when one fails. An
    /// empty list removes the default `serfHealth`.
    pub fn checks(mut self, checks: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.op = self.op.checks(checks);
        self
    }

    /// The node checks (`NodeChecks`).
    pub fn node_checks(mut self, checks: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.op = self.op.node_checks(checks);
        self
    }

    /// The service checks (`ServiceChecks`).
    pub fn service_checks(mut self, checks: impl IntoIterator<Item = ServiceCheck>) -> Self {
        self.op = self.op.service_checks(checks);
        self
    }

    /// Sends the request.
    ///
    /// # Errors
    /// An [`Error`] for an invalid option, a transport failure or an error answer (for example
    /// an unknown node or check). Creating is not idempotent: after
    /// [`Error::OutcomeUnknown`] a session may exist; it expires by its TTL.
    pub async fn send(self) -> Result<Session> {
        let id = self.sessions.client.exec.execute(&self.op).await?;
        Ok(Session {
            id,
            ttl: self.ttl,
            sessions: self.sessions.clone(),
        })
    }
}
into_future!(CreateSessionRequest, Session);

/// A [`Sessions::destroy`] request. Resolves to `bool`.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct DestroySessionRequest {
    sessions: Sessions,
    op: op::DestroySession,
}

impl DestroySessionRequest {
    fn common_mut(&mut self) -> &mut WriteOptions {
        self.op.options_mut()
    }

    common_setters!();

    /// Sends the request.
    ///
    /// # Errors
    /// An [`Error`] for a transport failure or an error answer.
    pub async fn send(self) -> Result<bool> {
        self.sessions.client.exec.execute(&self.op).await
    }
}
into_future!(DestroySessionRequest, bool);

/// A [`Sessions::renew`] request. Resolves to `Option<SessionEntry>`; `None` means expired.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct RenewSessionRequest {
    sessions: Sessions,
    op: op::RenewSession,
}

impl RenewSessionRequest {
    fn common_mut(&mut self) -> &mut WriteOptions {
        self.op.options_mut()
    }

    common_setters!();

    /// Sends the request.
    ///
    /// # Errors
    /// An [`Error`] for a transport failure or an error answer. An unknown session is
    /// `Ok(None)`.
    pub async fn send(self) -> Result<Option<SessionEntry>> {
        self.sessions.client.exec.execute(&self.op).await
    }
}
into_future!(RenewSessionRequest, Option<SessionEntry>);

/// A [`Sessions::info`] request. Resolves to `Option<SessionEntry>`.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct ReadSessionRequest {
    sessions: Sessions,
    op: op::ReadSession,
}

impl ReadSessionRequest {
    fn common_mut(&mut self) -> &mut WriteOptions {
        &mut self.op.options_mut().common
    }

    fn read_mut(&mut self) -> &mut ReadOptions {
        self.op.options_mut()
    }

    read_setters!();

    /// Sends the request.
    ///
    /// # Errors
    /// An [`Error`] for a transport failure or an error answer. An unknown session is
    /// `Ok(None)`.
    pub async fn send(mut self) -> Result<Option<SessionEntry>> {
        finish_read(self.op.options_mut());
        Ok(self.sessions.client.exec.execute(&self.op).await?.value)
    }
}
into_future!(ReadSessionRequest, Option<SessionEntry>);

/// A [`Sessions::node`] request. Resolves to a [`SessionList`].
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct ListNodeSessionsRequest {
    sessions: Sessions,
    /// The node; checked (not empty) when sent.
    node: String,
    opts: ReadOptions,
}

impl ListNodeSessionsRequest {
    fn common_mut(&mut self) -> &mut WriteOptions {
        &mut self.opts.common
    }

    fn read_mut(&mut self) -> &mut ReadOptions {
        &mut self.opts
    }

    read_setters!();

    /// Sends the request.
    ///
    /// # Errors
    /// An [`Error`] for an empty node name, a transport failure or an error answer.
    pub async fn send(mut self) -> Result<SessionList> {
        finish_read(&mut self.opts);
        let op = op::ListNodeSessions::new(self.node)?.with_options(self.opts);
        let r = self.sessions.client.exec.execute(&op).await?;
        Ok(SessionList::new(r.value, r.meta))
    }
}
into_future!(ListNodeSessionsRequest, SessionList);

/// A [`Sessions::list`] request. Resolves to a [`SessionList`].
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct ListSessionsRequest {
    sessions: Sessions,
    op: op::ListSessions,
}

impl ListSessionsRequest {
    fn common_mut(&mut self) -> &mut WriteOptions {
        &mut self.op.options_mut().common
    }

    fn read_mut(&mut self) -> &mut ReadOptions {
        self.op.options_mut()
    }

    read_setters!();

    /// Sends the request.
    ///
    /// # Errors
    /// An [`Error`] for a transport failure or an error answer.
    pub async fn send(mut self) -> Result<SessionList> {
        finish_read(self.op.options_mut());
        let r = self.sessions.client.exec.execute(&self.op).await?;
        Ok(SessionList::new(r.value, r.meta))
    }
}
into_future!(ListSessionsRequest, SessionList);

// ---------------------------------------------------------------------------------------------
// Keep-alive.

/// Consul no longer knows the session: a renewal answered `404`. Its locks are gone.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session {id} expired")]
pub struct SessionExpired {
    /// The session.
    pub id: SessionId,
}

/// Why a [`SessionKeeper`] stopped renewing on its own.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionLost {
    /// Consul no longer knows the session (a renewal answered `404`).
    #[error(transparent)]
    Expired(SessionExpired),
    /// Renewals failed for longer than the TTL, so the session must be presumed invalid; the
    /// last failure.
    #[error("session renewal failed for longer than its TTL")]
    RenewFailed(#[source] Arc<Error>),
}

/// What the keeper's channel holds.
#[derive(Debug, Clone)]
enum KeeperState {
    Alive,
    Lost(SessionLost),
}

/// Renews a session in a background task, the way Go's `RenewPeriodic` does, without its
/// known leak:
///
/// - it renews every TTL/2;
/// - after a failed renewal it retries every second, and gives up when no renewal succeeded
///   for 1.5 × TTL. Consul invalidates a session 2 × TTL after its last renewal, so an outage
///   shorter than the TTL, whenever it starts, never loses the session, and a loss is still
///   reported half a TTL before Consul can have invalidated it;
/// - when Consul answers with a longer TTL than asked (it does so under load), it adopts it;
/// - a `404` ends it with [`SessionLost::Expired`].
///
/// [`lost`](Self::lost) resolves when it gave up. [`stop`](Self::stop) stops renewing and
/// destroys the session. **Dropping it only aborts the task** (no I/O in `Drop`): the
/// session then lives until its TTL runs out.
pub struct SessionKeeper {
    id: SessionId,
    sessions: Sessions,
    state: watch::Receiver<KeeperState>,
    task: JoinHandle<()>,
}

impl fmt::Debug for SessionKeeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeeper")
            .field("id", &self.id)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

/// How often a failed renewal is retried (Go's `RenewPeriodic` uses 1 s too).
const RENEW_RETRY: Duration = Duration::from_secs(1);

impl SessionKeeper {
    fn start(sessions: Sessions, id: SessionId, ttl: Option<Duration>) -> Self {
        let (tx, rx) = watch::channel(KeeperState::Alive);
        let task = tokio::spawn(renew_loop(sessions.clone(), id.clone(), ttl, tx));
        Self {
            id,
            sessions,
            state: rx,
            task,
        }
    }

    /// The session being renewed.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// Whether it is still renewing (it has not given up and has not been stopped).
    pub fn is_alive(&self) -> bool {
        matches!(*self.state.borrow(), KeeperState::Alive) && !self.task.is_finished()
    }

    /// Why it gave up, if it did.
    pub fn lost_reason(&self) -> Option<SessionLost> {
        match &*self.state.borrow() {
            KeeperState::Alive => None,
            KeeperState::Lost(l) => Some(l.clone()),
        }
    }

    /// Resolves when renewal has given up: the session expired, or renewals failed for
    /// 1.5 × TTL.
    /// Pending forever while renewals succeed. Cancel-safe.
    pub async fn lost(&self) -> SessionLost {
        self.lost_future().await
    }

    /// [`lost`](Self::lost) as a future that does not borrow the keeper.
    pub(crate) fn lost_future(&self) -> impl Future<Output = SessionLost> + Send + 'static {
        let mut rx = self.state.clone();
        async move {
            loop {
                if let KeeperState::Lost(l) = &*rx.borrow_and_update() {
                    return l.clone();
                }
                if rx.changed().await.is_err() {
                    // The task ended without a report: it was aborted, so nothing will come.
                    return std::future::pending().await;
                }
            }
        }
    }

    pub(crate) fn abort_handle(&self) -> tokio::task::AbortHandle {
        self.task.abort_handle()
    }

    /// Stops renewing and destroys the session, which releases its locks (or deletes their
    /// keys, for behavior `delete`). Resolves to Consul's answer.
    ///
    /// # Errors
    /// An [`Error`] when the destroy request fails; renewal has stopped anyway, so the session
    /// expires by its TTL.
    pub async fn stop(self) -> Result<bool> {
        self.task.abort();
        self.sessions.destroy(&self.id).await
    }
}

impl Drop for SessionKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `at + d` on Tokio's clock, saturating (see [`consul_kv_proto::time::instant_after`]).
fn after(at: Instant, d: Duration) -> Instant {
    Instant::from_std(instant_after(at.into_std(), d))
}

async fn renew_loop(
    sessions: Sessions,
    id: SessionId,
    ttl: Option<Duration>,
    tx: watch::Sender<KeeperState>,
) {
    let Some(ttl) = ttl.filter(|t| !t.is_zero()) else {
        // Nothing to renew: a session without a TTL lives until destroyed.
        return std::future::pending().await;
    };
    // Consul refuses TTLs over 24 h; a longer one (from the caller or a hostile answer) is
    // read as 24 h, which also keeps every instant below representable.
    let mut ttl = ttl.min(MAX_SESSION_TTL);
    let mut last_ok = Instant::now();
    let mut next = after(last_ok, ttl / 2);
    loop {
        tokio::time::sleep_until(next).await;
        // Each attempt may use what is left before giving up, and at least the retry interval.
        let give_up = ttl.saturating_add(ttl / 2);
        let budget = after(last_ok, give_up)
            .saturating_duration_since(Instant::now())
            .max(RENEW_RETRY);
        let attempt = tokio::time::timeout(budget, sessions.renew(&id).send()).await;
        let now = Instant::now();
        match attempt {
            Ok(Ok(Some(entry))) => {
                if let Some(server_ttl) = entry.ttl.map(|t| t.min(MAX_SESSION_TTL)) {
                    if server_ttl > ttl {
                        tracing::debug!(session = %id, ?server_ttl, "adopting the server's longer TTL");
                        ttl = server_ttl;
                    }
                }
                last_ok = now;
                next = after(now, ttl / 2);
            }
            Ok(Ok(None)) => {
                tracing::debug!(session = %id, "session expired");
                let _ = tx.send(KeeperState::Lost(SessionLost::Expired(SessionExpired {
                    id: id.clone(),
                })));
                return;
            }
            Ok(Err(e)) => {
                if now.duration_since(last_ok) >= give_up {
                    let _ = tx.send(KeeperState::Lost(SessionLost::RenewFailed(Arc::new(e))));
                    return;
                }
                tracing::debug!(session = %id, error = %e, "renewal failed; retrying");
                // Retry every second, and once more right at the deadline.
                next = after(now, RENEW_RETRY).min(after(last_ok, give_up));
            }
            Err(_elapsed) => {
                if now.duration_since(last_ok) >= give_up {
                    let e = Error::Timeout {
                        request: None,
                        after: budget,
                    };
                    let _ = tx.send(KeeperState::Lost(SessionLost::RenewFailed(Arc::new(e))));
                    return;
                }
                next = after(now, RENEW_RETRY).min(after(last_ok, give_up));
            }
        }
    }
}
