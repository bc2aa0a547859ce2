//! What every Consul handler reads from a request: the decoded request ([`Ctx`]), Consul's
//! `parse()` (datacenter, token, consistency, `wait`, `index`), the ACL standing, datacenter
//! routing, read meta and blocking deadlines, and the size-limited body.
//!
//! Helpers return `Result<_, Resp>`: the error is the finished HTTP answer, built at most
//! once per request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::go::{self, Query};
use crate::reply::{text, Meta, Resp};
use crate::server::{DcHandle, Shared};

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
            .get(consul_kv_proto::TOKEN_HEADER)
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
        self.read_body_within(limit, limit).await
    }

    /// Reads the body, refusing a `Content-Length` over `declared` and more than `received`
    /// bytes actually sent (they differ where a Consul release checks only the header).
    pub(crate) async fn read_body_within(
        &mut self,
        declared: usize,
        received: usize,
    ) -> Result<Bytes, BodyError> {
        let Some(body) = self.body.take() else {
            return Ok(Bytes::new());
        };
        read_body(body, &self.headers, declared, received).await
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
    declared: usize,
    limit: usize,
) -> Result<Bytes, BodyError> {
    if let Some(n) = content_length(headers) {
        if n > declared as u64 {
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
