//! The executor's [`Error`], with the transport and configuration details behind opaque types.
//!
//! Each `Display` is a short phrase; the detail is reached through
//! [`std::error::Error::source`]. No hyper type appears in any public signature: transport
//! failures are wrapped in [`TransportError`].

use std::fmt;
use std::time::Duration;

use http::StatusCode;
use proto::{BuildError, ResponseError};

/// A boxed error from a lower layer (hyper, rustls, the OS).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The request an [`Error`] belongs to: its method and path, as one log line should name it.
///
/// The path is the one sent (keys percent-encoded), **without the query** (which may hold a
/// session id, an index or a datacenter) and without the address; the token never appears.
///
/// ```
/// use consul_kv_hyper::RequestTarget;
///
/// let req = http::Request::put("/v1/kv/app/config%20db?cas=7&dc=dc2").body(()).unwrap();
/// assert_eq!(RequestTarget::of(&req).to_string(), "PUT /v1/kv/app/config%20db");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTarget {
    method: http::Method,
    path: String,
}

impl RequestTarget {
    /// The target of a request: its method and its path without the query.
    pub fn of<B>(req: &http::Request<B>) -> Self {
        Self {
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
        }
    }

    /// A target from its parts; `path` is taken up to any `?`.
    pub fn new(method: http::Method, path: impl Into<String>) -> Self {
        let mut path = path.into();
        if let Some(q) = path.find('?') {
            path.truncate(q);
        }
        Self { method, path }
    }

    /// The method.
    pub fn method(&self) -> &http::Method {
        &self.method
    }

    /// The path, percent-encoded as sent, without the query.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for RequestTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Everything a call through [`HyperClient`](crate::HyperClient) can fail with.
///
/// Retries have already been made when an `Error` is returned (see
/// [`RetryPolicy`](crate::RetryPolicy)); the error is the last attempt's.
///
/// **Display** names the request, then says what went wrong in a short phrase:
/// `PUT /v1/kv/app/config: could not connect`, `GET /v1/kv/app?recurse` shown as
/// `GET /v1/kv/app: unknown datacenter`. The query and the token are never shown. The cause
/// (an I/O error, Consul's message) is behind [`source`](std::error::Error::source). Errors
/// that happen before a request exists ([`Error::Build`], [`Error::Config`]) name no request.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The request could not be built (bad key, option or token). Nothing was sent.
    Build(BuildError),
    /// Consul answered, and the answer is an error (status, header or body).
    Response {
        /// The request; `None` only for an error made outside a call.
        request: Option<RequestTarget>,
        /// What Consul answered.
        error: ResponseError,
    },
    /// The connection failed: connect error, reset, truncated body. For a write, this variant
    /// means the request certainly was not applied; an ambiguous write failure is
    /// [`Error::OutcomeUnknown`] instead.
    Transport {
        /// The request; `None` only for an error made outside a call.
        request: Option<RequestTarget>,
        /// What failed.
        error: TransportError,
    },
    /// The call's deadline passed. The connection was dropped.
    Timeout {
        /// The request; `None` only for an error made outside a call.
        request: Option<RequestTarget>,
        /// The deadline that passed.
        after: Duration,
    },
    /// The response body is larger than the configured limit. The connection was dropped.
    BodyTooLarge {
        /// The request; `None` only for an error made outside a call.
        request: Option<RequestTarget>,
        /// The limit in bytes.
        limit: usize,
    },
    /// A write failed after its request was (or may have been) sent: Consul may or may not have
    /// applied it. It is not retried automatically; read the state back to decide (for a CAS
    /// write, re-read the key and compare its `ModifyIndex`).
    OutcomeUnknown {
        /// The write.
        request: Option<RequestTarget>,
        /// What went wrong: a transport error, a timeout or a truncated response.
        source: Box<Self>,
    },
    /// The client configuration is invalid: a bad address, an unreadable token file, a TLS
    /// file that does not parse.
    Config(ConfigError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = self.request() {
            write!(f, "{r}: ")?;
        }
        match self {
            Self::Build(e) => e.fmt(f),
            Self::Response { error, .. } => error.fmt(f),
            Self::Transport { error, .. } => error.fmt(f),
            Self::Timeout { after, .. } => write!(f, "timed out after {after:?}"),
            Self::BodyTooLarge { limit, .. } => {
                write!(f, "response body larger than {limit} bytes")
            }
            Self::OutcomeUnknown { .. } => f.write_str("outcome of the write is unknown"),
            Self::Config(_) => f.write_str("invalid client configuration"),
        }
    }
}

impl std::error::Error for Error {
    /// The cause. For [`Build`](Self::Build), [`Response`](Self::Response) and
    /// [`Transport`](Self::Transport), whose phrase `Display` already shows, the cause of that
    /// phrase (Consul's message, the I/O error); for [`OutcomeUnknown`](Self::OutcomeUnknown)
    /// the failure that made it unknown; for [`Config`](Self::Config) the setting at fault.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Build(e) => e.source(),
            Self::Response { error, .. } => error.source(),
            Self::Transport { error, .. } => error.source(),
            Self::OutcomeUnknown { source, .. } => Some(&**source),
            Self::Config(e) => Some(e),
            Self::Timeout { .. } | Self::BodyTooLarge { .. } => None,
        }
    }
}

impl From<BuildError> for Error {
    fn from(e: BuildError) -> Self {
        Self::Build(e)
    }
}

impl From<ResponseError> for Error {
    /// An error answer not yet tied to a request (the executor adds it).
    fn from(error: ResponseError) -> Self {
        Self::Response {
            request: None,
            error,
        }
    }
}

impl Error {
    /// Whether repeating the call may succeed: connect and other transport errors, timeouts,
    /// and the retryable statuses (`429`, `503`, `500 No cluster leader`, `502`, `504`).
    ///
    /// The executor has already retried what it safely could. For a non-idempotent write (a
    /// plain `set`, a session `create`), repeating is the caller's decision; an
    /// [`Error::OutcomeUnknown`] returns `false` here, because repeating it blindly may apply
    /// the write twice.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Response { error, .. } => error.is_retryable(),
            Self::Transport { .. } | Self::Timeout { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status Consul answered with, for errors that came from one.
    pub fn status(&self) -> Option<StatusCode> {
        self.as_response().and_then(ResponseError::status)
    }

    /// Whether the request named a datacenter Consul has no path to (`?dc=` with a typo, or a
    /// datacenter this cluster is not federated with): [`ResponseError::UnknownDatacenter`].
    pub fn is_unknown_datacenter(&self) -> bool {
        self.as_response()
            .is_some_and(ResponseError::is_unknown_datacenter)
    }

    /// The request this error belongs to, when it came from one.
    pub fn request(&self) -> Option<&RequestTarget> {
        match self {
            Self::Response { request, .. }
            | Self::Transport { request, .. }
            | Self::Timeout { request, .. }
            | Self::BodyTooLarge { request, .. }
            | Self::OutcomeUnknown { request, .. } => request.as_ref(),
            Self::Build(_) | Self::Config(_) => None,
        }
    }

    /// Ties the error to `target` (kept when it already names one). The executor calls this
    /// on every error a call returns.
    pub(crate) fn with_request(mut self, target: RequestTarget) -> Self {
        match &mut self {
            Self::Response { request, .. }
            | Self::Transport { request, .. }
            | Self::Timeout { request, .. }
            | Self::BodyTooLarge { request, .. }
            | Self::OutcomeUnknown { request, .. } => {
                request.get_or_insert(target);
            }
            Self::Build(_) | Self::Config(_) => {}
        }
        self
    }

    /// Whether this is an ambiguous write failure ([`Error::OutcomeUnknown`]).
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Self::OutcomeUnknown { .. })
    }

    /// Whether a deadline passed: [`Error::Timeout`], or an [`Error::OutcomeUnknown`] caused by
    /// one.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::OutcomeUnknown { source, .. } => source.is_timeout(),
            _ => false,
        }
    }

    /// Whether the connection could not be established (nothing was sent).
    pub fn is_connect(&self) -> bool {
        match self {
            Self::Transport { error, .. } => error.is_connect(),
            _ => false,
        }
    }

    /// The underlying [`ResponseError`], when Consul answered with an error.
    pub fn as_response(&self) -> Option<&ResponseError> {
        match self {
            Self::Response { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The [`TransportError`], when the connection failed.
    pub fn as_transport(&self) -> Option<&TransportError> {
        match self {
            Self::Transport { error, .. } => Some(error),
            _ => None,
        }
    }

    pub(crate) fn outcome_unknown(source: Self) -> Self {
        Self::OutcomeUnknown {
            request: None,
            source: Box::new(source),
        }
    }

    pub(crate) fn transport(kind: TransportKind, source: impl Into<BoxError>) -> Self {
        Self::Transport {
            request: None,
            error: TransportError::new(kind, source),
        }
    }

    pub(crate) fn timeout(after: Duration) -> Self {
        Self::Timeout {
            request: None,
            after,
        }
    }

    pub(crate) fn body_too_large(limit: usize) -> Self {
        Self::BodyTooLarge {
            request: None,
            limit,
        }
    }
}

/// What kind of transport failure a [`TransportError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransportKind {
    /// No connection: DNS, TCP connect, TLS handshake, Unix socket connect, connect timeout.
    Connect,
    /// The request could not be sent or no complete response head came back.
    Request,
    /// The response body ended early or the connection broke while reading it.
    Body,
}

/// A connection-level failure, opaque so that the HTTP stack can change without breaking the
/// API. The lower-level error is its [`source`](std::error::Error::source).
pub struct TransportError {
    kind: TransportKind,
    source: Option<BoxError>,
}

impl TransportError {
    pub(crate) fn new(kind: TransportKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// Whether the connection could not be established, so nothing was sent.
    pub fn is_connect(&self) -> bool {
        self.kind == TransportKind::Connect
    }

    /// Whether the response body was cut short (the status line and headers had arrived).
    pub fn is_truncated_body(&self) -> bool {
        self.kind == TransportKind::Body
    }
}

impl fmt::Debug for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TransportError");
        d.field("kind", &self.kind);
        if let Some(s) = &self.source {
            // Display, not Debug: lower-level Debug output is noisy and never holds the token,
            // but Display is what users read.
            d.field("source", &format_args!("{s}"));
        }
        d.finish()
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            TransportKind::Connect => "could not connect",
            TransportKind::Request => "connection failed before a response arrived",
            TransportKind::Body => "connection failed while reading the response body",
        })
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An invalid client setting. The message names the setting; file errors carry their
/// [`std::io::Error`] as `source`.
#[derive(Debug)]
pub struct ConfigError {
    what: String,
    source: Option<BoxError>,
}

impl ConfigError {
    pub(crate) fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self {
            what: what.into(),
            source: Some(source.into()),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let t = Error::transport(TransportKind::Connect, "refused");
        assert!(t.is_retryable() && t.is_connect() && !t.is_timeout());
        let to = Error::timeout(Duration::from_secs(1));
        assert!(to.is_timeout() && to.is_retryable());
        let ou = Error::outcome_unknown(to);
        assert!(ou.is_outcome_unknown() && ou.is_timeout() && !ou.is_retryable());
        assert_eq!(ou.to_string(), "outcome of the write is unknown");
        let b = Error::body_too_large(10);
        assert!(!b.is_retryable() && b.status().is_none());
    }

    #[test]
    fn display_names_the_request_and_source_holds_the_cause() {
        use std::error::Error as _;
        let req = http::Request::put("/v1/kv/a%20b?acquire=5a5e&dc=dc2")
            .header("x-consul-token", "s3cr3t")
            .body(())
            .unwrap();
        let target = RequestTarget::of(&req);
        let t = Error::transport(TransportKind::Connect, "connection refused")
            .with_request(target.clone());
        assert_eq!(t.to_string(), "PUT /v1/kv/a%20b: could not connect");
        assert_eq!(t.source().unwrap().to_string(), "connection refused");

        let resp = http::Response::builder()
            .status(500)
            .body(bytes::Bytes::from_static(b"No path to datacenter"))
            .unwrap();
        let parsed = proto::kv::Get::new("k").dc("nope");
        let e = proto::Operation::parse(&parsed, resp).unwrap_err();
        let e = Error::from(e).with_request(target.clone());
        assert!(e.is_unknown_datacenter() && !e.is_retryable());
        assert_eq!(e.to_string(), "PUT /v1/kv/a%20b: unknown datacenter");
        assert_eq!(e.source().unwrap().to_string(), "No path to datacenter");

        let ou =
            Error::outcome_unknown(Error::timeout(Duration::from_secs(2))).with_request(target);
        assert_eq!(
            ou.to_string(),
            "PUT /v1/kv/a%20b: outcome of the write is unknown"
        );
        assert_eq!(ou.source().unwrap().to_string(), "timed out after 2s");
        let all = format!("{ou} {ou:?}");
        assert!(!all.contains("s3cr3t") && !all.contains("acquire") && !all.contains("dc2"));
    }
}
