//! The ACL token: sent only in `X-Consul-Token`, never printed.

use std::fmt;

use crate::error::BuildError;

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
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RequestContext;

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
}
