//! Session operations: [`CreateSession`], [`DestroySession`], [`ReadSession`],
//! [`ListNodeSessions`], [`ListSessions`] and [`RenewSession`].

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

use crate::encode::{encode_segment, Query};
use crate::error::{BuildError, ResponseError};
use crate::op::{expect_status, parse_bool_body, parse_json, request, OpKind, Operation};
use crate::watch::Blocking;
use crate::{
    format_go_duration, parse_go_duration, Index, Indexed, QueryMeta, ReadOptions, RequestContext,
    WriteOptions,
};

/// A session's ID (a UUID string chosen by Consul).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// Wraps an ID, refusing an empty one or one with control characters or `/`.
    ///
    /// # Errors
    /// [`BuildError::InvalidOption`] named `session`.
    pub fn new(id: impl Into<String>) -> Result<Self, BuildError> {
        let id = id.into();
        if id.is_empty() {
            return Err(BuildError::option("session", "empty"));
        }
        if id.chars().any(|c| c.is_control() || c == '/') {
            return Err(BuildError::option(
                "session",
                "contains '/' or a control character",
            ));
        }
        Ok(Self(id))
    }

    pub(crate) fn from_server(id: String) -> Self {
        Self(id)
    }

    /// The ID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<Self> for SessionId {
    fn as_ref(&self) -> &Self {
        self
    }
}

/// What happens to a session's locks when it is invalidated.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behavior {
    /// Release the locks; the keys stay (Consul's default).
    #[default]
    Release,
    /// Delete the locked keys (ephemeral keys).
    Delete,
}

impl Behavior {
    /// Consul's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Delete => "delete",
        }
    }
}

/// A service health check a session is tied to.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCheck {
    /// The check ID.
    pub id: String,
    /// Its namespace (Consul Enterprise), if any.
    pub namespace: Option<String>,
}

impl ServiceCheck {
    /// A service check by ID.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            namespace: None,
        }
    }
}

/// A session as Consul describes it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    /// The ID.
    pub id: SessionId,
    /// The name given at creation.
    pub name: String,
    /// The node the session belongs to.
    pub node: String,
    /// How long a released lock cannot be re-acquired after invalidation.
    pub lock_delay: Duration,
    /// What happens to held keys on invalidation.
    pub behavior: Behavior,
    /// The TTL, if the session has one. Consul invalidates after up to twice this.
    pub ttl: Option<Duration>,
    /// Node checks (`serfHealth` by default).
    pub node_checks: Vec<String>,
    /// Service checks.
    pub service_checks: Vec<ServiceCheck>,
    /// Creation index.
    pub create_index: u64,
    /// Last-change index.
    pub modify_index: u64,
}

/// Consul's session JSON shapes, for servers and tests that produce them.
pub mod wire {
    use serde::{Deserialize, Serialize};

    /// A `ServiceCheck` reference.
    #[non_exhaustive]
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ServiceCheck {
        /// `ID`.
        #[serde(rename = "ID")]
        pub id: String,
        /// `Namespace`.
        #[serde(rename = "Namespace", default)]
        pub namespace: String,
    }

    impl ServiceCheck {
        /// A reference by ID.
        pub fn new(id: impl Into<String>) -> Self {
            Self {
                id: id.into(),
                namespace: String::new(),
            }
        }
    }

    /// A session exactly as Consul serialises it, fields in Consul's order.
    #[non_exhaustive]
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Session {
        /// `ID`.
        #[serde(rename = "ID")]
        pub id: String,
        /// `Name`.
        #[serde(rename = "Name", default)]
        pub name: String,
        /// `Node`.
        #[serde(rename = "Node", default)]
        pub node: String,
        /// `LockDelay` in nanoseconds.
        #[serde(rename = "LockDelay", default)]
        pub lock_delay: u64,
        /// `Behavior`.
        #[serde(rename = "Behavior", default)]
        pub behavior: String,
        /// `TTL` as given at creation (`"30s"`, or `""`).
        #[serde(rename = "TTL", default)]
        pub ttl: String,
        /// `NodeChecks`.
        #[serde(rename = "NodeChecks", default)]
        pub node_checks: Option<Vec<String>>,
        /// `ServiceChecks`.
        #[serde(rename = "ServiceChecks", default)]
        pub service_checks: Option<Vec<ServiceCheck>>,
        /// `CreateIndex`.
        #[serde(rename = "CreateIndex", default)]
        pub create_index: u64,
        /// `ModifyIndex`.
        #[serde(rename = "ModifyIndex", default)]
        pub modify_index: u64,
    }

    impl Session {
        /// A session with the given ID and node; other fields empty.
        pub fn new(id: impl Into<String>, node: impl Into<String>) -> Self {
            Self {
                id: id.into(),
                name: String::new(),
                node: node.into(),
                lock_delay: 0,
                behavior: "release".into(),
                ttl: String::new(),
                node_checks: None,
                service_checks: None,
                create_index: 0,
                modify_index: 0,
            }
        }
    }

    /// The body of `PUT /v1/session/create`.
    #[non_exhaustive]
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CreateRequest {
        /// `Name`.
        #[serde(rename = "Name", skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// `Node`.
        #[serde(rename = "Node", skip_serializing_if = "Option::is_none")]
        pub node: Option<String>,
        /// `Checks` (legacy: node checks).
        #[serde(rename = "Checks", skip_serializing_if = "Option::is_none")]
        pub checks: Option<Vec<String>>,
        /// `NodeChecks`.
        #[serde(rename = "NodeChecks", skip_serializing_if = "Option::is_none")]
        pub node_checks: Option<Vec<String>>,
        /// `ServiceChecks`.
        #[serde(rename = "ServiceChecks", skip_serializing_if = "Option::is_none")]
        pub service_checks: Option<Vec<ServiceCheck>>,
        /// `LockDelay`: a Go duration string, or a number (nanoseconds; `< 1000` means seconds).
        #[serde(rename = "LockDelay", skip_serializing_if = "Option::is_none")]
        pub lock_delay: Option<serde_json::Value>,
        /// `Behavior`.
        #[serde(rename = "Behavior", skip_serializing_if = "Option::is_none")]
        pub behavior: Option<String>,
        /// `TTL`.
        #[serde(rename = "TTL", skip_serializing_if = "Option::is_none")]
        pub ttl: Option<String>,
    }

    /// The body answering `PUT /v1/session/create`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CreateResponse {
        /// `ID`.
        #[serde(rename = "ID")]
        pub id: String,
    }
}

impl SessionEntry {
    fn from_wire(w: wire::Session) -> Result<Self, ResponseError> {
        let behavior = match w.behavior.as_str() {
            "" | "release" => Behavior::Release,
            "delete" => Behavior::Delete,
            other => {
                return Err(ResponseError::unexpected(format!(
                    "unknown session behavior {other:?}"
                )))
            }
        };
        let ttl = if w.ttl.is_empty() {
            None
        } else {
            match parse_go_duration(&w.ttl) {
                Some(d) if d.is_zero() => None,
                Some(d) => Some(d),
                None => {
                    return Err(ResponseError::unexpected(format!(
                        "malformed session TTL {:?}",
                        w.ttl
                    )))
                }
            }
        };
        if w.id.is_empty() {
            return Err(ResponseError::unexpected("session without ID"));
        }
        Ok(Self {
            id: SessionId::from_server(w.id),
            name: w.name,
            node: w.node,
            lock_delay: Duration::from_nanos(w.lock_delay),
            behavior,
            ttl,
            node_checks: w.node_checks.unwrap_or_default(),
            service_checks: w
                .service_checks
                .unwrap_or_default()
                .into_iter()
                .map(|c| ServiceCheck {
                    id: c.id,
                    namespace: (!c.namespace.is_empty()).then_some(c.namespace),
                })
                .collect(),
            create_index: w.create_index,
            modify_index: w.modify_index,
        })
    }
}

fn parse_sessions(body: &[u8]) -> Result<Vec<SessionEntry>, ResponseError> {
    // Consul answers `null` for an empty list in some versions.
    let wire: Option<Vec<wire::Session>> = parse_json(body)?;
    wire.unwrap_or_default()
        .into_iter()
        .map(SessionEntry::from_wire)
        .collect()
}

/// `PUT /v1/session/create`.
///
/// ```
/// use std::time::Duration;
/// use consul_kv_proto::{session::{Behavior, CreateSession}, Operation, RequestContext};
/// let op = CreateSession::new().name("leader").ttl(Duration::from_secs(15)).behavior(Behavior::Delete);
/// let req = op.build(&RequestContext::new()).unwrap();
/// assert_eq!(req.uri(), "/v1/session/create");
/// assert_eq!(req.body().as_ref(), br#"{"Name":"leader","Behavior":"delete","TTL":"15s"}"#);
/// ```
#[must_use]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateSession {
    body: wire::CreateRequest,
    opts: WriteOptions,
}

impl CreateSession {
    /// A session with Consul's defaults: the agent's node, `serfHealth`, 15 s lock-delay,
    /// `release`, no TTL.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.body.name = Some(name.into());
        self
    }

    /// Sets the node (default: the agent's).
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.body.node = Some(node.into());
        self
    }

    /// Sets the legacy `Checks` list; an empty list removes `serfHealth`.
    pub fn checks(mut self, checks: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.body.checks = Some(checks.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the node checks.
    pub fn node_checks(mut self, checks: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.body.node_checks = Some(checks.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the service checks.
    pub fn service_checks(mut self, checks: impl IntoIterator<Item = ServiceCheck>) -> Self {
        self.body.service_checks = Some(
            checks
                .into_iter()
                .map(|c| wire::ServiceCheck {
                    id: c.id,
                    namespace: c.namespace.unwrap_or_default(),
                })
                .collect(),
        );
        self
    }

    /// Sets the lock-delay, sent exactly (so `Duration::ZERO` really means none; Consul caps
    /// it at 60 s).
    pub fn lock_delay(mut self, d: Duration) -> Self {
        self.body.lock_delay = Some(serde_json::Value::String(format_go_duration(d)));
        self
    }

    /// Sets the behavior on invalidation.
    pub fn behavior(mut self, b: Behavior) -> Self {
        self.body.behavior = Some(b.as_str().to_owned());
        self
    }

    /// Sets the TTL (Consul accepts 10 s to 24 h by default).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.body.ttl = Some(format_go_duration(ttl));
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
}

impl Operation for CreateSession {
    type Output = SessionId;

    fn build(&self, cx: &RequestContext) -> Result<Request<Bytes>, BuildError> {
        let mut q = Query::new();
        self.opts.write_query(cx, &mut q)?;
        let body = serde_json::to_vec(&self.body).map_err(BuildError::Json)?;
        request(
            Method::PUT,
            format!("/v1/session/create{}", q.finish()),
            self.opts.token(cx),
            Some((Bytes::from(body), "application/json")),
        )
    }

    fn parse(&self, resp: Response<Bytes>) -> Result<Self::Output, ResponseError> {
        expect_status(&resp, &[])?;
        let r: wire::CreateResponse = parse_json(resp.body())?;
        if r.id.is_empty() {
            return Err(ResponseError::unexpected("empty session ID"));
        }
        Ok(SessionId::from_server(r.id))
    }

    fn kind(&self) -> OpKind {
        OpKind::Write
    }
}

/// `PUT /v1/session/destroy/<id>`: `true` even for an unknown session.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestroySession {
    id: SessionId,
    opts: WriteOptions,
}

impl DestroySession {
    /// Destroys `id`.
    pub fn new(id: SessionId) -> Self {
        Self {
            id,
            opts: WriteOptions::default(),
        }
    }

    /// The write options, to change in place.
    pub fn options_mut(&mut self) -> &mut WriteOptions {
        &mut self.opts
    }
}

impl Operation for DestroySession {
    type Output = bool;

    fn build(&self, cx: &RequestContext) -> Result<Request<Bytes>, BuildError> {
        let mut q = Query::new();
        self.opts.write_query(cx, &mut q)?;
        request(
            Method::PUT,
            format!(
                "/v1/session/destroy/{}{}",
                encode_segment(self.id.as_str()),
                q.finish()
            ),
            self.opts.token(cx),
            None,
        )
    }

    fn parse(&self, resp: Response<Bytes>) -> Result<bool, ResponseError> {
        expect_status(&resp, &[])?;
        parse_bool_body(resp.body())
    }

    fn kind(&self) -> OpKind {
        OpKind::IdempotentWrite
    }
}

/// `PUT /v1/session/renew/<id>`: the renewed session, or `None` when Consul no longer knows it
/// (`404`: the session expired or was destroyed).
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewSession {
    id: SessionId,
    opts: WriteOptions,
}

impl RenewSession {
    /// Renews `id`.
    pub fn new(id: SessionId) -> Self {
        Self {
            id,
            opts: WriteOptions::default(),
        }
    }

    /// The write options, to change in place.
    pub fn options_mut(&mut self) -> &mut WriteOptions {
        &mut self.opts
    }
}

impl Operation for RenewSession {
    type Output = Option<SessionEntry>;

    fn build(&self, cx: &RequestContext) -> Result<Request<Bytes>, BuildError> {
        let mut q = Query::new();
        self.opts.write_query(cx, &mut q)?;
        request(
            Method::PUT,
            format!(
                "/v1/session/renew/{}{}",
                encode_segment(self.id.as_str()),
                q.finish()
            ),
            self.opts.token(cx),
            None,
        )
    }

    fn parse(&self, resp: Response<Bytes>) -> Result<Self::Output, ResponseError> {
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        expect_status(&resp, &[])?;
        Ok(parse_sessions(resp.body())?.into_iter().next())
    }

    fn kind(&self) -> OpKind {
        OpKind::IdempotentWrite
    }
}

macro_rules! session_read {
    ($ty:ident, $out:ty, $path:expr, $parse:expr) => {
        impl $ty {
            /// The read options, to change in place.
            pub fn options_mut(&mut self) -> &mut ReadOptions {
                &mut self.opts
            }

            /// Replaces the read options.
            pub fn with_options(mut self, opts: ReadOptions) -> Self {
                self.opts = opts;
                self
            }
        }

        impl Operation for $ty {
            type Output = Indexed<$out>;

            fn build(&self, cx: &RequestContext) -> Result<Request<Bytes>, BuildError> {
                let mut q = Query::new();
                self.opts.write_query(cx, &mut q)?;
                #[allow(clippy::redundant_closure_call)]
                let path: String = ($path)(self);
                request(
                    Method::GET,
                    path + &q.finish(),
                    self.opts.common.token(cx),
                    None,
                )
            }

            fn parse(&self, resp: Response<Bytes>) -> Result<Self::Output, ResponseError> {
                expect_status(&resp, &[])?;
                let meta = QueryMeta::from_headers(resp.headers())?;
                let list = parse_sessions(resp.body())?;
                #[allow(clippy::redundant_closure_call)]
                let value: $out = ($parse)(list);
                Ok(Indexed::new(value, meta))
            }

            fn kind(&self) -> OpKind {
                OpKind::Read
            }

            fn blocking_wait(&self) -> Option<Duration> {
                self.opts.index.and(self.opts.wait)
            }
        }

        impl Blocking for $ty {
            type Value = $out;
            fn set_block(&mut self, index: Option<Index>, wait: Duration) {
                self.opts.index = index;
                self.opts.wait = index.map(|_| wait);
            }
        }
    };
}

/// `GET /v1/session/info/<id>`: the session, or `None` if Consul does not know it.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSession {
    id: SessionId,
    opts: ReadOptions,
}

impl ReadSession {
    /// Reads `id`.
    pub fn new(id: SessionId) -> Self {
        Self {
            id,
            opts: ReadOptions::default(),
        }
    }
}

session_read!(
    ReadSession,
    Option<SessionEntry>,
    |s: &ReadSession| format!("/v1/session/info/{}", encode_segment(s.id.as_str())),
    |l: Vec<SessionEntry>| l.into_iter().next()
);

/// `GET /v1/session/node/<node>`: the sessions of a node.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListNodeSessions {
    node: String,
    opts: ReadOptions,
}

impl ListNodeSessions {
    /// Lists the sessions of `node`.
    ///
    /// # Errors
    /// [`BuildError::InvalidOption`] for an empty node name.
    pub fn new(node: impl Into<String>) -> Result<Self, BuildError> {
        let node = node.into();
        if node.is_empty() || node.chars().any(char::is_control) {
            return Err(BuildError::option(
                "node",
                "empty or holds a control character",
            ));
        }
        Ok(Self {
            node,
            opts: ReadOptions::default(),
        })
    }
}

session_read!(
    ListNodeSessions,
    Vec<SessionEntry>,
    |s: &ListNodeSessions| format!("/v1/session/node/{}", encode_segment(&s.node)),
    |l: Vec<SessionEntry>| l
);

/// `GET /v1/session/list`: every session in the datacenter.
#[must_use]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListSessions {
    opts: ReadOptions,
}

impl ListSessions {
    /// Lists all sessions.
    pub fn new() -> Self {
        Self::default()
    }
}

session_read!(
    ListSessions,
    Vec<SessionEntry>,
    |_: &ListSessions| "/v1/session/list".to_owned(),
    |l: Vec<SessionEntry>| l
);

/// Serialises sessions as Consul does.
pub fn encode_sessions(list: &[wire::Session]) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid() -> SessionId {
        SessionId::new("adf4238a-882b-9ddc-4a9d-5b6758e4159e").unwrap()
    }

    #[test]
    fn request_table() {
        let cx = RequestContext::new();
        let cases: Vec<(Request<Bytes>, &str, &str, &str)> = vec![
            (
                CreateSession::new().build(&cx).unwrap(),
                "PUT",
                "/v1/session/create",
                "{}",
            ),
            (
                CreateSession::new()
                    .name("n")
                    .node("node1")
                    .checks(Vec::<String>::new())
                    .node_checks(["serfHealth"])
                    .service_checks([ServiceCheck::new("svc")])
                    .lock_delay(Duration::ZERO)
                    .behavior(Behavior::Release)
                    .ttl(Duration::from_secs(30))
                    .dc("dc2")
                    .build(&cx)
                    .unwrap(),
                "PUT",
                "/v1/session/create?dc=dc2",
                r#"{"Name":"n","Node":"node1","Checks":[],"NodeChecks":["serfHealth"],"ServiceChecks":[{"ID":"svc","Namespace":""}],"LockDelay":"0s","Behavior":"release","TTL":"30s"}"#,
            ),
            (
                DestroySession::new(sid()).build(&cx).unwrap(),
                "PUT",
                "/v1/session/destroy/adf4238a-882b-9ddc-4a9d-5b6758e4159e",
                "",
            ),
            (
                RenewSession::new(sid()).build(&cx).unwrap(),
                "PUT",
                "/v1/session/renew/adf4238a-882b-9ddc-4a9d-5b6758e4159e",
                "",
            ),
            (
                ReadSession::new(sid()).build(&cx).unwrap(),
                "GET",
                "/v1/session/info/adf4238a-882b-9ddc-4a9d-5b6758e4159e",
                "",
            ),
            (
                ListNodeSessions::new("node 1").unwrap().build(&cx).unwrap(),
                "GET",
                "/v1/session/node/node%201",
                "",
            ),
            (
                ListSessions::new().build(&cx).unwrap(),
                "GET",
                "/v1/session/list",
                "",
            ),
        ];
        for (req, method, uri, body) in cases {
            assert_eq!(req.method().as_str(), method);
            assert_eq!(req.uri().to_string(), uri);
            assert_eq!(std::str::from_utf8(req.body()).unwrap(), body, "{uri}");
        }
    }

    #[test]
    fn ids_are_validated() {
        assert!(SessionId::new("").is_err());
        assert!(SessionId::new("a/b").is_err());
        assert!(SessionId::new("a\nb").is_err());
        assert!(ListNodeSessions::new("").is_err());
    }
}
