//! The KV endpoint: [`Kv`], its request builders and what they return.
//!
//! Every method of [`Kv`] returns a builder. The builder does nothing until it is awaited:
//! `.await` sends the request (the builders implement [`IntoFuture`]).

use std::future::IntoFuture;
use std::ops::Deref;

use bytes::Bytes;
use consul_kv_proto::kv::{self as op, SetMode};
use consul_kv_proto::{Cas, Index, KvPair, ReadOptions, SessionId, WriteOptions, WriteOutcome};

use crate::meta::ConsulMeta;
use crate::scope::{common_setters, finish_read, read_setters, BoxFuture, Scope};
use crate::txn::Txn;
use crate::watch::{KeyWatch, PrefixWatch};
use crate::{Client, Result};

/// The KV endpoint, from [`Client::kv`].
///
/// Cheap to clone. [`dc`](Self::dc), [`ns`](Self::ns), [`partition`](Self::partition) and
/// [`token`](Self::token) return a copy bound to those settings; every builder also has the
/// same setters for a single call.
///
/// ```no_run
/// # async fn demo() -> consul_kv::Result<()> {
/// let client = consul_kv::Client::from_env()?;
/// let kv = client.kv();
/// kv.set("app/config", "v1").await?;
/// if let Some(key) = kv.get("app/config").await? {
///     // Write only if nobody changed the key since it was read.
///     let applied = kv.set("app/config", "v2").cas(key.consul()).await?;
///     println!("CAS applied: {applied}");
/// }
/// let dc2 = client.kv().dc("dc2").items("app/").await?;
/// println!("{} keys in dc2", dc2.len());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Kv {
    pub(crate) client: Client,
    pub(crate) scope: Scope,
}

crate::scope::scoped_handle!(
    Kv,
    /// A copy of this endpoint bound to datacenter `dc`: the seed's `kv.dc('dc2')`.
    ///
    /// ```
    /// let client = consul_kv::Client::builder().build()?;
    /// let dc2 = client.kv().dc("dc2");
    /// assert_eq!(dc2.datacenter(), Some("dc2"));
    /// assert_eq!(client.kv().datacenter(), None);
    /// # Ok::<(), consul_kv::Error>(())
    /// ```
);

impl Kv {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            scope: Scope::default(),
        }
    }

    /// The datacenter this endpoint is bound to, if any.
    pub fn datacenter(&self) -> Option<&str> {
        self.scope.datacenter.as_deref()
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Reads one key: `Some(Key)` with its value, flags, indexes, session and meta, or `None`
    /// when it does not exist.
    pub fn get(&self, key: impl Into<String>) -> Get<'_> {
        Get {
            kv: self,
            op: op::Get::new(key).with_options(self.scope.read_options()),
        }
    }

    /// Reads the raw value of one key (`?raw`): the bytes only, with the meta.
    pub fn raw(&self, key: impl Into<String>) -> GetRaw<'_> {
        GetRaw {
            kv: self,
            op: op::GetRaw::new(key).with_options(self.scope.read_options()),
        }
    }

    /// Every key and value under a byte prefix (`?recurse`), with the meta. `""` lists the
    /// whole store; a prefix with no keys gives an empty list.
    ///
    /// The prefix is a byte prefix: `"app"` also matches `"apple"`. End it with `/` to list a
    /// folder.
    pub fn items(&self, prefix: impl Into<String>) -> ListItems<'_> {
        ListItems {
            kv: self,
            op: op::Items::new(prefix).with_options(self.scope.read_options()),
        }
    }

    /// Every key and value under a byte prefix, as a [`Stream`](futures_core::Stream) that
    /// yields each entry as the answer arrives: for trees too large to hold in memory, or
    /// larger than the body limit [`items`](Self::items) enforces. See [`ItemsStream`].
    pub fn items_stream(&self, prefix: impl Into<String>) -> crate::ItemsStream {
        let op = op::Items::new(prefix).with_options(self.scope.read_options());
        crate::ItemsStream::new(self.client.exec.stream(op))
    }

    /// The key names under a byte prefix (`?keys`), with the meta. With
    /// [`separator`](ListKeys::separator) the names stop after the separator, like folders.
    pub fn keys(&self, prefix: impl Into<String>) -> ListKeys<'_> {
        ListKeys {
            kv: self,
            op: op::Keys::new(prefix).with_options(self.scope.read_options()),
        }
    }

    /// Writes `value` to `key`; resolves to `true` when applied. Add
    /// [`cas`](Set::cas) to write only if nobody wrote the key in between, and
    /// [`flags`](Set::flags) to store flags.
    ///
    /// The value is sent as raw bytes; an empty value is stored as Consul's `null`.
    pub fn set(&self, key: impl Into<String>, value: impl Into<Bytes>) -> Set<'_> {
        Set {
            kv: self,
            op: op::Set::new(key, value).with_options(self.scope.write_options()),
        }
    }

    /// Acquires the lock on `key` for `session` (`?acquire=`); resolves to `true` when this
    /// session now holds it.
    ///
    /// **Acquiring replaces the key's value and flags** with this request's
    /// ([`value`](Acquire::value), default empty, and [`flags`](Acquire::flags), default 0):
    /// Consul stores the request body and flags, as for any write. Pass the value you want the
    /// key to hold.
    ///
    /// `false` means another session holds the key, or a lock-delay is in effect (the key then
    /// shows no session).
    pub fn acquire(&self, key: impl Into<String>, session: impl AsRef<SessionId>) -> Acquire<'_> {
        Acquire {
            kv: self,
            op: op::Set::acquire(key, session.as_ref().clone(), Bytes::new())
                .with_options(self.scope.write_options()),
        }
    }

    /// Releases the lock on `key` held by `session` (`?release=`); resolves to `true` when
    /// released.
    ///
    /// **Releasing replaces the key's value and flags** with this request's
    /// ([`value`](Release::value), default empty, and [`flags`](Release::flags), default 0).
    pub fn release(&self, key: impl Into<String>, session: impl AsRef<SessionId>) -> Release<'_> {
        Release {
            kv: self,
            op: op::Set::release(key, session.as_ref().clone(), Bytes::new())
                .with_options(self.scope.write_options()),
        }
    }

    /// Deletes one key; resolves to `true` (also when the key did not exist). Add
    /// [`cas`](Delete::cas) to delete only an unchanged key.
    pub fn delete(&self, key: impl Into<String>) -> Delete<'_> {
        Delete {
            kv: self,
            op: op::Delete::new(key).with_options(self.scope.write_options()),
        }
    }

    /// Deletes every key under a byte prefix (`?recurse`). `"app"` also deletes `"apple"`;
    /// `""` deletes the whole store.
    pub fn delete_tree(&self, prefix: impl Into<String>) -> DeleteTree<'_> {
        DeleteTree {
            kv: self,
            op: op::Delete::tree(prefix).with_options(self.scope.write_options()),
        }
    }

    /// Starts a transaction (`/v1/txn`): several operations applied atomically.
    pub fn txn(&self) -> Txn<'_> {
        Txn::new(self)
    }

    /// A leader-election lock on `key`, with this endpoint's datacenter, namespace, partition
    /// and token; the same as [`Client::lock`] otherwise.
    pub fn lock(&self, key: impl Into<String>) -> crate::LockBuilder {
        crate::LockBuilder::new(self.clone(), key.into(), Bytes::new())
    }

    /// A semaphore with `limit` holders under `prefix`, with this endpoint's settings; the
    /// same as [`Client::semaphore`] otherwise.
    pub fn semaphore(&self, prefix: impl Into<String>, limit: usize) -> crate::SemaphoreBuilder {
        crate::SemaphoreBuilder::new(self.clone(), prefix.into(), limit)
    }

    /// Watches one key: a [`Stream`](futures_core::Stream) of its value, which yields the
    /// current value first and then each real change (`None` when the key is deleted).
    pub fn watch(&self, key: impl Into<String>) -> KeyWatch {
        KeyWatch::new(
            self.client.clone(),
            op::Get::new(key).with_options(self.scope.read_options()),
        )
    }

    /// Watches every key under a prefix: a [`Stream`](futures_core::Stream) of [`Items`], the
    /// current list first and then each real change.
    pub fn watch_prefix(&self, prefix: impl Into<String>) -> PrefixWatch {
        PrefixWatch::new(
            self.client.clone(),
            op::Items::new(prefix).with_options(self.scope.read_options()),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// What reads return.

/// One key as read by [`Kv::get`]: the [`KvPair`] (value bytes, flags, indexes, session) and
/// the [`ConsulMeta`] of the read.
///
/// Derefs to [`KvPair`], so `key.value`, `key.flags`, `key.session` work directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pair: KvPair,
    meta: ConsulMeta,
}

impl Key {
    /// Pairs a [`KvPair`] with the meta of the read that returned it.
    pub fn new(pair: KvPair, query: consul_kv_proto::QueryMeta) -> Self {
        let meta = match Index::new_nonzero(pair.modify_index) {
            Some(i) => ConsulMeta::for_key(query, i),
            None => ConsulMeta::for_list(query),
        };
        Self { pair, meta }
    }

    /// The meta: the modify index (the CAS id), the last index and the leader information.
    /// Pass it to `.cas(..)`.
    pub fn consul(&self) -> &ConsulMeta {
        &self.meta
    }

    /// The pair.
    pub fn pair(&self) -> &KvPair {
        &self.pair
    }

    /// The value as bytes (empty when Consul stores none).
    pub fn bytes(&self) -> &[u8] {
        self.pair.value_bytes()
    }

    /// The value as UTF-8 text, if it is.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.pair.value_bytes()).ok()
    }

    /// The pair, without the meta.
    pub fn into_pair(self) -> KvPair {
        self.pair
    }

    /// The pair and the meta.
    pub fn into_parts(self) -> (KvPair, ConsulMeta) {
        (self.pair, self.meta)
    }
}

impl Deref for Key {
    type Target = KvPair;
    fn deref(&self) -> &KvPair {
        &self.pair
    }
}

impl From<&Key> for Cas {
    /// A CAS on the key's modify index.
    fn from(k: &Key) -> Self {
        Self::from(&k.pair)
    }
}

impl From<&Key> for Index {
    /// The key's modify index.
    fn from(k: &Key) -> Self {
        Self::from(&k.pair)
    }
}

/// The raw value of one key, from [`Kv::raw`], with the meta. Derefs to the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    value: Bytes,
    meta: ConsulMeta,
}

impl RawValue {
    /// The meta of the read.
    pub fn consul(&self) -> &ConsulMeta {
        &self.meta
    }

    /// The value.
    pub fn bytes(&self) -> &Bytes {
        &self.value
    }

    /// The value.
    pub fn into_bytes(self) -> Bytes {
        self.value
    }
}

impl Deref for RawValue {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.value
    }
}

/// Every entry under a prefix, from [`Kv::items`], with the meta of the read.
///
/// Derefs to `[KvPair]` and iterates over the pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Items {
    entries: Vec<KvPair>,
    meta: ConsulMeta,
}

impl Items {
    pub(crate) fn new(entries: Vec<KvPair>, query: consul_kv_proto::QueryMeta) -> Self {
        Self {
            entries,
            meta: ConsulMeta::for_list(query),
        }
    }

    /// The meta of the read.
    pub fn consul(&self) -> &ConsulMeta {
        &self.meta
    }

    /// The entry for `key`, if listed.
    pub fn get(&self, key: &str) -> Option<&KvPair> {
        self.entries.iter().find(|p| p.key == key)
    }

    /// The entries, in Consul's order (sorted by key).
    pub fn entries(&self) -> &[KvPair] {
        &self.entries
    }

    /// The entries.
    pub fn into_vec(self) -> Vec<KvPair> {
        self.entries
    }
}

impl Deref for Items {
    type Target = [KvPair];
    fn deref(&self) -> &[KvPair] {
        &self.entries
    }
}

impl IntoIterator for Items {
    type Item = KvPair;
    type IntoIter = std::vec::IntoIter<KvPair>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a> IntoIterator for &'a Items {
    type Item = &'a KvPair;
    type IntoIter = std::slice::Iter<'a, KvPair>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// Key names under a prefix, from [`Kv::keys`], with the meta of the read.
///
/// Derefs to `[String]` and iterates over the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    keys: Vec<String>,
    meta: ConsulMeta,
}

impl Keys {
    /// The meta of the read.
    pub fn consul(&self) -> &ConsulMeta {
        &self.meta
    }

    /// Whether `key` is listed.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }

    /// The names.
    pub fn into_vec(self) -> Vec<String> {
        self.keys
    }
}

impl Deref for Keys {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.keys
    }
}

impl IntoIterator for Keys {
    type Item = String;
    type IntoIter = std::vec::IntoIter<String>;
    fn into_iter(self) -> Self::IntoIter {
        self.keys.into_iter()
    }
}

impl<'a> IntoIterator for &'a Keys {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.keys.iter()
    }
}

// ---------------------------------------------------------------------------------------------
// Builders.

macro_rules! into_future {
    ($ty:ident, $out:ty) => {
        impl<'a> IntoFuture for $ty<'a> {
            type Output = Result<$out>;
            type IntoFuture = BoxFuture<'a, Result<$out>>;
            fn into_future(self) -> Self::IntoFuture {
                Box::pin(self.send())
            }
        }
    };
}

macro_rules! read_builder {
    ($(#[$doc:meta])* $ty:ident, $op:ty) => {
        $(#[$doc])*
        #[must_use = "a request does nothing until it is awaited"]
        #[derive(Debug)]
        pub struct $ty<'a> {
            kv: &'a Kv,
            op: $op,
        }

        impl<'a> $ty<'a> {
            fn common_mut(&mut self) -> &mut WriteOptions {
                &mut self.op.options_mut().common
            }

            fn read_mut(&mut self) -> &mut ReadOptions {
                self.op.options_mut()
            }

            read_setters!();
        }
    };
}

read_builder!(
    /// A [`Kv::get`] request. Resolves to `Option<Key>`.
    Get,
    op::Get
);

impl Get<'_> {
    /// Sends the request.
    ///
    /// # Errors
    /// An [`Error`](crate::Error) for an invalid key or option, a transport failure or an
    /// error answer. A missing key is `Ok(None)`, not an error.
    pub async fn send(mut self) -> Result<Option<Key>> {
        finish_read(self.op.options_mut());
        let r = self.kv.client.exec.execute(&self.op).await?;
        Ok(r.value.map(|pair| Key::new(pair, r.meta)))
    }
}
into_future!(Get, Option<Key>);

read_builder!(
    /// A [`Kv::raw`] request. Resolves to `Option<RawValue>`.
    GetRaw,
    op::GetRaw
);

impl GetRaw<'_> {
    /// Sends the request.
    ///
    /// # Errors
    /// As [`Get::send`].
    pub async fn send(mut self) -> Result<Option<RawValue>> {
        finish_read(self.op.options_mut());
        let r = self.kv.client.exec.execute(&self.op).await?;
        let meta = r.meta;
        Ok(r.value.map(|value| RawValue {
            value,
            meta: ConsulMeta::for_list(meta),
        }))
    }
}
into_future!(GetRaw, Option<RawValue>);

read_builder!(
    /// A [`Kv::items`] request. Resolves to [`Items`].
    ListItems,
    op::Items
);

impl ListItems<'_> {
    /// Sends the request.
    ///
    /// # Errors
    /// As [`Get::send`]. No key under the prefix is an empty list.
    pub async fn send(mut self) -> Result<Items> {
        finish_read(self.op.options_mut());
        let r = self.kv.client.exec.execute(&self.op).await?;
        Ok(Items::new(r.value, r.meta))
    }
}
into_future!(ListItems, Items);

read_builder!(
    /// A [`Kv::keys`] request. Resolves to [`Keys`].
    ListKeys,
    op::Keys
);

impl ListKeys<'_> {
    /// Lists names only up to the first `separator` after the prefix (`?separator=`), the way
    /// folders are listed: with `"/"`, `a/b/c` under `a/` is listed as `a/b/`.
    pub fn separator(mut self, separator: impl Into<String>) -> Self {
        self.op = self.op.separator(separator);
        self
    }

    /// Sends the request.
    ///
    /// # Errors
    /// As [`Get::send`]. No key under the prefix is an empty list.
    pub async fn send(mut self) -> Result<Keys> {
        finish_read(self.op.options_mut());
        let r = self.kv.client.exec.execute(&self.op).await?;
        Ok(Keys {
            keys: r.value,
            meta: ConsulMeta::for_list(r.meta),
        })
    }
}
into_future!(ListKeys, Keys);

/// A write request resolving to `bool`: `$op` is `op::Set` or `op::Delete`.
macro_rules! write_builder {
    ($(#[$doc:meta])* $ty:ident, $op:ty) => {
        $(#[$doc])*
        #[must_use = "a request does nothing until it is awaited"]
        #[derive(Debug)]
        pub struct $ty<'a> {
            kv: &'a Kv,
            op: $op,
        }

        impl<'a> $ty<'a> {
            fn common_mut(&mut self) -> &mut WriteOptions {
                self.op.options_mut()
            }

            common_setters!();

            /// Sends the request and returns Consul's answer as a [`WriteOutcome`].
            ///
            /// # Errors
            /// An [`Error`](crate::Error) for an invalid key or option, a transport failure
            /// or an error answer. When the request may have been applied but no answer came
            /// back, [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown): read the key to
            /// find out.
            pub async fn outcome(self) -> Result<WriteOutcome> {
                self.kv.client.exec.execute(&self.op).await
            }

            /// Sends the request; `true` when Consul applied it.
            ///
            /// # Errors
            /// As [`outcome`](Self::outcome).
            pub async fn send(self) -> Result<bool> {
                Ok(self.outcome().await?.is_applied())
            }
        }
        into_future!($ty, bool);
    };
}

/// The `flags` setter of the `op::Set`-based builders.
macro_rules! flags_setter {
    ($($ty:ident),*) => {
        $(
            impl $ty<'_> {
                /// Sets the flags stored with the value (Consul stores 0 when a write sends
                /// none).
                pub fn flags(mut self, flags: u64) -> Self {
                    self.op = self.op.flags(flags);
                    self
                }
            }
        )*
    };
}

write_builder!(
    /// A [`Kv::set`] request. Resolves to `bool`: `true` when applied (always, without
    /// [`cas`](Set::cas)).
    Set,
    op::Set
);

impl Set<'_> {
    /// Makes this a check-and-set: applied only if the key's modify index still equals the
    /// CAS id. Accepts a [`&ConsulMeta`](ConsulMeta) (the seed's `cas=meta`), a
    /// [`&Key`](Key), a [`&KvPair`](KvPair), an [`Index`], or [`Cas::Absent`] to create the
    /// key only if it does not exist. Resolves to `false` when someone wrote in between.
    pub fn cas(mut self, cas: impl Into<Cas>) -> Self {
        self.op = self.op.mode(SetMode::Cas(cas.into()));
        self
    }
}

write_builder!(
    /// A [`Kv::acquire`] request. Resolves to `bool`: `true` when the session holds the key.
    ///
    /// **Acquiring replaces the key's value and flags** with this request's.
    Acquire,
    op::Set
);

impl Acquire<'_> {
    /// The value the key holds once acquired (default: empty, stored as `null`). Consul
    /// replaces the stored value with it.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.op = self.op.with_value(value);
        self
    }
}

write_builder!(
    /// A [`Kv::release`] request. Resolves to `bool`: `true` when released.
    ///
    /// **Releasing replaces the key's value and flags** with this request's.
    Release,
    op::Set
);
flags_setter!(Set, Acquire, Release);

impl Release<'_> {
    /// The value the key holds once released (default: empty, stored as `null`). Consul
    /// replaces the stored value with it.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.op = self.op.with_value(value);
        self
    }
}

write_builder!(
    /// A [`Kv::delete`] request. Resolves to `bool`.
    Delete,
    op::Delete
);

impl Delete<'_> {
    /// Deletes only if the key's modify index still equals the CAS id (a
    /// [`&ConsulMeta`](ConsulMeta), [`&Key`](Key), [`&KvPair`](KvPair) or [`Index`]);
    /// resolves to `false` when someone wrote in between. A key that no longer exists counts
    /// as deleted (`true`).
    pub fn cas(mut self, index: impl Into<Index>) -> Self {
        self.op = self.op.cas(index);
        self
    }
}

write_builder!(
    /// A [`Kv::delete_tree`] request. Resolves to `bool`.
    DeleteTree,
    op::Delete
);
