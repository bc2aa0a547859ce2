//! The KV request builders: what the methods of [`Kv`](crate::Kv) return.
//!
//! Each builder holds one proto operation and a clone of the [`Client`] (an `Arc`), so it
//! borrows nothing: it can be stored, cloned, sent to another task, and awaited later.
//! `.await` (or [`send`](GetRequest::send)) sends it; the setters below only change the
//! operation. The setters every builder shares (`dc`, `ns`, `partition`, `token`, and for
//! reads `consistency`, `index`, `wait`, `block`) come from `scope.rs`.

use std::future::Future;

use consul_kv_proto::kv::{self as op, SetMode};
use consul_kv_proto::{Index, IntoValue, ReadOptions, WriteOptions, WriteOutcome};

use crate::kv::{Items, Key, Keys, RawValue};
use crate::meta::IntoCas;
use crate::scope::{common_setters, finish_read, into_future, read_setters};
use crate::{Client, Result};

/// A [`Kv::get`](crate::Kv::get) request. Resolves to `Option<Key>`: `None` when the key
/// does not exist.
///
/// ```no_run
/// # async fn demo(kv: consul_kv::Kv) -> consul_kv::Result<()> {
/// use std::future::IntoFuture;
///
/// // Owned: it can be spawned, or kept and awaited later.
/// let pending = tokio::spawn(kv.get("app/config").into_future());
/// let found = pending.await.expect("the task ran")?;
/// println!("{:?}", found.as_ref().and_then(|k| k.as_str()));
/// # Ok(()) }
/// ```
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct GetRequest {
    client: Client,
    op: op::Get,
}

/// A [`Kv::raw`](crate::Kv::raw) request (`?raw`). Resolves to `Option<RawValue>`.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct RawRequest {
    client: Client,
    op: op::GetRaw,
}

/// A [`Kv::items`](crate::Kv::items) request (`?recurse`). Resolves to [`Items`].
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct ItemsRequest {
    client: Client,
    op: op::ListItems,
}

/// A [`Kv::keys`](crate::Kv::keys) request (`?keys`). Resolves to [`Keys`].
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct KeysRequest {
    client: Client,
    op: op::ListKeys,
}

/// A [`Kv::set`](crate::Kv::set) request. Resolves to `bool`: `true` when applied (always,
/// without [`cas`](SetRequest::cas)).
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct SetRequest {
    client: Client,
    op: op::Set,
}

/// A [`Kv::acquire`](crate::Kv::acquire) request (`?acquire=`). Resolves to `bool`: `true`
/// when the session holds the key.
///
/// **Acquiring replaces the key's value and flags** with this request's.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct AcquireRequest {
    client: Client,
    op: op::Set,
}

/// A [`Kv::release`](crate::Kv::release) request (`?release=`). Resolves to `bool`: `true`
/// when released.
///
/// **Releasing replaces the key's value and flags** with this request's.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct ReleaseRequest {
    client: Client,
    op: op::Set,
}

/// A [`Kv::delete`](crate::Kv::delete) request. Resolves to `bool`.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct DeleteRequest {
    client: Client,
    op: op::Delete,
}

/// A [`Kv::delete_tree`](crate::Kv::delete_tree) request (`?recurse`). Resolves to `bool`.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct DeleteTreeRequest {
    client: Client,
    op: op::Delete,
}

/// The constructor and the read setters of a read request (`op` has `ReadOptions`).
macro_rules! read_request_impls {
    ($($ty:ident: $op:ty),*) => {$(
        impl $ty {
            pub(crate) fn new(client: Client, op: $op) -> Self {
                Self { client, op }
            }

            fn common_mut(&mut self) -> &mut WriteOptions {
                &mut self.op.options_mut().common
            }

            fn read_mut(&mut self) -> &mut ReadOptions {
                self.op.options_mut()
            }

            read_setters!();
        }
    )*};
}
read_request_impls!(GetRequest: op::Get, RawRequest: op::GetRaw, ItemsRequest: op::ListItems, KeysRequest: op::ListKeys);

/// The constructor, the setters and the sending of a write request resolving to `bool`.
macro_rules! write_request_impls {
    ($($ty:ident: $op:ty),*) => {$(
        impl $ty {
            pub(crate) fn new(client: Client, op: $op) -> Self {
                Self { client, op }
            }

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
            pub fn outcome(self) -> impl Future<Output = Result<WriteOutcome>> + Send + 'static {
                // An `async move` block rather than an `async fn`: the request is held once
                // in the future, not also copied into a local.
                async move { self.client.exec.execute(&self.op).await }
            }

            /// Sends the request; `true` when Consul applied it.
            ///
            /// # Errors
            /// As [`outcome`](Self::outcome).
            pub fn send(self) -> impl Future<Output = Result<bool>> + Send + 'static {
                async move { Ok(self.client.exec.execute(&self.op).await?.is_applied()) }
            }
        }
        into_future!($ty, bool);
    )*};
}
write_request_impls!(
    SetRequest: op::Set,
    AcquireRequest: op::Set,
    ReleaseRequest: op::Set,
    DeleteRequest: op::Delete,
    DeleteTreeRequest: op::Delete
);

/// The `flags` and `value` setters of acquire and release, which replace the stored value.
macro_rules! lock_write_impls {
    ($($ty:ident),*) => {$(
        impl $ty {
            /// The value the key holds afterwards (default: empty, stored as `null`). Consul
            /// replaces the stored value with it.
            pub fn value(mut self, value: impl IntoValue) -> Self {
                self.op = self.op.with_value(value);
                self
            }

            /// The flags the key holds afterwards (default 0). Consul replaces the stored
            /// flags with them.
            pub fn flags(mut self, flags: u64) -> Self {
                self.op = self.op.flags(flags);
                self
            }
        }
    )*};
}
lock_write_impls!(AcquireRequest, ReleaseRequest);

impl GetRequest {
    /// Sends the request.
    ///
    /// # Errors
    /// An [`Error`](crate::Error) for an invalid key or option, a transport failure or an
    /// error answer. A missing key is `Ok(None)`, not an error.
    pub fn send(mut self) -> impl Future<Output = Result<Option<Key>>> + Send + 'static {
        finish_read(self.op.options_mut());
        // An `async move` block rather than an `async fn`: the request is held once in the
        // future, not also copied into a local (the future is boxed on every `.await`).
        async move {
            let r = self.client.exec.execute(&self.op).await?;
            Ok(r.value.map(|pair| Key::new(pair, r.meta)))
        }
    }
}
into_future!(GetRequest, Option<Key>);

impl RawRequest {
    /// Sends the request.
    ///
    /// # Errors
    /// As [`GetRequest::send`].
    pub fn send(mut self) -> impl Future<Output = Result<Option<RawValue>>> + Send + 'static {
        finish_read(self.op.options_mut());
        async move {
            let r = self.client.exec.execute(&self.op).await?;
            let meta = r.meta;
            Ok(r.value.map(|value| RawValue::new(value, meta)))
        }
    }
}
into_future!(RawRequest, Option<RawValue>);

impl ItemsRequest {
    /// Sends the request.
    ///
    /// # Errors
    /// As [`GetRequest::send`]. No key under the prefix is an empty list.
    pub fn send(mut self) -> impl Future<Output = Result<Items>> + Send + 'static {
        finish_read(self.op.options_mut());
        async move {
            let r = self.client.exec.execute(&self.op).await?;
            Ok(Items::new(r.value, r.meta))
        }
    }
}
into_future!(ItemsRequest, Items);

impl KeysRequest {
    /// Lists names only up to the first `separator` after the prefix (`?separator=`), the way
    /// folders are listed: with `"/"`, `a/b/c` under `a/` is listed as `a/b/`.
    pub fn separator(mut self, separator: impl Into<String>) -> Self {
        self.op = self.op.separator(separator);
        self
    }

    /// Sends the request.
    ///
    /// # Errors
    /// As [`GetRequest::send`]. No key under the prefix is an empty list.
    pub fn send(mut self) -> impl Future<Output = Result<Keys>> + Send + 'static {
        finish_read(self.op.options_mut());
        async move {
            let r = self.client.exec.execute(&self.op).await?;
            Ok(Keys::new(r.value, r.meta))
        }
    }
}
into_future!(KeysRequest, Keys);

impl SetRequest {
    /// Makes this a check-and-set: applied only if the key's modify index still equals the
    /// CAS id. Accepts what a read gave (see [`IntoCas`]): a [`&Key`](Key) or
    /// `Option<&Key>` straight from `kv.get(..)` (`None`: create the key only if it does not
    /// exist), a [`&KvPair`](crate::KvPair), a [`&ConsulMeta`](crate::ConsulMeta)
    /// (aioconsul's `cas=meta`), an [`Index`] or a [`Cas`](crate::Cas). Resolves to `false`
    /// when someone wrote in between.
    ///
    /// ```no_run
    /// # async fn demo(kv: consul_kv::Kv) -> consul_kv::Result<()> {
    /// let current = kv.get("counter").await?;
    /// let next = current.as_ref().and_then(|k| k.as_str()?.parse::<u64>().ok()).unwrap_or(0) + 1;
    /// // Creates the key if it was absent, else replaces the version that was read.
    /// let applied = kv.set("counter", next.to_string()).cas(current.as_ref()).await?;
    /// # let _ = applied;
    /// # Ok(()) }
    /// ```
    pub fn cas(mut self, cas: impl IntoCas) -> Self {
        self.op = self.op.mode(SetMode::Cas(cas.into_cas()));
        self
    }

    /// Sets the flags stored with the value (Consul stores 0 when a write sends none).
    pub fn flags(mut self, flags: u64) -> Self {
        self.op = self.op.flags(flags);
        self
    }
}

impl DeleteRequest {
    /// Deletes only if the key's modify index still equals the CAS id (a
    /// [`&Key`](Key), [`&KvPair`](crate::KvPair), [`&ConsulMeta`](crate::ConsulMeta) or
    /// [`Index`]); resolves to `false` when someone wrote in between. A key that no longer
    /// exists counts as deleted (`true`).
    pub fn cas(mut self, index: impl Into<Index>) -> Self {
        self.op = self.op.cas(index);
        self
    }
}
