//! KV operations: [`Get`], [`GetRaw`], [`ListItems`], [`ListKeys`], [`Set`] (with CAS, acquire and
//! release) and [`Delete`].
//!
//! The reads are in `kv/read.rs`, the writes in `kv/write.rs`; this module holds what they
//! share: the entry ([`KvPair`]) and its wire forms, [`Cas`], [`WriteOutcome`], and the
//! request and response helpers.

use std::borrow::Cow;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use crate::encode::{check_key, encode_key, KeyUse, Query};
use crate::error::{BuildError, ErrorDetail, ResponseError};
use crate::op::{expect_status, parse_bool_body, parse_json, request, OpKind, Operation};
use crate::session::SessionId;
use crate::value::IntoValue;
use crate::watch::Blocking;
use crate::{
    Consistency, Index, Indexed, QueryMeta, ReadOptions, RequestContext, Token, WriteOptions,
};

pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One KV entry as Consul returns it (`DirEntry`), with its value decoded to bytes.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPair {
    /// The key, exactly as stored.
    pub key: String,
    /// The value; `None` when Consul stores no value (`"Value": null`, e.g. folder keys).
    pub value: Option<Bytes>,
    /// Opaque flags set by the writer.
    pub flags: u64,
    /// Index at which the key was created.
    pub create_index: u64,
    /// Index of the last change: the CAS token. `0` only in a `get-or-empty` echo.
    pub modify_index: u64,
    /// How many times a session has acquired the key.
    pub lock_index: u64,
    /// The session holding the lock, if any.
    pub session: Option<SessionId>,
}

impl KvPair {
    /// The value, or an empty slice when Consul stores none.
    pub fn value_bytes(&self) -> &[u8] {
        self.value.as_deref().unwrap_or_default()
    }

    /// The value as UTF-8 text, or `None` when it is not valid UTF-8. A key without a value
    /// reads as `""`.
    ///
    /// ```
    /// use consul_kv_proto::kv::wire::KvEntry;
    /// # use consul_kv_proto::{kv::ListItems, Operation};
    /// # let body = serde_json::to_vec(&[KvEntry::new("a", Some(b"on")), KvEntry::new("b", Some(b"\xff"))]).unwrap();
    /// # let resp = http::Response::builder().header("X-Consul-Index", "1").body(body.into()).unwrap();
    /// let pairs = ListItems::new("").parse(resp)?.value;
    /// assert_eq!(pairs[0].as_str(), Some("on"));
    /// assert_eq!(pairs[1].as_str(), None); // not UTF-8: read it with value_bytes()
    /// # Ok::<(), consul_kv_proto::ResponseError>(())
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.value_bytes()).ok()
    }

    /// The CAS token for a write that must see this exact version.
    pub fn cas(&self) -> Cas {
        Cas::from(self)
    }

    pub(crate) fn from_wire(w: WireEntry<'_>) -> Result<Self, ResponseError> {
        let value = match w.value {
            None => None,
            Some(v) => Some(Bytes::from(B64.decode(v.as_bytes()).map_err(|e| {
                ResponseError::Base64 {
                    key: w.key.to_string(),
                    detail: ErrorDetail::new(e.to_string()),
                }
            })?)),
        };
        Ok(Self {
            key: w.key.into_owned(),
            value,
            flags: w.flags,
            create_index: w.create_index,
            modify_index: w.modify_index,
            lock_index: w.lock_index,
            session: match w.session {
                Some(s) if !s.is_empty() => Some(SessionId::from_server(s.into_owned())),
                _ => None,
            },
        })
    }

    /// The wire form (`DirEntry` JSON), with the value base64-encoded.
    pub fn to_wire(&self) -> wire::KvEntry {
        wire::KvEntry {
            lock_index: self.lock_index,
            key: self.key.clone(),
            flags: self.flags,
            value: self.value.as_ref().map(|v| B64.encode(v)),
            session: self.session.as_ref().map(|s| s.as_str().to_owned()),
            create_index: self.create_index,
            modify_index: self.modify_index,
        }
    }
}

/// Borrowing wire form used by the parsers.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireEntry<'a> {
    #[serde(default)]
    lock_index: u64,
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(default)]
    flags: u64,
    #[serde(default, borrow)]
    value: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    session: Option<Cow<'a, str>>,
    #[serde(default)]
    create_index: u64,
    #[serde(default)]
    modify_index: u64,
}

/// Consul's JSON shapes, for servers and tests that produce them.
pub mod wire {
    use serde::{Deserialize, Serialize};

    /// A `DirEntry` exactly as Consul serialises it, fields in Consul's order.
    #[non_exhaustive]
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct KvEntry {
        /// `LockIndex`.
        pub lock_index: u64,
        /// `Key`.
        pub key: String,
        /// `Flags`.
        pub flags: u64,
        /// `Value`: base64 (standard alphabet, padded) or `null`.
        pub value: Option<String>,
        /// `Session`: omitted when empty.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub session: Option<String>,
        /// `CreateIndex`.
        pub create_index: u64,
        /// `ModifyIndex`.
        pub modify_index: u64,
    }

    impl KvEntry {
        /// An entry with the given key and raw value (encoded here) and zero indexes.
        pub fn new(key: impl Into<String>, value: Option<&[u8]>) -> Self {
            use base64::Engine as _;
            Self {
                lock_index: 0,
                key: key.into(),
                flags: 0,
                value: value.map(|v| super::B64.encode(v)),
                session: None,
                create_index: 0,
                modify_index: 0,
            }
        }
    }

    /// One entry of `consul kv export` JSON.
    #[non_exhaustive]
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ExportEntry {
        /// The key.
        pub key: String,
        /// The flags.
        #[serde(default)]
        pub flags: u64,
        /// The value, base64; `""` for a null value.
        pub value: String,
    }

    impl ExportEntry {
        /// An export entry.
        pub fn new(key: impl Into<String>, flags: u64, value: impl Into<String>) -> Self {
            Self {
                key: key.into(),
                flags,
                value: value.into(),
            }
        }
    }
}

/// A CAS condition for [`Set`]: no magic zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    /// Write only if the key does not exist (`?cas=0`).
    Absent,
    /// Write only if the key's modify index is still this one (`?cas=N`).
    ModifyIndex(Index),
}

impl From<Index> for Cas {
    fn from(i: Index) -> Self {
        Self::ModifyIndex(i)
    }
}

impl From<&KvPair> for Cas {
    /// The pair's modify index; a `get-or-empty` echo (index `0`) means "absent".
    fn from(p: &KvPair) -> Self {
        Index::new_nonzero(p.modify_index).map_or(Self::Absent, Self::ModifyIndex)
    }
}

impl From<Option<&KvPair>> for Cas {
    /// `None` (the key was not found) means "create only".
    fn from(p: Option<&KvPair>) -> Self {
        p.map_or(Self::Absent, Self::from)
    }
}

impl Cas {
    fn raw(self) -> u64 {
        match self {
            Self::Absent => 0,
            Self::ModifyIndex(i) => i.get(),
        }
    }
}

/// The `true` / `false` answer of a KV write.
#[must_use = "a CAS, acquire, release or CAS delete may have been rejected"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Consul answered `true`.
    Applied,
    /// Consul answered `false`: a CAS mismatch, a held lock, a lock-delay, a failed release.
    Rejected,
}

impl WriteOutcome {
    /// Whether the write was applied.
    pub fn is_applied(self) -> bool {
        self == Self::Applied
    }
}

impl From<bool> for WriteOutcome {
    fn from(b: bool) -> Self {
        if b {
            Self::Applied
        } else {
            Self::Rejected
        }
    }
}

impl From<WriteOutcome> for bool {
    fn from(o: WriteOutcome) -> Self {
        o.is_applied()
    }
}

fn kv_path(key: &str) -> String {
    format!("/v1/kv/{}", encode_key(key))
}

fn read_request(
    key: &str,
    usage: KeyUse,
    opts: &ReadOptions,
    cx: &RequestContext,
    mode: &[(&str, Option<&str>)],
) -> Result<Request<Bytes>, BuildError> {
    check_key(key, usage)?;
    let mut q = Query::new();
    for (name, value) in mode {
        match value {
            None => q.flag(name),
            Some(v) => q.pair(name, v),
        };
    }
    opts.write_query(cx, &mut q)?;
    request(
        Method::GET,
        kv_path(key) + &q.finish(),
        opts.common.token(cx),
        None,
    )
}

/// Parses meta and maps `404` to `None`.
fn read_response(resp: &Response<Bytes>) -> Result<(QueryMeta, bool), ResponseError> {
    expect_status(resp, &[StatusCode::NOT_FOUND])?;
    let meta = QueryMeta::from_headers(resp.headers())?;
    Ok((meta, resp.status() == StatusCode::NOT_FOUND))
}

fn parse_entries(body: &[u8]) -> Result<Vec<KvPair>, ResponseError> {
    let wire: Vec<WireEntry<'_>> = parse_json(body)?;
    wire.into_iter().map(KvPair::from_wire).collect()
}

macro_rules! read_options_methods {
    () => {
        /// Replaces the read options.
        pub fn with_options(mut self, opts: ReadOptions) -> Self {
            self.opts = opts;
            self
        }

        /// The read options, to change in place.
        pub fn options_mut(&mut self) -> &mut ReadOptions {
            &mut self.opts
        }

        /// The read options.
        pub fn options(&self) -> &ReadOptions {
            &self.opts
        }

        /// Sets the datacenter.
        pub fn dc(mut self, dc: impl Into<String>) -> Self {
            self.opts.common.datacenter = Some(dc.into());
            self
        }

        /// Sets the consistency mode.
        pub fn consistency(mut self, c: Consistency) -> Self {
            self.opts.consistency = c;
            self
        }

        /// Makes this a blocking read: wait until the index passes `index`, at most `wait`.
        pub fn block(mut self, index: Index, wait: Duration) -> Self {
            self.opts.index = Some(index);
            self.opts.wait = Some(wait);
            self
        }

        /// Sets the per-call token.
        pub fn token(mut self, token: Token) -> Self {
            self.opts.common.token = Some(token);
            self
        }
    };
}

macro_rules! write_options_methods {
    () => {
        /// Replaces the write options.
        pub fn with_options(mut self, opts: WriteOptions) -> Self {
            self.opts = opts;
            self
        }

        /// The write options, to change in place.
        pub fn options_mut(&mut self) -> &mut WriteOptions {
            &mut self.opts
        }

        /// Sets the datacenter.
        pub fn dc(mut self, dc: impl Into<String>) -> Self {
            self.opts.datacenter = Some(dc.into());
            self
        }

        /// Sets the per-call token.
        pub fn token(mut self, token: Token) -> Self {
            self.opts.token = Some(token);
            self
        }
    };
}

macro_rules! blocking_read {
    ($ty:ty, $value:ty) => {
        impl Blocking for $ty {
            type Value = $value;
            fn set_block(&mut self, index: Option<Index>, wait: Duration) {
                self.opts.index = index;
                self.opts.wait = index.map(|_| wait);
            }
        }
    };
}

mod read;
mod write;

pub use read::{Get, GetRaw, ListItems, ListKeys};
pub use write::{Delete, DeleteMode, Set, SetMode};

/// Serialises the entries the way Consul does (compact JSON array of `DirEntry`).
pub fn encode_entries(entries: &[KvPair]) -> Result<Vec<u8>, serde_json::Error> {
    let wire: Vec<wire::KvEntry> = entries.iter().map(KvPair::to_wire).collect();
    serde_json::to_vec(&wire)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn check(req: Request<Bytes>, method: &str, uri: &str) {
        assert_eq!(req.method().as_str(), method, "{uri}");
        assert_eq!(req.uri().to_string(), uri);
    }

    #[test]
    fn request_table() {
        let cx = RequestContext::new();
        let sid = SessionId::new("adf4238a-882b-9ddc-4a9d-5b6758e4159e").unwrap();
        let idx = Index::new(42);
        let cases: Vec<(Request<Bytes>, &str, &str)> = vec![
            (Get::new("foo").build(&cx).unwrap(), "GET", "/v1/kv/foo"),
            (
                Get::new("a b?#%")
                    .consistency(Consistency::Stale)
                    .build(&cx)
                    .unwrap(),
                "GET",
                "/v1/kv/a%20b%3F%23%25?stale",
            ),
            (
                Get::new("k")
                    .consistency(Consistency::Consistent)
                    .block(idx, Duration::from_secs(30))
                    .build(&cx)
                    .unwrap(),
                "GET",
                "/v1/kv/k?consistent&index=42&wait=30s",
            ),
            (GetRaw::new("k").build(&cx).unwrap(), "GET", "/v1/kv/k?raw"),
            (
                ListItems::new("").build(&cx).unwrap(),
                "GET",
                "/v1/kv/?recurse",
            ),
            (
                ListItems::new("my/prefix/").dc("dc2").build(&cx).unwrap(),
                "GET",
                "/v1/kv/my/prefix/?recurse&dc=dc2",
            ),
            (
                ListKeys::new("p/").build(&cx).unwrap(),
                "GET",
                "/v1/kv/p/?keys",
            ),
            (
                ListKeys::new("p/").separator("/").build(&cx).unwrap(),
                "GET",
                "/v1/kv/p/?keys&separator=%2F",
            ),
            (
                ListKeys::new("p/").separator("").build(&cx).unwrap(),
                "GET",
                "/v1/kv/p/?keys",
            ),
            (Set::new("k", "v").build(&cx).unwrap(), "PUT", "/v1/kv/k"),
            (
                Set::new("k", "v").flags(7).build(&cx).unwrap(),
                "PUT",
                "/v1/kv/k?flags=7",
            ),
            (
                Set::new("k", "v").cas(Cas::Absent).build(&cx).unwrap(),
                "PUT",
                "/v1/kv/k?cas=0",
            ),
            (
                Set::new("k", "v").cas(idx).build(&cx).unwrap(),
                "PUT",
                "/v1/kv/k?cas=42",
            ),
            (
                Set::acquire("k", sid.clone(), "v").build(&cx).unwrap(),
                "PUT",
                "/v1/kv/k?acquire=adf4238a-882b-9ddc-4a9d-5b6758e4159e",
            ),
            (
                Set::release("k", sid, "").flags(1).build(&cx).unwrap(),
                "PUT",
                "/v1/kv/k?flags=1&release=adf4238a-882b-9ddc-4a9d-5b6758e4159e",
            ),
            (Delete::new("k").build(&cx).unwrap(), "DELETE", "/v1/kv/k"),
            (
                Delete::tree("").build(&cx).unwrap(),
                "DELETE",
                "/v1/kv/?recurse",
            ),
            (
                Delete::new("k").cas(idx).build(&cx).unwrap(),
                "DELETE",
                "/v1/kv/k?cas=42",
            ),
        ];
        for (req, method, uri) in cases {
            check(req, method, uri);
        }
    }

    #[test]
    fn context_defaults_and_overrides() {
        let cx = RequestContext::new()
            .with_datacenter("dc1")
            .with_token(Token::new("ctx-token").unwrap());
        let req = Get::new("k").build(&cx).unwrap();
        assert_eq!(req.uri(), "/v1/kv/k?dc=dc1");
        assert_eq!(req.headers()["x-consul-token"], "ctx-token");
        assert!(req.headers()["x-consul-token"].is_sensitive());
        let req = Set::new("k", "v")
            .dc("dc2")
            .token(Token::new("call-token").unwrap())
            .build(&cx)
            .unwrap();
        assert_eq!(req.uri(), "/v1/kv/k?dc=dc2");
        assert_eq!(req.headers()["x-consul-token"], "call-token");
        assert_eq!(req.headers()["content-type"], "application/octet-stream");
        assert_eq!(req.body().as_ref(), b"v");
        // No token: no header at all, never an empty one.
        let req = Get::new("k").build(&RequestContext::new()).unwrap();
        assert!(req.headers().get("x-consul-token").is_none());
        assert!(!req.uri().to_string().contains("token"));
    }

    #[test]
    fn ns_and_partition_are_sent_when_set() {
        let mut opts = ReadOptions::default();
        opts.common.namespace = Some("team a".into());
        opts.common.partition = Some("p1".into());
        let req = ListItems::new("x/")
            .with_options(opts)
            .build(&RequestContext::new())
            .unwrap();
        assert_eq!(req.uri(), "/v1/kv/x/?recurse&ns=team%20a&partition=p1");
    }

    #[test]
    fn wait_without_index_is_not_sent() {
        let mut g = Get::new("k");
        g.options_mut().wait = Some(Duration::from_secs(5));
        assert_eq!(g.build(&RequestContext::new()).unwrap().uri(), "/v1/kv/k");
        assert_eq!(g.blocking_wait(), None);
    }

    #[test]
    fn invalid_keys_are_refused_before_io() {
        let cx = RequestContext::new();
        for key in ["", "/lead", "a//b", "a/../b", "bad\u{0}"] {
            assert!(
                matches!(Get::new(key).build(&cx), Err(BuildError::InvalidKey { .. })),
                "{key:?}"
            );
            assert!(matches!(
                Set::new(key, "v").build(&cx),
                Err(BuildError::InvalidKey { .. })
            ));
            assert!(matches!(
                Delete::new(key).build(&cx),
                Err(BuildError::InvalidKey { .. })
            ));
        }
        assert!(ListItems::new("").build(&cx).is_ok());
        assert!(Delete::tree("").build(&cx).is_ok());
        assert!(matches!(
            Get::new("k").dc("").build(&cx),
            Err(BuildError::InvalidOption {
                name: "datacenter",
                ..
            })
        ));
        assert!(matches!(
            Get::new("k").dc("a\nb").build(&cx),
            Err(BuildError::InvalidOption { .. })
        ));
    }

    #[test]
    fn cas_from_pairs() {
        let mut p = KvPair {
            key: "k".into(),
            value: None,
            flags: 0,
            create_index: 5,
            modify_index: 9,
            lock_index: 0,
            session: None,
        };
        assert_eq!(Cas::from(&p), Cas::ModifyIndex(Index::new(9)));
        p.modify_index = 0;
        assert_eq!(Cas::from(&p), Cas::Absent);
        assert_eq!(Cas::from(None::<&KvPair>), Cas::Absent);
    }

    #[test]
    fn wire_round_trip_keeps_consul_field_order() {
        let p = KvPair {
            key: "k".into(),
            value: Some(Bytes::from_static(b"test")),
            flags: 3,
            create_index: 100,
            modify_index: 200,
            lock_index: 1,
            session: None,
        };
        let json = String::from_utf8(encode_entries(std::slice::from_ref(&p)).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"[{"LockIndex":1,"Key":"k","Flags":3,"Value":"dGVzdA==","CreateIndex":100,"ModifyIndex":200}]"#
        );
        let back = parse_entries(json.as_bytes()).unwrap();
        assert_eq!(back, vec![p]);
    }
}
