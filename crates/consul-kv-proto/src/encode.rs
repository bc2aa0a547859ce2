//! Key validation, Go-compatible percent-encoding of paths, and the query-string writer.
//!
//! Consul's Go client puts `"/v1/kv/" + key` into `url.URL.Path` and sends `EscapedPath()`.
//! Go leaves `A–Z a–z 0–9 - _ . ~ $ & + , / : ; = @` literal and turns every other byte into
//! `%XX` with upper-case hex. [`encode_key`] reproduces that byte for byte, so a key written by
//! this crate and one written by the Go client land on the same Consul key.

use std::fmt::Write as _;

use crate::error::{BuildError, KeyError};

/// Whether a byte stays literal in a Go `EscapedPath`.
fn path_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b'~'
                | b'$'
                | b'&'
                | b'+'
                | b','
                | b'/'
                | b':'
                | b';'
                | b'='
                | b'@'
        )
}

/// Whether a byte stays literal in a query value (RFC 3986 unreserved).
fn query_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0f)]));
}

/// Percent-encodes a key for use in a URL path exactly as Go's `url.URL.EscapedPath` does.
///
/// `/` stays literal, so the segments of a hierarchical key stay visible to Consul.
///
/// ```
/// use consul_kv_proto::encode_key;
/// assert_eq!(encode_key("app/a b?#%"), "app/a%20b%3F%23%25");
/// assert_eq!(encode_key("ç"), "%C3%A7");
/// ```
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    for &b in key.as_bytes() {
        if path_literal(b) {
            out.push(char::from(b));
        } else {
            push_escaped(&mut out, b);
        }
    }
    out
}

/// Percent-encodes one path segment: like [`encode_key`], but `/` is escaped too.
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b != b'/' && path_literal(b) {
            out.push(char::from(b));
        } else {
            push_escaped(&mut out, b);
        }
    }
    out
}

/// Decodes a `%XX`-encoded path. Returns `None` on a malformed escape or invalid UTF-8.
///
/// This is the inverse of [`encode_key`]; servers (and tests) use it to recover the key.
///
/// ```
/// use consul_kv_proto::{decode_path, encode_key};
/// let key = "a b/ç?#%2F";
/// assert_eq!(decode_path(&encode_key(key)).as_deref(), Some(key));
/// ```
pub fn decode_path(s: &str) -> Option<String> {
    String::from_utf8(percent_decode(s, false)?).ok()
}

/// Decodes `%XX` escapes into bytes; with `plus_is_space`, `+` becomes a space as in a query
/// string (Go's `url.QueryUnescape`). Returns `None` on a malformed escape.
///
/// The one percent-decoder of the workspace: [`decode_path`] is built on it, and the devserver
/// reads query strings with it.
///
/// ```
/// use consul_kv_proto::percent_decode;
/// assert_eq!(percent_decode("a%20b+c", false).as_deref(), Some(&b"a b+c"[..]));
/// assert_eq!(percent_decode("a%20b+c", true).as_deref(), Some(&b"a b c"[..]));
/// assert_eq!(percent_decode("%zz", false), None);
/// ```
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex_val(*bytes.get(i + 1)?)?;
                let lo = hex_val(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Go's `strconv.Quote` (what `%q` prints for a string): Consul quotes keys, session IDs and
/// bad input this way in its error texts, so a server that answers like Consul and a client
/// that recognises those texts need the same quoting.
///
/// ```
/// use consul_kv_proto::go_quote;
/// assert_eq!(go_quote("a\"b\n\u{7f}ç"), r#""a\"b\n\x7fç""#);
/// ```
pub fn go_quote(s: &str) -> String {
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
            c if u32::from(c) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if u32::from(c) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether Go's `unicode.IsPrint` holds for `c`: letters, marks, numbers, punctuation, symbols
/// and the ASCII space. Consul's HTTP server answers `400` to a path holding any other rune.
///
/// Rust's standard library has no general-category tables, so this rejects the categories that
/// matter in practice — controls (Cc), non-ASCII spaces (Zs), line and paragraph separators
/// (Zl, Zp), format characters (Cf), private use (Co) and noncharacters — and accepts code
/// points Unicode has not assigned yet.
pub fn is_printable(c: char) -> bool {
    let cp = u32::from(c);
    if c == ' ' {
        return true;
    }
    if c.is_control() {
        return false;
    }
    !matches!(cp,
        // Zs other than U+0020.
        0x00A0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000
        // Zl, Zp.
        | 0x2028 | 0x2029
        // Cf.
        | 0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
        // Co.
        | 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD
        // Noncharacters (Cn).
        | 0xFDD0..=0xFDEF | 0xFFFE | 0xFFFF
    )
}

/// How an operation uses a key, which decides whether an empty key is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyUse {
    /// A single key: it must not be empty.
    Single,
    /// A prefix: empty means the whole store.
    Prefix,
}

/// Checks a key against what Consul would reject or misroute.
///
/// Rejected: an empty key where one is required, a leading `/`, `//`, a `.` or `..` segment
/// (Go's HTTP router cleans those paths and answers with a redirect), and non-printable runes.
pub(crate) fn validate_key(key: &str, usage: KeyUse) -> Result<(), KeyError> {
    if key.is_empty() {
        return match usage {
            KeyUse::Single => Err(KeyError::Empty),
            KeyUse::Prefix => Ok(()),
        };
    }
    if key.starts_with('/') {
        return Err(KeyError::LeadingSlash);
    }
    if key.contains("//") {
        return Err(KeyError::DoubleSlash);
    }
    if key.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(KeyError::DotSegment);
    }
    if let Some((position, ch)) = key.char_indices().find(|&(_, c)| !is_printable(c)) {
        return Err(KeyError::NonPrintable {
            position,
            code_point: u32::from(ch),
        });
    }
    Ok(())
}

/// Validates `key` for `usage` and wraps the failure in a [`BuildError`].
pub(crate) fn check_key(key: &str, usage: KeyUse) -> Result<(), BuildError> {
    validate_key(key, usage).map_err(|reason| BuildError::InvalidKey {
        key: key.to_owned(),
        reason,
    })
}

/// Writes `?a=b&flag&c=d` query strings with values percent-encoded.
#[derive(Debug, Default)]
pub(crate) struct Query {
    buf: String,
}

impl Query {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn sep(&mut self) {
        self.buf.push(if self.buf.is_empty() { '?' } else { '&' });
    }

    /// A flag that Consul tests by presence only (`recurse`, `keys`, `raw`, `stale`, …).
    pub(crate) fn flag(&mut self, name: &str) -> &mut Self {
        self.sep();
        self.buf.push_str(name);
        self
    }

    /// A `name=value` pair; the value is percent-encoded.
    pub(crate) fn pair(&mut self, name: &str, value: &str) -> &mut Self {
        self.sep();
        self.buf.push_str(name);
        self.buf.push('=');
        for &b in value.as_bytes() {
            if query_literal(b) {
                self.buf.push(char::from(b));
            } else {
                push_escaped(&mut self.buf, b);
            }
        }
        self
    }

    /// A `name=<u64>` pair.
    pub(crate) fn num(&mut self, name: &str, value: u64) -> &mut Self {
        self.sep();
        // Writing to a String cannot fail.
        let _ = write!(self.buf, "{name}={value}");
        self
    }

    pub(crate) fn finish(self) -> String {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escaped_path_table() {
        // Golden encodings from Go's url.URL{Path: "/v1/kv/" + key}.EscapedPath().
        let table: &[(&str, &str)] = &[
            ("simple", "simple"),
            ("a/b/c", "a/b/c"),
            ("trailing/", "trailing/"),
            ("a b", "a%20b"),
            ("q?x", "q%3Fx"),
            ("h#x", "h%23x"),
            ("p%x", "p%25x"),
            ("lit%2F", "lit%252F"),
            ("plus+", "plus+"),
            ("sub$&+,;=:@", "sub$&+,;=:@"),
            ("gen[]", "gen%5B%5D"),
            ("!'()*", "%21%27%28%29%2A"),
            ("\"<>\\^`{|}", "%22%3C%3E%5C%5E%60%7B%7C%7D"),
            ("-_.~", "-_.~"),
            ("ç", "%C3%A7"),
            ("日本", "%E6%97%A5%E6%9C%AC"),
            ("😀", "%F0%9F%98%80"),
        ];
        for (key, want) in table {
            assert_eq!(encode_key(key), *want, "key {key:?}");
            assert_eq!(decode_path(want).as_deref(), Some(*key));
        }
    }

    #[test]
    fn segment_escapes_slash() {
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn validation_table() {
        use KeyError::*;
        let table: &[(&str, KeyUse, Option<KeyError>)] = &[
            ("", KeyUse::Single, Some(Empty)),
            ("", KeyUse::Prefix, None),
            ("/a", KeyUse::Single, Some(LeadingSlash)),
            ("/", KeyUse::Prefix, Some(LeadingSlash)),
            ("a//b", KeyUse::Single, Some(DoubleSlash)),
            ("a/./b", KeyUse::Single, Some(DotSegment)),
            ("..", KeyUse::Single, Some(DotSegment)),
            ("a/..", KeyUse::Prefix, Some(DotSegment)),
            ("a..b", KeyUse::Single, None),
            (".hidden", KeyUse::Single, None),
            (
                "tab\tkey",
                KeyUse::Single,
                Some(NonPrintable {
                    position: 3,
                    code_point: 9,
                }),
            ),
            (
                "nb\u{a0}sp",
                KeyUse::Single,
                Some(NonPrintable {
                    position: 2,
                    code_point: 0xa0,
                }),
            ),
            (
                "zw\u{200b}",
                KeyUse::Single,
                Some(NonPrintable {
                    position: 2,
                    code_point: 0x200b,
                }),
            ),
            (
                "rtl\u{200f}",
                KeyUse::Single,
                Some(NonPrintable {
                    position: 3,
                    code_point: 0x200f,
                }),
            ),
            (
                "del\u{7f}",
                KeyUse::Single,
                Some(NonPrintable {
                    position: 3,
                    code_point: 0x7f,
                }),
            ),
            (
                "c1\u{85}",
                KeyUse::Single,
                Some(NonPrintable {
                    position: 2,
                    code_point: 0x85,
                }),
            ),
            (" spaced ", KeyUse::Single, None),
            ("trailing/", KeyUse::Single, None),
            ("😀/ç", KeyUse::Single, None),
        ];
        for (key, usage, want) in table {
            assert_eq!(validate_key(key, *usage).err(), *want, "key {key:?}");
        }
    }

    #[test]
    fn query_writer() {
        let mut q = Query::new();
        q.flag("recurse").pair("dc", "dc 2&x").num("index", 7);
        assert_eq!(q.finish(), "?recurse&dc=dc%202%26x&index=7");
    }
}
