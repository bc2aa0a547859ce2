//! [`HyperClientBuilder`]: settings, the `CONSUL_*` environment, and address parsing.
//!
//! Setters never fail; every error is reported by [`HyperClientBuilder::build`]. Values read by
//! [`HyperClientBuilder::from_env`] are kept apart from explicit settings and merged in `build`, so
//! an explicit setting wins over the environment whether it was made before or after
//! `from_env`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use proto::{KeyRules, RequestContext, Token};

use crate::client::{Base, HyperClient, Inner};
use crate::connect::{Connector, Transport};
use crate::error::{ConfigError, Error};
use crate::retry::RetryPolicy;

/// The address used when none is set: a local agent.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:8500";

/// The default connection cap ([`HyperClientBuilder::max_connections_per_host`]): under
/// Consul's default of 200 connections per client IP, which every process on a host that
/// talks to its local agent shares.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// The default limit of a streamed read: 16 GiB.
pub const DEFAULT_MAX_STREAM_BODY: u64 = 16 << 30;

/// Settings that can come from either the caller or the environment.
#[derive(Clone, Default)]
struct Settings {
    address: Option<String>,
    ssl: Option<bool>,
    auth: Option<BasicAuth>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    datacenter: Option<String>,
    namespace: Option<String>,
    partition: Option<String>,
    ca_file: Option<PathBuf>,
    ca_path: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    server_name: Option<String>,
    verify: Option<bool>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("address", &self.address)
            .field("ssl", &self.ssl)
            .field("auth", &self.auth)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("token_file", &self.token_file)
            .field("datacenter", &self.datacenter)
            .field("namespace", &self.namespace)
            .field("partition", &self.partition)
            .field("ca_file", &self.ca_file)
            .field("ca_path", &self.ca_path)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("server_name", &self.server_name)
            .field("verify", &self.verify)
            .finish()
    }
}

/// HTTP basic-auth credentials (`CONSUL_HTTP_AUTH=user:pass`). `Debug` shows the user name
/// only.
#[derive(Clone, PartialEq, Eq)]
struct BasicAuth {
    user: String,
    password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

impl BasicAuth {
    /// Go's client splits `CONSUL_HTTP_AUTH` at the first `:`; without one, the whole value is
    /// the user name and the password is empty.
    fn parse(s: &str) -> Self {
        match s.split_once(':') {
            Some((u, p)) => Self {
                user: u.to_owned(),
                password: p.to_owned(),
            },
            None => Self {
                user: s.to_owned(),
                password: String::new(),
            },
        }
    }

    /// The `Authorization` header value, marked sensitive (hyper never logs it).
    fn header(&self) -> Result<http::HeaderValue, Error> {
        use base64::Engine as _;
        let raw = format!("{}:{}", self.user, self.password);
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
        let mut v = http::HeaderValue::from_str(&format!("Basic {encoded}"))
            .map_err(|_| ConfigError::new("the basic-auth credentials are not a valid header"))?;
        v.set_sensitive(true);
        Ok(v)
    }
}

/// The longest duration a setting keeps (about 30 years); longer ones, up to
/// `Duration::MAX`, mean "never" and are clamped to this, so no timer overflows.
const LONGEST: Duration = proto::time::FAR_FUTURE;

/// Builds a [`HyperClient`]. Created by [`HyperClient::builder`].
///
/// Defaults: address [`DEFAULT_ADDRESS`]; timeouts 10 s per call, 5 s to connect, blocking
/// calls `wait + wait/16 + 8 s`; body limits 64 MiB (1 MiB for error statuses); at most 64
/// connections; idle connections closed after 20 s; [`RetryPolicy::default`].
///
/// ```no_run
/// use std::time::Duration;
/// use consul_kv_hyper::HyperClient;
///
/// # fn main() -> Result<(), consul_kv_hyper::Error> {
/// let client = HyperClient::builder()
///     .from_env()                      // CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, …
///     .datacenter("dc1")               // explicit settings win over the environment
///     .timeout(Duration::from_secs(5))
///     .build()?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until .build()"]
#[derive(Debug, Clone)]
pub struct HyperClientBuilder {
    explicit: Settings,
    env: Settings,
    env_error: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    blocking_margin: Duration,
    max_body: usize,
    max_error_body: usize,
    max_stream_body: u64,
    max_connections: usize,
    idle_timeout: Duration,
    retry: RetryPolicy,
    key_rules: KeyRules,
    gzip: bool,
}

impl Default for HyperClientBuilder {
    fn default() -> Self {
        Self {
            explicit: Settings::default(),
            env: Settings::default(),
            env_error: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            blocking_margin: Duration::from_secs(8),
            max_body: 64 << 20,
            max_error_body: 1 << 20,
            max_stream_body: DEFAULT_MAX_STREAM_BODY,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Duration::from_secs(20),
            retry: RetryPolicy::default(),
            key_rules: KeyRules::Classic,
            gzip: false,
        }
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// Go's `strconv.ParseBool`, which the `consul` CLI uses for boolean variables.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl HyperClientBuilder {
    /// The address of the agent: `host:port`, `http://host:port`, `https://host:port` (an
    /// optional path is a prefix for every request, for agents behind a reverse proxy), or
    /// `unix:///path/to/socket`.
    pub fn address(mut self, addr: impl Into<String>) -> Self {
        self.explicit.address = Some(addr.into());
        self
    }

    /// HTTP basic-auth credentials, sent in `Authorization: Basic …` with every request
    /// (`CONSUL_HTTP_AUTH=user:pass`), for agents behind a proxy that asks for them. The
    /// password is never printed.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.explicit.auth = Some(BasicAuth {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// Whether to use HTTPS (`CONSUL_HTTP_SSL`): for an address without a scheme, and to
    /// upgrade an explicit `http://` address, as the `consul` CLI does (it never reverts to
    /// plain HTTP once TLS was asked for).
    pub fn ssl(mut self, ssl: bool) -> Self {
        self.explicit.ssl = Some(ssl);
        self
    }

    /// The default ACL token, sent in `X-Consul-Token`. It is never printed.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.explicit.token = Some(token.into());
        self
    }

    /// A file holding the default ACL token (read by `build`; surrounding whitespace is
    /// trimmed). As in Consul's Go client, a non-empty token file wins over
    /// [`token`](Self::token) set at the same level (explicit or environment).
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.explicit.token_file = Some(path.into());
        self
    }

    /// Which keys are refused before any I/O (default [`KeyRules::Classic`]). Set
    /// [`KeyRules::Consul122`] to match agents that run Consul 1.21.6+ or 1.22 with key
    /// validation on: keys they would answer with `400` are refused by the client instead.
    pub fn key_rules(mut self, rules: KeyRules) -> Self {
        self.key_rules = rules;
        self
    }

    /// Asks for gzip-compressed answers (`Accept-Encoding: gzip`; default off). Consul
    /// compresses answers of about 1.4 KB and more, which shrinks large `items()` several
    /// times. The body limit ([`max_body`](Self::max_body)) applies to the decompressed size
    /// as well as to the bytes received. Needs the `gzip` feature (on by default); without it
    /// [`build`](Self::build) refuses the setting.
    pub fn gzip(mut self, on: bool) -> Self {
        self.gzip = on;
        self
    }

    /// The default datacenter (`?dc=`).
    pub fn datacenter(mut self, dc: impl Into<String>) -> Self {
        self.explicit.datacenter = Some(dc.into());
        self
    }

    /// The default namespace (`?ns=`, Consul Enterprise).
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.explicit.namespace = Some(ns.into());
        self
    }

    /// The default admin partition (`?partition=`, Consul Enterprise).
    pub fn partition(mut self, partition: impl Into<String>) -> Self {
        self.explicit.partition = Some(partition.into());
        self
    }

    /// The deadline of a non-blocking call: connect, send, response head and body. Default
    /// 10 s.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The deadline to establish a connection (TCP connect, then TLS handshake). Default 5 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// What a blocking call's deadline adds to `wait + wait/16`: Consul may hold a request up
    /// to 7 s while it looks for a leader, plus slack. Default 8 s.
    pub fn blocking_margin(mut self, d: Duration) -> Self {
        self.blocking_margin = d;
        self
    }

    /// The largest response body accepted for a success status. Default 64 MiB.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The largest response body accepted for an error status (`>= 400`). Default 1 MiB.
    pub fn max_error_body(mut self, bytes: usize) -> Self {
        self.max_error_body = bytes;
        self
    }

    /// The largest body a streamed read ([`HyperClient::stream`]) accepts in all, separate
    /// from [`max_body`](Self::max_body): a stream holds one entry at a time, so its limit
    /// bounds transfer, not memory. Default 16 GiB.
    pub fn max_stream_body(mut self, bytes: u64) -> Self {
        self.max_stream_body = bytes;
        self
    }

    /// The most connections open at once, idle ones included (Consul answers `429` past 200
    /// per client IP by default). At most this many requests are in flight; further calls
    /// queue, first come first served, within their deadlines (so a call queued behind
    /// long blocking queries may end in [`Error::Timeout`], having sent nothing). Default 64.
    pub fn max_connections_per_host(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// How long an idle pooled connection is kept; keep it shorter than the idle timeout of
    /// any proxy in front of Consul. Default 20 s.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// The retry policy. Default [`RetryPolicy::default`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// A PEM file of CA certificates to trust instead of the platform's (`CONSUL_CACERT`).
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.explicit.ca_file = Some(path.into());
        self
    }

    /// A directory of PEM CA certificates to trust instead of the platform's
    /// (`CONSUL_CAPATH`).
    pub fn tls_ca_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.explicit.ca_path = Some(path.into());
        self
    }

    /// A client certificate chain and its private key, both PEM, for mutual TLS
    /// (`CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`).
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.explicit.client_cert = Some(cert.into());
        self.explicit.client_key = Some(key.into());
        self
    }

    /// The name to verify the server certificate against, instead of the address's host
    /// (`CONSUL_TLS_SERVER_NAME`).
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.explicit.server_name = Some(name.into());
        self
    }

    /// Whether to verify the server's certificate. Default `true`.
    ///
    /// **`false` is insecure**: any certificate is accepted, so anyone on the network path can
    /// impersonate the server and read the ACL token. It exists for
    /// `CONSUL_HTTP_SSL_VERIFY=false` parity with the `consul` CLI and for throwaway test
    /// setups.
    pub fn tls_verify(mut self, verify: bool) -> Self {
        self.explicit.verify = Some(verify);
        self
    }

    /// Reads the `consul` CLI's environment variables: `CONSUL_HTTP_ADDR`,
    /// `CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_TOKEN_FILE`, `CONSUL_HTTP_AUTH`, `CONSUL_HTTP_SSL`,
    /// `CONSUL_HTTP_SSL_VERIFY`, `CONSUL_CACERT`, `CONSUL_CAPATH`, `CONSUL_CLIENT_CERT`,
    /// `CONSUL_CLIENT_KEY`, `CONSUL_TLS_SERVER_NAME`, `CONSUL_NAMESPACE`, `CONSUL_PARTITION`.
    ///
    /// Empty variables count as unset. Explicit settings win, whether made before or after this
    /// call. A malformed boolean is reported by [`build`](Self::build).
    ///
    /// As with the CLI, `CONSUL_HTTP_SSL=true` upgrades an explicit `http://` address to
    /// `https://`, and `CONSUL_HTTP_AUTH=user:pass` sends HTTP basic auth.
    pub fn from_env(self) -> Self {
        self.from_env_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading each variable through `lookup` instead of
    /// the process environment.
    ///
    /// ```
    /// use consul_kv_hyper::HyperClient;
    ///
    /// let client = HyperClient::builder()
    ///     .datacenter("dc2")
    ///     .from_env_lookup(|name| match name {
    ///         "CONSUL_HTTP_ADDR" => Some("10.0.0.5:8500".into()),
    ///         "CONSUL_NAMESPACE" => Some("team-a".into()),
    ///         _ => None,
    ///     })
    ///     .build()?;
    /// assert_eq!(client.address(), "http://10.0.0.5:8500");
    /// assert_eq!(client.context().datacenter.as_deref(), Some("dc2"));
    /// assert_eq!(client.context().namespace.as_deref(), Some("team-a"));
    /// # Ok::<(), consul_kv_hyper::Error>(())
    /// ```
    pub fn from_env_lookup(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| non_empty(lookup(name));
        let path = |name: &str| get(name).map(PathBuf::from);
        let mut bool_var = |name: &str| {
            let v = get(name)?;
            let b = parse_bool(&v);
            if b.is_none() && self.env_error.is_none() {
                self.env_error = Some(format!("{name} is not a boolean"));
            }
            b
        };
        let ssl = bool_var("CONSUL_HTTP_SSL");
        let verify = bool_var("CONSUL_HTTP_SSL_VERIFY");
        self.env = Settings {
            address: get("CONSUL_HTTP_ADDR"),
            ssl,
            auth: get("CONSUL_HTTP_AUTH").map(|a| BasicAuth::parse(&a)),
            token: get("CONSUL_HTTP_TOKEN"),
            token_file: path("CONSUL_HTTP_TOKEN_FILE"),
            datacenter: None,
            namespace: get("CONSUL_NAMESPACE"),
            partition: get("CONSUL_PARTITION"),
            ca_file: path("CONSUL_CACERT"),
            ca_path: path("CONSUL_CAPATH"),
            client_cert: path("CONSUL_CLIENT_CERT"),
            client_key: path("CONSUL_CLIENT_KEY"),
            server_name: get("CONSUL_TLS_SERVER_NAME"),
            verify,
        };
        self
    }

    /// Builds the client. Reads the token file and TLS files now.
    ///
    /// Must be called within a Tokio runtime only when the client is used; building needs none.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad address, an unreadable or invalid token (file), TLS files
    /// that cannot be read or parsed, `https` without the `rustls` feature, or a malformed
    /// boolean in the environment.
    pub fn build(self) -> Result<HyperClient, Error> {
        if let Some(e) = &self.env_error {
            return Err(ConfigError::new(e.clone()).into());
        }
        let (e, v) = (&self.explicit, &self.env);
        let address = e
            .address
            .clone()
            .or_else(|| v.address.clone())
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
        let ssl = e.ssl.or(v.ssl).unwrap_or(false);
        let target = parse_address(&address, ssl)?;

        let token = match resolve_token(e)? {
            Some(t) => Some(t),
            None => resolve_token(v)?,
        };
        let auth = match e.auth.as_ref().or(v.auth.as_ref()) {
            Some(a) => Some(a.header()?),
            None => None,
        };
        let mut cx = RequestContext::new();
        if let Some(t) = token {
            cx.token = Some(
                Token::new(t)
                    .map_err(|_| ConfigError::new("the ACL token is not a valid header value"))?,
            );
        }
        cx.datacenter = e.datacenter.clone().or_else(|| v.datacenter.clone());
        cx.namespace = e.namespace.clone().or_else(|| v.namespace.clone());
        cx.partition = e.partition.clone().or_else(|| v.partition.clone());
        cx.key_rules = self.key_rules;
        if self.gzip && !cfg!(feature = "gzip") {
            return Err(ConfigError::new(
                "gzip was asked for, but consul-kv-hyper was built without its `gzip` feature",
            )
            .into());
        }

        let transport = match &target.kind {
            TargetKind::Http => Transport::Tcp,
            #[cfg(unix)]
            TargetKind::Unix(path) => Transport::Unix(Arc::new(path.clone())),
            #[cfg(not(unix))]
            TargetKind::Unix(_) => {
                return Err(ConfigError::new("unix:// addresses need a Unix platform").into())
            }
            TargetKind::Https => self.tls_transport(&target.host)?,
        };
        let connector = Connector::new(
            transport,
            self.connect_timeout.min(LONGEST),
            self.max_connections,
        );
        let client: Client<Connector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(self.idle_timeout.min(LONGEST))
            .pool_max_idle_per_host(self.max_connections.max(1))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(HyperClient::from_inner(Inner {
            client,
            base: Base::parse(&target.base)?,
            display: target.display,
            cx,
            auth,
            timeout: self.timeout.min(LONGEST),
            blocking_margin: self.blocking_margin.min(LONGEST),
            max_body: self.max_body,
            gzip: self.gzip,
            max_error_body: self.max_error_body,
            retry: self.retry,
            admission: Arc::new(crate::admission::Admission::new(self.max_connections)),
            max_stream_body: self.max_stream_body,
        }))
    }

    #[cfg(feature = "rustls")]
    fn tls_transport(&self, host: &str) -> Result<Transport, Error> {
        let (e, v) = (&self.explicit, &self.env);
        // The certificate and key are a pair: take both from the same level.
        let client_cert = match (&e.client_cert, &e.client_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            _ => match (&v.client_cert, &v.client_key) {
                (Some(c), Some(k)) => Some((c.clone(), k.clone())),
                (None, None) => None,
                _ => {
                    return Err(ConfigError::new(
                        "CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be set together",
                    )
                    .into())
                }
            },
        };
        let settings = crate::tls::TlsSettings {
            ca_file: e.ca_file.clone().or_else(|| v.ca_file.clone()),
            ca_path: e.ca_path.clone().or_else(|| v.ca_path.clone()),
            client_cert,
            server_name: e.server_name.clone().or_else(|| v.server_name.clone()),
            verify: e.verify.or(v.verify).unwrap_or(true),
        };
        Ok(Transport::Tls(crate::tls::TlsConnector::new(
            &settings, host,
        )?))
    }

    #[cfg(not(feature = "rustls"))]
    fn tls_transport(&self, _host: &str) -> Result<Transport, Error> {
        Err(ConfigError::new("https needs the `rustls` feature of consul-kv-hyper").into())
    }
}

/// One level's token: a non-empty token file wins over the token (Go's `api.NewClient`).
fn resolve_token(s: &Settings) -> Result<Option<String>, Error> {
    if let Some(path) = &s.token_file {
        let data = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::with_source(format!("cannot read token file {}", path.display()), e)
        })?;
        let t = data.trim();
        if !t.is_empty() {
            return Ok(Some(t.to_owned()));
        }
    }
    Ok(non_empty(s.token.clone()))
}

#[derive(Debug, PartialEq, Eq)]
enum TargetKind {
    Http,
    Https,
    Unix(PathBuf),
}

/// A parsed address.
#[derive(Debug)]
struct Target {
    kind: TargetKind,
    /// `scheme://authority[/prefix]`, without a trailing `/`.
    base: String,
    /// The host, for TLS server-name verification.
    host: String,
    /// What `Debug` and `address()` show.
    display: String,
}

fn parse_address(addr: &str, ssl: bool) -> Result<Target, Error> {
    let bad = |why: &str| -> Error {
        ConfigError::new(format!("invalid address {addr:?}: {why}")).into()
    };
    let addr_trim = addr.trim();
    if let Some(path) = addr_trim.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(bad("empty socket path"));
        }
        return Ok(Target {
            kind: TargetKind::Unix(PathBuf::from(path)),
            // The authority is only a pool key and a Host header: the socket is the path.
            base: "http://localhost".to_owned(),
            host: "localhost".to_owned(),
            display: addr_trim.to_owned(),
        });
    }
    let full = if let Some(rest) = addr_trim.strip_prefix("http://").filter(|_| ssl) {
        // The consul CLI and Go client: never revert to http if TLS was explicitly requested.
        format!("https://{rest}")
    } else if addr_trim.contains("://") {
        addr_trim.to_owned()
    } else if ssl {
        format!("https://{addr_trim}")
    } else {
        format!("http://{addr_trim}")
    };
    let uri: http::Uri = full.parse().map_err(|_| bad("not a URL"))?;
    let kind = match uri.scheme_str() {
        Some("http") => TargetKind::Http,
        Some("https") => TargetKind::Https,
        _ => return Err(bad("the scheme must be http, https or unix")),
    };
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user info is not supported"));
    }
    if authority.host().is_empty() {
        return Err(bad("no host"));
    }
    if uri.query().is_some() {
        return Err(bad("a query is not allowed"));
    }
    let prefix = uri.path().trim_end_matches('/');
    let scheme = if kind == TargetKind::Https {
        "https"
    } else {
        "http"
    };
    let base = format!("{scheme}://{authority}{prefix}");
    Ok(Target {
        kind,
        host: authority.host().to_owned(),
        display: base.clone(),
        base,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let t = parse_address("127.0.0.1:8500", false).unwrap();
        assert_eq!(
            (t.kind, t.base.as_str()),
            (TargetKind::Http, "http://127.0.0.1:8500")
        );
        let t = parse_address("consul.local:8501", true).unwrap();
        assert_eq!(t.base, "https://consul.local:8501");
        assert_eq!(t.host, "consul.local");
        let t = parse_address("http://proxy:80/consul/", false).unwrap();
        assert_eq!(
            (t.kind, t.base.as_str()),
            (TargetKind::Http, "http://proxy:80/consul")
        );
        // CONSUL_HTTP_SSL=true upgrades an explicit http:// (never reverts to cleartext).
        let t = parse_address("http://proxy:80/consul/", true).unwrap();
        assert_eq!(
            (t.kind, t.base.as_str()),
            (TargetKind::Https, "https://proxy:80/consul")
        );
        let t = parse_address("https://[::1]:8501", false).unwrap();
        assert_eq!(t.host, "[::1]");
        let t = parse_address("unix:///var/run/consul.sock", false).unwrap();
        assert_eq!(
            t.kind,
            TargetKind::Unix(PathBuf::from("/var/run/consul.sock"))
        );
        for bad in [
            "ftp://x",
            "unix://",
            "http://",
            "http://a:b:c",
            "http://h?x=1",
            "http://u:p@h",
        ] {
            assert!(parse_address(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_booleans() {
        assert_eq!(parse_bool("T"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }

    #[test]
    fn a_bad_env_boolean_fails_build() {
        let e = HyperClientBuilder::default()
            .from_env_lookup(|n| (n == "CONSUL_HTTP_SSL").then(|| "maybe".to_owned()))
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)));
    }

    #[test]
    fn debug_hides_the_token() {
        let b = HyperClientBuilder::default()
            .token("s3cr3t-token")
            .basic_auth("alice", "pw-s3cr3t")
            .from_env_lookup(|n| match n {
                "CONSUL_HTTP_TOKEN" => Some("env-s3cr3t".to_owned()),
                "CONSUL_HTTP_AUTH" => Some("bob:env-pw-s3cr3t".to_owned()),
                _ => None,
            });
        let s = format!("{b:?}");
        assert!(!s.contains("s3cr3t"), "{s}");
        assert!(s.contains("alice") && s.contains("bob"), "{s}");
    }

    #[test]
    fn basic_auth_is_split_like_go() {
        assert_eq!(
            BasicAuth::parse("u:p:q"),
            BasicAuth {
                user: "u".into(),
                password: "p:q".into()
            }
        );
        assert_eq!(
            BasicAuth::parse("solo"),
            BasicAuth {
                user: "solo".into(),
                password: String::new()
            }
        );
        let h = BasicAuth::parse("Aladdin:open sesame").header().unwrap();
        assert_eq!(h, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(h.is_sensitive());
    }

    #[test]
    fn durations_near_max_are_clamped_not_overflowed() {
        let c = HyperClientBuilder::default()
            .timeout(Duration::MAX)
            .connect_timeout(Duration::MAX)
            .blocking_margin(Duration::MAX)
            .idle_timeout(Duration::MAX)
            .build()
            .unwrap();
        assert_eq!(c.deadline_for(&proto::kv::Get::new("k")), LONGEST);
    }
}
