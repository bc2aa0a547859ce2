//! Shared blocking queries: every watch on one [`Client`](crate::Client) that asks the same
//! question (key or prefix, datacenter, namespace, partition, token, consistency, watch
//! options) rides on **one** blocking query, whose answers fan out to every subscriber.
//!
//! - The query runs in a background task that starts with its first subscriber and is aborted
//!   when the last subscriber is dropped (its request in flight is dropped with it, so the
//!   server's waiter goes away at once).
//! - Fan-out keeps **the latest state only** (a `tokio::sync::watch` channel): a slow
//!   subscriber never stalls the query or the other subscribers; when it polls again it gets
//!   the newest answer and skips the intermediate ones. Nothing is buffered per subscriber, so
//!   memory does not grow with a subscriber's lag. Streams computed from states (change
//!   events, typed values) stay exact: they diff the state they last saw against the newest.
//! - Every query publishes a [`WatchHealth`]: when Consul last answered, the current error, and
//!   `KnownLeader` / `LastContact` of the last answer.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use consul_kv_hyper::{HyperWatch, WatchStep};
use consul_kv_proto::{Blocking, Index, Indexed, QueryMeta, ReadOptions, WatchOptions};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::{Client, Error};

/// Why a watch item is an error.
///
/// Cheap to clone: one error reaches every subscriber of a shared query.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum WatchError {
    /// A request of the watch failed (see the source for why).
    #[error("watch request failed")]
    Request(#[source] Arc<Error>),
    /// A value could not be decoded into the requested type.
    #[error("cannot decode {key:?}")]
    Decode {
        /// The key (or, for a tree, the key whose value is at fault, else the prefix).
        key: String,
        /// What the decoder said.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}

impl WatchError {
    pub(crate) fn request(e: Error) -> Self {
        Self::Request(Arc::new(e))
    }

    /// The executor's error, for [`WatchError::Request`].
    pub fn as_consul(&self) -> Option<&Error> {
        match self {
            Self::Request(e) => Some(e),
            Self::Decode { .. } => None,
        }
    }

    /// The key a [`WatchError::Decode`] names.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Decode { key, .. } => Some(key),
            Self::Request(_) => None,
        }
    }

    /// Whether the watch may recover by itself: a transient request failure (the watch keeps
    /// retrying). A decode error recovers when the value is rewritten.
    pub fn is_retryable(&self) -> bool {
        self.as_consul().is_some_and(Error::is_retryable)
    }

    /// The HTTP status of a request error, if Consul answered.
    pub fn status(&self) -> Option<consul_kv_proto::http::StatusCode> {
        self.as_consul().and_then(Error::status)
    }
}

/// What a watch knows about its own view of Consul: whether it is blind.
///
/// Read it with `health()` on any watch, or await changes through the
/// `tokio::sync::watch::Receiver` that `health_receiver()` returns. Watches sharing a blocking
/// query share one health.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct WatchHealth {
    /// Whether the query has started (the watch was polled, or its health receiver taken).
    pub started: bool,
    /// When Consul last answered (a change or not).
    pub last_success: Option<Instant>,
    /// The current error: set by every failed request, cleared by the next answer. While it
    /// is set the watch is blind: the values it yielded may be stale.
    pub error: Option<WatchError>,
    /// When the current run of failures began.
    pub failing_since: Option<Instant>,
    /// Failed requests since the last answer.
    pub failures: u32,
    /// `X-Consul-KnownLeader` of the last answer: `false` means the answering server had no
    /// leader (a stale read may still answer).
    pub known_leader: Option<bool>,
    /// `X-Consul-LastContact` of the last answer: how long since the answering server heard
    /// from the leader.
    pub last_contact: Option<Duration>,
    /// `X-Consul-Index` of the last answer.
    pub index: Option<Index>,
    /// Answers received (changes or not).
    pub answers: u64,
}

impl WatchHealth {
    /// Whether the watch currently cannot see Consul: not answered yet, or the last request
    /// failed.
    pub fn is_blind(&self) -> bool {
        self.last_success.is_none() || self.error.is_some()
    }

    /// Whether the last answer came from a server that knew a leader and had heard from it
    /// within `max_contact`.
    pub fn is_fresh(&self, max_contact: Duration) -> bool {
        !self.is_blind()
            && self.known_leader == Some(true)
            && self.last_contact.is_some_and(|c| c <= max_contact)
    }

    fn answered(&mut self, now: Instant, meta: &QueryMeta) {
        self.last_success = Some(now);
        self.error = None;
        self.failing_since = None;
        self.failures = 0;
        self.known_leader = Some(meta.known_leader);
        self.last_contact = Some(meta.last_contact);
        self.index = Some(meta.last_index);
        self.answers += 1;
    }

    fn failed(&mut self, now: Instant, e: WatchError) {
        self.error = Some(e);
        self.failing_since.get_or_insert(now);
        self.failures = self.failures.saturating_add(1);
    }
}

/// What is being watched: one key or every key under a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    Key,
    Prefix,
}

/// The question a shared query asks; two watches with equal specs share one query.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct QuerySpec {
    pub(crate) target: Target,
    pub(crate) path: String,
    pub(crate) read: ReadOptions,
    pub(crate) opts: WatchOptions,
}

impl fmt::Debug for QuerySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ReadOptions' Debug redacts the token.
        f.debug_struct("QuerySpec")
            .field("target", &self.target)
            .field("path", &self.path)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl QuerySpec {
    pub(crate) fn new(target: Target, path: String, read: ReadOptions) -> Self {
        Self {
            target,
            path,
            read,
            opts: crate::watch::default_options(),
        }
    }

    /// The part that decides sharing: blocking fields and the jitter seed do not.
    fn sharing_key(&self) -> Self {
        let mut k = self.clone();
        k.read.index = None;
        k.read.wait = None;
        k.opts.seed = 0;
        k
    }
}

/// The state a shared query publishes. Behind an `Arc`: every subscriber reads the same one.
#[derive(Debug)]
pub(crate) struct Snapshot<V> {
    /// Bumped at each change of the value; 0 before the first answer.
    pub(crate) version: u64,
    pub(crate) value: Option<Indexed<V>>,
    /// The last error that is not retryable, numbered from 1.
    pub(crate) error: Option<(u64, WatchError)>,
    /// The query stopped for good (its request cannot be built).
    pub(crate) ended: bool,
}

impl<V> Default for Snapshot<V> {
    fn default() -> Self {
        Self {
            version: 0,
            value: None,
            error: None,
            ended: false,
        }
    }
}

/// One running blocking query. Dropping the last `Arc` aborts it.
pub(crate) struct SharedQuery<V> {
    rx: watch::Receiver<Arc<Snapshot<V>>>,
    health: watch::Receiver<WatchHealth>,
    task: AbortHandle,
    hub: Weak<HubInner>,
    path: String,
}

impl<V> Drop for SharedQuery<V> {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(hub) = self.hub.upgrade() {
            hub.prune(&self.path);
        }
    }
}

struct HubEntry {
    key: QuerySpec,
    query: Weak<dyn Any + Send + Sync>,
}

#[derive(Default)]
struct HubInner {
    /// Entries by path; a path has one entry per distinct spec.
    entries: Mutex<HashMap<String, Vec<HubEntry>>>,
}

impl HubInner {
    fn prune(&self, path: &str) {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = map.get_mut(path) {
            list.retain(|e| e.query.strong_count() > 0);
            if list.is_empty() {
                map.remove(path);
            }
        }
    }
}

/// The registry of a [`Client`]'s shared queries. Clones of a client share it.
#[derive(Clone, Default)]
pub(crate) struct Hub {
    inner: Arc<HubInner>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("queries", &self.queries())
            .finish()
    }
}

impl Hub {
    /// Live shared queries.
    pub(crate) fn queries(&self) -> usize {
        let map = self
            .inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.values()
            .flatten()
            .filter(|e| e.query.strong_count() > 0)
            .count()
    }

    /// The shared query for `spec`, started if needed; with `shared == false`, a private one.
    pub(crate) fn query<O>(
        &self,
        client: &Client,
        spec: &QuerySpec,
        shared: bool,
        make_op: fn(&QuerySpec) -> O,
    ) -> Arc<SharedQuery<O::Value>>
    where
        O: Blocking + Send + 'static,
        O::Value: Clone + PartialEq + Send + Sync + 'static,
        HyperWatch<O>: Send,
    {
        if !shared {
            return start(client, spec, make_op(spec), Weak::new());
        }
        let key = spec.sharing_key();
        let mut found: Option<Arc<SharedQuery<O::Value>>> = None;
        // Arcs upgraded under the lock are dropped after it: a drop may re-enter `prune`.
        let mut stale: Vec<Arc<dyn Any + Send + Sync>> = Vec::new();
        {
            let mut map = self
                .inner
                .entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let list = map.entry(spec.path.clone()).or_default();
            list.retain(|e| e.query.strong_count() > 0);
            for e in list.iter() {
                if e.key != key {
                    continue;
                }
                if let Some(any) = e.query.upgrade() {
                    match any.downcast::<SharedQuery<O::Value>>() {
                        // A query whose task is over (its runtime shut down, or its request
                        // cannot be built) is not joined: a fresh one replaces it.
                        Ok(q) if !q.task.is_finished() => {
                            found = Some(q);
                            break;
                        }
                        Ok(q) => stale.push(q),
                        Err(other) => stale.push(other),
                    }
                }
            }
            if found.is_none() {
                // Forget the entries replaced here; their subscribers keep their own Arc.
                list.retain(|e| e.key != key);
                let q = start(client, spec, make_op(spec), Arc::downgrade(&self.inner));
                let any: Arc<dyn Any + Send + Sync> = q.clone();
                list.push(HubEntry {
                    key,
                    query: Arc::downgrade(&any),
                });
                found = Some(q);
            }
        }
        drop(stale);
        match found {
            Some(q) => q,
            // Unreachable: `found` is set on both paths above; a private query is correct.
            None => start(client, spec, make_op(spec), Weak::new()),
        }
    }
}

fn start<O>(
    client: &Client,
    spec: &QuerySpec,
    op: O,
    hub: Weak<HubInner>,
) -> Arc<SharedQuery<O::Value>>
where
    O: Blocking + Send + 'static,
    O::Value: Clone + PartialEq + Send + Sync + 'static,
    HyperWatch<O>: Send,
{
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let (htx, hrx) = watch::channel(WatchHealth {
        started: true,
        ..WatchHealth::default()
    });
    let watcher = client.exec.watch(op, spec.opts.clone());
    let task = tokio::spawn(drive(watcher, tx, htx)).abort_handle();
    Arc::new(SharedQuery {
        rx,
        health: hrx,
        task,
        hub,
        path: spec.path.clone(),
    })
}

/// The query loop: one [`HyperWatch::step`] after another, published to the subscribers.
async fn drive<O>(
    mut watcher: HyperWatch<O>,
    tx: watch::Sender<Arc<Snapshot<O::Value>>>,
    health: watch::Sender<WatchHealth>,
) where
    O: Blocking,
    O::Value: Clone + PartialEq,
{
    let mut version = 0u64;
    let mut errors = 0u64;
    loop {
        let step = watcher.step().await;
        let now = Instant::now();
        match step {
            WatchStep::Changed(change) => {
                health.send_modify(|h| h.answered(now, &change.meta));
                version += 1;
                let error = tx.borrow().error.clone();
                tx.send_replace(Arc::new(Snapshot {
                    version,
                    value: Some(change),
                    error,
                    ended: false,
                }));
            }
            WatchStep::Unchanged(meta) => health.send_modify(|h| h.answered(now, &meta)),
            WatchStep::Retrying(e) => {
                health.send_modify(|h| h.failed(now, WatchError::request(e)));
            }
            WatchStep::Failed(e) => {
                let ended = matches!(e, Error::Build(_));
                let e = WatchError::request(e);
                health.send_modify(|h| h.failed(now, e.clone()));
                errors += 1;
                let value = tx.borrow().value.clone();
                tx.send_replace(Arc::new(Snapshot {
                    version,
                    value,
                    error: Some((errors, e)),
                    ended,
                }));
                if ended {
                    // A request that cannot be built never will be: stop instead of spinning.
                    return;
                }
            }
            _ => {}
        }
    }
}

/// What a subscription yields.
#[derive(Debug)]
pub(crate) enum Event<V> {
    Value(Indexed<V>),
    Error(WatchError),
    End,
}

type Wait<V> = Pin<Box<dyn Future<Output = (watch::Receiver<Arc<Snapshot<V>>>, bool)> + Send>>;

/// One subscriber of a [`SharedQuery`].
pub(crate) struct Subscription<V> {
    query: Arc<SharedQuery<V>>,
    rx: Option<watch::Receiver<Arc<Snapshot<V>>>>,
    wait: Option<Wait<V>>,
    seen_version: u64,
    seen_error: u64,
}

impl<V> Subscription<V>
where
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(query: Arc<SharedQuery<V>>) -> Self {
        let rx = query.rx.clone();
        // Errors from before this subscriber joined are not its news.
        let seen_error = rx.borrow().error.as_ref().map_or(0, |(n, _)| *n);
        Self {
            query,
            rx: Some(rx),
            wait: None,
            seen_version: 0,
            seen_error,
        }
    }

    pub(crate) fn health(&self) -> WatchHealth {
        self.query.health.borrow().clone()
    }

    pub(crate) fn health_receiver(&self) -> watch::Receiver<WatchHealth> {
        self.query.health.clone()
    }

    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event<V>> {
        loop {
            if let Some(wait) = self.wait.as_mut() {
                match wait.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready((rx, open)) => {
                        self.wait = None;
                        self.rx = Some(rx);
                        if !open {
                            // The query task is gone; yield what it left, then end.
                            return Poll::Ready(self.take_news().unwrap_or(Event::End));
                        }
                    }
                }
            }
            if let Some(ev) = self.take_news() {
                return Poll::Ready(ev);
            }
            let Some(mut rx) = self.rx.take() else {
                return Poll::Ready(Event::End);
            };
            self.wait = Some(Box::pin(async move {
                let open = rx.changed().await.is_ok();
                (rx, open)
            }));
        }
    }

    fn take_news(&mut self) -> Option<Event<V>> {
        let rx = self.rx.as_mut()?;
        let snap = Arc::clone(&rx.borrow_and_update());
        if let Some((n, e)) = &snap.error {
            if *n > self.seen_error {
                self.seen_error = *n;
                return Some(Event::Error(e.clone()));
            }
        }
        if snap.version > self.seen_version {
            self.seen_version = snap.version;
            if let Some(v) = &snap.value {
                return Some(Event::Value(v.clone()));
            }
        }
        snap.ended.then_some(Event::End)
    }
}

impl<V> fmt::Debug for Subscription<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("path", &self.query.path)
            .field("seen_version", &self.seen_version)
            .finish_non_exhaustive()
    }
}
