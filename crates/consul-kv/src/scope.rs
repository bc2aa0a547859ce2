//! Per-handle defaults (datacenter, namespace, partition, token) and the boxed future type.

use std::future::Future;
use std::pin::Pin;

use consul_kv_proto::{ReadOptions, Token, WriteOptions};

/// The future that awaiting a request builder runs.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Options a handle ([`Kv`](crate::Kv), [`Sessions`](crate::Sessions)) applies to every request
/// it builds. A per-call setter wins over these; these win over the client's defaults.
///
/// The datacenter is stored as `datacenter`, not `dc`: in aioconsul a field named like the
/// `dc()` method shadowed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scope {
    pub(crate) datacenter: Option<String>,
    pub(crate) namespace: Option<String>,
    pub(crate) partition: Option<String>,
    pub(crate) token: Option<Token>,
}

impl Scope {
    pub(crate) fn write_options(&self) -> WriteOptions {
        let mut o = WriteOptions::default();
        self.apply(&mut o);
        o
    }

    pub(crate) fn read_options(&self) -> ReadOptions {
        let mut o = ReadOptions::default();
        self.apply(&mut o.common);
        o
    }

    /// Fills the fields of `o` that are unset.
    pub(crate) fn apply(&self, o: &mut WriteOptions) {
        if o.datacenter.is_none() {
            o.datacenter.clone_from(&self.datacenter);
        }
        if o.namespace.is_none() {
            o.namespace.clone_from(&self.namespace);
        }
        if o.partition.is_none() {
            o.partition.clone_from(&self.partition);
        }
        if o.token.is_none() {
            o.token.clone_from(&self.token);
        }
    }
}

/// The `Debug` and the `dc` / `ns` / `partition` / `token` copies of an endpoint handle (a
/// struct with `scope: Scope`). The doc of `dc` is given at the call site.
macro_rules! scoped_handle {
    ($ty:ident, $(#[$dc_doc:meta])*) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("datacenter", &self.scope.datacenter)
                    .field("namespace", &self.scope.namespace)
                    .field("partition", &self.scope.partition)
                    .field("token", &self.scope.token)
                    .finish_non_exhaustive()
            }
        }

        impl $ty {
            $(#[$dc_doc])*
            pub fn dc(&self, dc: impl Into<String>) -> Self {
                let mut h = self.clone();
                h.scope.datacenter = Some(dc.into());
                h
            }

            /// A copy bound to namespace `ns` (Consul Enterprise).
            pub fn ns(&self, namespace: impl Into<String>) -> Self {
                let mut h = self.clone();
                h.scope.namespace = Some(namespace.into());
                h
            }

            /// A copy bound to admin partition `partition` (Consul Enterprise).
            pub fn partition(&self, partition: impl Into<String>) -> Self {
                let mut h = self.clone();
                h.scope.partition = Some(partition.into());
                h
            }

            /// A copy that sends `token` instead of the client's.
            pub fn token(&self, token: crate::Token) -> Self {
                let mut h = self.clone();
                h.scope.token = Some(token);
                h
            }
        }
    };
}
pub(crate) use scoped_handle;

/// Setters shared by every builder whose `self.opts()` returns `&mut WriteOptions`.
macro_rules! common_setters {
    () => {
        /// Sends this request to datacenter `dc` (`?dc=`).
        pub fn dc(mut self, dc: impl Into<String>) -> Self {
            self.common_mut().datacenter = Some(dc.into());
            self
        }

        /// Sets the namespace (`?ns=`, Consul Enterprise).
        pub fn ns(mut self, namespace: impl Into<String>) -> Self {
            self.common_mut().namespace = Some(namespace.into());
            self
        }

        /// Sets the admin partition (`?partition=`, Consul Enterprise).
        pub fn partition(mut self, partition: impl Into<String>) -> Self {
            self.common_mut().partition = Some(partition.into());
            self
        }

        /// Sends this request with `token` instead of the client's (`X-Consul-Token`).
        pub fn token(mut self, token: $crate::Token) -> Self {
            self.common_mut().token = Some(token);
            self
        }
    };
}

/// Setters of every read builder whose `self.read_mut()` returns `&mut ReadOptions`.
macro_rules! read_setters {
    () => {
        common_setters!();

        /// Sets the consistency mode (`?consistent` or `?stale`).
        pub fn consistency(mut self, consistency: $crate::Consistency) -> Self {
            self.read_mut().consistency = consistency;
            self
        }

        /// Makes this a blocking read: it returns when the result's index passes `index`, or
        /// after the wait (default 60 s, see [`wait`](Self::wait)).
        ///
        /// Accepts an [`Index`](crate::Index), a [`&ConsulMeta`](crate::ConsulMeta) or a
        /// [`&KvPair`](crate::KvPair).
        pub fn index(mut self, index: impl Into<$crate::Index>) -> Self {
            self.read_mut().index = Some(index.into());
            self
        }

        /// How long a blocking read may wait (`?wait=`, sent exactly with its unit). Only sent
        /// together with [`index`](Self::index); without a wait, 60 s is sent, never Consul's
        /// 5-minute default. Consul caps it at 10 minutes.
        pub fn wait(mut self, wait: std::time::Duration) -> Self {
            self.read_mut().wait = Some(wait);
            self
        }

        /// [`index`](Self::index) and [`wait`](Self::wait) together.
        pub fn block(self, index: impl Into<$crate::Index>, wait: std::time::Duration) -> Self {
            self.index(index).wait(wait)
        }
    };
}

/// `IntoFuture` for a request builder with an `async fn send(self) -> Result<$out>`: `.await`
/// sends it. The future owns the builder, so it is `'static`.
macro_rules! into_future {
    ($ty:ty, $out:ty) => {
        impl std::future::IntoFuture for $ty {
            type Output = $crate::Result<$out>;
            type IntoFuture = $crate::BoxFuture<'static, $crate::Result<$out>>;
            fn into_future(self) -> Self::IntoFuture {
                Box::pin(self.send())
            }
        }
    };
}

pub(crate) use {common_setters, into_future, read_setters};

/// The wait sent with a blocking read when the caller gave an index but no wait.
pub(crate) const DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Gives a blocking read its default wait, so that the executor's deadline fits the request.
pub(crate) fn finish_read(o: &mut ReadOptions) {
    if o.index.is_some() && o.wait.is_none() {
        o.wait = Some(DEFAULT_WAIT);
    }
}
