//! The HTTP layer: path decoding and cleaning, routing, methods, and what every Consul
//! handler shares (`parse`, tokens, ACLs, datacenters, meta headers, bodies).
//!
//! Helpers return `Result<_, Resp>`: the error is the finished HTTP answer, built at most
//! once per request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use consul_kv_proto::{decode_path, encode_key, is_printable};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Serialize;

use crate::go::{self, Query};
use crate::server::{DcHandle, Shared};
use crate::Fault;

/// A response.
pub(crate) type Resp = Response<Full<Bytes>>;

/// A request, decoded.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) method: Method,
    /// The percent-decoded, clean path.
    pub(crate) path: String,
    pub(crate) query: Query,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Incoming>,
}

// ----- responses -----

pub(crate) fn set_header(r: &mut Resp, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

fn raw(status: StatusCode, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r
}

/// A plain-text answer (Go sniffs `text/plain; charset=utf-8` for a non-empty body).
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Resp {
    let body: String = body.into();
    let empty = body.is_empty();
    let mut r = raw(status, Bytes::from(body));
    if !empty {
        set_header(&mut r, "content-type", "text/plain; charset=utf-8");
    }
    r
}

/// An empty answer.
pub(crate) fn empty(status: StatusCode) -> Resp {
    raw(status, Bytes::new())
}

/// A JSON answer: compact, or 4-space indented with a trailing newline for `?pretty`.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, v: &T, pretty: bool) -> Resp {
    let body = if pretty {
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        match v.serialize(&mut ser) {
            Ok(()) => {
                buf.push(b'\n');
                Ok(buf)
            }
            Err(e) => Err(e),
        }
    } else {
        serde_json::to_vec(v)
    };
    match body {
        Ok(b) => {
            let mut r = raw(status, Bytes::from(b));
            set_header(&mut r, "content-type", "application/json");
            r
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `X-Consul-*` meta of a read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub(crate) index: u64,
    pub(crate) known_leader: bool,
    pub(crate) last_contact_ms: u64,
}

impl Meta {
    /// Writes the headers; an index of 0 is written as 1 (Consul's `setIndex`).
    pub(crate) fn apply(self, r: &mut Resp) {
        set_header(r, "x-consul-index", &self.index.max(1).to_string());
        self.apply_leader(r);
        // Consul 1.14 answers KV and session reads through its blocking-query backend and sets
        // no X-Consul-Effective-Consistency on them (recorded from a real agent).
        set_header(r, "x-consul-query-backend", "blocking-query");
    }

    /// `X-Consul-KnownLeader` and `X-Consul-LastContact` only (read-only transactions).
    pub(crate) fn apply_leader(self, r: &mut Resp) {
        set_header(
            r,
            "x-consul-knownleader",
            if self.known_leader { "true" } else { "false" },
        );
        set_header(r, "x-consul-lastcontact", &self.last_contact_ms.to_string());
    }
}

// ----- routing -----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Kv,
    Txn,
    SessionCreate,
    SessionDestroy,
    SessionRenew,
    SessionInfo,
    SessionNode,
    SessionList,
    StatusLeader,
    StatusPeers,
    AgentSelf,
}

impl Endpoint {
    fn methods(self) -> &'static [&'static str] {
        match self {
            Self::Kv => &["GET", "PUT", "DELETE"],
            Self::Txn | Self::SessionCreate | Self::SessionDestroy | Self::SessionRenew => &["PUT"],
            Self::SessionInfo
            | Self::SessionNode
            | Self::SessionList
            | Self::StatusLeader
            | Self::StatusPeers
            | Self::AgentSelf => &["GET"],
        }
    }
}

const EXACT: &[(&str, Endpoint)] = &[
    ("/v1/txn", Endpoint::Txn),
    ("/v1/session/create", Endpoint::SessionCreate),
    ("/v1/session/list", Endpoint::SessionList),
    ("/v1/status/leader", Endpoint::StatusLeader),
    ("/v1/status/peers", Endpoint::StatusPeers),
    ("/v1/agent/self", Endpoint::AgentSelf),
];

const SUBTREES: &[(&str, Endpoint)] = &[
    ("/v1/kv/", Endpoint::Kv),
    ("/v1/session/destroy/", Endpoint::SessionDestroy),
    ("/v1/session/renew/", Endpoint::SessionRenew),
    ("/v1/session/info/", Endpoint::SessionInfo),
    ("/v1/session/node/", Endpoint::SessionNode),
];

enum Route {
    Api(Endpoint),
    Redirect(String),
    Index,
}

fn route(path: &str) -> Route {
    if let Some((_, ep)) = EXACT.iter().find(|(p, _)| *p == path) {
        return Route::Api(*ep);
    }
    if let Some((_, ep)) = SUBTREES.iter().find(|(p, _)| path.starts_with(p)) {
        return Route::Api(*ep);
    }
    let with_slash = format!("{path}/");
    if SUBTREES.iter().any(|(p, _)| *p == with_slash) {
        return Route::Redirect(with_slash);
    }
    Route::Index
}

/// Go's `http.Redirect` with 301.
fn redirect(path: &str, query: Option<&str>, method: &Method) -> Resp {
    let mut location = encode_key(path);
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    let mut r = if method == Method::GET {
        let href = location
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&#34;")
            .replace('\'', "&#39;");
        raw(
            StatusCode::MOVED_PERMANENTLY,
            Bytes::from(format!("<a href=\"{href}\">Moved Permanently</a>.\n\n")),
        )
    } else {
        empty(StatusCode::MOVED_PERMANENTLY)
    };
    if method == Method::GET || method == Method::HEAD {
        set_header(&mut r, "content-type", "text/html; charset=utf-8");
    }
    set_header(&mut r, "location", &location);
    r
}

/// Consul's `Index` handler: everything not routed.
fn index(path: &str) -> Resp {
    if path == "/" {
        return text(
            StatusCode::OK,
            "Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent \
             configuration and restart.",
        );
    }
    if path.contains("/v1/") {
        text(
            StatusCode::NOT_FOUND,
            "Invalid URL path: not a recognized HTTP API endpoint\n",
        )
    } else {
        text(
            StatusCode::NOT_FOUND,
            "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'\n",
        )
    }
}

fn fault_response(fault: Fault) -> Resp {
    match fault {
        Fault::Respond { status, body } => text(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        ),
        Fault::TooManyConnections => {
            let mut r = text(
                StatusCode::TOO_MANY_REQUESTS,
                "Your IP is issuing too many concurrent connections, please rate limit your calls\n",
            );
            set_header(&mut r, "connection", "close");
            r
        }
    }
}

/// Serves one request. Never panics on input; every failure is an HTTP answer.
pub(crate) async fn handle(shared: Arc<Shared>, req: hyper::Request<Incoming>) -> Resp {
    // Consul sets this on every wrapped response (`setACLDefaultPolicy`).
    let acl_policy = if shared.cfg.acl_token.is_some() {
        "deny"
    } else {
        "allow"
    };
    let mut resp = handle_inner(shared, req).await;
    set_header(&mut resp, "x-consul-default-acl-policy", acl_policy);
    resp
}

async fn handle_inner(shared: Arc<Shared>, req: hyper::Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let method = parts.method;
    tracing::debug!(%method, uri = %crate::logs::redacted_uri(&parts.uri), "request");
    let Some(path) = decode_path(parts.uri.path()) else {
        let mut r = text(StatusCode::BAD_REQUEST, "400 Bad Request");
        set_header(&mut r, "connection", "close");
        return r;
    };
    // go-cleanhttp's PrintablePathCheckHandler.
    if !path.chars().all(is_printable) {
        return empty(StatusCode::BAD_REQUEST);
    }
    let clean = go::clean_path(&path);
    if clean != path {
        return redirect(&clean, parts.uri.query(), &method);
    }
    if path.starts_with("/v1/") {
        if let Some(f) = shared.fault() {
            return fault_response(f);
        }
    }
    let ep = match route(&path) {
        Route::Api(ep) => ep,
        Route::Redirect(to) => return redirect(&to, parts.uri.query(), &method),
        Route::Index => return index(&path),
    };
    let allow = format!("OPTIONS,{}", ep.methods().join(","));
    let mut resp = if method == Method::OPTIONS {
        let mut r = empty(StatusCode::OK);
        set_header(&mut r, "allow", &allow);
        r
    } else if !ep.methods().contains(&method.as_str()) {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} not allowed"),
        );
        set_header(&mut r, "allow", &allow);
        r
    } else {
        let ctx = Ctx {
            shared,
            method,
            path,
            query: Query::parse(parts.uri.query()),
            headers: parts.headers,
            body: Some(body),
        };
        dispatch(ep, ctx).await
    };
    set_header(&mut resp, "vary", "Accept-Encoding");
    resp
}

async fn dispatch(ep: Endpoint, ctx: Ctx) -> Resp {
    match ep {
        Endpoint::Kv => crate::api_kv::kv(ctx).await,
        Endpoint::Txn => crate::api_txn::txn(ctx).await,
        Endpoint::SessionCreate => crate::api_session::create(ctx).await,
        Endpoint::SessionDestroy => crate::api_session::destroy(ctx).await,
        Endpoint::SessionRenew => crate::api_session::renew(ctx).await,
        Endpoint::SessionInfo => crate::api_session::info(ctx).await,
        Endpoint::SessionNode => crate::api_session::node(ctx).await,
        Endpoint::SessionList => crate::api_session::list(ctx).await,
        Endpoint::StatusLeader => status_leader(ctx).await,
        Endpoint::StatusPeers => status_peers(ctx).await,
        Endpoint::AgentSelf => agent_self(ctx),
    }
}

// ----- shared parsing -----

/// Options common to Consul's `parse()`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Opts {
    pub(crate) dc: String,
    pub(crate) token: String,
    pub(crate) stale: bool,
    pub(crate) consistent: bool,
    pub(crate) index: u64,
    pub(crate) wait: Option<i128>,
    pub(crate) pretty: bool,
}

impl Ctx {
    /// `parseDC` + `parseToken` (+ `?pretty`).
    pub(crate) fn basic_opts(&self) -> Opts {
        Opts {
            dc: self.query.get("dc").to_owned(),
            token: self.token(),
            pretty: self.query.has("pretty"),
            ..Opts::default()
        }
    }

    /// Consul's `parse()`: dc, token, consistency, wait and index.
    pub(crate) fn parse_opts(&self) -> Result<Opts, Resp> {
        let mut o = self.basic_opts();
        let q = &self.query;
        o.stale = q.has("stale");
        o.consistent = q.has("consistent");
        let cached = q.has("cached");
        let max_stale = q.get("max_stale");
        if !max_stale.is_empty() {
            match go::parse_duration(max_stale) {
                Ok(d) => {
                    if d > 0 {
                        o.stale = true;
                    }
                }
                Err(_) => {
                    return Err(text(
                        StatusCode::BAD_REQUEST,
                        format!("Invalid max_stale value {}", go::quote(max_stale)),
                    ))
                }
            }
        }
        if o.stale && o.consistent {
            return Err(text(
                StatusCode::BAD_REQUEST,
                "Cannot specify ?stale with ?consistent, conflicting semantics.",
            ));
        }
        if cached && o.consistent {
            return Err(text(
                StatusCode::BAD_REQUEST,
                "Cannot specify ?cached with ?consistent, conflicting semantics.",
            ));
        }
        let wait = q.get("wait");
        if !wait.is_empty() {
            match go::parse_duration(wait) {
                Ok(d) => o.wait = Some(d),
                Err(_) => return Err(text(StatusCode::BAD_REQUEST, "Invalid wait time")),
            }
        }
        let index = q.get("index");
        if !index.is_empty() {
            match go::parse_uint(index) {
                Ok(i) => o.index = i,
                Err(_) => return Err(text(StatusCode::BAD_REQUEST, "Invalid index")),
            }
        }
        Ok(o)
    }

    /// `parseTokenInternal`: `?token=`, then `X-Consul-Token`, then `Authorization: Bearer`.
    fn token(&self) -> String {
        let t = self.query.get("token");
        if !t.is_empty() {
            return t.to_owned();
        }
        if let Some(t) = self
            .headers
            .get("x-consul-token")
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty())
        {
            return t.to_owned();
        }
        if let Some(auth) = self
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
        {
            let parts: Vec<&str> = auth.split(' ').collect();
            if parts.len() > 1 && parts[0].eq_ignore_ascii_case("bearer") {
                let value = parts[1..].join(" ");
                return value
                    .trim()
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned();
            }
        }
        String::new()
    }

    /// Consul CE's `parseEntMeta`: namespaces and partitions are Enterprise features.
    pub(crate) fn check_ent_meta(&self) -> Result<(), Resp> {
        let header = |n: &str| {
            self.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| !v.is_empty())
        };
        let err = |m: &str| Err(text(StatusCode::BAD_REQUEST, m.to_owned()));
        if header("x-consul-namespace") {
            return err("Invalid header: \"X-Consul-Namespace\" - Namespaces are a Consul Enterprise feature");
        }
        if !self.query.get("ns").is_empty() {
            return err(
                "Invalid query parameter: \"ns\" - Namespaces are a Consul Enterprise feature",
            );
        }
        if header("x-consul-partition") {
            return err("Invalid header: \"X-Consul-Partition\" - Partitions are a Consul Enterprise feature");
        }
        if !self.query.get("partition").is_empty() {
            return err(
                "Invalid query parameter: \"partition\" - Partitions are a Consul Enterprise feature",
            );
        }
        Ok(())
    }

    /// Takes the body, reading at most `limit` bytes.
    pub(crate) async fn read_body(&mut self, limit: usize) -> Result<Bytes, BodyError> {
        let Some(body) = self.body.take() else {
            return Ok(Bytes::new());
        };
        read_body(body, &self.headers, limit).await
    }
}

/// The caller's ACL standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Authz {
    /// ACLs off, or the configured token.
    Allow,
    /// No token in ACL mode: the anonymous token, which may do nothing.
    Anonymous,
}

impl Shared {
    /// Resolves a token: `403 ACL not found` for an unknown one.
    pub(crate) fn authz(&self, token: &str) -> Result<Authz, Resp> {
        match &self.cfg.acl_token {
            None => Ok(Authz::Allow),
            Some(t) if t == token => Ok(Authz::Allow),
            Some(_) if token.is_empty() => Ok(Authz::Anonymous),
            Some(_) => Err(text(StatusCode::FORBIDDEN, "ACL not found")),
        }
    }

    /// Routes to a datacenter (`500 No path to datacenter`) and, unless the read is stale,
    /// waits for a leader (`500 No cluster leader`).
    pub(crate) async fn route_dc(&self, opts: &Opts, stale_ok: bool) -> Result<&DcHandle, Resp> {
        let Some(dc) = self.dc(&opts.dc) else {
            return Err(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "No path to datacenter",
            ));
        };
        let answer_locally = stale_ok && opts.stale;
        if !answer_locally && !self.has_leader() && !self.await_leader().await {
            return Err(text(StatusCode::INTERNAL_SERVER_ERROR, "No cluster leader"));
        }
        Ok(dc)
    }

    /// The meta of a read answered now.
    pub(crate) fn meta(&self, opts: &Opts, index: u64) -> Meta {
        Meta {
            index,
            known_leader: self.has_leader(),
            last_contact_ms: if opts.stale {
                self.last_contact_ms()
            } else {
                0
            },
        }
    }

    /// The blocking deadline of a read, `None` when it does not block.
    pub(crate) fn read_deadline(&self, opts: &Opts) -> Option<tokio::time::Instant> {
        (opts.index > 0).then(|| self.deadline(opts.wait))
    }
}

// ----- bodies -----

/// Why a body could not be used.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Over the limit: the byte count (declared or received).
    TooLarge(u64),
    /// The client went away or sent a broken body.
    Failed,
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads and discards what is left of a body (bounded in bytes and time), so that the client
/// can read the answer; returns the byte count.
async fn drain(mut body: Incoming) -> u64 {
    const CAP: u64 = 64 << 20;
    let mut n = 0u64;
    let work = async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(d) = frame.data_ref() {
                n = n.saturating_add(d.len() as u64);
            }
            if n > CAP {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), work).await;
    n
}

async fn read_body(
    mut body: Incoming,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let limit64 = limit as u64;
    if let Some(n) = content_length(headers) {
        if n > limit64 {
            drain(body).await;
            return Err(BodyError::TooLarge(n));
        }
    }
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(BodyError::Failed);
        };
        if let Ok(d) = frame.into_data() {
            if buf.len() + d.len() > limit {
                let total = (buf.len() + d.len()) as u64 + drain(body).await;
                return Err(BodyError::TooLarge(total));
            }
            buf.extend_from_slice(&d);
        }
    }
    Ok(Bytes::from(buf))
}

// ----- status and agent -----

async fn status_leader(ctx: Ctx) -> Resp {
    let opts = ctx.basic_opts();
    if ctx.shared.dc(&opts.dc).is_none() {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter");
    }
    let leader = if ctx.shared.has_leader() {
        "127.0.0.1:8300"
    } else {
        ""
    };
    json(StatusCode::OK, leader, opts.pretty)
}

async fn status_peers(ctx: Ctx) -> Resp {
    let opts = ctx.basic_opts();
    if ctx.shared.dc(&opts.dc).is_none() {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter");
    }
    json(StatusCode::OK, &["127.0.0.1:8300"], opts.pretty)
}

fn agent_self(ctx: Ctx) -> Resp {
    let opts = ctx.basic_opts();
    match ctx.shared.authz(&opts.token) {
        Err(r) => return r,
        Ok(Authz::Anonymous) => return text(StatusCode::FORBIDDEN, "Permission denied"),
        Ok(Authz::Allow) => {}
    }
    let s = &ctx.shared;
    let dc = s.default_dc().map(|d| d.name.clone()).unwrap_or_default();
    let body = serde_json::json!({
        "Config": {
            "Datacenter": dc,
            "PrimaryDatacenter": dc,
            "NodeName": s.cfg.node_name,
            "NodeID": s.node_id,
            "Revision": "devserver",
            "Server": true,
            "Version": crate::CONSUL_VERSION,
            "DevServer": true,
        },
        "Member": {
            "Name": s.cfg.node_name,
            "Addr": "127.0.0.1",
            "Port": 8301,
            "Tags": { "dc": dc, "role": "consul", "build": crate::CONSUL_VERSION },
            "Status": 1,
        },
        "Meta": {},
        "Stats": {},
    });
    json(StatusCode::OK, &body, opts.pretty)
}
