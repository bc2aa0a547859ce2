//! Version profiles: where Consul releases differ in what a KV client can see (key validation,
//! the 413 text, the body-size rule, the version `/v1/agent/self` reports), the devserver
//! follows the release its [`ConsulVersion`] names.
//!
//! | | 1.14 (default) | 1.21 (1.21.5) | 1.22 |
//! |---|---|---|---|
//! | key validation | none beyond printable runes | regex `^[a-zA-Z0-9,_./\-?&=]+$`, `500` | traversal (`..` segments, `..%2F`, `%2E%2E`), leading or trailing spaces, `400` |
//! | 413 text links | `www.consul.io/docs/…` | `developer.hashicorp.com/docs/…` | `developer.hashicorp.com/docs/…` |
//! | `PUT /v1/kv` body limit | `Content-Length` only; a chunked body is not limited | `Content-Length` and the bytes received | `Content-Length` and the bytes received |
//!
//! Sources: the 1.14 column is recorded from a real 1.14.11 agent (a chunked 576 KiB value is
//! stored; the 413 text). 1.21.5's regex and its `500 invalid key name, keys should respect the
//! "…" format` come from Consul's pull request #22682 and the reports that followed it (#22822,
//! #22835). 1.22's rules come from pull request #22850 and its backports (#22931, #22939,
//! CVE-2025-11392): everything allowed except path traversal, URL-encoded traversal and leading
//! or trailing spaces, refused with `400`; the exact wording of those refusals is not published
//! in anything we could read, so the texts here are the devserver's own, in the style of
//! Consul's earlier `key contains …` messages. The 1.21.6 / 1.22 release notes name the stricter
//! body-size check (CVE-2025-11374).

use std::fmt;
use std::str::FromStr;

use http::StatusCode;

use crate::reply::{text, Resp};

/// Which Consul release the devserver reproduces where releases differ (see the crate docs).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ConsulVersion {
    /// Consul 1.14.11, the release the conformance suite checks against a real agent.
    #[default]
    V1_14,
    /// Consul 1.21.5: the short-lived strict key regex.
    V1_21,
    /// Consul 1.22 (and 1.21.6+): path-traversal and edge-space key validation.
    V1_22,
}

impl ConsulVersion {
    /// Every profile, oldest first.
    pub const ALL: [Self; 3] = [Self::V1_14, Self::V1_21, Self::V1_22];

    /// The full version `/v1/agent/self` reports.
    pub fn version(self) -> &'static str {
        match self {
            Self::V1_14 => "1.14.11",
            Self::V1_21 => "1.21.5",
            Self::V1_22 => "1.22.0",
        }
    }

    /// The short name (`1.14`, `1.21`, `1.22`) the `--consul-version` flag takes.
    pub fn short(self) -> &'static str {
        match self {
            Self::V1_14 => "1.14",
            Self::V1_21 => "1.21",
            Self::V1_22 => "1.22",
        }
    }

    /// The documentation link of the `kv_max_value_size` 413 text.
    pub(crate) fn kv_limit_docs(self) -> &'static str {
        match self {
            Self::V1_14 => "https://www.consul.io/docs/agent/config/config-files#kv_max_value_size",
            Self::V1_21 | Self::V1_22 => {
                "https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size"
            }
        }
    }

    /// Whether `PUT /v1/kv` limits the bytes actually received (a chunked body has no
    /// `Content-Length` to check). 1.14 checks only the header.
    pub(crate) fn limits_received_bytes(self) -> bool {
        !matches!(self, Self::V1_14)
    }

    /// The answer a `/v1/kv` request for `key` (decoded, non-empty) gets when this release
    /// refuses the key, or `None`.
    pub(crate) fn refuse_key(self, key: &str) -> Option<Resp> {
        match self {
            Self::V1_14 => None,
            Self::V1_21 => (!regex_1_21(key)).then(|| {
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    r#"invalid key name, keys should respect the "^[a-zA-Z0-9,_./\\-?&=]+$" format"#,
                )
            }),
            Self::V1_22 => rule_1_22(key).map(|why| text(StatusCode::BAD_REQUEST, why)),
        }
    }
}

impl fmt::Display for ConsulVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

/// The error of parsing a [`ConsulVersion`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Consul version {0:?} (known: 1.14, 1.21, 1.22)")]
pub struct UnknownVersion(String);

impl FromStr for ConsulVersion {
    type Err = UnknownVersion;

    /// `1.14`, `1.21` or `1.22`, with or without a patch number (`1.14.11`, `1.21.5`,
    /// `1.22.0`) and a leading `v`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_start_matches('v');
        let minor = t.split('.').take(2).collect::<Vec<_>>().join(".");
        Self::ALL
            .into_iter()
            .find(|v| v.short() == minor)
            .ok_or_else(|| UnknownVersion(s.to_owned()))
    }
}

/// 1.21.5's `^[a-zA-Z0-9,_./\-?&=]+$`.
fn regex_1_21(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b",_./-?&=".contains(&b))
}

/// 1.22's refusals, with the devserver's wording (see the module docs).
fn rule_1_22(key: &str) -> Option<&'static str> {
    if key.split(['/', '\\']).any(|seg| seg == "..") {
        return Some("key contains path traversal sequence");
    }
    let lower = key.to_ascii_lowercase();
    if ["..%2f", "..%5c", "%2e%2e"]
        .iter()
        .any(|p| lower.contains(p))
    {
        return Some("key contains encoded path traversal sequence");
    }
    if key.starts_with(char::is_whitespace) || key.ends_with(char::is_whitespace) {
        return Some("key must not begin or end with a space");
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        for (s, v) in [
            ("1.14", ConsulVersion::V1_14),
            ("1.14.11", ConsulVersion::V1_14),
            ("v1.21.5", ConsulVersion::V1_21),
            ("1.22", ConsulVersion::V1_22),
            ("1.22.3", ConsulVersion::V1_22),
        ] {
            assert_eq!(s.parse::<ConsulVersion>(), Ok(v), "{s}");
        }
        assert!("1.15".parse::<ConsulVersion>().is_err());
        assert!("".parse::<ConsulVersion>().is_err());
        assert_eq!(ConsulVersion::default().version(), "1.14.11");
    }

    #[test]
    fn key_rules_per_release() {
        let refused = |v: ConsulVersion, k: &str| v.refuse_key(k).map(|r| r.status().as_u16());
        for k in ["a b", "ç", "foo%2Fbar", " edge", "a/../b", "x:y"] {
            assert_eq!(refused(ConsulVersion::V1_14, k), None, "{k}");
        }
        assert_eq!(refused(ConsulVersion::V1_21, "a/b-c_d.e,f?g&h=i"), None);
        for k in ["a b", "ç", "foo%2Fbar", "x:y", "a+b"] {
            assert_eq!(refused(ConsulVersion::V1_21, k), Some(500), "{k}");
        }
        for k in ["a b", "ç", "foo%2Fbar", "x:y", "a+b", "con..fig", "a.b/..c"] {
            assert_eq!(refused(ConsulVersion::V1_22, k), None, "{k}");
        }
        for k in [
            "a/../b",
            "..",
            "a/..",
            "..%2Fetc",
            "x%2e%2e/y",
            " edge",
            "edge ",
            "a\\..\\b",
        ] {
            assert_eq!(refused(ConsulVersion::V1_22, k), Some(400), "{k}");
        }
    }
}
