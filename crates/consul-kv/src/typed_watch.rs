//! Live typed configuration: [`JsonWatch`] (one key holding JSON) and [`TreeWatch`] (a prefix
//! read as a nested structure), from [`Kv::watch_json`] and [`Kv::watch_tree`].
//!
//! **The tree mapping** (what [`Kv::watch_tree`] decodes): each key under the prefix, with the
//! prefix removed, is split on `/` into a path of nested JSON objects; its value becomes the
//! leaf: parsed as JSON when it is valid JSON (`8080`, `true`, `{"a":1}`, `"quoted"`), else
//! taken as a string when it is UTF-8 text (`hello world`). Folder keys (ending in `/`) only
//! create their object; empty path segments are skipped, so `app/` and `app` as prefixes map
//! `app/db/host` to the same `{"db":{"host":..}}`. The resulting JSON object is then
//! deserialized into the caller's type with serde, so field names are the key segments
//! (`#[serde(rename = "db-host")]` for other spellings) and `#[serde(default)]` covers keys that
//! are absent.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use consul_kv_proto::KvPair;
use futures_core::Stream;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::kv::Kv;
use crate::shared_watch::{WatchError, WatchHealth};
use crate::watch::{KeyWatch, PrefixWatch};

/// Why a tree could not be built from the keys under a prefix.
#[derive(Debug, thiserror::Error)]
enum TreeError {
    #[error("the key is both a value and a folder of other keys")]
    Conflict,
    #[error("the value is neither JSON nor UTF-8 text")]
    NotText,
    #[error("a value stored at the prefix itself cannot be merged with the keys under it")]
    ValueAtRoot,
}

fn decode_error(key: &str, e: impl std::error::Error + Send + Sync + 'static) -> WatchError {
    WatchError::Decode {
        key: key.to_owned(),
        source: Arc::new(e),
    }
}

/// A leaf value: JSON if it parses, else UTF-8 text.
fn leaf(bytes: &[u8]) -> Result<Value, TreeError> {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return Ok(v);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(Value::String(s.to_owned())),
        Err(_) => Err(TreeError::NotText),
    }
}

/// The tree mapping of the module docs: the entries under `prefix` as one JSON object.
/// An error names the key at fault.
pub(crate) fn tree_value(prefix: &str, entries: &[KvPair]) -> Result<Value, WatchError> {
    let mut root = Map::new();
    for pair in entries {
        let rel = pair.key.strip_prefix(prefix).unwrap_or(&pair.key);
        let folder = rel.ends_with('/') || rel.is_empty();
        let segments: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        if segments.is_empty() {
            if pair.value_bytes().is_empty() {
                continue;
            }
            return Err(decode_error(&pair.key, TreeError::ValueAtRoot));
        }
        let (last, parents) = match segments.split_last() {
            Some(x) => x,
            None => continue,
        };
        let mut node = &mut root;
        for seg in parents {
            let child = node
                .entry((*seg).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            node = match child {
                Value::Object(m) => m,
                _ => return Err(decode_error(&pair.key, TreeError::Conflict)),
            };
        }
        if folder {
            let child = node
                .entry((*last).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                return Err(decode_error(&pair.key, TreeError::Conflict));
            }
            continue;
        }
        if node.contains_key(*last) {
            return Err(decode_error(&pair.key, TreeError::Conflict));
        }
        let v = leaf(pair.value_bytes()).map_err(|e| decode_error(&pair.key, e))?;
        node.insert((*last).to_owned(), v);
    }
    Ok(Value::Object(root))
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
/// The keys under the prefix are mapped to nested JSON objects (the mapping is described in
/// this module's documentation: nested keys become nested fields, values are JSON when they
/// parse and strings otherwise) and deserialized into `T`.
///
/// **What it yields, exactly:** `Ok(value)` first, then an item only when the decoded value
/// changes (a rewrite with the same content, a write that changes nothing `T` reads, a
/// tombstone reap or an index reset yield nothing). When the keys do not map (a key that is
/// both a value and a folder, a value that is neither JSON nor text) or the tree does not
/// deserialize into `T`, it yields `Err(WatchError::Decode { key, .. })`, naming the key at
/// fault when one is (else the prefix), and goes on. Request errors and outages are as for
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
            let raw: Option<Bytes> = key
                .as_ref()
                .map(|k| k.value.clone().unwrap_or_default());
            if this.last.same_raw(&raw) {
                continue;
            }
            let decoded: Result<Option<T>, WatchError> = match (&key, &raw) {
                (Some(k), Some(bytes)) => serde_json::from_slice::<T>(bytes)
                    .map(Some)
                    .map_err(|e| decode_error(&k.key, e)),
                _ => Ok(None),
            };
            match decoded {
                Ok(v) => {
                    if this.last.same_value(&v) {
                        this.last = Last::Value(raw, v);
                        continue;
                    }
                    this.last = Last::Value(raw, v.clone());
                    return Poll::Ready(Some(Ok(v)));
                }
                Err(e) => {
                    this.last = Last::Error(raw);
                    return Poll::Ready(Some(Err(e)));
                }
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
            let decoded = tree_value(&this.prefix, &list.value).and_then(|tree| {
                serde_json::from_value::<T>(tree).map_err(|e| decode_error(&this.prefix, e))
            });
            match decoded {
                Ok(v) => {
                    if this.last.same_value(&v) {
                        this.last = Last::Value(raw, v);
                        continue;
                    }
                    this.last = Last::Value(raw, v.clone());
                    return Poll::Ready(Some(Ok(v)));
                }
                Err(e) => {
                    this.last = Last::Error(raw);
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use consul_kv_proto::bytes::Bytes;
    use consul_kv_proto::Operation;

    fn entries(pairs: &[(&str, Option<&str>)]) -> Vec<KvPair> {
        use base64::Engine as _;
        let items: Vec<String> = pairs
            .iter()
            .map(|(k, v)| {
                let v = v.map_or("null".to_owned(), |v| {
                    format!("\"{}\"", base64::engine::general_purpose::STANDARD.encode(v))
                });
                format!(r#"{{"Key":"{k}","Value":{v},"Flags":0,"CreateIndex":5,"ModifyIndex":5,"LockIndex":0}}"#)
            })
            .collect();
        let resp = consul_kv_proto::http::Response::builder()
            .status(200)
            .header("X-Consul-Index", "5")
            .body(Bytes::from(format!("[{}]", items.join(","))))
            .unwrap();
        consul_kv_proto::kv::ListItems::new("").parse(resp).unwrap().value
    }

    #[test]
    fn nested_keys_become_nested_objects_with_json_or_text_leaves() {
        let e = entries(&[
            ("app/", None),
            ("app/db/", None),
            ("app/db/host", Some("db.internal")),
            ("app/db/port", Some("5432")),
            ("app/features", Some(r#"["a","b"]"#)),
            ("app/greeting", Some("hello world")),
            ("app/quoted", Some(r#""42""#)),
        ]);
        let v = tree_value("app/", &e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "db": {"host": "db.internal", "port": 5432},
                "features": ["a", "b"],
                "greeting": "hello world",
                "quoted": "42",
            })
        );
        // A prefix without the slash maps the same.
        assert_eq!(tree_value("app", &e).unwrap(), v);
    }

    #[test]
    fn a_key_that_is_both_value_and_folder_is_an_error_naming_it() {
        let e = entries(&[("app/db", Some("x")), ("app/db/host", Some("h"))]);
        let err = tree_value("app/", &e).unwrap_err();
        assert_eq!(err.key(), Some("app/db/host"));
        assert!(err.to_string().contains("app/db/host"));
    }
}
