//! Go standard-library behaviour that Consul's answers depend on: `time.ParseDuration` and
//! `strconv.Quote` (both from `consul_kv_proto`, shared with the client side),
//! `strconv.ParseUint`, `url.ParseQuery` / `Values.Encode` (decoding with the proto crate's
//! percent-decoder) and the `http.ServeMux` path cleaning. Error texts are Go's, because Consul returns them verbatim.

use consul_kv_proto::duration::parse_go_nanos;
use consul_kv_proto::percent_decode;

/// Go's `strconv.Quote` (also what `%q` and `%#v` print for a string).
pub(crate) use consul_kv_proto::go_quote as quote;

/// Go's `strconv.ParseUint(s, 10, 64)`, with Go's error text.
pub(crate) fn parse_uint(s: &str) -> Result<u64, String> {
    let syntax = || format!("strconv.ParseUint: parsing {}: invalid syntax", quote(s));
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    s.parse::<u64>().map_err(|_| {
        format!(
            "strconv.ParseUint: parsing {}: value out of range",
            quote(s)
        )
    })
}

/// Go's `time.ParseDuration`: nanoseconds (possibly negative), or Go's error text.
pub(crate) fn parse_duration(s: &str) -> Result<i128, String> {
    parse_go_nanos(s).map(i128::from).map_err(|e| e.to_string())
}

/// A parsed query string with Go's `url.Values` semantics (order of values kept per key).
#[derive(Debug, Default, Clone)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Go's `url.ParseQuery`, ignoring malformed pairs the way `URL.Query()` does.
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&') {
            if part.is_empty() || part.contains(';') {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v)) else {
                continue;
            };
            pairs.push((k, v));
        }
        Self { pairs }
    }

    /// Whether the parameter is present (with or without a value).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// The first value, `""` when absent (Go's `Values.Get`).
    pub(crate) fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Go's `Values.Encode`: sorted by key, `k=v` joined by `&`.
    pub(crate) fn encode(&self) -> String {
        let mut keys: Vec<&str> = self.pairs.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut out = String::new();
        for k in keys {
            for (_, v) in self.pairs.iter().filter(|(pk, _)| pk == k) {
                if !out.is_empty() {
                    out.push('&');
                }
                out.push_str(&query_escape(k));
                out.push('=');
                out.push_str(&query_escape(v));
            }
        }
        out
    }
}

/// Go's `url.QueryUnescape` (`+` is a space). `None` on a malformed escape.
fn query_unescape(s: &str) -> Option<String> {
    percent_decode(s, true).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// Go's `http.ServeMux` `cleanPath`: `path.Clean` on a rooted path, keeping a trailing slash.
pub(crate) fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".to_owned();
    }
    let mut segs: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    let mut np = String::with_capacity(p.len() + 1);
    for s in &segs {
        np.push('/');
        np.push_str(s);
    }
    if np.is_empty() {
        np.push('/');
    }
    if p.ends_with('/') && np != "/" {
        np.push('/');
    }
    np
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(10_000_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_duration("-5s"), Ok(-5_000_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(
            parse_duration("10"),
            Err("time: missing unit in duration \"10\"".into())
        );
        assert_eq!(
            parse_duration("abc"),
            Err("time: invalid duration \"abc\"".into())
        );
        assert_eq!(
            parse_duration("10x"),
            Err("time: unknown unit \"x\" in duration \"10x\"".into())
        );
        assert_eq!(
            parse_duration(""),
            Err("time: invalid duration \"\"".into())
        );
        assert!(parse_duration("9999999999999999999999h").is_err());
        assert!(parse_duration(" 1s").is_err());
    }

    #[test]
    fn uints() {
        assert_eq!(parse_uint("42"), Ok(42));
        assert_eq!(
            parse_uint("abc"),
            Err("strconv.ParseUint: parsing \"abc\": invalid syntax".into())
        );
        assert_eq!(
            parse_uint("-1"),
            Err("strconv.ParseUint: parsing \"-1\": invalid syntax".into())
        );
        assert_eq!(
            parse_uint("+1"),
            Err("strconv.ParseUint: parsing \"+1\": invalid syntax".into())
        );
        assert_eq!(
            parse_uint("18446744073709551616"),
            Err("strconv.ParseUint: parsing \"18446744073709551616\": value out of range".into())
        );
    }

    #[test]
    fn queries() {
        let q = Query::parse(Some("cas=1&acquire=a%20b&recurse&x=1;y&bad=%zz&flags=+"));
        assert!(q.has("recurse"));
        assert_eq!(q.get("recurse"), "");
        assert_eq!(q.get("acquire"), "a b");
        assert_eq!(q.get("flags"), " ");
        assert!(!q.has("x"));
        assert!(!q.has("bad"));
        assert_eq!(q.encode(), "acquire=a+b&cas=1&flags=+&recurse=");
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean_path("/v1/kv/a//b"), "/v1/kv/a/b");
        assert_eq!(clean_path("/v1/kv/a/./b/"), "/v1/kv/a/b/");
        assert_eq!(clean_path("/v1/kv/a/../b"), "/v1/kv/b");
        assert_eq!(clean_path("/v1/kv/"), "/v1/kv/");
        assert_eq!(clean_path("/../.."), "/");
        assert_eq!(clean_path("/v1/kv/a/."), "/v1/kv/a");
    }

    #[test]
    fn quoting() {
        assert_eq!(
            quote("a\"b\\\n\u{7f}\u{a0}ç"),
            "\"a\\\"b\\\\\\n\\x7f\\u00a0ç\""
        );
    }
}
