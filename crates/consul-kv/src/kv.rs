//! The KV endpoint: [`Kv`], its request builders and what they
//! return.
//!
//! Every method of [`Kv`] returns a builder. The builder does nothing until it is awaited:
//! `.await` sends the request (the builders implement
//! [`IntoFuture`](std::future::IntoFuture)).
//!
//! # Requests
//!
//! [`GetRequest`], [`RawRequest`], [`ItemsRequest`], [`KeysRequest`], [`SetRequest`],
//! [`AcquireRequest`], [`ReleaseRequest`], [`DeleteRequest`], [`DeleteTreeRequest`] and
//! [`TxnRequest`] (defined in `kv/request.rs` and `txn.rs`).
//!
//! # Results
//!
//! [`Key`], [`RawValue`], [`Items`] and [`Keys`] (defined in `kv/result.rs`), each with the
//! [`ConsulMeta`](crate::ConsulMeta) of its read.

use bytes::Bytes;
use consul_kv_proto::kv as op;
use consul_kv_proto::{IntoValue, SessionId};

use crate::scope::Scope;
use crate::txn::TxnRequest;
use crate::watch::{KeyWatch, PrefixWatch};
use crate::Client;

mod request;
mod result;

pub use request::{
    AcquireRequest, DeleteRequest, DeleteTreeRequest, GetRequest, ItemsRequest, KeysRequest,
    RawRequest, ReleaseRequest, SetRequest,
};
pub(crate) use result::list_result_impls;
pub use result::{Items, Key, Keys, RawValue};

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
    /// A copy of this endpoint bound to datacenter `dc`: aioconsul's `kv.dc('dc2')`.
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
    pub fn get(&self, key: impl Into<String>) -> GetRequest {
        GetRequest::new(
            self.client.clone(),
            op::Get::new(key).with_options(self.scope.read_options()),
        )
    }

    /// Reads the raw value of one key (`?raw`): the bytes only, with the meta.
    pub fn raw(&self, key: impl Into<String>) -> RawRequest {
        RawRequest::new(
            self.client.clone(),
            op::GetRaw::new(key).with_options(self.scope.read_options()),
        )
    }

    /// Every key and value under a byte prefix (`?recurse`), with the meta. `""` lists the
    /// whole store; a prefix with no keys gives an empty list.
    ///
    /// The prefix is a byte prefix: `"app"` also matches `"apple"`. End it with `/` to list a
    /// folder.
    pub fn items(&self, prefix: impl Into<String>) -> ItemsRequest {
        ItemsRequest::new(
            self.client.clone(),
            op::ListItems::new(prefix).with_options(self.scope.read_options()),
        )
    }

    /// The key names under a byte prefix (`?keys`), with the meta. With
    /// [`separator`](KeysRequest::separator) the names stop after the separator, like folders.
    pub fn keys(&self, prefix: impl Into<String>) -> KeysRequest {
        KeysRequest::new(
            self.client.clone(),
            op::ListKeys::new(prefix).with_options(self.scope.read_options()),
        )
    }

    /// Writes `value` to `key`; resolves to `true` when applied. Add
    /// [`cas`](SetRequest::cas) to write only if nobody wrote the key in between, and
    /// [`flags`](SetRequest::flags) to store flags.
    ///
    /// The value is sent as raw bytes; an empty value is stored as Consul's `null`.
    pub fn set(&self, key: impl Into<String>, value: impl IntoValue) -> SetRequest {
        SetRequest::new(
            self.client.clone(),
            op::Set::new(key, value).with_options(self.scope.write_options()),
        )
    }

    /// Acquires the lock on `key` for `session` (`?acquire=`); resolves to `true` when this
    /// session now holds it.
    ///
    /// **Acquiring replaces the key's value and flags** with this request's
    /// ([`value`](AcquireRequest::value), default empty, and [`flags`](AcquireRequest::flags), default 0):
    /// Consul stores the request body and flags, as for any write. Pass the value you want the
    /// key to hold.
    ///
    /// `false` means another session holds the key, or a lock-delay is in effect (the key then
    /// shows no session).
    pub fn acquire(
        &self,
        key: impl Into<String>,
        session: impl AsRef<SessionId>,
    ) -> AcquireRequest {
        AcquireRequest::new(
            self.client.clone(),
            op::Set::acquire(key, session.as_ref().clone(), Bytes::new())
                .with_options(self.scope.write_options()),
        )
    }

    /// Releases the lock on `key` held by `session` (`?release=`); resolves to `true` when
    /// released.
    ///
    /// **Releasing replaces the key's value and flags** with this request's
    /// ([`value`](ReleaseRequest::value), default empty, and [`flags`](ReleaseRequest::flags), default 0).
    pub fn release(
        &self,
        key: impl Into<String>,
        session: impl AsRef<SessionId>,
    ) -> ReleaseRequest {
        ReleaseRequest::new(
            self.client.clone(),
            op::Set::release(key, session.as_ref().clone(), Bytes::new())
                .with_options(self.scope.write_options()),
        )
    }

    /// Deletes one key; resolves to `true` (also when the key did not exist). Add
    /// [`cas`](DeleteRequest::cas) to delete only an unchanged key.
    pub fn delete(&self, key: impl Into<String>) -> DeleteRequest {
        DeleteRequest::new(
            self.client.clone(),
            op::Delete::new(key).with_options(self.scope.write_options()),
        )
    }

    /// Deletes every key under a byte prefix (`?recurse`). `"app"` also deletes `"apple"`;
    /// `""` deletes the whole store.
    pub fn delete_tree(&self, prefix: impl Into<String>) -> DeleteTreeRequest {
        DeleteTreeRequest::new(
            self.client.clone(),
            op::Delete::tree(prefix).with_options(self.scope.write_options()),
        )
    }

    /// Starts a transaction (`/v1/txn`): several operations applied atomically.
    pub fn txn(&self) -> TxnRequest {
        TxnRequest::new(self)
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
            op::ListItems::new(prefix).with_options(self.scope.read_options()),
        )
    }
}
