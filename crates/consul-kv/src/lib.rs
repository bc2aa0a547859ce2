//! An async client for Consul's key/value store: KV reads and writes, check-and-set, sessions,
//! transactions, watches, leader-election locks and semaphores.
//!
//! # Quick start
//!
//! ```no_run
//! # async fn quickstart() -> consul_kv::Result<()> {
//! let client = consul_kv::Client::from_env()?;          // CONSUL_HTTP_ADDR …, default http://127.0.0.1:8500
//! let kv = client.kv();
//! assert!(kv.set("foo", "bar").await?);
//! let value = kv.get("foo").await?;                     // Option<Key>: Bytes value, flags, indexes, session
//! let meta = value.as_ref().unwrap().consul();          // the meta: modify index (CAS id), last index, leader info
//! assert!(kv.set("foo", "baz").cas(meta).await?);       // CAS; false when someone wrote in between
//! let values = kv.items("my/prefix/").await?;           // every key + value under the prefix, with meta
//! let keys = kv.keys("my/prefix/").await?;              // key names (optional .separator("/")), with meta
//! assert!(kv.delete("foo").await?);
//! let session = client.session().create().await?;      // builder: name, ttl, behavior, lock_delay, node, checks
//! assert!(kv.acquire("foo", &session).await?);          // optional .value(..) / .flags(..)
//! assert!(kv.release("foo", &session).await?);
//! let dc2 = client.kv().dc("dc2").items("foo/bar").await?;
//! # let _ = (values, keys, dc2);
//! # Ok(()) }
//! ```
//!
//! `cargo run --example quickstart` runs this walkthrough against `CONSUL_HTTP_ADDR`, or, when it
//! is unset, against an embedded development server.
//!
//! # How it reads
//!
//! [`Client`] hands out endpoints: [`Client::kv`] ([`Kv`]) and [`Client::session`]
//! ([`Sessions`]). Each endpoint method returns a request ([`kv::GetRequest`],
//! [`kv::SetRequest`], [`TxnRequest`], [`session::CreateSessionRequest`], …); **`.await` sends
//! it** (the requests implement [`IntoFuture`](std::future::IntoFuture)). A request owns a
//! clone of the client, so it borrows nothing: `tokio::spawn(kv.get("k").into_future())`
//! works, and a request can be kept, cloned and awaited later. Requests take per-call settings
//! before they are awaited:
//!
//! - reads: [`consistency`](kv::GetRequest::consistency), blocking with
//!   [`index`](kv::GetRequest::index) / [`wait`](kv::GetRequest::wait), and on every request
//!   [`dc`](kv::GetRequest::dc), [`ns`](kv::GetRequest::ns), [`partition`](kv::GetRequest::partition),
//!   [`token`](kv::GetRequest::token);
//! - writes: [`cas`](kv::SetRequest::cas), [`flags`](kv::SetRequest::flags);
//! - [`Kv::dc`] binds a whole endpoint to a datacenter: `client.kv().dc("dc2")`.
//!
//! Values are bytes ([`bytes::Bytes`]); writes accept text or bytes, owned or borrowed
//! ([`IntoValue`]), and `.cas(..)` accepts what a read returned ([`IntoCas`]). A missing key
//! is `Ok(None)`, not an error. Writes
//! resolve to `bool` (Consul's `true`/`false`), so `assert!(kv.set(..).await?)` reads as in
//! aioconsul's API; [`outcome`](kv::SetRequest::outcome) gives a [`WriteOutcome`] instead.
//!
//! # Acquire and release replace the value
//!
//! [`Kv::acquire`] and [`Kv::release`] are writes: **Consul stores the request's value and
//! flags in the key**, replacing what was there. Without [`value`](kv::AcquireRequest::value) the key
//! ends up empty. Pass the value the key should hold.
//!
//! # Coordination
//!
//! - [`Session::keep_alive`] renews a session at TTL/2 in the background ([`SessionKeeper`]).
//! - [`Client::lock`] elects a leader ([`Lock`]); [`Client::semaphore`] admits `n` holders
//!   ([`Semaphore`]). Both use the Go client's key layout and flags, so Go and Rust processes
//!   can contend for the same keys. Both signal loss, release explicitly, and do no I/O in
//!   `Drop`.
//! - [`Kv::watch`] and [`Kv::watch_prefix`] are [`Stream`](futures_core::Stream)s of real
//!   changes that survive server restarts and index resets. Watches of one client asking the
//!   same question share one blocking query; each reports its [`WatchHealth`].
//!   [`PrefixWatch::changes`] yields per-key [`Change`]s; [`Kv::watch_json`] and
//!   [`Kv::watch_tree`] yield decoded values.
//! - [`Client::election`] runs a leader election on a lock key: campaign, proclaim, resign,
//!   observe, and writes fenced on the leadership ([`Leadership::fenced`]).
//!
//! # Errors
//!
//! Every call returns [`Result`], whose error is the executor's [`Error`]: its `Display` names
//! the request (`GET /v1/kv/app: unknown datacenter`), and it says whether a retry may help
//! ([`Error::is_retryable`]) and when a write's outcome is unknown
//! ([`Error::OutcomeUnknown`]). Reads and writes Consul certainly did not apply were already
//! retried with backoff. The ACL token never appears in an error, `Debug` or log line.
//!
//! # Crates
//!
//! This is the facade over [`consul_kv_proto`] (the protocol, without I/O; re-exported as
//! [`proto`]) and [`consul_kv_hyper`] (the executor: pooled connections, deadlines, bounded
//! bodies, retries, TLS).
//!
//! # Cargo features
//!
//! None of its own. HTTPS comes from `consul-kv-hyper`'s default `rustls` feature, which this
//! crate keeps on.

#![deny(missing_docs)]

mod batch;
mod changes;
mod client;
mod election;
mod export;
mod holding;
pub mod kv;
mod lock;
mod meta;
mod scope;
mod semaphore;
pub mod session;
mod shared_watch;
mod stream;
mod sync;
mod tree;
mod txn;
mod typed;
mod typed_watch;
mod update;
mod watch;

pub use bytes::Bytes;
pub use consul_kv_hyper::{
    ConfigError, Error, HyperClient, RequestTarget, RetryPolicy, TransportError,
    DEFAULT_MAX_CONNECTIONS,
};
pub use consul_kv_proto as proto;
pub use consul_kv_proto::session::ServiceCheck;
pub use consul_kv_proto::txn::{TxnOp, TxnResponse};
pub use consul_kv_proto::{
    Behavior, BuildError, Cas, Consistency, Index, Indexed, IntoValue, KvPair, QueryMeta,
    ResponseError, SessionEntry, SessionId, Token, TxnOpError, WatchOptions, WriteOutcome,
};

pub use changes::{Change, Changes};
pub use client::{Client, ClientBuilder};
pub use election::{Election, FenceError, FencedTxn, Leadership, Observe};
pub use holding::{LockError, LockLost, LockStatus};
pub use kv::{Items, Key, Keys, Kv, RawValue};
pub use lock::{Lock, LockBuilder, LOCK_FLAG};
pub use meta::{ConsulMeta, IntoCas};
pub use scope::BoxFuture;
pub use semaphore::{Semaphore, SemaphoreBuilder, SEMAPHORE_FLAG, SEMAPHORE_LOCK_KEY};
pub use session::{Session, SessionExpired, SessionKeeper, SessionList, SessionLost, Sessions};
pub use shared_watch::{WatchError, WatchHealth};
pub use stream::ItemsStream;
pub use txn::{TxnOutcome, TxnRequest};
pub use typed_watch::{JsonWatch, TreeWatch};
pub use watch::{KeyWatch, PrefixWatch};

// Helpers built on KV: read-modify-write, batches, export / import / sync, typed values.
pub use batch::{
    BatchFailure, PutAllError, PutAllProgress, PutAllReport, PutAllRequest,
    DEFAULT_PUT_ALL_CONCURRENCY,
};
pub use consul_kv_proto::batch::TxnLimits;
pub use consul_kv_proto::export::ExportEntry;
pub use export::ExportRequest;
pub use sync::{
    SyncAction, SyncChange, SyncConflict, SyncError, SyncPlan, SyncReport, SyncRequest,
};
pub use tree::{TreeMismatch, TreeRequest};
pub use typed::{GetJsonRequest, ItemsJsonRequest, JsonError, JsonItem, SetJsonRequest};
pub use update::{UpdateError, UpdateRequest, DEFAULT_UPDATE_ATTEMPTS};

/// A `Result` whose error is the executor's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The README's Rust examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
