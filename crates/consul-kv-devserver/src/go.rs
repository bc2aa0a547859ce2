//! Go standard-library behaviour that Consul's answers depend on: `time.ParseDuration`,
//! `strconv.ParseUint`, `strconv.Quote`, `url.ParseQuery` / `Values.Encode` and the
//! `http.ServeMux` path cleaning. Error texts are Go's, because Consul returns them verbatim.

use consul_kv_proto::is_printable;

/// Go's `strconv.Quote` (also what `%q` and `%#v` print for a string).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if is_printable(c) => out.push(c),
            c if u32::from(c) < 0x80 => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if u32::from(c) <= 0xffff => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

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
pub(crate) fn parse_duration(orig: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {}", quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let int_part = &s[..int_len];
        let v: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse::<u128>().map_err(|_| invalid())?
        };
        if v > (1u128 << 63) {
            return Err(invalid());
        }
        s = &s[int_len..];
        // Fraction.
        let mut frac = "";
        let mut post = false;
        if s.starts_with('.') {
            s = &s[1..];
            let flen = s.bytes().take_while(|c| c.is_ascii_digit()).count();
            frac = &s[..flen];
            post = flen > 0;
            s = &s[flen..];
        }
        if int_len == 0 && !post {
            return Err(invalid());
        }
        // Unit.
        let ulen = s
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if ulen == 0 {
            return Err(format!("time: missing unit in duration {}", quote(orig)));
        }
        let unit_str = &s[..ulen];
        s = &s[ulen..];
        let unit: u128 = match unit_str {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(unit_str),
                    quote(orig)
                ))
            }
        };
        let mut value = v.checked_mul(unit).ok_or_else(invalid)?;
        let mut scale = unit;
        for d in frac.bytes().take(30) {
            scale /= 10;
            value += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > (1u128 << 63) {
            return Err(invalid());
        }
    }
    let total = i128::try_from(total).map_err(|_| invalid())?;
    if neg {
        Ok(-total)
    } else if total > i128::from(i64::MAX) {
        Err(invalid())
    } else {
        Ok(total)
    }
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

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Go's `url.QueryUnescape` (`+` is a space). `None` on a malformed escape.
fn query_unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
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
