//! Building answers: plain text, empty, JSON (compact or `?pretty`), headers, and the
//! `X-Consul-*` meta of a read. Handlers and the router both build their answers here; this
//! module depends on nothing else in the crate.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// A response.
pub(crate) type Resp = Response<Full<Bytes>>;

pub(crate) fn set_header(r: &mut Resp, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

pub(crate) fn raw(status: StatusCode, body: Bytes) -> Resp {
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
