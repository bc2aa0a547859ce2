//! An embedded, Consul-compatible KV, session and transaction server.
//!
//! `consul-kv-devserver` starts in milliseconds inside a `#[tokio::test]` (or as a binary) and
//! answers Consul's HTTP API for `/v1/kv`, `/v1/txn`, `/v1/session/*`, `/v1/status/leader`,
//! `/v1/catalog/datacenters` and `/v1/agent/self` the way a Consul agent does: statuses, bodies, headers, the Raft-like
//! index, tombstones, blocking queries with jitter, sessions with TTLs and lock-delays,
//! several datacenters, an ACL mode and Consul's answers to malformed input. It never panics
//! on input and never hangs: every blocking query ends at its deadline, and a blocking query
//! whose client disconnects is dropped at once.
//!
//! It also serves a KV browser at `/ui/` (turn it off with [`DevServerBuilder::ui`] or the
//! binary's `--no-ui`): a key tree by folder, values shown as text, pretty JSON or hex, edits
//! made with check-and-set on the index shown, folder deletes behind a confirmation, a
//! datacenter switcher and the sessions list, all following changes live through blocking
//! queries. The page is three static files compiled into the crate, loads nothing from
//! elsewhere, renders every key and value as text under a strict content security policy, and
//! uses only the HTTP API above, sending an ACL token only in `X-Consul-Token`.
//!
//! # Use in a test
//!
//! ```
//! use std::io::{Read, Write};
//! use consul_kv_devserver::DevServer;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!     let server = DevServer::builder().datacenter("dc1").start().await?;
//!     let addr = server.addr();
//!
//!     // Any HTTP client works; this one is a raw HTTP/1.1 exchange over std's TcpStream.
//!     let response = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
//!         let mut s = std::net::TcpStream::connect(addr)?;
//!         s.write_all(
//!             b"PUT /v1/kv/app/config HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
//!               Connection: close\r\n\r\nhello",
//!         )?;
//!         let mut out = String::new();
//!         s.read_to_string(&mut out)?;
//!         Ok(out)
//!     })
//!     .await??;
//!     assert!(response.starts_with("HTTP/1.1 200 OK"));
//!     assert!(response.ends_with("true"));
//!
//!     server.shutdown().await?;
//!     Ok(())
//! }
//! ```
//!
//! In a test suite the same thing is a `#[tokio::test]`; the server stops when the handle is
//! dropped at the end of the test:
//!
//! ```no_run
//! # use consul_kv_devserver::DevServer;
//! #[tokio::test]
//! async fn reads_what_it_wrote() {
//!     let server = DevServer::builder().start().await.unwrap();
//!     let base = server.http_addr(); // "http://127.0.0.1:PORT"
//!     // … point the client under test at `base` …
//! }
//! # fn main() {}
//! ```
//!
//! # Test hooks
//!
//! [`DevServerHandle`] offers what a real agent cannot: [`reap_tombstones`] (a list index can
//! then go backwards), [`waiters`] (the number of blocking queries in flight),
//! [`set_leader`] (a "no cluster leader" drill), [`set_fault`] (429/503/raw-429 answers),
//! [`DevServerBuilder::jitter`] (fixed blocking-query jitter),
//! [`DevServerBuilder::session_ttl_scale`] (session TTLs that expire in milliseconds), and
//! [`DevServerBuilder::listen`] (restart on the same port with a fresh state, index reset).
//!
//! [`reap_tombstones`]: DevServerHandle::reap_tombstones
//! [`waiters`]: DevServerHandle::waiters
//! [`set_leader`]: DevServerHandle::set_leader
//! [`set_fault`]: DevServerHandle::set_fault
//!
//! # Behaviour
//!
//! The rules come from Consul's source (`agent/http.go`, `agent/kvs_endpoint.go`,
//! `agent/consul/kvs_endpoint.go`, `agent/consul/state/kvs.go`, `session.go`, `txn.go`,
//! `agent/blockingquery/blockingquery.go`) as summarised in the project's
//! `consul-server.md`. Highlights:
//!
//! - One index per datacenter that rises with every write that reaches the state store
//!   (a failed CAS consumes one, as a Raft entry would). `X-Consul-Index` is never 0.
//! - `ModifyIndex` changes only when the entry changes; a plain PUT keeps the lock's session
//!   and, as in `kvsSetTxn`, writes the request's `LockIndex` (0).
//! - Deletes leave tombstones so a list's index does not go backwards until they are reaped.
//! - Blocking queries wake only when the watched key or prefix changes; `wait` defaults to
//!   5 min, is capped at 10 min and gets up to `wait/16` of jitter. A blocking read of a
//!   missing key keeps blocking until the key appears (Consul ≥ 1.11's `ErrNotFound` rule);
//!   [`DevServerBuilder::legacy_missing_key_wakeups`] restores the older wake-on-any-write.
//! - Sessions: TTL 10 s … 24 h, invalidated after 2 × TTL; lock-delay 15 s by default,
//!   applied up to 60 s, numbers under 1000 read as seconds; behaviours `release` / `delete`.
//!   The agent's node is registered in every datacenter with a passing `serfHealth` check.
//! - Values larger than 512 KiB get `413`: on `Content-Length` always, and on the bytes
//!   actually received under the 1.21 and 1.22 profiles (below).
//! - Answers of 1,400 bytes and more are gzip-compressed when the request accepts it.
//! - With [`DevServerBuilder::rate_limit`] (`--rate-limit READ,WRITE`), Consul 1.15+'s server
//!   rate limiter: reads over the rate get `429`, writes `503`, with Consul's texts, before
//!   anything is applied.
//!
//! # Consul versions
//!
//! [`DevServerBuilder::consul_version`] (`--consul-version`) picks the release reproduced where
//! releases differ in what a KV client sees:
//!
//! | | 1.14 (default) | 1.21 (1.21.5) | 1.22 (and 1.21.6+) |
//! |---|---|---|---|
//! | key validation | printable runes only | regex `^[a-zA-Z0-9,_./\-?&=]+$`, else `500 invalid key name, …` | no `..` segment, no `..%2F` / `%2E%2E`, no leading or trailing space, else `400` |
//! | `PUT /v1/kv` body limit | `Content-Length` only (a chunked body over the limit is stored) | `Content-Length` and bytes received | `Content-Length` and bytes received |
//! | 413 text links | `www.consul.io/docs/…` | `developer.hashicorp.com/docs/…` | `developer.hashicorp.com/docs/…` |
//! | `/v1/agent/self` version | `1.14.11` | `1.21.5` | `1.22.0` |
//!
//! The 1.14 column is recorded from a real 1.14.11 agent. 1.21.5's regex and text come from
//! Consul's pull request #22682 and the reports that followed it (#22822, #22835); 1.22's rules
//! from pull request #22850 and its backports (CVE-2025-11392). Consul has not published 1.22's
//! exact refusal texts; the devserver's are `key contains path traversal sequence`, `key
//! contains encoded path traversal sequence` and `key must not begin or end with a space`.
//! Transaction keys are not validated by any profile.
//!
//! # Differences from Consul
//!
//! Choices made where the reference marks behaviour UNCONFIRMED, and deliberate gaps:
//!
//! - **Key validation** by default follows Consul ≤ 1.21.4 (see the profiles above): any key
//!   the URL path can carry, except non-printable runes (`400`, empty body). Keys must be
//!   valid UTF-8; a path that decodes to invalid UTF-8 or holds a bad `%` escape gets
//!   `400 Bad Request`.
//! - **Path cleaning** redirects (`301`) on the percent-decoded path, as Go's `ServeMux`
//!   before 1.22 does; `Location` is the cleaned path re-escaped like Go's `EscapedPath`.
//! - **Read meta** matches a real Consul 1.14.11 agent: `X-Consul-Index`, `KnownLeader`,
//!   `LastContact`, `X-Consul-Query-Backend: blocking-query`, and no
//!   `X-Consul-Effective-Consistency`; every answer carries `X-Consul-Default-Acl-Policy`.
//! - **Error texts** of writes that fail in the state store carry the agent's prefixes:
//!   `raft apply failed: invalid session "…"` on KV, `apply failed: Missing node
//!   registration` on session create (recorded from a real agent).
//! - **Read-only transactions** embed `"Index":0,"LastContact":…,"KnownLeader":…` (the older
//!   `QueryMeta` field set); newer fields are not emitted.
//! - **ACL mode** knows one token (the management token). A request without a token is the
//!   anonymous token, which may do nothing: `403 Permission denied` on single reads and
//!   writes, silently filtered lists (`404` / `[]`), `Permission denied` per transaction op.
//!   Any other token gets `403 ACL not found`. The newer 403 texts naming the missing
//!   permission are not used.
//! - **Malformed session IDs** are treated like unknown ones (`[]` for info, `true` for
//!   destroy, `404` for renew), as Consul's newer string-indexed state store does.
//! - **Session create bodies** are decoded whenever the body is non-empty (Consul looks only
//!   at `Content-Length > 0`, so a chunked body is ignored there). Go's JSON error texts are
//!   approximated; the `Request decode failed: ` prefix and the status are exact.
//! - **Transactions** support KV operations only; a `Node`, `Service` or `Check` operation
//!   fails the transaction with `409` "not supported", also when the op carries the other
//!   members as `null` (`{"KV":null,"Node":{…}}`, as the Go client sends every op).
//! - **413 for bodies without `Content-Length`** reports the bytes received before the limit
//!   tripped, as there is no declared length to quote.
//! - **Lock-delays and TTL timers** use the server's monotonic clock;
//!   [`DevServerBuilder::session_ttl_scale`] shortens TTL expiry for tests (devserver only).
//! - **Tombstones** are reaped on a timer like Consul's tombstone GC: those older than
//!   [`DevServerBuilder::tombstone_ttl`] (15 min by default, as Consul's `tombstone_ttl`),
//!   checked every `ttl/16` (Consul reaps in 30 s granules), one index per reap;
//!   [`DevServerHandle::reap_tombstones`] reaps all of them at once.
//! - **`--data`** is a write-ahead log with group commit (see [`DevServerBuilder::data_file`]):
//!   every acknowledged write survives a `SIGKILL`; all datacenters, sessions and indexes are
//!   kept. Consul persists through Raft; the devserver's file format is its own.
//! - **Not implemented:** the catalog (but `/v1/catalog/datacenters`),
//!   health and other endpoints (they answer Consul's `404 Invalid URL path` text),
//!   `?filter`, namespaces and partitions (rejected with Consul CE's `400`).
//!
//! # Cargo features
//!
//! None: the library and the `consul-kv-devserver` binary are always built in full.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

// Layers, each depending only on those listed after it: `listener` → `router` → the
// handlers (`api_*`) → `request` / `reply` / `gojson` → `blocking` / `server` → `state`
// → `go`.
mod api_kv;
mod api_session;
mod api_status;
mod api_txn;
mod blocking;
mod export;
mod gc;
mod go;
mod gojson;
mod gzip;
mod listener;
mod logs;
mod profile;
mod ratelimit;
mod reply;
mod request;
mod rng;
mod router;
mod server;
mod state;
mod ui;
mod wal;

pub use wal::Recovery;

pub use profile::{ConsulVersion, UnknownVersion};
pub use ratelimit::{BadRateLimit, RateLimit};
use server::{Config, Shared};

/// The Consul version whose behaviour the devserver follows by default (the
/// [`ConsulVersion::V1_14`] profile, checked against a real agent); `/v1/agent/self` reports
/// the version of the profile in use.
pub const CONSUL_VERSION: &str = "1.14.11";

/// Consul's default `kv_max_value_size` (512 KiB).
pub const DEFAULT_KV_MAX_VALUE_SIZE: usize = 512 * 1024;

/// Errors starting or stopping the server.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// The data file could not be read, parsed or written.
    #[error("data file {path}: {message}", path = .0.display(), message = .1)]
    DataFile(PathBuf, String),
    /// The builder was given contradictory settings.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The server task ended abnormally.
    #[error("server task failed: {0}")]
    Task(String),
}

/// How much jitter a blocking query gets on top of its wait (Consul adds up to `wait/16`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Uniform in `[0, wait/16)`, from an entropy-seeded generator (Consul's behaviour).
    #[default]
    Random,
    /// Uniform in `[0, wait/16)`, from a generator with this seed (reproducible).
    Seeded(u64),
    /// No jitter: a blocking query returns after exactly `wait`.
    None,
    /// Always the maximum, `wait/16`: the longest a Consul server may hold a query.
    Max,
}

/// An answer every `/v1/` request gets while the fault is set (see
/// [`DevServerHandle::set_fault`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and plain-text body (e.g. `429` with an empty body for
    /// Consul's RPC rate limit, `503` for `ErrRetryLater`, `500 No cluster leader`).
    Respond {
        /// The status code.
        status: u16,
        /// The body.
        body: String,
    },
    /// Consul's per-client connection limit: `429` with `Connection: close` and the body
    /// `Your IP is issuing too many concurrent connections, please rate limit your calls`.
    TooManyConnections,
}

impl Fault {
    /// `429 Too Many Requests` with an empty body (Consul's RPC rate limit).
    pub fn rate_limited() -> Self {
        Self::Respond {
            status: 429,
            body: String::new(),
        }
    }

    /// `503 Service Unavailable` (a rate-limited write on the leader, `ErrRetryLater`).
    pub fn retry_later() -> Self {
        Self::Respond {
            status: 503,
            body: "rate limit exceeded, try again later".to_owned(),
        }
    }
}

/// Entry point: `DevServer::builder()…start().await`.
#[derive(Debug, Clone, Copy)]
pub struct DevServer;

impl DevServer {
    /// A builder with Consul's defaults and one datacenter, `dc1`, on `127.0.0.1:0`.
    pub fn builder() -> DevServerBuilder {
        DevServerBuilder::default()
    }
}

/// Configures and starts a [`DevServer`].
#[must_use]
#[derive(Debug, Clone)]
pub struct DevServerBuilder {
    datacenters: Vec<String>,
    acl_token: Option<String>,
    data_file: Option<PathBuf>,
    jitter: Jitter,
    start_index: u64,
    listen: SocketAddr,
    node_name: Option<String>,
    ttl_scale: f64,
    max_query_time: Duration,
    default_query_time: Duration,
    kv_max_value_size: usize,
    legacy_missing_key_wakeups: bool,
    leader_hold: Duration,
    ui: bool,
    consul_version: ConsulVersion,
    rate_limit: Option<RateLimit>,
    tombstone_ttl: Option<Duration>,
    data_fsync: bool,
}

/// Consul's default `tombstone_ttl`.
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(15 * 60);

impl Default for DevServerBuilder {
    fn default() -> Self {
        Self {
            datacenters: Vec::new(),
            acl_token: None,
            data_file: None,
            jitter: Jitter::Random,
            start_index: 10,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            node_name: None,
            ttl_scale: 1.0,
            max_query_time: Duration::from_secs(600),
            default_query_time: Duration::from_secs(300),
            kv_max_value_size: DEFAULT_KV_MAX_VALUE_SIZE,
            legacy_missing_key_wakeups: false,
            leader_hold: Duration::from_secs(7),
            ui: true,
            consul_version: ConsulVersion::V1_14,
            rate_limit: None,
            tombstone_ttl: Some(DEFAULT_TOMBSTONE_TTL),
            data_fsync: false,
        }
    }
}

impl DevServerBuilder {
    /// Adds a datacenter. The first one added is the default (`?dc=` empty or absent);
    /// without any, the server has just `dc1`.
    pub fn datacenter(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.datacenters.contains(&name) {
            self.datacenters.push(name);
        }
        self
    }

    /// Turns on ACL mode with this management token (see the crate docs).
    pub fn acl_token(mut self, token: impl Into<String>) -> Self {
        self.acl_token = Some(token.into());
        self
    }

    /// Keeps the whole state (every datacenter's KV entries, tombstones, sessions and
    /// indexes) in this file, a write-ahead log: a write is answered only once its record is
    /// written to the file, so a crash or a `SIGKILL` of the server loses nothing that was
    /// acknowledged (with [`data_fsync`](Self::data_fsync), not even a power loss). At start the log is replayed (a missing
    /// file is an empty store; a torn or corrupt tail is reported and cut off, see
    /// [`DevServerHandle::recovery`]) and compacted. A file holding `consul kv export` JSON is
    /// imported into the default datacenter, then rewritten as a log.
    pub fn data_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.data_file = Some(path.into());
        self
    }

    /// Whether a write waits for `fdatasync` of its log record before it is answered (group
    /// commit: the writes that arrive during one `fdatasync` share the next). Default `false`:
    /// the record is written (`write(2)`) before the answer, which survives the server
    /// process being killed but not the machine losing power.
    pub fn data_fsync(mut self, fsync: bool) -> Self {
        self.data_fsync = fsync;
        self
    }

    /// How old a tombstone must be before the timer reaps it, like Consul's `tombstone_ttl`
    /// (default 15 min); `None` turns the timer off. Reaping makes a list index under a
    /// prefix whose highest entry was deleted go backwards, as in Consul.
    pub fn tombstone_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.tombstone_ttl = ttl.filter(|t| !t.is_zero());
        self
    }

    /// Blocking-query jitter (default [`Jitter::Random`]).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The last applied index of a fresh datacenter (default 10); the first write gets the
    /// next one. Table indexes start at 0, so reads of an empty store report index 1.
    pub fn starting_index(mut self, index: u64) -> Self {
        self.start_index = index;
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, an ephemeral port). Start a new
    /// server on a stopped one's [`DevServerHandle::addr`] to "restart" it with a fresh state.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The agent's node name (default: the host name, else `devserver`).
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node_name = Some(name.into());
        self
    }

    /// Scales the session TTL timer (2 × TTL) for tests: `0.01` invalidates a `10s` session
    /// after 200 ms. **Devserver only** — a real Consul cannot be sped up. Default `1.0`;
    /// clamped to `[0.0001, 1000]`.
    pub fn session_ttl_scale(mut self, scale: f64) -> Self {
        self.ttl_scale = if scale.is_finite() {
            scale.clamp(0.0001, 1000.0)
        } else {
            1.0
        };
        self
    }

    /// `max_query_time` (default 10 min): the cap on `wait`.
    pub fn max_query_time(mut self, d: Duration) -> Self {
        self.max_query_time = d;
        self
    }

    /// `default_query_time` (default 5 min): the wait of a blocking query without `wait`.
    pub fn default_query_time(mut self, d: Duration) -> Self {
        self.default_query_time = d;
        self
    }

    /// `kv_max_value_size` (default 512 KiB).
    pub fn kv_max_value_size(mut self, bytes: usize) -> Self {
        self.kv_max_value_size = bytes;
        self
    }

    /// Blocking reads of a missing key return on any KV write, as before Consul 1.11
    /// (default `false`: they keep blocking until the key appears).
    pub fn legacy_missing_key_wakeups(mut self, on: bool) -> Self {
        self.legacy_missing_key_wakeups = on;
        self
    }

    /// How long a request waits for a leader in "no leader" mode before
    /// `500 No cluster leader` (Consul's `rpc_hold_timeout`, default 7 s).
    pub fn leader_hold(mut self, d: Duration) -> Self {
        self.leader_hold = d;
        self
    }

    /// Serves the KV browser at `/ui/` (default `true`), and redirects `/` there as a Consul
    /// agent with its UI enabled does. With `false`, `/` answers Consul's "UI disabled" text.
    /// The page uses only the ordinary HTTP API; see the crate docs.
    pub fn ui(mut self, on: bool) -> Self {
        self.ui = on;
        self
    }

    /// The Consul release to reproduce where releases differ: key validation, the 413 text,
    /// the body-size rule and the version `/v1/agent/self` reports (default
    /// [`ConsulVersion::V1_14`], the release the conformance suite checks against a real
    /// agent). See [`ConsulVersion`] and the crate docs.
    pub fn consul_version(mut self, version: ConsulVersion) -> Self {
        self.consul_version = version;
        self
    }

    /// Enforces a server rate limit like Consul 1.15+ (`limits.request_limits` in
    /// `enforcing` mode): reads past `read_rate` per second get `429` and writes past
    /// `write_rate` get `503`, with Consul's texts, before anything is applied. Off by
    /// default; [`DevServerHandle::set_rate_limit`] changes it while running.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Binds, loads the data file and starts serving.
    ///
    /// # Errors
    /// [`Error::Bind`], [`Error::DataFile`], [`Error::Config`].
    pub async fn start(self) -> Result<DevServerHandle, Error> {
        let mut datacenters = self.datacenters;
        if datacenters.is_empty() {
            datacenters.push("dc1".to_owned());
        }
        if datacenters.iter().any(String::is_empty) {
            return Err(Error::Config("empty datacenter name".into()));
        }
        if self.max_query_time.is_zero() || self.default_query_time.is_zero() {
            return Err(Error::Config("query times must be positive".into()));
        }
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|e| Error::Bind(self.listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Bind(self.listen, e))?;
        let cfg = Config {
            datacenters,
            acl_token: self.acl_token,
            jitter: self.jitter,
            start_index: self.start_index,
            node_name: self.node_name.unwrap_or_else(hostname),
            ttl_scale: self.ttl_scale,
            max_query_time: self.max_query_time,
            default_query_time: self.default_query_time,
            kv_max_value_size: self.kv_max_value_size,
            legacy_missing_key_wakeups: self.legacy_missing_key_wakeups,
            leader_hold: self.leader_hold,
            ui: self.ui,
            consul_version: self.consul_version,
        };
        let shared = Arc::new(Shared::new(cfg));
        shared.limiter.set(self.rate_limit);
        let mut recovery = None;
        if let Some(path) = &self.data_file {
            let (wal, r) = wal::Wal::open(path, &shared, self.data_fsync)?;
            recovery = Some(r);
            let _ = shared.wal.set(wal);
        }
        let (tx, rx) = watch::channel(false);
        if let Some(ttl) = self.tombstone_ttl {
            tokio::spawn(gc::reap_tombstones(Arc::clone(&shared), ttl, rx.clone()));
        }
        let task = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move {
                listener::accept_loop(Arc::clone(&shared), listener, rx).await;
                save(&shared)
            }
        });
        tracing::info!(%addr, "consul-kv-devserver listening");
        Ok(DevServerHandle {
            shared,
            recovery,
            addr,
            shutdown: tx,
            task: Some(task),
        })
    }
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "devserver".to_owned())
}

/// At a graceful stop: flushes the log and compacts it into one snapshot.
fn save(shared: &Shared) -> Result<(), Error> {
    let Some(wal) = shared.wal.get() else {
        return Ok(());
    };
    wal.close();
    wal.compact(shared)?;
    tracing::info!("data file compacted");
    Ok(())
}

/// A running devserver. Dropping it stops the server (without waiting);
/// [`shutdown`](Self::shutdown) stops it and waits, and saves the data file.
#[derive(Debug)]
pub struct DevServerHandle {
    shared: Arc<Shared>,
    recovery: Option<Recovery>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl DevServerHandle {
    /// What replaying the data file found at start (`None` without a data file).
    pub fn recovery(&self) -> Option<Recovery> {
        self.recovery
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:8500`.
    pub fn http_addr(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The datacenters, default first.
    pub fn datacenters(&self) -> Vec<String> {
        self.shared.dcs().iter().map(|d| d.name.clone()).collect()
    }

    /// The agent's node name (sessions default to it).
    pub fn node_name(&self) -> &str {
        &self.shared.cfg.node_name
    }

    /// Blocking queries currently waiting, across datacenters. Drops when a query returns
    /// or its client disconnects.
    pub fn waiters(&self) -> usize {
        self.shared.waiters.load(Ordering::SeqCst)
    }

    /// The last applied index of a datacenter (`""` for the default one).
    pub fn last_index(&self, dc: &str) -> Option<u64> {
        self.shared.dc(dc).map(|d| d.lock().last_index())
    }

    /// The number of live keys in a datacenter (`""` for the default one).
    pub fn key_count(&self, dc: &str) -> Option<usize> {
        self.shared.dc(dc).map(|d| d.lock().key_count())
    }

    /// Reaps every tombstone in every datacenter, like Consul's tombstone GC (one index per
    /// datacenter that had any). A list index under a prefix whose highest entry was
    /// deleted then goes backwards. Returns the number reaped.
    pub fn reap_tombstones(&self) -> usize {
        self.shared
            .dcs()
            .iter()
            .map(|dc| self.shared.write(dc, |st, ch| st.reap_tombstones(ch)))
            .sum()
    }

    /// Simulates leader loss (`false`) and recovery (`true`). Without a leader, writes and
    /// non-stale reads wait up to the hold time ([`DevServerBuilder::leader_hold`]) and then
    /// get `500 No cluster leader`; stale reads are answered with `X-Consul-KnownLeader:
    /// false` and a growing `X-Consul-LastContact`; `/v1/status/leader` answers `""`.
    pub fn set_leader(&self, up: bool) {
        self.shared.set_leader(up);
    }

    /// Turns the rate limiter on with `limit`, or off with `None` (see
    /// [`DevServerBuilder::rate_limit`]).
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        self.shared.limiter.set(limit);
    }

    /// How many requests the rate limiter has refused since the server started.
    pub fn rate_limited(&self) -> u64 {
        self.shared.limiter.refused()
    }

    /// Sets (or clears, with `None`) a fault answered to every `/v1/` request.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.shared.set_fault(fault);
    }

    /// The default datacenter's KV store as `consul kv export` JSON.
    pub fn export_json(&self) -> String {
        self.shared
            .default_dc()
            .map(|dc| export::to_json(&dc.lock().export()))
            .unwrap_or_else(|| "[]\n".to_owned())
    }

    /// Stops accepting, closes every connection (pending blocking queries included), saves
    /// the data file if one is configured, and waits for all of it.
    ///
    /// # Errors
    /// [`Error::DataFile`] when saving fails; [`Error::Task`] if the server task panicked.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.shutdown.send_replace(true);
        match self.task.take() {
            Some(t) => t.await.map_err(|e| Error::Task(e.to_string()))?,
            None => Ok(()),
        }
    }
}

impl Drop for DevServerHandle {
    fn drop(&mut self) {
        // Signal only: the server task closes its connections and saves the data file.
        self.shutdown.send_replace(true);
    }
}
