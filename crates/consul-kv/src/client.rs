//! [`Client`] and its [`ClientBuilder`].

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use consul_kv_hyper::{HyperClient, RetryPolicy};

use crate::kv::Kv;
use crate::lock::LockBuilder;
use crate::semaphore::SemaphoreBuilder;
use crate::session::Sessions;
use crate::shared_watch::Hub;
use crate::Result;

/// A Consul client: one pooled HTTP client and the defaults (address, token, datacenter)
/// every request starts from.
///
/// Cheap to clone: clones share the connection pool. Make one per agent and pass it around.
///
/// ```no_run
/// # async fn demo() -> consul_kv::Result<()> {
/// // CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, … as the `consul` CLI reads them;
/// // http://127.0.0.1:8500 when unset.
/// let client = consul_kv::Client::from_env()?;
/// let kv = client.kv();
/// kv.set("greeting", "hello").await?;
///
/// // Or configured explicitly; explicit settings win over the environment.
/// let client = consul_kv::Client::builder()
///     .address("http://10.0.0.5:8500")
///     .datacenter("dc2")
///     .build()?;
/// # let _ = client;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) exec: HyperClient,
    /// The shared blocking queries of this client and its clones.
    pub(crate) hub: Hub,
}

impl Client {
    /// A client configured from the `consul` CLI's environment variables
    /// (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_TOKEN_FILE`, `CONSUL_HTTP_SSL`,
    /// `CONSUL_CACERT`, `CONSUL_NAMESPACE`, …); `http://127.0.0.1:8500` when
    /// `CONSUL_HTTP_ADDR` is unset.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for a malformed variable or an unreadable file.
    pub fn from_env() -> Result<Self> {
        Self::builder().from_env().build()
    }

    /// A builder with the defaults (`http://127.0.0.1:8500`, no token) that does not read the
    /// environment unless asked to with [`ClientBuilder::from_env`].
    ///
    /// Building needs no runtime and does no I/O:
    ///
    /// ```
    /// let client = consul_kv::Client::builder()
    ///     .address("10.0.0.5:8500")
    ///     .datacenter("dc2")
    ///     .token("my-acl-token")
    ///     .build()?;
    /// assert_eq!(client.address(), "http://10.0.0.5:8500");
    /// // The token is never printed.
    /// assert!(!format!("{client:?}").contains("my-acl-token"));
    /// # Ok::<(), consul_kv::Error>(())
    /// ```
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            inner: HyperClient::builder(),
        }
    }

    /// Wraps an executor built elsewhere.
    pub fn from_executor(exec: HyperClient) -> Self {
        Self {
            exec,
            hub: Hub::default(),
        }
    }

    /// How many shared blocking queries this client (and its clones) runs for its watches
    /// right now.
    pub fn shared_watch_queries(&self) -> usize {
        self.hub.queries()
    }

    /// The executor: runs any [`consul_kv_proto::Operation`] with
    /// [`execute`](HyperClient::execute).
    pub fn executor(&self) -> &HyperClient {
        &self.exec
    }

    /// The agent's address.
    pub fn address(&self) -> &str {
        self.exec.address()
    }

    /// The KV endpoint.
    pub fn kv(&self) -> Kv {
        Kv::new(self.clone())
    }

    /// The session endpoint.
    pub fn session(&self) -> Sessions {
        Sessions::new(self.clone())
    }

    /// A leader-election lock on `key`; `.await` (or [`acquire`](LockBuilder::acquire)) waits
    /// until it is held. See [`Lock`](crate::Lock).
    pub fn lock(&self, key: impl Into<String>) -> LockBuilder {
        LockBuilder::new(self.kv(), key.into(), Bytes::new())
    }

    /// A semaphore with `limit` holders under `prefix`, compatible with the Go client's
    /// layout. See [`Semaphore`](crate::Semaphore).
    pub fn semaphore(&self, prefix: impl Into<String>, limit: usize) -> SemaphoreBuilder {
        SemaphoreBuilder::new(self.kv(), prefix.into(), limit)
    }
}

impl From<HyperClient> for Client {
    fn from(exec: HyperClient) -> Self {
        Self::from_executor(exec)
    }
}

/// Configures a [`Client`]. Setters never fail; [`build`](Self::build) reports errors.
///
/// Deadlines, body limits, retries and the connection cap have safe defaults (see
/// [`consul_kv_hyper::HyperClientBuilder`], which this wraps).
#[must_use = "a builder does nothing until .build()"]
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    inner: consul_kv_hyper::HyperClientBuilder,
}

macro_rules! forward {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $($arg: $ty),*) -> Self {
                self.inner = self.inner.$name($($arg),*);
                self
            }
        )*
    };
}

impl ClientBuilder {
    forward! {
        /// The agent's address: `host:port`, `http://host:port`, `https://host:port` (a path
        /// is a prefix for every request) or `unix:///path/to/socket`.
        fn address(addr: impl Into<String>);
        /// The default ACL token, sent only in the `X-Consul-Token` header.
        fn token(token: impl Into<String>);
        /// HTTP basic auth sent with every request (`CONSUL_HTTP_AUTH=user:pass`); the
        /// password is never printed.
        fn basic_auth(user: impl Into<String>, password: impl Into<String>);
        /// HTTPS for an address without a scheme, and an upgrade of an explicit `http://`
        /// (`CONSUL_HTTP_SSL=true`), as the `consul` CLI does.
        fn ssl(ssl: bool);
        /// A file holding the default ACL token.
        fn token_file(path: impl Into<PathBuf>);
        /// The default datacenter.
        fn datacenter(dc: impl Into<String>);
        /// The default namespace (Consul Enterprise).
        fn namespace(ns: impl Into<String>);
        /// The default admin partition (Consul Enterprise).
        fn partition(partition: impl Into<String>);
        /// The deadline of a non-blocking call (default 10 s).
        fn timeout(d: Duration);
        /// The connect deadline (default 5 s).
        fn connect_timeout(d: Duration);
        /// What a blocking read may take beyond `wait + wait/16` (default 8 s).
        fn blocking_margin(d: Duration);
        /// The largest response body accepted (default 64 MiB).
        fn max_body(bytes: usize);
        /// The largest error body read (default 1 MiB).
        fn max_error_body(bytes: usize);
        /// The byte limit of [`Kv::items_stream`](crate::Kv::items_stream), separate from
        /// `max_body` (default 16 GiB).
        fn max_stream_body(bytes: u64);
        /// The cap on open connections to the agent (default 64, under Consul's 200 per IP).
        fn max_connections_per_host(n: usize);
        /// How long an idle pooled connection is kept (default 20 s).
        fn idle_timeout(d: Duration);
        /// The retry policy for reads and for writes Consul certainly did not apply.
        fn retry(policy: RetryPolicy);
        /// A PEM file of CA certificates to trust for HTTPS.
        fn tls_ca_file(path: impl Into<PathBuf>);
        /// A directory of PEM CA certificates to trust for HTTPS.
        fn tls_ca_path(path: impl Into<PathBuf>);
        /// A client certificate and key (PEM) for mutual TLS.
        fn tls_client_cert(cert: impl Into<PathBuf>, key: impl Into<PathBuf>);
        /// The name to verify the server certificate against.
        fn tls_server_name(name: impl Into<String>);
        /// Whether to verify the server certificate (default `true`).
        fn tls_verify(verify: bool);
        /// Which keys are refused before any I/O (default
        /// [`KeyRules::Classic`](crate::proto::KeyRules::Classic); `Consul122` matches agents
        /// that validate keys, Consul 1.21.6+ and 1.22).
        fn key_rules(rules: consul_kv_proto::KeyRules);
        /// Asks for gzip-compressed answers (default off); the body limit applies to the
        /// decompressed size.
        fn gzip(on: bool);
    }

    /// Reads the `consul` CLI's environment variables; explicit settings win, whether made
    /// before or after this call.
    pub fn from_env(mut self) -> Self {
        self.inner = self.inner.from_env();
        self
    }

    /// Like [`from_env`](Self::from_env), reading each variable through `lookup`.
    pub fn from_env_lookup(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        self.inner = self.inner.from_env_lookup(lookup);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for a bad address, an unreadable or invalid
    /// token, or TLS files that cannot be read.
    pub fn build(self) -> Result<Client> {
        Ok(Client::from_executor(self.inner.build()?))
    }
}
