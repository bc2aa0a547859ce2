//! Live typed configuration: [`JsonWatch`] (one key holding JSON) and [`TreeWatch`] (a prefix
//! read as a nested structure), from [`Kv::watch_json`] and [`Kv::watch_tree`].
//!
//! [`Kv::watch_tree`] decodes each answer with the mapping of [`Kv::tree`]: nested keys are
//! nested fields, values are JSON when they parse and strings otherwise, numbered folders
//! fill `Vec`s (see [`Kv::tree`] for the details).

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::kv::Kv;
use crate::shared_watch::{WatchError, WatchHealth};
use crate::typed::JsonError;
use crate::watch::{KeyWatch, PrefixWatch};

fn decode_error(key: &str, e: impl std::error::Error + Send + Sync + 'static) -> WatchError {
    WatchError::Decode {
        key: key.to_owned(),
        source: Arc::new(e),
    }
}

/// What a typed watch yielded last, to yield only changes.
#[derive(Debug)]
enum Last<R, T> {
    /// Nothing yet.
    Nothing,
    /// The raw input and the value decoded from it.
    Value(R, T),
    /// The raw input that failed to decode (its error was yielded).
    Error(R),
}

impl<R: PartialEq, T: PartialEq> Last<R, T> {
    /// Whether `raw` is what was last seen (an identical rewrite: nothing to yield).
    fn same_raw(&self, raw: &R) -> bool {
        match self {
            Self::Nothing => false,
            Self::Value(r, _) | Self::Error(r) => r == raw,
        }
    }

    /// Whether `value` is what was last yielded.
    fn same_value(&self, value: &T) -> bool {
        matches!(self, Self::Value(_, t) if t == value)
    }
}

impl<R: PartialEq, T: PartialEq + Clone> Last<R, T> {
    /// Records a new raw input and what it decoded to; the item to yield, or `None` when the
    /// decoded value equals the one last yielded.
    fn record(&mut self, raw: R, decoded: Result<T, WatchError>) -> Option<Result<T, WatchError>> {
        match decoded {
            Ok(v) => {
                let changed = !self.same_value(&v);
                *self = Self::Value(raw, v.clone());
                changed.then_some(Ok(v))
            }
            Err(e) => {
                *self = Self::Error(raw);
                Some(Err(e))
            }
        }
    }
}

/// A [`Stream`] of one key's value decoded from JSON, from [`Kv::watch_json`].
///
/// **What it yields, exactly:** `Ok(Some(value))` first with the current value (`Ok(None)`
/// when the key does not exist), then an item only when the **decoded** value changes: a
/// rewrite of the same bytes, or of bytes that decode to an equal value (other whitespace, key
/// order, fields the type ignores), yields nothing. A value that does not decode yields
/// `Err(WatchError::Decode { key, .. })` naming the key, once per distinct bad value, and the
/// stream goes on: the next good value is yielded even when it equals the one before the
/// error. Request errors and outages are as for [`KeyWatch`]: only errors that are not
/// retryable are items; [`health`](Self::health) tells when the watch is blind.
///
/// ```no_run
/// # async fn demo(kv: consul_kv::Kv) {
/// #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
/// struct Limits { rps: u32, burst: u32 }
///
/// let mut limits = kv.watch_json::<Limits>("service/api/limits");
/// while let Some(item) = limits.next().await {
///     match item {
///         Ok(Some(l)) => println!("limits now {l:?}"),
///         Ok(None) => println!("no limits configured"),
///         Err(e) => eprintln!("ignoring bad limits: {e}"), // names the key
///     }
/// }
/// # }
/// ```
#[must_use = "a watch does nothing until it is polled"]
pub struct JsonWatch<T> {
    watch: KeyWatch,
    last: Last<Option<Bytes>, Option<T>>,
}

/// A [`Stream`] of a whole prefix decoded into one type, from [`Kv::watch_tree`].
///
/// The keys under the prefix are decoded into `T` with the mapping of [`Kv::tree`]: nested
/// keys become nested fields, values are JSON when they parse and strings otherwise.
///
/// **What it yields, exactly:** `Ok(value)` first, then an item only when the decoded value
/// changes (a rewrite with the same content, a write that changes nothing `T` reads, a
/// tombstone reap or an index reset yield nothing). When the keys do not fit `T` (a key that
/// is both a value and a folder, a value of the wrong type), it yields
/// `Err(WatchError::Decode { key, .. })` naming the key (or folder, ending in `/`) at fault,
/// and goes on. Request errors and outages are as for
/// [`KeyWatch`]; see [`health`](Self::health).
///
/// ```no_run
/// # async fn demo(kv: consul_kv::Kv) {
/// #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
/// struct Db { host: String, port: u16 }
/// #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
/// struct Settings { greeting: String, db: Db }
///
/// // service/web/greeting = hello
/// // service/web/db/host  = db.internal
/// // service/web/db/port  = 5432
/// let mut settings = kv.watch_tree::<Settings>("service/web/");
/// while let Some(Ok(s)) = settings.next().await {
///     println!("reloaded: {s:?}");
/// }
/// # }
/// ```
#[must_use = "a watch does nothing until it is polled"]
pub struct TreeWatch<T> {
    watch: PrefixWatch,
    prefix: String,
    last: Last<Vec<(String, Option<Bytes>)>, T>,
    _t: PhantomData<fn() -> T>,
}

impl Kv {
    /// Watches one key whose value is JSON, decoded into `T`; see [`JsonWatch`].
    pub fn watch_json<T>(&self, key: impl Into<String>) -> JsonWatch<T>
    where
        T: DeserializeOwned + PartialEq + Clone,
    {
        JsonWatch {
            watch: self.watch(key),
            last: Last::Nothing,
        }
    }

    /// Watches every key under `prefix`, mapped to a tree and decoded into `T`; see
    /// [`TreeWatch`].
    pub fn watch_tree<T>(&self, prefix: impl Into<String>) -> TreeWatch<T>
    where
        T: DeserializeOwned + PartialEq + Clone,
    {
        let prefix = prefix.into();
        TreeWatch {
            watch: self.watch_prefix(prefix.clone()),
            prefix,
            last: Last::Nothing,
            _t: PhantomData,
        }
    }
}

macro_rules! typed_watch_common {
    ($ty:ident, $item:ty) => {
        impl<T> $ty<T>
        where
            T: DeserializeOwned + PartialEq + Clone,
        {
            /// The `wait` of each blocking request; see [`KeyWatch::wait`].
            pub fn wait(mut self, wait: std::time::Duration) -> Self {
                self.watch = self.watch.wait(wait);
                self
            }

            /// The rate limit; see [`KeyWatch::min_interval`].
            pub fn min_interval(mut self, interval: std::time::Duration) -> Self {
                self.watch = self.watch.min_interval(interval);
                self
            }

            /// Every watch option; see [`KeyWatch::options`].
            pub fn options(mut self, options: crate::WatchOptions) -> Self {
                self.watch = self.watch.options(options);
                self
            }

            /// The consistency mode of the reads; see [`KeyWatch::consistency`].
            pub fn consistency(mut self, consistency: crate::Consistency) -> Self {
                self.watch = self.watch.consistency(consistency);
                self
            }

            /// Whether the blocking query is shared; see [`KeyWatch::shared`].
            pub fn shared(mut self, shared: bool) -> Self {
                self.watch = self.watch.shared(shared);
                self
            }

            /// The health of the underlying watch; see [`WatchHealth`].
            pub fn health(&self) -> WatchHealth {
                self.watch.health()
            }

            /// A receiver of the underlying watch's [`WatchHealth`]; see
            /// [`KeyWatch::health_receiver`].
            pub fn health_receiver(&mut self) -> watch::Receiver<WatchHealth> {
                self.watch.health_receiver()
            }

            /// The next item.
            pub async fn next(&mut self) -> Option<$item> {
                std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
            }
        }

        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty)).finish_non_exhaustive()
            }
        }

        // The decoded value is only moved, never pinned.
        impl<T> Unpin for $ty<T> {}
    };
}

typed_watch_common!(JsonWatch, Result<Option<T>, WatchError>);
typed_watch_common!(TreeWatch, Result<T, WatchError>);

impl<T> Stream for JsonWatch<T>
where
    T: DeserializeOwned + PartialEq + Clone,
{
    type Item = Result<Option<T>, WatchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let key = match Pin::new(&mut this.watch).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(key))) => key,
            };
            let raw: Option<Bytes> = key.as_ref().map(|k| k.value.clone().unwrap_or_default());
            if this.last.same_raw(&raw) {
                continue;
            }
            let decoded: Result<Option<T>, WatchError> = match (&key, &raw) {
                (Some(k), Some(bytes)) => serde_json::from_slice::<T>(bytes)
                    .map(Some)
                    .map_err(|e| decode_error(&k.key, e)),
                _ => Ok(None),
            };
            if let Some(item) = this.last.record(raw, decoded) {
                return Poll::Ready(Some(item));
            }
        }
    }
}

impl<T> Stream for TreeWatch<T>
where
    T: DeserializeOwned + PartialEq + Clone,
{
    type Item = Result<T, WatchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let list = match this.watch.poll_list(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(list))) => list,
            };
            // The input as the mapping reads it: keys and values, not indexes.
            let raw: Vec<(String, Option<Bytes>)> = list
                .value
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect();
            if this.last.same_raw(&raw) {
                continue;
            }
            let decoded = crate::tree::decode_tree::<T>(&this.prefix, &list.value).map_err(|e| {
                let key = match &e {
                    JsonError::Tree { key, .. } | JsonError::Decode { key, .. } => key.clone(),
                    _ => this.prefix.clone(),
                };
                decode_error(&key, e)
            });
            if let Some(item) = this.last.record(raw, decoded) {
                return Poll::Ready(Some(item));
            }
        }
    }
}
