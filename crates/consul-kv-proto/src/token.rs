//! The ACL token: sent only in `X-Consul-Token`, never printed.

use std::fmt;

use crate::error::BuildError;

/// The header an ACL token travels in (lowercase, as `http` stores header names).
pub const TOKEN_HEADER: &str = "x-consul-token";

/// An ACL token. It is sent only in the `X-Consul-Token` header and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token, refusing one that cannot be a header value (CR, LF, other controls).
    ///
    /// # Errors
    /// [`BuildError::InvalidToken`]; the error does not contain the token.
    pub fn new(secret: impl Into<String>) -> Result<Self, BuildError> {
        let s = secret.into();
        let trimmed = s.trim();
        if trimmed.is_empty() || trimmed.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
            return Err(BuildError::InvalidToken);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The secret. Handle with care: never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The secret a built request carries in [`TOKEN_HEADER`], if any: what an executor
    /// redacts from a server's error message. Handle with care: never log it.
    pub fn carried_by<B>(req: &http::Request<B>) -> Option<&str> {
        req.headers()
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Operation as _, RequestContext};

    #[test]
    fn token_is_never_printed() {
        let t = Token::new("s3cr3t-token").unwrap();
        assert_eq!(format!("{t:?}"), "Token(***)");
        let cx = RequestContext::new().with_token(t);
        assert!(!format!("{cx:?}").contains("s3cr3t"));
        assert!(Token::new("a\r\nb").is_err());
        assert!(Token::new("").is_err());
        assert!(!format!("{:?}", Token::new("x\ny")).contains('x'));
    }

    #[test]
    fn the_token_a_request_carries() {
        let cx = RequestContext::new().with_token(Token::new("s3cr3t").unwrap());
        let req = crate::kv::Get::new("k")
            .build(&cx)
            .expect("a plain key builds");
        assert_eq!(Token::carried_by(&req), Some("s3cr3t"));
        let bare = crate::kv::Get::new("k")
            .build(&RequestContext::new())
            .expect("a plain key builds");
        assert_eq!(Token::carried_by(&bare), None);
    }
}
