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

/// Everything a call through [`HyperClient`](crate::HyperClient) can fail with.
///
/// Retries have already been made when an `Error` is returned (see
/// [`RetryPolicy`](crate::RetryPolicy)); the error is the last attempt's.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be built (bad key, option or token). Nothing was sent.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Consul answered, and the answer is an error (status, header or body).
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// The connection failed: connect error, reset, truncated body. For a write, this variant
    /// means the request certainly was not applied; an ambiguous write failure is
    /// [`Error::OutcomeUnknown`] instead.
    #[error("transport error")]
    Transport(#[source] TransportError),
    /// The call's deadline passed. The connection was dropped.
    #[error("timed out after {after:?}")]
    Timeout {
        /// The deadline that passed.
        after: Duration,
    },
    /// The response body is larger than the configured limit. The connection was dropped.
    #[error("response body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A write failed after its request was (or may have been) sent: Consul may or may not have
    /// applied it. It is not retried automatically; read the state back to decide (for a CAS
    /// write, re-read the key and compare its `ModifyIndex`).
    #[error("outcome of the write is unknown")]
    OutcomeUnknown {
        /// What went wrong: a transport error, a timeout or a truncated response.
        #[source]
        source: Box<Self>,
    },
    /// The client configuration is invalid: a bad address, an unreadable token file, a TLS
    /// file that does not parse.
    #[error("invalid client configuration")]
    Config(#[source] ConfigError),
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
            Self::Response(e) => e.is_retryable(),
            Self::Transport(_) | Self::Timeout { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status Consul answered with, for errors that came from one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Response(e) => e.status(),
            _ => None,
        }
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
            Self::OutcomeUnknown { source } => source.is_timeout(),
            _ => false,
        }
    }

    /// Whether the connection could not be established (nothing was sent).
    pub fn is_connect(&self) -> bool {
        match self {
            Self::Transport(t) => t.is_connect(),
            _ => false,
        }
    }

    /// The underlying [`ResponseError`], when Consul answered with an error.
    pub fn as_response(&self) -> Option<&ResponseError> {
        match self {
            Self::Response(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn outcome_unknown(source: Self) -> Self {
        Self::OutcomeUnknown {
            source: Box::new(source),
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
        let t = Error::Transport(TransportError::new(TransportKind::Connect, "refused"));
        assert!(t.is_retryable() && t.is_connect() && !t.is_timeout());
        let to = Error::Timeout {
            after: Duration::from_secs(1),
        };
        assert!(to.is_timeout() && to.is_retryable());
        let ou = Error::outcome_unknown(to);
        assert!(ou.is_outcome_unknown() && ou.is_timeout() && !ou.is_retryable());
        assert_eq!(ou.to_string(), "outcome of the write is unknown");
        let b = Error::BodyTooLarge { limit: 10 };
        assert!(!b.is_retryable() && b.status().is_none());
    }
}
