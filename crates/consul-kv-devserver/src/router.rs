//! The router: path decoding and cleaning (Go's `ServeMux`), routing to an endpoint, methods
//! and `OPTIONS`, fault switches, and the answers for what is not routed.
//!
//! The router depends on the handlers (`api_*`), which depend on the shared request and reply
//! helpers (`request`, `reply`); nothing depends back on the router except the listener.

use std::sync::Arc;

use bytes::Bytes;
use consul_kv_proto::{decode_path, encode_key, is_printable};
use http::{Method, StatusCode};
use hyper::body::Incoming;

use crate::go::{self, Query};
use crate::reply::{empty, raw, set_header, text, Resp};
use crate::request::Ctx;
use crate::server::Shared;
use crate::{api_kv, api_session, api_status, api_txn, Fault};

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
    CatalogDatacenters,
}

impl Endpoint {
    /// Whether the server rate limiter counts this endpoint (the agent's own status and
    /// self endpoints are answered locally, without an RPC to a server).
    fn rate_limited(self) -> bool {
        !matches!(
            self,
            Self::StatusLeader | Self::StatusPeers | Self::AgentSelf | Self::CatalogDatacenters
        )
    }

    fn methods(self) -> &'static [&'static str] {
        match self {
            Self::Kv => &["GET", "PUT", "DELETE"],
            Self::Txn | Self::SessionCreate | Self::SessionDestroy | Self::SessionRenew => &["PUT"],
            Self::SessionInfo
            | Self::SessionNode
            | Self::SessionList
            | Self::StatusLeader
            | Self::StatusPeers
            | Self::AgentSelf
            | Self::CatalogDatacenters => &["GET"],
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
    ("/v1/catalog/datacenters", Endpoint::CatalogDatacenters),
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
    if shared.cfg.ui {
        if path == "/" {
            return crate::ui::redirect_to_ui(&method);
        }
        if crate::ui::is_ui_path(&path) {
            return crate::ui::serve(&path, &method);
        }
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
    let gzip = crate::gzip::accepts_gzip(&parts.headers);
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
    } else if let Some(r) = ep
        .rate_limited()
        .then(|| shared.limiter.check(method != Method::GET))
        .flatten()
    {
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
    if gzip {
        resp = crate::gzip::compress(resp);
    }
    resp
}

async fn dispatch(ep: Endpoint, ctx: Ctx) -> Resp {
    match ep {
        Endpoint::Kv => api_kv::kv(ctx).await,
        Endpoint::Txn => api_txn::txn(ctx).await,
        Endpoint::SessionCreate => api_session::create(ctx).await,
        Endpoint::SessionDestroy => api_session::destroy(ctx).await,
        Endpoint::SessionRenew => api_session::renew(ctx).await,
        Endpoint::SessionInfo => api_session::info(ctx).await,
        Endpoint::SessionNode => api_session::node(ctx).await,
        Endpoint::SessionList => api_session::list(ctx).await,
        Endpoint::StatusLeader => api_status::status_leader(ctx).await,
        Endpoint::StatusPeers => api_status::status_peers(ctx).await,
        Endpoint::AgentSelf => api_status::agent_self(ctx),
        Endpoint::CatalogDatacenters => api_status::catalog_datacenters(&ctx),
    }
}
