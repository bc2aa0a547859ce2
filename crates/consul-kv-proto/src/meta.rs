//! Response meta: the Raft [`Index`], the `X-Consul-*` headers of a read ([`QueryMeta`]) and
//! a value paired with the meta of the read that produced it ([`Indexed`]).

use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroU64;
use std::time::Duration;

use http::HeaderMap;

use crate::error::{ErrorDetail, ResponseError};

/// A Raft index as Consul reports it: never zero.
///
/// Consul documents that "it is always safe to use an index of 1", and writes `1` whenever its
/// internal index is `0`; [`Index::from_header_value`] does the same, so a blocking query never
/// sends `index=0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Index(NonZeroU64);

impl Index {
    /// The smallest index, `1`.
    pub const ONE: Self = Self(NonZeroU64::MIN);

    /// An index from a raw number; `0` becomes `1`.
    pub fn new(raw: u64) -> Self {
        Self(NonZeroU64::new(raw).unwrap_or(NonZeroU64::MIN))
    }

    /// An index from a raw number, or `None` for `0`.
    pub fn new_nonzero(raw: u64) -> Option<Self> {
        NonZeroU64::new(raw).map(Self)
    }

    /// The raw number.
    pub fn get(self) -> u64 {
        self.0.get()
    }

    /// Parses an `X-Consul-Index` value: a decimal `u64`, `0` read as `1`.
    pub fn from_header_value(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u64>().ok().map(Self::new)
    }
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Index> for u64 {
    fn from(i: Index) -> Self {
        i.get()
    }
}

/// Meta that Consul sends with every read (`X-Consul-*` headers).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryMeta {
    /// `X-Consul-Index`: the index to block on next. For a single key this is its modify index.
    pub last_index: Index,
    /// `X-Consul-KnownLeader`: whether the answering server knew a leader.
    pub known_leader: bool,
    /// `X-Consul-LastContact`: time since the answering server heard from the leader.
    pub last_contact: Duration,
    /// `X-Consul-Effective-Consistency` (`leader`, `stale`, `consistent`), when sent. The
    /// values Consul sends are borrowed, so reading the meta of an answer allocates nothing.
    pub effective_consistency: Option<Cow<'static, str>>,
    /// `X-Consul-Default-ACL-Policy` (`allow` or `deny`), when sent (borrowed like
    /// [`effective_consistency`](Self::effective_consistency)).
    pub default_acl_policy: Option<Cow<'static, str>>,
    /// `X-Consul-Results-Filtered-By-ACLs`: entries were hidden from this token.
    pub results_filtered_by_acls: bool,
}

impl QueryMeta {
    /// A meta with the given index and otherwise default values (a leader, no lag).
    pub fn with_index(last_index: Index) -> Self {
        Self {
            last_index,
            known_leader: true,
            last_contact: Duration::ZERO,
            effective_consistency: None,
            default_acl_policy: None,
            results_filtered_by_acls: false,
        }
    }

    /// Parses the meta headers. Header names match case-insensitively.
    ///
    /// # Errors
    /// [`ResponseError::MissingHeader`] without `X-Consul-Index`, and
    /// [`ResponseError::InvalidHeader`] when any meta header holds a malformed value.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ResponseError> {
        // One pass over the headers (names are stored lowercase), keeping each meta header's
        // first value as `HeaderMap::get` would: six lookups by name cost far more.
        let mut found: [Option<&http::HeaderValue>; 6] = [None; 6];
        for (name, value) in headers {
            let Some(rest) = name.as_str().strip_prefix("x-consul-") else {
                continue;
            };
            let slot = match rest {
                "index" => 0,
                "knownleader" => 1,
                "lastcontact" => 2,
                "results-filtered-by-acls" => 3,
                "effective-consistency" => 4,
                "default-acl-policy" => 5,
                _ => continue,
            };
            found[slot].get_or_insert(value);
        }
        let text = |slot: usize, display: &'static str| -> Result<Option<&str>, ResponseError> {
            match found[slot] {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(Some)
                    .map_err(|_| invalid(display, "not visible ASCII")),
            }
        };
        let index = text(0, "X-Consul-Index")?.ok_or(ResponseError::MissingHeader {
            name: "X-Consul-Index",
        })?;
        let last_index = Index::from_header_value(index)
            .ok_or_else(|| invalid("X-Consul-Index", "not an unsigned 64-bit integer"))?;
        let known_leader = match text(1, "X-Consul-KnownLeader")? {
            None => false,
            Some(v) => {
                parse_bool(v).ok_or_else(|| invalid("X-Consul-KnownLeader", "not true or false"))?
            }
        };
        let last_contact = match text(2, "X-Consul-LastContact")? {
            None => Duration::ZERO,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| invalid("X-Consul-LastContact", "not a number of milliseconds"))?,
        };
        let filtered = match text(3, "X-Consul-Results-Filtered-By-ACLs")? {
            None => false,
            Some(v) => parse_bool(v)
                .ok_or_else(|| invalid("X-Consul-Results-Filtered-By-ACLs", "not true or false"))?,
        };
        Ok(Self {
            last_index,
            known_leader,
            last_contact,
            effective_consistency: text(4, "X-Consul-Effective-Consistency")?
                .map(|v| known(v, &["leader", "stale", "consistent"])),
            default_acl_policy: text(5, "X-Consul-Default-ACL-Policy")?
                .map(|v| known(v, &["allow", "deny"])),
            results_filtered_by_acls: filtered,
        })
    }
}

fn invalid(name: &'static str, detail: &str) -> ResponseError {
    ResponseError::InvalidHeader {
        name,
        detail: ErrorDetail::new(detail),
    }
}

/// `v` borrowed from `values` when it is one of them, copied otherwise.
fn known(v: &str, values: &[&'static str]) -> Cow<'static, str> {
    match values.iter().find(|k| **k == v) {
        Some(k) => Cow::Borrowed(*k),
        None => Cow::Owned(v.to_owned()),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A value together with the meta of the read that produced it.
///
/// This is the Rust form of aioconsul's `value.consul`: the meta travels with the value.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed<T> {
    /// The value read.
    pub value: T,
    /// The response meta.
    pub meta: QueryMeta,
}

impl<T> Indexed<T> {
    /// Pairs a value with its meta.
    pub fn new(value: T, meta: QueryMeta) -> Self {
        Self { value, meta }
    }

    /// Maps the value, keeping the meta.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Indexed<U> {
        Indexed {
            value: f(self.value),
            meta: self.meta,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn meta_parses_go_canonical_names() {
        let h = headers(&[
            ("X-Consul-Index", "1282900"),
            ("X-Consul-Knownleader", "true"),
            ("X-Consul-Lastcontact", "12"),
            ("X-Consul-Effective-Consistency", "leader"),
            ("X-Consul-Default-Acl-Policy", "deny"),
            ("X-Consul-Results-Filtered-By-Acls", "true"),
        ]);
        let m = QueryMeta::from_headers(&h).unwrap();
        assert_eq!(m.last_index.get(), 1282900);
        assert!(m.known_leader);
        assert_eq!(m.last_contact, Duration::from_millis(12));
        assert_eq!(m.effective_consistency.as_deref(), Some("leader"));
        assert_eq!(m.default_acl_policy.as_deref(), Some("deny"));
        assert!(matches!(m.default_acl_policy, Some(Cow::Borrowed(_))));
        assert!(m.results_filtered_by_acls);
        // A value Consul does not send today is kept as it came.
        let h = headers(&[
            ("X-Consul-Index", "7"),
            ("X-Consul-Effective-Consistency", "bounded-staleness"),
        ]);
        let m = QueryMeta::from_headers(&h).unwrap();
        assert_eq!(
            m.effective_consistency.as_deref(),
            Some("bounded-staleness")
        );
        assert_eq!(m.default_acl_policy, None);
    }

    #[test]
    fn index_rules() {
        let table: &[(&str, Option<u64>)] = &[
            ("0", Some(1)),
            ("1", Some(1)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("-1", None),
            ("abc", None),
            ("", None),
            ("+5", None),
        ];
        for (raw, want) in table {
            assert_eq!(
                Index::from_header_value(raw).map(Index::get),
                *want,
                "{raw:?}"
            );
        }
    }

    #[test]
    fn garbage_headers_are_typed_errors() {
        let missing = QueryMeta::from_headers(&headers(&[])).unwrap_err();
        assert!(matches!(missing, ResponseError::MissingHeader { .. }));
        for (k, v) in [
            ("X-Consul-Index", "abc"),
            ("X-Consul-KnownLeader", "maybe"),
            ("X-Consul-LastContact", "-3"),
        ] {
            let mut h = headers(&[("X-Consul-Index", "5")]);
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
            assert!(
                matches!(
                    QueryMeta::from_headers(&h),
                    Err(ResponseError::InvalidHeader { .. })
                ),
                "{k}: {v}"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(
            "x-consul-index",
            http::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert!(matches!(
            QueryMeta::from_headers(&h),
            Err(ResponseError::InvalidHeader { .. })
        ));
    }
}
