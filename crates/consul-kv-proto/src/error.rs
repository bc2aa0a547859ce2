//! Errors: [`BuildError`] before a request exists, [`ResponseError`] when a response is parsed.
//!
//! Each `Display` is a short phrase; the detail (a server message, a parser error) is reached
//! through [`std::error::Error::source`].

use std::fmt;
use std::time::Duration;

use http::StatusCode;

/// How many bytes of a server's error body are kept in a message.
pub const MAX_MESSAGE_BYTES: usize = 256;

/// Why a key was refused before any I/O.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The operation needs a key and the key is empty (Consul: `400 Missing key name`).
    #[error("the key is empty")]
    Empty,
    /// The key begins with `/` (Consul's router redirects `/v1/kv//x`; the Go client refuses it).
    #[error("the key begins with '/'")]
    LeadingSlash,
    /// The key contains `//`, which Consul's router cleans and redirects.
    #[error("the key contains '//'")]
    DoubleSlash,
    /// The key has a `.` or `..` segment, which Consul's router cleans and redirects.
    #[error("the key has a '.' or '..' segment")]
    DotSegment,
    /// The key holds a rune that Go's `unicode.IsPrint` rejects (Consul answers `400`).
    #[error("the key has the non-printable character U+{code_point:04X} at byte {position}")]
    NonPrintable {
        /// Byte offset of the character in the key.
        position: usize,
        /// The character's code point.
        code_point: u32,
    },
    /// [`KeyRules::Consul122`](crate::KeyRules::Consul122): the key holds a path traversal
    /// (`..` between `\\` separators) or an encoded one (`..%2F`, `%2E%2E`).
    #[error("the key contains a path traversal sequence")]
    Traversal,
    /// [`KeyRules::Consul122`](crate::KeyRules::Consul122): the key begins or ends with white
    /// space.
    #[error("the key begins or ends with white space")]
    EdgeWhitespace,
}

/// A free-form detail behind an error's `source()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail(String);

impl ErrorDetail {
    pub(crate) fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The detail text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ErrorDetail {}

/// The plain-text body of a Consul error response, truncated to [`MAX_MESSAGE_BYTES`] and with
/// control characters escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMessage(String);

impl ServerMessage {
    /// Builds a message from raw body bytes: lossy UTF-8, trimmed, controls escaped, truncated.
    pub fn from_body(body: &[u8]) -> Self {
        let cut = body.len().min(MAX_MESSAGE_BYTES);
        let text = String::from_utf8_lossy(&body[..cut]);
        let mut out = String::with_capacity(text.len());
        for c in text.trim().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        if body.len() > MAX_MESSAGE_BYTES {
            out.push('…');
        }
        Self(out)
    }

    /// The message text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of `secret` with `***`.
    pub fn redact(&mut self, secret: &str) {
        if !secret.is_empty() && self.0.contains(secret) {
            self.0 = self.0.replace(secret, "***");
        }
    }
}

impl fmt::Display for ServerMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(empty body)")
        } else {
            f.write_str(&self.0)
        }
    }
}

impl std::error::Error for ServerMessage {}

/// A request could not be built. Nothing was sent.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The key is one Consul would reject or misroute.
    #[error("invalid key {key:?}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why it was refused.
        #[source]
        reason: KeyError,
    },
    /// An option (datacenter, namespace, session id, …) holds a value that cannot be sent.
    #[error("invalid {name}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// What is wrong with it.
        #[source]
        detail: ErrorDetail,
    },
    /// The ACL token is not a valid header value (for example it holds CR or LF).
    #[error("invalid ACL token")]
    InvalidToken,
    /// A request body could not be encoded as JSON.
    #[error("could not encode the request body")]
    Json(#[source] serde_json::Error),
    /// The `http` crate refused the request parts.
    #[error("could not assemble the request")]
    Http(#[source] http::Error),
}

impl BuildError {
    pub(crate) fn option(name: &'static str, detail: impl Into<String>) -> Self {
        Self::InvalidOption {
            name,
            detail: ErrorDetail::new(detail),
        }
    }
}

/// One failed operation in a rolled-back transaction (`409` with `Errors`).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOpError {
    /// Position of the failing operation in the request.
    pub op_index: usize,
    /// Consul's message, for example `failed to set key "k", index is stale`.
    pub what: String,
}

impl fmt::Display for TxnOpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "operation {}: {}", self.op_index, self.what)
    }
}

/// All per-operation errors of a rolled-back transaction, as one `source()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnErrors(pub Vec<TxnOpError>);

impl fmt::Display for TxnErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TxnErrors {}

/// A response could not be turned into a typed result.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// Consul answered with an error status not covered by a more specific variant.
    #[error("server answered {status}")]
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// The (truncated) plain-text body.
        #[source]
        message: ServerMessage,
    },
    /// `403`: the ACL token lacks a permission or is unknown.
    #[error("permission denied")]
    PermissionDenied {
        /// Consul's message.
        #[source]
        message: ServerMessage,
    },
    /// `409` on `/v1/txn`: nothing was applied.
    #[error("transaction rolled back")]
    TxnRolledBack {
        /// One entry per failing operation.
        #[source]
        errors: TxnErrors,
    },
    /// `413`: the value, body or transaction is over Consul's limit.
    #[error("request too large")]
    TooLarge {
        /// Consul's message.
        #[source]
        message: ServerMessage,
    },
    /// `429`, or a `503` whose text is Consul's rate limiter's: the server refused the request
    /// (see [`is_rejected_before_apply`](Self::is_rejected_before_apply) for when that proves
    /// nothing was applied). A `503` with any other body (an HTML page from a proxy, an empty
    /// body) is a [`Status`](Self::Status): a proxy may have forwarded the request first.
    #[error("rate limited")]
    RateLimited {
        /// `429` or `503`.
        status: StatusCode,
        /// The `Retry-After` header, when present and valid.
        retry_after: Option<Duration>,
        /// Consul's message (often empty).
        #[source]
        message: ServerMessage,
    },
    /// `500 No cluster leader`: nothing was applied; safe to retry.
    #[error("no cluster leader")]
    NoLeader {
        /// Consul's message.
        #[source]
        message: ServerMessage,
    },
    /// `500` while the cluster's leadership changes: a forwarded call lost its connection
    /// (`rpc error making call: EOF`), leadership was lost while committing, or consistent
    /// reads are not ready. A read may be repeated; a write may or may not have been applied.
    #[error("server unavailable")]
    ServerUnavailable {
        /// Consul's message.
        #[source]
        message: ServerMessage,
    },
    /// `500 No path to datacenter`: the request's `?dc=` names a datacenter this cluster does
    /// not know or cannot reach (a typo, or a datacenter that is not federated). Nothing was
    /// applied; repeating it will not help.
    #[error("unknown datacenter")]
    UnknownDatacenter {
        /// Consul's message.
        #[source]
        message: ServerMessage,
    },
    /// The server refused the key itself: Consul 1.21.5's key regex (`500 invalid key name,
    /// …`) or the key validation of 1.21.6+ / 1.22 (`400`, path traversal or edge spaces).
    /// Repeating it will not help; [`KeyRules::Consul122`](crate::KeyRules::Consul122) makes
    /// the client refuse such keys before sending them.
    #[error("invalid key")]
    InvalidKey {
        /// `400` or `500`.
        status: StatusCode,
        /// Consul's message.
        #[source]
        message: ServerMessage,
    },
    /// `500 invalid session "<id>"` (or `missing session`) on acquire.
    #[error("invalid session")]
    InvalidSession {
        /// Consul's message.
        #[source]
        message: ServerMessage,
    },
    /// A header the operation needs (such as `X-Consul-Index`) is absent.
    #[error("missing {name} header")]
    MissingHeader {
        /// The header name.
        name: &'static str,
    },
    /// A header holds a value that does not parse.
    #[error("malformed {name} header")]
    InvalidHeader {
        /// The header name.
        name: &'static str,
        /// What is wrong with it.
        #[source]
        detail: ErrorDetail,
    },
    /// The body is not the JSON the operation expects.
    #[error("malformed JSON body")]
    Json(#[source] serde_json::Error),
    /// A `Value` field is not valid base64.
    #[error("malformed base64 value")]
    Base64 {
        /// The key whose value failed to decode.
        key: String,
        /// The decoder's message.
        #[source]
        detail: ErrorDetail,
    },
    /// The body is neither `true` nor `false`, or otherwise not what the operation expects.
    #[error("unexpected response body")]
    UnexpectedBody {
        /// What was expected and what came.
        #[source]
        detail: ErrorDetail,
    },
}

impl ResponseError {
    /// The HTTP status behind this error, when it came from an error status.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. }
            | Self::RateLimited { status, .. }
            | Self::InvalidKey { status, .. } => Some(*status),
            Self::PermissionDenied { .. } => Some(StatusCode::FORBIDDEN),
            Self::TxnRolledBack { .. } => Some(StatusCode::CONFLICT),
            Self::TooLarge { .. } => Some(StatusCode::PAYLOAD_TOO_LARGE),
            Self::NoLeader { .. }
            | Self::InvalidSession { .. }
            | Self::UnknownDatacenter { .. }
            | Self::ServerUnavailable { .. } => Some(StatusCode::INTERNAL_SERVER_ERROR),
            _ => None,
        }
    }

    /// Whether a retry may succeed: `429`, `500 No cluster leader`, a
    /// [`ServerUnavailable`](Self::ServerUnavailable) `500`, and `502`, `503`, `504` whatever
    /// their body.
    ///
    /// Only Consul's own rejections certainly were not applied
    /// ([`is_rejected_before_apply`](Self::is_rejected_before_apply)); for the others a write
    /// may have reached Consul ([`is_ambiguous`](Self::is_ambiguous)), so only reads may be
    /// retried on them.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::NoLeader { .. } | Self::ServerUnavailable { .. } => {
                true
            }
            Self::Status { status, .. } => {
                matches!(status.as_u16(), 502..=504)
            }
            _ => false,
        }
    }

    /// Whether Consul itself said it applied nothing, which makes even a write safe to repeat:
    ///
    /// - `500 No cluster leader` (also `rpc error: No cluster leader`);
    /// - a `503` from Consul's rate limiter for leader-only operations
    ///   (`rate limit exceeded …, try again later`);
    /// - a `429` from Consul: its rate limiters (`rate limit exceeded, try …`; Consul 1.14's
    ///   RPC limiter sends an empty body) and its per-client connection limit
    ///   (`Your IP is issuing too many concurrent connections, please rate limit your calls`).
    ///
    /// Any other `503`, `502` or `504` (an HTML page or an empty body from a proxy in front of
    /// Consul, which may have forwarded the request before the upstream failed) proves
    /// nothing. A `429` with another text is not repeated either.
    pub fn is_rejected_before_apply(&self) -> bool {
        match self {
            Self::NoLeader { .. } => true,
            Self::RateLimited {
                status, message, ..
            } => is_consul_rejection(*status, message.as_str()),
            _ => false,
        }
    }

    /// Whether a write that got this answer may nevertheless have been applied: a gateway
    /// status (`502`, `504`), a `503` that is not Consul's rate limiter, or a
    /// [`ServerUnavailable`](Self::ServerUnavailable) `500`.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            Self::ServerUnavailable { .. } => true,
            Self::Status { status, .. } => matches!(status.as_u16(), 502..=504),
            _ => false,
        }
    }

    /// Whether the request named a datacenter Consul has no path to
    /// ([`UnknownDatacenter`](Self::UnknownDatacenter)).
    pub fn is_unknown_datacenter(&self) -> bool {
        matches!(self, Self::UnknownDatacenter { .. })
    }

    /// Whether the server refused the key itself ([`InvalidKey`](Self::InvalidKey)).
    pub fn is_invalid_key(&self) -> bool {
        matches!(self, Self::InvalidKey { .. })
    }

    /// The `Retry-After` delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Removes `secret` from any server message held by this error.
    pub fn redact(&mut self, secret: &str) {
        match self {
            Self::Status { message, .. }
            | Self::PermissionDenied { message }
            | Self::TooLarge { message }
            | Self::RateLimited { message, .. }
            | Self::NoLeader { message }
            | Self::ServerUnavailable { message }
            | Self::UnknownDatacenter { message }
            | Self::InvalidKey { message, .. }
            | Self::InvalidSession { message } => message.redact(secret),
            _ => {}
        }
    }

    /// Maps an error status and its plain-text body to a variant.
    pub(crate) fn from_status(resp: &http::Response<bytes::Bytes>) -> Self {
        let status = resp.status();
        let message = ServerMessage::from_body(resp.body());
        match status.as_u16() {
            403 => Self::PermissionDenied { message },
            413 => Self::TooLarge { message },
            429 => Self::RateLimited {
                status,
                retry_after: retry_after(resp),
                message,
            },
            503 if is_consul_rejection(status, message.as_str()) => Self::RateLimited {
                status,
                retry_after: retry_after(resp),
                message,
            },
            400 | 500 if is_invalid_key_text(message.as_str()) => {
                Self::InvalidKey { status, message }
            }
            500 if message.as_str().contains("No cluster leader") => Self::NoLeader { message },
            // Consul's `structs.ErrNoDCPath`, also when forwarded ("rpc error: ...").
            500 if message.as_str().contains("No path to datacenter") => {
                Self::UnknownDatacenter { message }
            }
            500 if message.as_str().contains("invalid session")
                || message.as_str().contains("missing session") =>
            {
                Self::InvalidSession { message }
            }
            500 if is_leadership_churn(message.as_str()) => Self::ServerUnavailable { message },
            _ => Self::Status { status, message },
        }
    }

    /// An [`UnexpectedBody`](Self::UnexpectedBody) error, for executors that find an answer
    /// they cannot use (for example a streamed read whose answer cannot be streamed).
    pub fn unexpected(detail: impl Into<String>) -> Self {
        Self::UnexpectedBody {
            detail: ErrorDetail::new(detail),
        }
    }
}

/// Consul's refusals of a key: 1.21.5's `invalid key name, keys should respect the "…"
/// format` (500) and the `key contains …` / `key must not …` / `key cannot …` family of later
/// releases (400). An answer about the *request* (`Missing key name`) is not one of them.
fn is_invalid_key_text(m: &str) -> bool {
    let m = m.trim_start();
    m.starts_with("invalid key name")
        || m.starts_with("key contains")
        || m.starts_with("key must not")
        || m.starts_with("key cannot")
}

/// The `Retry-After` header in seconds, when present and a number. Any `u64` is kept; the
/// executor caps the wait by its retry budget.
fn retry_after(resp: &http::Response<bytes::Bytes>) -> Option<Duration> {
    resp.headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Whether a `429`/`503` body is one Consul itself sends when it refuses a request before
/// applying it. Consul's texts:
///
/// - `429`, empty body: the RPC rate limiter of Consul 1.14 and earlier (`limits.rpc_rate`);
/// - `429` `rate limit exceeded, try a different server` (or `…, try again later or against a
///   different server`): the server rate limiter of 1.15+;
/// - `429` `Your IP is issuing too many concurrent connections, please rate limit your calls`:
///   `http_max_conns_per_client`;
/// - `503` `rate limit exceeded, try again later` (or `rate limit exceeded for operation that
///   can only be performed by the leader, try again later`): the server rate limiter, for
///   writes, which only the leader can perform.
fn is_consul_rejection(status: StatusCode, message: &str) -> bool {
    match status.as_u16() {
        429 => message.is_empty() || message.contains("rate limit"),
        503 => message.contains("rate limit exceeded") && message.contains("try again later"),
        _ => false,
    }
}

/// Messages Consul's servers return while leadership changes (seen from a 3-server cluster
/// whose leader was killed: `rpc error making call: EOF`).
fn is_leadership_churn(m: &str) -> bool {
    let rpc_transport = m.contains("rpc error")
        && [
            "EOF",
            "connection reset",
            "connection refused",
            "broken pipe",
            "i/o timeout",
        ]
        .iter()
        .any(|t| m.contains(t));
    rpc_transport
        || m.contains("leadership lost")
        || m.contains("Not ready to serve consistent reads")
        || m.contains("timed out enqueuing operation")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn resp(status: u16, body: &str) -> http::Response<bytes::Bytes> {
        http::Response::builder()
            .status(status)
            .body(bytes::Bytes::copy_from_slice(body.as_bytes()))
            .unwrap()
    }

    #[test]
    fn classification_table() {
        // (status, body, retryable, rejected-before-apply, variant check)
        type Case = (u16, &'static str, bool, bool, fn(&ResponseError) -> bool);
        let cases: &[Case] = &[
            (403, "Permission denied", false, false, |e| {
                matches!(e, ResponseError::PermissionDenied { .. })
            }),
            (
                413,
                "Request body(600000 bytes) too large",
                false,
                false,
                |e| matches!(e, ResponseError::TooLarge { .. }),
            ),
            (429, "", true, true, |e| {
                matches!(e, ResponseError::RateLimited { .. })
            }),
            (503, "<html>503</html>", true, false, |e| {
                matches!(e, ResponseError::Status { .. }) && e.is_ambiguous()
            }),
            (503, "", true, false, |e| {
                matches!(e, ResponseError::Status { .. }) && e.is_ambiguous()
            }),
            (503, "rate limit exceeded, try again later", true, true, |e| {
                matches!(e, ResponseError::RateLimited { .. }) && !e.is_ambiguous()
            }),
            (
                503,
                "rate limit exceeded for operation that can only be performed by the leader, try again later",
                true,
                true,
                |e| matches!(e, ResponseError::RateLimited { .. }),
            ),
            (
                429,
                "rate limit exceeded, try again later or against a different server",
                true,
                true,
                |e| matches!(e, ResponseError::RateLimited { .. }),
            ),
            (
                429,
                "Your IP is issuing too many concurrent connections, please rate limit your calls",
                true,
                true,
                |e| matches!(e, ResponseError::RateLimited { .. }),
            ),
            (429, "<html>Too Many Requests</html>", true, false, |e| {
                matches!(e, ResponseError::RateLimited { .. }) && !e.is_ambiguous()
            }),
            (504, "", true, false, |e| {
                matches!(e, ResponseError::Status { .. }) && e.is_ambiguous()
            }),
            (500, "No cluster leader", true, true, |e| {
                matches!(e, ResponseError::NoLeader { .. })
            }),
            (500, "rpc error: No cluster leader", true, true, |e| {
                matches!(e, ResponseError::NoLeader { .. })
            }),
            (500, "rpc error making call: EOF", true, false, |e| {
                matches!(e, ResponseError::ServerUnavailable { .. }) && e.is_ambiguous()
            }),
            (
                500,
                "raft apply failed: leadership lost while committing log",
                true,
                false,
                |e| matches!(e, ResponseError::ServerUnavailable { .. }),
            ),
            (
                500,
                "raft apply failed: invalid session \"x\"",
                false,
                false,
                |e| matches!(e, ResponseError::InvalidSession { .. }),
            ),
            (500, "invalid session \"5125b25b\"", false, false, |e| {
                matches!(e, ResponseError::InvalidSession { .. })
            }),
            (
                500,
                "strconv.ParseUint: parsing \"abc\": invalid syntax",
                false,
                false,
                |e| matches!(e, ResponseError::Status { .. }),
            ),
            (502, "<html>Bad gateway</html>", true, false, |e| {
                matches!(e, ResponseError::Status { .. })
            }),
            (500, "No path to datacenter", false, false, |e| {
                matches!(e, ResponseError::UnknownDatacenter { .. }) && e.is_unknown_datacenter()
            }),
            (400, "Missing key name", false, false, |e| {
                matches!(e, ResponseError::Status { .. })
            }),
            (
                500,
                r#"invalid key name, keys should respect the "^[a-zA-Z0-9,_./\\-?&=]+$" format"#,
                false,
                false,
                |e| e.is_invalid_key() && e.status() == Some(StatusCode::INTERNAL_SERVER_ERROR),
            ),
            (
                400,
                "key contains path traversal sequence",
                false,
                false,
                |e| e.is_invalid_key() && e.status() == Some(StatusCode::BAD_REQUEST),
            ),
            (
                400,
                "key must not begin or end with a space",
                false,
                false,
                |e| e.is_invalid_key(),
            ),
        ];
        for (status, body, retry, rejected, check) in cases {
            let e = ResponseError::from_status(&resp(*status, body));
            assert!(check(&e), "{status} {body}: {e:?}");
            assert_eq!(e.is_retryable(), *retry, "{status} {body}");
            assert_eq!(e.is_rejected_before_apply(), *rejected, "{status} {body}");
            assert_eq!(e.status().map(|s| s.as_u16()), Some(*status));
        }
    }

    #[test]
    fn display_is_short_and_detail_is_in_source() {
        let e = ResponseError::from_status(&resp(500, "strconv.ParseUint: bad"));
        assert_eq!(e.to_string(), "server answered 500 Internal Server Error");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("strconv.ParseUint: bad")
        );
    }

    #[test]
    fn messages_are_truncated_and_escaped() {
        let long = "x".repeat(10_000);
        let m = ServerMessage::from_body(long.as_bytes());
        assert!(m.as_str().len() <= MAX_MESSAGE_BYTES + 3);
        let m = ServerMessage::from_body(b"a\nb\x00c\xff");
        assert_eq!(m.as_str(), "a\\nb\\u{0}c\u{fffd}");
    }

    #[test]
    fn retry_after_is_read() {
        let r = http::Response::builder()
            .status(429)
            .header("Retry-After", "3")
            .body(bytes::Bytes::new())
            .unwrap();
        assert_eq!(
            ResponseError::from_status(&r).retry_after(),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn redaction() {
        let mut e = ResponseError::from_status(&resp(403, "token s3cr3t denied"));
        e.redact("s3cr3t");
        assert!(!format!("{e:?} {}", e.source().unwrap()).contains("s3cr3t"));
    }
}
