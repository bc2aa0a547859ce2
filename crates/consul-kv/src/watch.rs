//! Watches as [`Stream`]s: [`KeyWatch`] and [`PrefixWatch`], from
//! [`Kv::watch`](crate::Kv::watch) and [`Kv::watch_prefix`](crate::Kv::watch_prefix).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use consul_kv_hyper::HyperWatch;
use consul_kv_proto::kv as op;
use consul_kv_proto::{Blocking, Consistency, Indexed, WatchOptions};
use futures_core::Stream;

use crate::kv::{Items, Key};
use crate::scope::BoxFuture;
use crate::{Client, Result};

/// The blocking-query loop behind both watches, driven by hand as a `Stream`.
enum State<O: Blocking> {
    /// Not polled yet: options may still change.
    Init(Client, O, WatchOptions),
    /// Between two results.
    Idle(Box<HyperWatch<O>>),
    /// Waiting for the next result; the future hands the watcher back.
    Busy(Next<O>),
    /// The request cannot be built (an invalid key, datacenter or token): the error was
    /// yielded once and the stream has ended, instead of failing the same way forever.
    Ended,
    /// Only while a transition is in progress.
    Gone,
}

/// One `HyperWatch::next` in flight; it hands the watcher back with the result.
type Next<O> = BoxFuture<'static, (Box<HyperWatch<O>>, Result<Indexed<<O as Blocking>::Value>>)>;

struct Inner<O: Blocking> {
    state: State<O>,
}

impl<O> Inner<O>
where
    O: Blocking + Send + 'static,
    O::Value: Clone + PartialEq + Send + 'static,
    HyperWatch<O>: Send,
{
    fn new(client: Client, op: O) -> Self {
        Self {
            state: State::Init(client, op, default_options()),
        }
    }

    fn options_mut(&mut self) -> Option<&mut WatchOptions> {
        match &mut self.state {
            State::Init(_, _, o) => Some(o),
            _ => None,
        }
    }

    fn op_mut(&mut self) -> Option<&mut O> {
        match &mut self.state {
            State::Init(_, op, _) => Some(op),
            _ => None,
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Indexed<O::Value>>>> {
        loop {
            match std::mem::replace(&mut self.state, State::Gone) {
                State::Init(client, op, opts) => {
                    // A request the client refuses to build would be refused on every round:
                    // report it once and end, rather than yield the same error forever.
                    if let Err(e) = op.build(client.exec.context()) {
                        self.state = State::Ended;
                        return Poll::Ready(Some(Err(consul_kv_hyper::Error::Build(e))));
                    }
                    self.state = State::Idle(Box::new(client.exec.watch(op, opts)));
                }
                State::Idle(mut w) => {
                    self.state = State::Busy(Box::pin(async move {
                        let r = w.next().await;
                        (w, r)
                    }));
                }
                State::Busy(mut fut) => match fut.as_mut().poll(cx) {
                    Poll::Ready((w, r)) => {
                        self.state = State::Idle(w);
                        return Poll::Ready(Some(r));
                    }
                    Poll::Pending => {
                        self.state = State::Busy(fut);
                        return Poll::Pending;
                    }
                },
                State::Ended => {
                    self.state = State::Ended;
                    return Poll::Ready(None);
                }
                State::Gone => return Poll::Pending,
            }
        }
    }
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
            if let Some(o) = self.inner.options_mut() {
                o.wait = wait;
            }
            self
        }

        /// The rate limit: at most one request per `interval` once a burst of two is spent
        /// (default 500 ms). Set it before the first poll.
        pub fn min_interval(mut self, interval: Duration) -> Self {
            if let Some(o) = self.inner.options_mut() {
                o.min_interval = interval;
            }
            self
        }

        /// Replaces every watch option. Set it before the first poll.
        pub fn options(mut self, options: WatchOptions) -> Self {
            if let Some(o) = self.inner.options_mut() {
                *o = options;
            }
            self
        }

        /// The consistency mode of the reads (default: leader reads). Set it before the first
        /// poll.
        pub fn consistency(mut self, consistency: Consistency) -> Self {
            if let Some(op) = self.inner.op_mut() {
                op.options_mut().consistency = consistency;
            }
            self
        }
    };
}

/// A watch on one key, from [`Kv::watch`](crate::Kv::watch).
///
/// A [`Stream`] of `Result<Option<Key>>`: first the current value, then one item per real
/// change of the value, flags or session (`None` once the key is deleted). A wake-up of the
/// blocking query that changed nothing yields nothing.
///
/// Errors are yielded as items and the watch goes on: it backs off, re-reads without an index
/// (a restarted server may have lower indexes) and resumes. Every error goes through the
/// backoff (200 ms doubling to 30 s by default), so a persistent error (`403`, an unknown
/// datacenter, a refused connection) is yielded at that pace, never in a busy loop. A request
/// the client refuses to build (an invalid key such as `/bad` or `a//b`) is yielded once and
/// ends the stream. A reset of Consul's index
/// (a server restart, a snapshot restore, tombstone reaping) is detected and followed. Drop the
/// stream to stop.
///
/// It needs no `StreamExt`: [`next`](Self::next) is built in.
///
/// ```no_run
/// # async fn demo(kv: consul_kv::Kv) -> consul_kv::Result<()> {
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
    inner: Inner<op::Get>,
}

impl KeyWatch {
    pub(crate) fn new(client: Client, op: op::Get) -> Self {
        Self {
            inner: Inner::new(client, op),
        }
    }

    watch_setters!();

    /// The next change. `None` only after a request the client refuses to build (an invalid
    /// key), which is yielded once as an error first.
    pub async fn next(&mut self) -> Option<Result<Option<Key>>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for KeyWatch {
    type Item = Result<Option<Key>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next(cx).map(|o| {
            o.map(|r| {
                r.map(|indexed| {
                    let meta = indexed.meta;
                    indexed.value.map(|pair| Key::new(pair, meta))
                })
            })
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
/// A [`Stream`] of `Result<Items>`: first the current list, then one item per real change of
/// any key, value, flags or session under the prefix. Behaves like [`KeyWatch`] otherwise.
#[must_use = "a watch does nothing until it is polled"]
pub struct PrefixWatch {
    inner: Inner<op::ListItems>,
}

impl PrefixWatch {
    pub(crate) fn new(client: Client, op: op::ListItems) -> Self {
        Self {
            inner: Inner::new(client, op),
        }
    }

    watch_setters!();

    /// The next change. `None` only after a request the client refuses to build (an invalid
    /// prefix), which is yielded once as an error first.
    pub async fn next(&mut self) -> Option<Result<Items>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for PrefixWatch {
    type Item = Result<Items>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner
            .poll_next(cx)
            .map(|o| o.map(|r| r.map(|indexed| Items::new(indexed.value, indexed.meta))))
    }
}

impl fmt::Debug for PrefixWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixWatch").finish_non_exhaustive()
    }
}
