//! The [`Operation`] trait: one value that builds a request and parses its response.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use crate::error::{BuildError, ResponseError};
use crate::{RequestContext, Token};

/// Whether an operation reads or writes, which decides what an executor may retry.
///
/// ```
/// use consul_kv_proto::{kv::{Get, Set}, OpKind, Operation};
/// assert!(Get::new("k").kind().is_safe_to_repeat());
/// assert!(!Set::new("k", "v").kind().is_safe_to_repeat());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Safe to repeat: the executor may retry on connect errors, `429`, `503` and
    /// `500 No cluster leader`.
    Read,
    /// Changes state: retried only when the server certainly did not apply it.
    Write,
    /// Changes state, but applying it twice equals applying it once (session renew and
    /// destroy): retried like a read.
    IdempotentWrite,
}

impl OpKind {
    /// Whether the operation may be sent again after an ambiguous failure.
    pub fn is_safe_to_repeat(self) -> bool {
        matches!(self, Self::Read | Self::IdempotentWrite)
    }
}

/// One Consul HTTP call, without I/O.
///
/// [`build`](Operation::build) makes an `http::Request` whose URI holds only the path and query
/// (`/v1/kv/app/a%20b?dc=dc2`); the executor adds scheme and authority and sends it.
/// [`parse`](Operation::parse) takes the response with its body already collected (and
/// size-limited by the executor) and returns the typed result.
pub trait Operation {
    /// The typed result.
    type Output;

    /// Builds the request.
    ///
    /// # Errors
    /// A [`BuildError`] when a key or option cannot be sent; nothing has been sent.
    fn build(&self, cx: &RequestContext) -> Result<Request<Bytes>, BuildError>;

    /// Parses the response.
    ///
    /// # Errors
    /// A [`ResponseError`] for an error status, a missing or malformed header, or a malformed
    /// body. Never panics, whatever the input.
    fn parse(&self, resp: Response<Bytes>) -> Result<Self::Output, ResponseError>;

    /// Read or write.
    fn kind(&self) -> OpKind;

    /// For a blocking read, the `wait` it sends; the executor derives its deadline from it.
    fn blocking_wait(&self) -> Option<Duration> {
        None
    }
}

/// Assembles a request with the token header and, for a body, its content type.
pub(crate) fn request(
    method: Method,
    path_and_query: String,
    token: Option<&Token>,
    body: Option<(Bytes, &'static str)>,
) -> Result<Request<Bytes>, BuildError> {
    // Parsed as a path and query only (not as a URI that might have a scheme), and the
    // request assembled in place rather than through `http::request::Builder`, which moves its
    // parts along with every call.
    let pq = http::uri::PathAndQuery::from_maybe_shared(Bytes::from(path_and_query))
        .map_err(|e| BuildError::Http(e.into()))?;
    let mut req = Request::new(Bytes::new());
    *req.method_mut() = method;
    *req.uri_mut() = http::Uri::from(pq);
    if let Some(t) = token {
        let mut v =
            HeaderValue::from_str(t.expose_secret()).map_err(|_| BuildError::InvalidToken)?;
        v.set_sensitive(true);
        req.headers_mut()
            .insert(http::HeaderName::from_static(crate::TOKEN_HEADER), v);
    }
    if let Some((bytes, content_type)) = body {
        // `from_str`, not `from_static`: a bad content type is an error, never a panic.
        let ct = HeaderValue::from_str(content_type).map_err(|e| BuildError::Http(e.into()))?;
        req.headers_mut().insert(header::CONTENT_TYPE, ct);
        *req.body_mut() = bytes;
    }
    Ok(req)
}

/// Returns an error for any status other than `200` (and the listed extra statuses).
pub(crate) fn expect_status(
    resp: &Response<Bytes>,
    also: &[StatusCode],
) -> Result<(), ResponseError> {
    let s = resp.status();
    if s == StatusCode::OK || also.contains(&s) {
        Ok(())
    } else {
        Err(ResponseError::from_status(resp))
    }
}

/// Parses a `true` / `false` body.
pub(crate) fn parse_bool_body(body: &[u8]) -> Result<bool, ResponseError> {
    match body.trim_ascii() {
        b"true" => Ok(true),
        b"false" => Ok(false),
        other => Err(ResponseError::unexpected(format!(
            "expected true or false, got {:?}",
            String::from_utf8_lossy(&other[..other.len().min(32)])
        ))),
    }
}

/// Parses a JSON body, mapping failure to [`ResponseError::Json`].
pub(crate) fn parse_json<'a, T: serde::Deserialize<'a>>(
    body: &'a [u8],
) -> Result<T, ResponseError> {
    serde_json::from_slice(body).map_err(ResponseError::Json)
}
