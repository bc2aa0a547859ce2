//! `PUT /v1/txn`: several KV operations applied atomically at one Raft index.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use crate::encode::{check_key, KeyUse, Query};
use crate::error::{BuildError, ErrorDetail, ResponseError, TxnErrors, TxnOpError};
use crate::kv::{Cas, KvPair, WireEntry, B64};
use crate::op::{expect_status, parse_json, request, OpKind, Operation};
use crate::session::SessionId;
use crate::value::IntoValue;
use crate::{Consistency, Index, RequestContext, WriteOptions};

/// A KV transaction verb (Consul's `Verb` field).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `set`: upsert.
    Set,
    /// `cas`: upsert if the modify index matches (`0`: only if absent).
    Cas,
    /// `lock`: acquire for a session.
    Lock,
    /// `unlock`: release for a session.
    Unlock,
    /// `get`: read one key; fails the transaction if absent.
    Get,
    /// `get-or-empty`: read one key; an absent key gives an empty entry (Consul ≥ 1.14).
    GetOrEmpty,
    /// `get-tree`: read every key under a prefix.
    GetTree,
    /// `check-index`: fail unless the modify index matches.
    CheckIndex,
    /// `check-session`: fail unless the key is locked by the session.
    CheckSession,
    /// `check-not-exists`: fail if the key exists.
    CheckNotExists,
    /// `delete`: delete one key.
    Delete,
    /// `delete-tree`: delete a prefix.
    DeleteTree,
    /// `delete-cas`: delete if the modify index matches.
    DeleteCas,
}

impl Verb {
    /// Consul's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Set => "set",
            Self::Cas => "cas",
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::Get => "get",
            Self::GetOrEmpty => "get-or-empty",
            Self::GetTree => "get-tree",
            Self::CheckIndex => "check-index",
            Self::CheckSession => "check-session",
            Self::CheckNotExists => "check-not-exists",
            Self::Delete => "delete",
            Self::DeleteTree => "delete-tree",
            Self::DeleteCas => "delete-cas",
        }
    }

    /// Parses Consul's spelling.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "set" => Self::Set,
            "cas" => Self::Cas,
            "lock" => Self::Lock,
            "unlock" => Self::Unlock,
            "get" => Self::Get,
            "get-or-empty" => Self::GetOrEmpty,
            "get-tree" => Self::GetTree,
            "check-index" => Self::CheckIndex,
            "check-session" => Self::CheckSession,
            "check-not-exists" => Self::CheckNotExists,
            "delete" => Self::Delete,
            "delete-tree" => Self::DeleteTree,
            "delete-cas" => Self::DeleteCas,
            _ => return None,
        })
    }

    /// Whether the verb changes state (Consul's `isWrite`).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::Set
                | Self::Cas
                | Self::Lock
                | Self::Unlock
                | Self::Delete
                | Self::DeleteTree
                | Self::DeleteCas
        )
    }
}

/// One KV operation of a transaction. Build it with the verb-named constructors.
///
/// ```
/// use consul_kv_proto::txn::TxnOp;
/// let ops = [TxnOp::check_not_exists("lock"), TxnOp::set("lock", "me"), TxnOp::get("lock")];
/// assert_eq!(ops.len(), 3);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOp {
    /// The verb.
    pub verb: Verb,
    /// The key (a prefix for the tree verbs).
    pub key: String,
    /// The value for writes.
    pub value: Option<Bytes>,
    /// The flags for writes.
    pub flags: u64,
    /// The index for `cas`, `check-index` and `delete-cas`.
    pub index: u64,
    /// The session for `lock`, `unlock` and `check-session`.
    pub session: Option<SessionId>,
}

impl TxnOp {
    fn new(verb: Verb, key: impl Into<String>) -> Self {
        Self {
            verb,
            key: key.into(),
            value: None,
            flags: 0,
            index: 0,
            session: None,
        }
    }

    /// `set`.
    pub fn set(key: impl Into<String>, value: impl IntoValue) -> Self {
        Self {
            value: Some(value.into_value()),
            ..Self::new(Verb::Set, key)
        }
    }

    /// `cas` with a typed CAS condition.
    pub fn cas(key: impl Into<String>, value: impl IntoValue, cas: impl Into<Cas>) -> Self {
        let index = match cas.into() {
            Cas::Absent => 0,
            Cas::ModifyIndex(i) => i.get(),
        };
        Self {
            value: Some(value.into_value()),
            index,
            ..Self::new(Verb::Cas, key)
        }
    }

    /// `lock` (acquire). Replaces the value, like `?acquire`.
    pub fn lock(key: impl Into<String>, value: impl IntoValue, session: SessionId) -> Self {
        Self {
            value: Some(value.into_value()),
            session: Some(session),
            ..Self::new(Verb::Lock, key)
        }
    }

    /// `unlock` (release). Replaces the value, like `?release`.
    pub fn unlock(key: impl Into<String>, value: impl IntoValue, session: SessionId) -> Self {
        Self {
            value: Some(value.into_value()),
            session: Some(session),
            ..Self::new(Verb::Unlock, key)
        }
    }

    /// `get`.
    pub fn get(key: impl Into<String>) -> Self {
        Self::new(Verb::Get, key)
    }

    /// `get-or-empty`.
    pub fn get_or_empty(key: impl Into<String>) -> Self {
        Self::new(Verb::GetOrEmpty, key)
    }

    /// `get-tree`.
    pub fn get_tree(prefix: impl Into<String>) -> Self {
        Self::new(Verb::GetTree, prefix)
    }

    /// `check-index`.
    pub fn check_index(key: impl Into<String>, index: Index) -> Self {
        Self {
            index: index.get(),
            ..Self::new(Verb::CheckIndex, key)
        }
    }

    /// `check-session`.
    pub fn check_session(key: impl Into<String>, session: SessionId) -> Self {
        Self {
            session: Some(session),
            ..Self::new(Verb::CheckSession, key)
        }
    }

    /// `check-not-exists`.
    pub fn check_not_exists(key: impl Into<String>) -> Self {
        Self::new(Verb::CheckNotExists, key)
    }

    /// `delete`.
    pub fn delete(key: impl Into<String>) -> Self {
        Self::new(Verb::Delete, key)
    }

    /// `delete-tree`.
    pub fn delete_tree(prefix: impl Into<String>) -> Self {
        Self::new(Verb::DeleteTree, prefix)
    }

    /// `delete-cas`.
    pub fn delete_cas(key: impl Into<String>, index: Index) -> Self {
        Self {
            index: index.get(),
            ..Self::new(Verb::DeleteCas, key)
        }
    }

    /// Sets the flags of a write.
    pub fn with_flags(mut self, flags: u64) -> Self {
        self.flags = flags;
        self
    }

    fn to_wire(&self) -> wire::TxnKvOp {
        wire::TxnKvOp {
            verb: self.verb.as_str().to_owned(),
            key: self.key.clone(),
            value: self.value.as_ref().map(|v| B64.encode(v)),
            flags: self.flags,
            index: self.index,
            session: self
                .session
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// Consul's transaction JSON shapes, for servers and tests that produce them.
pub mod wire {
    use serde::{Deserialize, Serialize};

    use crate::kv::wire::KvEntry;

    /// The `KV` member of one request operation.
    #[non_exhaustive]
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct TxnKvOp {
        /// `Verb`.
        pub verb: String,
        /// `Key`.
        #[serde(default)]
        pub key: String,
        /// `Value` (base64).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub value: Option<String>,
        /// `Flags`.
        #[serde(default, skip_serializing_if = "is_zero")]
        pub flags: u64,
        /// `Index`.
        #[serde(default, skip_serializing_if = "is_zero")]
        pub index: u64,
        /// `Session`.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub session: String,
    }

    fn is_zero(n: &u64) -> bool {
        *n == 0
    }

    /// One element of the request array.
    #[non_exhaustive]
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TxnOp {
        /// `KV`.
        #[serde(rename = "KV")]
        pub kv: TxnKvOp,
    }

    /// One element of `Results`.
    #[non_exhaustive]
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TxnResult {
        /// `KV`.
        #[serde(rename = "KV")]
        pub kv: KvEntry,
    }

    impl TxnResult {
        /// Wraps an entry.
        pub fn new(kv: KvEntry) -> Self {
            Self { kv }
        }
    }

    /// One element of `Errors`.
    #[non_exhaustive]
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TxnError {
        /// `OpIndex`.
        #[serde(rename = "OpIndex")]
        pub op_index: usize,
        /// `What`.
        #[serde(rename = "What")]
        pub what: String,
    }

    impl TxnError {
        /// An error for operation `op_index`.
        pub fn new(op_index: usize, what: impl Into<String>) -> Self {
            Self {
                op_index,
                what: what.into(),
            }
        }
    }

    /// The response body (`200` and `409`).
    #[non_exhaustive]
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TxnResponse {
        /// `Results`.
        #[serde(rename = "Results")]
        pub results: Option<Vec<TxnResult>>,
        /// `Errors`.
        #[serde(rename = "Errors")]
        pub errors: Option<Vec<TxnError>>,
    }

    impl TxnResponse {
        /// A response.
        pub fn new(results: Option<Vec<TxnResult>>, errors: Option<Vec<TxnError>>) -> Self {
            Self { results, errors }
        }
    }
}

#[derive(Deserialize)]
struct WireResponse<'a> {
    #[serde(rename = "Results", default, borrow)]
    results: Option<Vec<WireResult<'a>>>,
    #[serde(rename = "Errors", default)]
    errors: Option<Vec<wire::TxnError>>,
}

#[derive(Deserialize)]
struct WireResult<'a> {
    #[serde(rename = "KV", default, borrow)]
    kv: Option<WireEntry<'a>>,
}

/// The result of a committed transaction.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    /// One entry per operation that returns one (`get`, `set`, …; `get-tree` may return many,
    /// deletes and `check-not-exists` none), in request order.
    pub results: Vec<KvPair>,
    /// `X-Consul-KnownLeader`, sent on read-only transactions.
    pub known_leader: Option<bool>,
    /// `X-Consul-LastContact`, sent on read-only transactions.
    pub last_contact: Option<Duration>,
}

/// `PUT /v1/txn`. A `409` is [`ResponseError::TxnRolledBack`] with every per-op error.
///
/// ```
/// use consul_kv_proto::{txn::{Txn, TxnOp}, Operation, RequestContext};
/// let txn = Txn::new(vec![TxnOp::set("a", "1"), TxnOp::get("a")]);
/// let req = txn.build(&RequestContext::new()).unwrap();
/// assert_eq!(req.uri(), "/v1/txn");
/// assert_eq!(
///     req.body().as_ref(),
///     br#"[{"KV":{"Verb":"set","Key":"a","Value":"MQ=="}},{"KV":{"Verb":"get","Key":"a"}}]"#
/// );
/// ```
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    ops: Vec<TxnOp>,
    consistency: Consistency,
    opts: WriteOptions,
}

impl Txn {
    /// A transaction of `ops`.
    pub fn new(ops: Vec<TxnOp>) -> Self {
        Self {
            ops,
            consistency: Consistency::Default,
            opts: WriteOptions::default(),
        }
    }

    /// Appends an operation.
    pub fn push(&mut self, op: TxnOp) {
        self.ops.push(op);
    }

    /// The operations.
    pub fn ops(&self) -> &[TxnOp] {
        &self.ops
    }

    /// Consistency for a read-only transaction (ignored by Consul when any op writes).
    pub fn consistency(mut self, c: Consistency) -> Self {
        self.consistency = c;
        self
    }

    /// Sets the datacenter.
    pub fn dc(mut self, dc: impl Into<String>) -> Self {
        self.opts.datacenter = Some(dc.into());
        self
    }

    /// The write options, to change in place.
    pub fn options_mut(&mut self) -> &mut WriteOptions {
        &mut self.opts
    }

    fn is_read_only(&self) -> bool {
        !self.ops.iter().any(|o| o.verb.is_write())
    }
}

impl Operation for Txn {
    type Output = TxnResponse;

    fn build(&self, cx: &RequestContext) -> Result<Request<Bytes>, BuildError> {
        let mut wire_ops = Vec::with_capacity(self.ops.len());
        for op in &self.ops {
            let usage = if op.verb == Verb::DeleteTree {
                KeyUse::Prefix
            } else {
                KeyUse::Single
            };
            check_key(&op.key, usage)?;
            wire_ops.push(wire::TxnOp { kv: op.to_wire() });
        }
        let mut q = Query::new();
        self.opts.write_query(cx, &mut q)?;
        if self.is_read_only() {
            self.consistency.write_query(&mut q);
        }
        let body = serde_json::to_vec(&wire_ops).map_err(BuildError::Json)?;
        request(
            Method::PUT,
            format!("/v1/txn{}", q.finish()),
            self.opts.token(cx),
            Some((Bytes::from(body), "application/json")),
        )
    }

    fn parse(&self, resp: Response<Bytes>) -> Result<Self::Output, ResponseError> {
        if resp.status() == StatusCode::CONFLICT {
            let body: WireResponse<'_> = parse_json(resp.body())?;
            let errors: Vec<TxnOpError> = body
                .errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| TxnOpError {
                    op_index: e.op_index,
                    what: e.what,
                })
                .collect();
            if errors.is_empty() {
                return Err(ResponseError::unexpected("409 without Errors"));
            }
            return Err(ResponseError::TxnRolledBack {
                errors: TxnErrors(errors),
            });
        }
        expect_status(&resp, &[])?;
        let known_leader = match resp.headers().get("x-consul-knownleader") {
            None => None,
            Some(v) => match v.to_str().map(str::trim) {
                Ok("true") => Some(true),
                Ok("false") => Some(false),
                _ => {
                    return Err(ResponseError::InvalidHeader {
                        name: "X-Consul-KnownLeader",
                        detail: ErrorDetail::new("not true or false"),
                    })
                }
            },
        };
        let last_contact = match resp.headers().get("x-consul-lastcontact") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(Duration::from_millis)
                    .ok_or(ResponseError::InvalidHeader {
                        name: "X-Consul-LastContact",
                        detail: ErrorDetail::new("not a number of milliseconds"),
                    })?,
            ),
        };
        let body: WireResponse<'_> = parse_json(resp.body())?;
        if let Some(errors) = body.errors.filter(|e| !e.is_empty()) {
            return Err(ResponseError::TxnRolledBack {
                errors: TxnErrors(
                    errors
                        .into_iter()
                        .map(|e| TxnOpError {
                            op_index: e.op_index,
                            what: e.what,
                        })
                        .collect(),
                ),
            });
        }
        let results = body
            .results
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.kv)
            .map(KvPair::from_wire)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TxnResponse {
            results,
            known_leader,
            last_contact,
        })
    }

    fn kind(&self) -> OpKind {
        if self.is_read_only() {
            OpKind::Read
        } else {
            OpKind::Write
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid() -> SessionId {
        SessionId::new("adf4238a-882b-9ddc-4a9d-5b6758e4159e").unwrap()
    }

    #[test]
    fn every_verb_encodes() {
        let i = Index::new(7);
        let table: Vec<(TxnOp, &str)> = vec![
            (
                TxnOp::set("k", "v").with_flags(3),
                r#"{"Verb":"set","Key":"k","Value":"dg==","Flags":3}"#,
            ),
            (
                TxnOp::cas("k", "v", Cas::Absent),
                r#"{"Verb":"cas","Key":"k","Value":"dg=="}"#,
            ),
            (
                TxnOp::cas("k", "v", i),
                r#"{"Verb":"cas","Key":"k","Value":"dg==","Index":7}"#,
            ),
            (
                TxnOp::lock("k", "v", sid()),
                r#"{"Verb":"lock","Key":"k","Value":"dg==","Session":"adf4238a-882b-9ddc-4a9d-5b6758e4159e"}"#,
            ),
            (
                TxnOp::unlock("k", "", sid()),
                r#"{"Verb":"unlock","Key":"k","Value":"","Session":"adf4238a-882b-9ddc-4a9d-5b6758e4159e"}"#,
            ),
            (TxnOp::get("k"), r#"{"Verb":"get","Key":"k"}"#),
            (
                TxnOp::get_or_empty("k"),
                r#"{"Verb":"get-or-empty","Key":"k"}"#,
            ),
            (TxnOp::get_tree("p/"), r#"{"Verb":"get-tree","Key":"p/"}"#),
            (
                TxnOp::check_index("k", i),
                r#"{"Verb":"check-index","Key":"k","Index":7}"#,
            ),
            (
                TxnOp::check_session("k", sid()),
                r#"{"Verb":"check-session","Key":"k","Session":"adf4238a-882b-9ddc-4a9d-5b6758e4159e"}"#,
            ),
            (
                TxnOp::check_not_exists("k"),
                r#"{"Verb":"check-not-exists","Key":"k"}"#,
            ),
            (TxnOp::delete("k"), r#"{"Verb":"delete","Key":"k"}"#),
            (TxnOp::delete_tree(""), r#"{"Verb":"delete-tree","Key":""}"#),
            (
                TxnOp::delete_cas("k", i),
                r#"{"Verb":"delete-cas","Key":"k","Index":7}"#,
            ),
        ];
        for (op, want) in table {
            assert_eq!(serde_json::to_string(&op.to_wire()).unwrap(), want);
            assert_eq!(Verb::from_name(op.verb.as_str()), Some(op.verb));
        }
    }

    #[test]
    fn kind_and_consistency_follow_the_verbs() {
        let cx = RequestContext::new();
        let ro =
            Txn::new(vec![TxnOp::get("a"), TxnOp::get_tree("b/")]).consistency(Consistency::Stale);
        assert_eq!(ro.kind(), OpKind::Read);
        assert_eq!(ro.build(&cx).unwrap().uri(), "/v1/txn?stale");
        let rw =
            Txn::new(vec![TxnOp::get("a"), TxnOp::delete("a")]).consistency(Consistency::Stale);
        assert_eq!(rw.kind(), OpKind::Write);
        assert_eq!(rw.build(&cx).unwrap().uri(), "/v1/txn");
        assert_eq!(
            rw.build(&cx).unwrap().headers()["content-type"],
            "application/json"
        );
    }

    #[test]
    fn keys_are_checked() {
        let cx = RequestContext::new();
        assert!(Txn::new(vec![TxnOp::get("")]).build(&cx).is_err());
        assert!(Txn::new(vec![TxnOp::get_tree("")]).build(&cx).is_err());
        assert!(Txn::new(vec![TxnOp::delete_tree("")]).build(&cx).is_ok());
        assert!(Txn::new(vec![TxnOp::set("/lead", "v")]).build(&cx).is_err());
    }
}
