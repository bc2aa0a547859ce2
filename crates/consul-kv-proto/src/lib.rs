//! Sans-IO Consul KV, session and transaction protocol.
//!
//! This crate turns Consul operations into [`http::Request`] values and [`http::Response`]
//! values back into typed results. It performs **no I/O**: no sockets, no runtime, no clock
//! reads. Time is an argument wherever it matters ([`WatchMachine`]).
//!
//! **In scope:** request paths, queries, headers and bodies exactly as Consul's HTTP API wants
//! them (keys percent-encoded the way Consul's Go client encodes them); parsing of bodies and
//! `X-Consul-*` meta; typed, classified errors; CAS; the blocking-query state machine.
//!
//! **Out of scope:** connections, TLS, timeouts, retries, body size limits. The executor
//! (`consul-kv-hyper`, or your own) owns those; it gives [`Operation::parse`] a body it has
//! already collected under a limit, and uses [`Operation::kind`] to decide what it may retry.
//!
//! # Build → send → parse
//!
//! ```
//! use bytes::Bytes;
//! use consul_kv_proto::{kv::{Get, Set}, Operation, RequestContext, Token};
//!
//! let cx = RequestContext::new().with_token(Token::new("my-acl-token")?);
//!
//! // Build: a path-only request; the token travels only in X-Consul-Token.
//! let get = Get::new("app/config db").dc("dc2");
//! let req = get.build(&cx)?;
//! assert_eq!(req.method(), "GET");
//! assert_eq!(req.uri(), "/v1/kv/app/config%20db?dc=dc2");
//! assert_eq!(req.headers()["x-consul-token"], "my-acl-token");
//!
//! // Send: with any HTTP stack, blocking or async. Here, the answer Consul gives.
//! let resp = http::Response::builder()
//!     .status(200)
//!     .header("X-Consul-Index", "18")
//!     .header("X-Consul-KnownLeader", "true")
//!     .body(Bytes::from_static(
//!         br#"[{"LockIndex":0,"Key":"app/config db","Flags":0,"Value":"YmFy","CreateIndex":17,"ModifyIndex":18}]"#,
//!     ))?;
//!
//! // Parse: the value is bytes, and it carries its meta.
//! let found = get.parse(resp)?;
//! let pair = found.value.expect("the key exists");
//! assert_eq!(pair.value.as_deref(), Some(&b"bar"[..]));
//! assert_eq!(found.meta.last_index.get(), 18);
//!
//! // CAS from what was read: the write applies only if nobody wrote in between.
//! let put = Set::new("app/config db", "baz").cas(&pair).build(&cx)?;
//! assert_eq!(put.uri(), "/v1/kv/app/config%20db?cas=18");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Bring your own executor
//!
//! Any HTTP client can run these operations, blocking or async, in four steps:
//!
//! 1. **Build**: [`Operation::build`] gives an `http::Request<Bytes>` whose URI is the path
//!    and query only (`/v1/kv/app/a%20b?dc=dc2`).
//! 2. **Send**: prefix the agent's scheme and authority, send it with your client and a
//!    deadline ([`Operation::blocking_wait`] and [`blocking_deadline`] give the one of a
//!    blocking read); retry only when [`Operation::kind`] says it is safe.
//! 3. **Collect the body with a limit**: read it into `Bytes`, refusing more than you accept
//!    (Consul's answers can be large; a list of every key is one body).
//! 4. **Parse**: [`Operation::parse`] on an `http::Response<Bytes>` gives the typed result or
//!    a typed [`ResponseError`] for any status, header or body Consul may send.
//!
//! [`examples/blocking_ureq.rs`](https://docs.rs/crate/consul-kv-proto/latest/source/examples/blocking_ureq.rs)
//! does exactly this with `ureq`, a blocking client, and no async runtime: get, set with CAS,
//! items, keys, delete, a session acquire/release and a transaction, against any agent
//! (`cargo run -p consul-kv-proto --example blocking_ureq -- http://127.0.0.1:8500`). Its whole
//! executor is one short function (`Executor::call`). `consul-kv-hyper` is the full-featured executor
//! (retries, pooling, TLS, unix sockets) built on the same four steps.
//!
//! # Modules
//! - [`kv`]: `get`, `raw`, `items`, `keys`, `set` (CAS, acquire, release), `delete`.
//! - [`session`]: `create`, `destroy`, `info`, `node`, `list`, `renew`.
//! - [`txn`]: `/v1/txn` with every KV verb.
//! - [`watch`]: blocking queries as a state machine.
//! - [`stream`]: list answers decoded entry by entry as the body arrives, for trees of any
//!   size.
//! - [`time`]: overflow-free `Instant` arithmetic and Consul's time limits.
//! - [`duration`]: Go duration strings (`wait`, `TTL`, `LockDelay`), read and written as Go
//!   does.
//! - [`batch`]: splitting many operations into transactions within Consul's limits.
//! - [`export`]: the `consul kv export` / `import` JSON format.
//!
//! # Cargo features
//!
//! None. The crate always builds the same way, with no runtime and no I/O.

#![deny(missing_docs)]

pub use bytes;
pub use http;

pub mod batch;
pub mod duration;
mod encode;
mod entries;
mod error;
pub mod export;
pub mod kv;
mod meta;
mod op;
mod options;
pub mod session;
pub mod stream;
pub mod time;
mod token;
pub mod txn;
mod value;
pub mod watch;

pub use duration::{format_go_duration, format_wait, parse_go_duration};
pub use encode::{decode_path, encode_key, go_quote, is_printable, percent_decode, KeyRules};
pub use error::{
    BuildError, ErrorDetail, KeyError, ResponseError, ServerMessage, TxnErrors, TxnOpError,
    MAX_MESSAGE_BYTES,
};
pub use kv::{Cas, KvPair, WriteOutcome};
pub use meta::{Index, Indexed, QueryMeta};
pub use op::{OpKind, Operation};
pub use options::{Consistency, ReadOptions, RequestContext, WriteOptions};
pub use session::{Behavior, SessionEntry, SessionId};
pub use token::{Token, TOKEN_HEADER};
pub use value::IntoValue;
pub use watch::{blocking_deadline, Blocking, WatchMachine, WatchOptions};

/// Checks a key the way every KV operation does before building a request.
///
/// `single` is `true` for operations on one key (which must not be empty) and `false` for
/// prefixes.
///
/// # Errors
/// [`BuildError::InvalidKey`].
pub fn validate_key(key: &str, single: bool) -> Result<(), BuildError> {
    validate_key_with(key, single, KeyRules::Classic)
}

/// [`validate_key`] under the given [`KeyRules`].
///
/// # Errors
/// [`BuildError::InvalidKey`].
pub fn validate_key_with(key: &str, single: bool, rules: KeyRules) -> Result<(), BuildError> {
    encode::check_key(
        key,
        if single {
            encode::KeyUse::Single
        } else {
            encode::KeyUse::Prefix
        },
        rules,
    )
}
