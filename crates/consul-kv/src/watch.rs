//! Watches as [`Stream`]s: [`KeyWatch`] and [`PrefixWatch`], from
//! [`Kv::watch`](crate::Kv::watch) and [`Kv::watch_prefix`](crate::Kv::watch_prefix), each a
//! subscriber of a shared blocking query (see `shared_watch`).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use consul_kv_proto::kv as op;
use consul_kv_proto::{Blocking, Consistency, Indexed, KvPair, WatchOptions};
use futures_core::Stream;

use crate::kv::{Items, Key};
use crate::shared_watch::{Event, QuerySpec, Subscription, WatchError, WatchHealth};
use crate::Client;

/// A watch: its settings, and once polled its subscription to the (shared) blocking query.
struct Inner<V> {
    client: Client,
    spec: QuerySpec,
    shared: bool,
    /// Set on the first poll (or health receiver); the settings are fixed from then on.
    sub: Option<Subscription<V>>,
}

impl<V> Inner<V>
where
    V: Clone + PartialEq + Send + Sync + 'static,
{
    fn new(client: Client, spec: QuerySpec) -> Self {
        Self {
            client,
            spec,
            shared: true,
            sub: None,
        }
    }

    fn spec_mut(&mut self) -> Option<&mut QuerySpec> {
        self.sub.is_none().then_some(&mut self.spec)
    }

    fn set_shared(&mut self, on: bool) {
        if self.sub.is_none() {
            self.shared = on;
        }
    }

    /// Subscribes (starting the query if this is its first watch).
    fn start<O>(&mut self, make_op: fn(&QuerySpec) -> O) -> &mut Subscription<V>
    where
        O: Blocking<Value = V> + Send + 'static,
        consul_kv_hyper::HyperWatch<O>: Send,
    {
        let (client, spec, shared) = (&self.client, &self.spec, self.shared);
        self.sub.get_or_insert_with(|| {
            Subscription::new(client.hub.query(client, spec, shared, make_op))
        })
    }

    fn health(&self) -> WatchHealth {
        self.sub
            .as_ref()
            .map_or_else(WatchHealth::default, Subscription::health)
    }
}

fn key_op(spec: &QuerySpec) -> op::Get {
    op::Get::new(spec.path.clone()).with_options(spec.read.clone())
}

fn prefix_op(spec: &QuerySpec) -> op::ListItems {
    op::ListItems::new(spec.path.clone()).with_options(spec.read.clone())
}

pub(crate) fn default_options() -> WatchOptions {
    // Vary the jitter between watchers so that many of them do not wake in lockstep.
    let seed = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(0);
        h.finish()
    };
    WatchOptions::default().seed(seed)
}

macro_rules! watch_setters {
    () => {
        /// The `wait` of each blocking request (default 60 s). Set it before the first poll;
        /// later calls have no effect.
        pub fn wait(mut self, wait: Duration) -> Self {
            if let Some(s) = self.inner.spec_mut() {
                s.opts.wait = wait;
            }
            self
        }

        /// The rate limit: at most one request per `interval` once a burst of two is spent
        /// (default 500 ms). Set it before the first poll.
        pub fn min_interval(mut self, interval: Duration) -> Self {
            if let Some(s) = self.inner.spec_mut() {
                s.opts.min_interval = interval;
            }
            self
        }

        /// Replaces every watch option. Set it before the first poll.
        pub fn options(mut self, options: WatchOptions) -> Self {
            if let Some(s) = self.inner.spec_mut() {
                s.opts = options;
            }
            self
        }

        /// The consistency mode of the reads (default: leader reads). Set it before the first
        /// poll.
        pub fn consistency(mut self, consistency: Consistency) -> Self {
            if let Some(s) = self.inner.spec_mut() {
                s.read.consistency = consistency;
            }
            self
        }

        /// Whether this watch shares its blocking query with the other watches of the same
        /// client that ask the same question (default `true`). `false` gives it a private
        /// query: one more blocking request at the server. Set it before the first poll.
        pub fn shared(mut self, shared: bool) -> Self {
            self.inner.set_shared(shared);
            self
        }

        /// The health of this watch's query: when Consul last answered, the current error,
        /// `KnownLeader` / `LastContact` of the last answer. Before the first poll (or
        /// [`health_receiver`](Self::health_receiver)) it reports a query not started.
        pub fn health(&self) -> WatchHealth {
            self.inner.health()
        }
    };
}

/// A watch on one key, from [`Kv::watch`](crate::Kv::watch).
///
/// A [`Stream`] of `Result<Option<Key>, WatchError>`. **What it yields, exactly:**
///
/// - `Ok(value)` first with the current value (`None`: the key does not exist), then once per
///   change of the key's value, flags, session or indexes (`None` once it is deleted). An
///   answer equal to the last one (a wake-up by a write elsewhere, the wait running out, an
///   index reset) yields nothing.
/// - `Err(WatchError::Request(..))` once for each failure that is **not** retryable (`403`, a
///   malformed answer, a body over the limit); the watch goes on after its backoff.
/// - **Nothing** for transient failures (connection refused or reset, timeouts, `429`, `503`,
///   `500 No cluster leader`): the watch retries with backoff and, after a reconnect, re-reads
///   without an index (a restarted server may have lower indexes). During such an outage the
///   stream is silent: read [`health`](Self::health) (or await
///   [`health_receiver`](Self::health_receiver)) to know that the watch is blind.
/// - The stream ends (`None`) only when its request cannot be built (an invalid key), after
///   yielding that error once.
///
/// Watches of one [`Client`] that ask the same question share one blocking query (see
/// [`shared`](Self::shared)); a slow consumer skips to the newest value and never slows the
/// others down. Drop the stream to stop; the last watch of a query dropped ends the query.
///
/// It needs no `StreamExt`: [`next`](Self::next) is built in.
///
/// ```no_run
/// # async fn demo(kv: consul_kv::Kv) -> Result<(), consul_kv::WatchError> {
/// let mut watch = kv.watch("app/config");
/// while let Some(change) = watch.next().await {
///     match change? {
///         Some(key) => println!("config is now {:?}", key.as_str()),
///         None => println!("config deleted"),
///     }
/// }
/// # Ok(()) }
/// ```
#[must_use = "a watch does nothing until it is polled"]
pub struct KeyWatch {
    inner: Inner<Option<KvPair>>,
}

impl KeyWatch {
    pub(crate) fn new(client: Client, spec: QuerySpec) -> Self {
        Self {
            inner: Inner::new(client, spec),
        }
    }

    watch_setters!();

    /// A receiver of this watch's [`WatchHealth`]: `borrow()` reads it, `changed()` awaits
    /// its next update (each answer and each failed request). Starts the query if the watch
    /// was not polled yet (the settings are then fixed); call it inside a Tokio runtime.
    pub fn health_receiver(&mut self) -> tokio::sync::watch::Receiver<WatchHealth> {
        self.inner.start(key_op).health_receiver()
    }

    /// The next change; `None` only when the watch cannot run (see the type's docs).
    pub async fn next(&mut self) -> Option<Result<Option<Key>, WatchError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for KeyWatch {
    type Item = Result<Option<Key>, WatchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.start(key_op).poll_event(cx).map(|ev| match ev {
            Event::Value(indexed) => {
                let meta = indexed.meta;
                Some(Ok(indexed.value.map(|pair| Key::new(pair, meta))))
            }
            Event::Error(e) => Some(Err(e)),
            Event::End => None,
        })
    }
}

impl fmt::Debug for KeyWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyWatch").finish_non_exhaustive()
    }
}

/// A watch on every key under a prefix, from [`Kv::watch_prefix`](crate::Kv::watch_prefix).
///
/// A [`Stream`] of `Result<Items, WatchError>`: first the current list, then one item per real
/// change of any key, value, flags or session under the prefix. Errors, silence during
/// outages, health and sharing are as for [`KeyWatch`]. [`changes`](Self::changes) turns it
/// into a stream of per-key [`Change`](crate::Change) events.
#[must_use = "a watch does nothing until it is polled"]
pub struct PrefixWatch {
    inner: Inner<Vec<KvPair>>,
}

impl PrefixWatch {
    pub(crate) fn new(client: Client, spec: QuerySpec) -> Self {
        Self {
            inner: Inner::new(client, spec),
        }
    }

    watch_setters!();

    /// A receiver of this watch's [`WatchHealth`]; see [`KeyWatch::health_receiver`].
    pub fn health_receiver(&mut self) -> tokio::sync::watch::Receiver<WatchHealth> {
        self.inner.start(prefix_op).health_receiver()
    }

    /// The next change; `None` only when the watch cannot run (see [`KeyWatch`]).
    pub async fn next(&mut self) -> Option<Result<Items, WatchError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The next list, or the error, as the subscription yields it (for the streams built on
    /// this one).
    pub(crate) fn poll_list(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Indexed<Vec<KvPair>>, WatchError>>> {
        self.inner
            .start(prefix_op)
            .poll_event(cx)
            .map(|ev| match ev {
                Event::Value(indexed) => Some(Ok(indexed)),
                Event::Error(e) => Some(Err(e)),
                Event::End => None,
            })
    }
}

impl Stream for PrefixWatch {
    type Item = Result<Items, WatchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_list(cx)
            .map(|r| r.map(|r| r.map(|indexed| Items::new(indexed.value, indexed.meta))))
    }
}

impl fmt::Debug for PrefixWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixWatch").finish_non_exhaustive()
    }
}
