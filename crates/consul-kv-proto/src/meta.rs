//! Indexes, response meta, request options, the ACL token and the request context.

use std::fmt;
use std::num::NonZeroU64;
use std::time::Duration;

use http::HeaderMap;

use crate::encode::Query;
use crate::error::{BuildError, ErrorDetail, ResponseError};

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

/// The consistency mode of a read (Consul's `features/consistency`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// No parameter: the leader answers ("strongly consistent in almost all cases").
    #[default]
    Default,
    /// `?consistent`: the leader verifies its leadership with a quorum first.
    Consistent,
    /// `?stale`: any server answers, possibly behind the leader.
    Stale,
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
    /// `X-Consul-Effective-Consistency` (`leader`, `stale`, `consistent`), when sent.
    pub effective_consistency: Option<String>,
    /// `X-Consul-Default-ACL-Policy` (`allow` or `deny`), when sent.
    pub default_acl_policy: Option<String>,
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
        let index = header_str(headers, "x-consul-index", "X-Consul-Index")?.ok_or(
            ResponseError::MissingHeader {
                name: "X-Consul-Index",
            },
        )?;
        let last_index = Index::from_header_value(index)
            .ok_or_else(|| invalid("X-Consul-Index", "not an unsigned 64-bit integer"))?;
        let known_leader =
            match header_str(headers, "x-consul-knownleader", "X-Consul-KnownLeader")? {
                None => false,
                Some(v) => parse_bool(v)
                    .ok_or_else(|| invalid("X-Consul-KnownLeader", "not true or false"))?,
            };
        let last_contact =
            match header_str(headers, "x-consul-lastcontact", "X-Consul-LastContact")? {
                None => Duration::ZERO,
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| invalid("X-Consul-LastContact", "not a number of milliseconds"))?,
            };
        let filtered = match header_str(
            headers,
            "x-consul-results-filtered-by-acls",
            "X-Consul-Results-Filtered-By-ACLs",
        )? {
            None => false,
            Some(v) => parse_bool(v)
                .ok_or_else(|| invalid("X-Consul-Results-Filtered-By-ACLs", "not true or false"))?,
        };
        Ok(Self {
            last_index,
            known_leader,
            last_contact,
            effective_consistency: header_str(
                headers,
                "x-consul-effective-consistency",
                "X-Consul-Effective-Consistency",
            )?
            .map(str::to_owned),
            default_acl_policy: header_str(
                headers,
                "x-consul-default-acl-policy",
                "X-Consul-Default-ACL-Policy",
            )?
            .map(str::to_owned),
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

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn header_str<'a>(
    headers: &'a HeaderMap,
    lower: &'static str,
    display: &'static str,
) -> Result<Option<&'a str>, ResponseError> {
    match headers.get(lower) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| invalid(display, "not visible ASCII")),
    }
}

/// A value together with the meta of the read that produced it.
///
/// This is the Rust form of the seed's `value.consul`: the meta travels with the value.
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

/// What the executor knows that every request needs: the client's defaults.
///
/// Values set on an operation's options win over these.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Default ACL token.
    pub token: Option<Token>,
    /// Default datacenter (`?dc=`); `None` lets the agent pick its own.
    pub datacenter: Option<String>,
    /// Default namespace (`?ns=`, Consul Enterprise).
    pub namespace: Option<String>,
    /// Default admin partition (`?partition=`, Consul Enterprise).
    pub partition: Option<String>,
}

impl RequestContext {
    /// An empty context: no token and the agent's own datacenter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the default token.
    pub fn with_token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// Sets the default datacenter.
    pub fn with_datacenter(mut self, dc: impl Into<String>) -> Self {
        self.datacenter = Some(dc.into());
        self
    }
}

/// Options shared by every request: datacenter, namespace, partition and token.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// `?dc=`.
    pub datacenter: Option<String>,
    /// `?ns=` (Consul Enterprise).
    pub namespace: Option<String>,
    /// `?partition=` (Consul Enterprise).
    pub partition: Option<String>,
    /// Per-call ACL token; overrides the context's.
    pub token: Option<Token>,
}

/// Options of a read: everything in [`WriteOptions`] plus consistency and blocking.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Datacenter, namespace, partition and token.
    pub common: WriteOptions,
    /// The consistency mode.
    pub consistency: Consistency,
    /// Block until the result's index passes this one.
    pub index: Option<Index>,
    /// How long to block (only sent together with `index`).
    pub wait: Option<Duration>,
}

fn check_option(name: &'static str, v: &str) -> Result<(), BuildError> {
    if v.is_empty() {
        return Err(BuildError::option(name, "empty"));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(BuildError::option(name, "contains a control character"));
    }
    Ok(())
}

impl WriteOptions {
    pub(crate) fn write_query(&self, cx: &RequestContext, q: &mut Query) -> Result<(), BuildError> {
        let fields = [
            (
                "dc",
                "datacenter",
                self.datacenter.as_ref().or(cx.datacenter.as_ref()),
            ),
            (
                "ns",
                "namespace",
                self.namespace.as_ref().or(cx.namespace.as_ref()),
            ),
            (
                "partition",
                "partition",
                self.partition.as_ref().or(cx.partition.as_ref()),
            ),
        ];
        for (param, name, value) in fields {
            if let Some(v) = value {
                check_option(name, v)?;
                q.pair(param, v);
            }
        }
        Ok(())
    }

    pub(crate) fn token<'a>(&'a self, cx: &'a RequestContext) -> Option<&'a Token> {
        self.token.as_ref().or(cx.token.as_ref())
    }
}

impl ReadOptions {
    pub(crate) fn write_query(&self, cx: &RequestContext, q: &mut Query) -> Result<(), BuildError> {
        self.common.write_query(cx, q)?;
        match self.consistency {
            Consistency::Default => {}
            Consistency::Consistent => {
                q.flag("consistent");
            }
            Consistency::Stale => {
                q.flag("stale");
            }
        }
        if let Some(index) = self.index {
            q.num("index", index.get());
            if let Some(wait) = self.wait {
                q.pair("wait", &format_wait(wait));
            }
        }
        Ok(())
    }
}

/// Formats a duration the way Go's `time.ParseDuration` reads it, exactly and always with a
/// unit. A zero wait is sent as `1ms`, because Consul reads `0` as its 5-minute default; a
/// wait over Consul's 10-minute cap is sent as the cap ([`crate::time::MAX_WAIT`]).
pub fn format_wait(d: Duration) -> String {
    let d = d.min(crate::time::MAX_WAIT);
    if d.is_zero() {
        return "1ms".to_owned();
    }
    format_go_duration(d)
}

/// Formats a duration as an exact Go duration string (`30s`, `1500ms`, `10us`, `7ns`).
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        "0s".to_owned()
    } else if nanos % 1_000_000_000 == 0 {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

/// Parses a Go duration string such as `15s`, `1m30s`, `1.5h` or `100ms`.
///
/// A unit is required (as in Go, except for the bare `0`). Returns `None` when malformed or
/// negative.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut total: u128 = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &s[start..i];
        if number.is_empty() || number == "." {
            return None;
        }
        let ustart = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let unit: u128 = match &s[ustart..i] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (int, frac) = match number.split_once('.') {
            Some((a, b)) => (a, b),
            None => (number, ""),
        };
        if frac.contains('.') {
            return None;
        }
        let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut value = int.checked_mul(unit)?;
        let mut scale = unit;
        for d in frac.bytes() {
            scale /= 10;
            value = value.checked_add(u128::from(d - b'0') * scale)?;
        }
        total = total.checked_add(value)?;
    }
    let secs = u64::try_from(total / 1_000_000_000).ok()?;
    // The remainder is below 10^9 and always fits.
    let nanos = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Some(Duration::new(secs, nanos))
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
        assert!(m.results_filtered_by_acls);
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

    #[test]
    fn wait_is_exact_with_a_unit() {
        let table = [
            (Duration::from_secs(30), "30s"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_millis(1), "1ms"),
            (Duration::from_micros(10), "10us"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::ZERO, "1ms"),
            (Duration::from_secs(600), "600s"),
        ];
        for (d, want) in table {
            assert_eq!(format_wait(d), want);
        }
    }

    #[test]
    fn go_durations_parse() {
        let table: &[(&str, Option<Duration>)] = &[
            ("15s", Some(Duration::from_secs(15))),
            ("1m30s", Some(Duration::from_secs(90))),
            ("1.5h", Some(Duration::from_secs(5400))),
            ("100ms", Some(Duration::from_millis(100))),
            ("0", Some(Duration::ZERO)),
            ("0s", Some(Duration::ZERO)),
            ("10", None),
            ("-5s", None),
            ("abc", None),
            ("", None),
            ("5x", None),
        ];
        for (s, want) in table {
            assert_eq!(parse_go_duration(s), *want, "{s:?}");
        }
    }

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
