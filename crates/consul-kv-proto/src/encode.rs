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
    push_key(&mut out, key);
    out
}

/// Appends `key`, encoded as [`encode_key`] does, to `out`.
pub(crate) fn push_key(out: &mut String, key: &str) {
    let bytes = key.as_bytes();
    if bytes.iter().all(|&b| path_literal(b)) {
        out.push_str(key);
        return;
    }
    for &b in bytes {
        if path_literal(b) {
            out.push(char::from(b));
        } else {
            push_escaped(out, b);
        }
    }
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

/// Which keys the client refuses before sending them, to match the servers it talks to.
///
/// The default, [`Classic`](Self::Classic), refuses only what every Consul release rejects or
/// misroutes (see [`validate_key`](crate::validate_key)), so keys that older servers accept
/// keep working. [`Consul122`](Self::Consul122) adds the key validation of Consul 1.21.6+ and
/// 1.22 (on unless the agent sets `disable_kv_key_validation`): a path traversal (`..` between
/// `/` or `\` separators), an encoded one (`..%2F`, `..%5C`, `%2E%2E`, any case), and white
/// space at either end of the key. Those servers answer such keys with `400`; with this rule
/// the client says [`KeyError::Traversal`] or [`KeyError::EdgeWhitespace`] without any I/O.
/// Either way, a server's refusal of a key is typed as
/// [`ResponseError::InvalidKey`](crate::ResponseError::InvalidKey).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum KeyRules {
    /// What every release rejects or misroutes (the default).
    #[default]
    Classic,
    /// [`Classic`](Self::Classic) plus Consul 1.22's traversal and edge-space rules.
    Consul122,
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
pub(crate) fn validate_key(key: &str, usage: KeyUse, rules: KeyRules) -> Result<(), KeyError> {
    classic_key(key, usage)?;
    if rules == KeyRules::Consul122 && !key.is_empty() {
        // `/`-separated `..` segments were refused above; a `\\` separates them too here.
        if key.contains('\\') && key.split(['/', '\\']).any(|seg| seg == "..") {
            return Err(KeyError::Traversal);
        }
        let b = key.as_bytes();
        if key.contains('%')
            && (0..b.len()).any(|i| {
                [&b"..%2f"[..], b"..%5c", b"%2e%2e"].iter().any(|p| {
                    b.get(i..i + p.len())
                        .is_some_and(|w| w.eq_ignore_ascii_case(p))
                })
            })
        {
            return Err(KeyError::Traversal);
        }
        if key.starts_with(char::is_whitespace) || key.ends_with(char::is_whitespace) {
            return Err(KeyError::EdgeWhitespace);
        }
    }
    Ok(())
}

fn classic_key(key: &str, usage: KeyUse) -> Result<(), KeyError> {
    if key.is_empty() {
        return match usage {
            KeyUse::Single => Err(KeyError::Empty),
            KeyUse::Prefix => Ok(()),
        };
    }
    if key.starts_with('/') {
        return Err(KeyError::LeadingSlash);
    }
    // One pass over the bytes finds every refusal; they are reported in a fixed order (`//`,
    // then a dot segment, then the first unprintable character) whatever their positions.
    let b = key.as_bytes();
    let (mut double_slash, mut dot_segment) = (false, false);
    let mut control: Option<usize> = None;
    let mut ascii = true;
    let mut segment = 0;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'/' => {
                match &b[segment..i] {
                    [] => double_slash = true,
                    [b'.'] | [b'.', b'.'] => dot_segment = true,
                    _ => {}
                }
                segment = i + 1;
            }
            0x00..=0x1F | 0x7F => {
                control.get_or_insert(i);
            }
            0x80.. => ascii = false,
            _ => {}
        }
    }
    if matches!(&b[segment..], [b'.'] | [b'.', b'.']) {
        dot_segment = true;
    }
    if double_slash {
        return Err(KeyError::DoubleSlash);
    }
    if dot_segment {
        return Err(KeyError::DotSegment);
    }
    // ASCII is printable but for its controls; beyond ASCII, the character check decides.
    let unprintable = if ascii {
        control.map(|i| (i, char::from(b[i])))
    } else {
        key.char_indices().find(|&(_, c)| !is_printable(c))
    };
    if let Some((position, ch)) = unprintable {
        return Err(KeyError::NonPrintable {
            position,
            code_point: u32::from(ch),
        });
    }
    Ok(())
}

/// Validates `key` for `usage` and wraps the failure in a [`BuildError`].
pub(crate) fn check_key(key: &str, usage: KeyUse, rules: KeyRules) -> Result<(), BuildError> {
    validate_key(key, usage, rules).map_err(|reason| BuildError::InvalidKey {
        key: key.to_owned(),
        reason,
    })
}

/// Writes `?a=b&flag&c=d` query strings with values percent-encoded.
#[derive(Debug, Default)]
pub(crate) struct Query {
    buf: String,
    /// Where the query starts in `buf` (after a path given to [`Query::after`]).
    start: usize,
}

impl Query {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A query written straight after `path`, in the same buffer: [`finish`](Self::finish)
    /// then returns the whole path and query, with no second allocation.
    pub(crate) fn after(path: String) -> Self {
        Self {
            start: path.len(),
            buf: path,
        }
    }

    fn sep(&mut self) {
        self.buf.push(if self.buf.len() == self.start {
            '?'
        } else {
            '&'
        });
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

    /// The key rules written the plain way (several passes, one check at a time): the
    /// one-pass `validate_key` must refuse exactly these keys, for exactly these reasons.
    fn plain_rules(key: &str, usage: KeyUse, rules: KeyRules) -> Result<(), KeyError> {
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
        if rules == KeyRules::Consul122 {
            if key.split(['/', '\\']).any(|seg| seg == "..") {
                return Err(KeyError::Traversal);
            }
            let lower = key.to_ascii_lowercase();
            if ["..%2f", "..%5c", "%2e%2e"]
                .iter()
                .any(|p| lower.contains(p))
            {
                return Err(KeyError::Traversal);
            }
            if key.starts_with(char::is_whitespace) || key.ends_with(char::is_whitespace) {
                return Err(KeyError::EdgeWhitespace);
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5_000))]

        #[test]
        fn one_pass_key_rules_match_the_plain_ones(
            key in r"[a./\\%2eEfFcC5 \x00\x1f\x7f\u{85}\u{a0}\u{200b}é😀]{0,12}",
            prefix in proptest::bool::ANY,
            strict in proptest::bool::ANY,
        ) {
            let usage = if prefix { KeyUse::Prefix } else { KeyUse::Single };
            let rules = if strict { KeyRules::Consul122 } else { KeyRules::default() };
            proptest::prop_assert_eq!(
                validate_key(&key, usage, rules),
                plain_rules(&key, usage, rules)
            );
        }
    }

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
            assert_eq!(
                validate_key(key, *usage, KeyRules::Classic).err(),
                *want,
                "key {key:?}"
            );
        }
    }

    #[test]
    fn consul_1_22_key_rules() {
        use KeyError::{EdgeWhitespace, Traversal};
        // (key, classic, 1.22)
        let table: &[(&str, Option<KeyError>, Option<KeyError>)] = &[
            ("plain/key", None, None),
            ("sp ace", None, None),
            ("con..fig", None, None),
            ("a.b/..c", None, None),
            ("foo%2Fbar", None, None),
            ("ç:;*+%", None, None),
            (" edge", None, Some(EdgeWhitespace)),
            ("edge ", None, Some(EdgeWhitespace)),
            ("a..%2Fb", None, Some(Traversal)),
            ("a..%2fb", None, Some(Traversal)),
            ("x%2E%2E/y", None, Some(Traversal)),
            ("a\\..\\b", None, Some(Traversal)),
            (
                "a/../b",
                Some(KeyError::DotSegment),
                Some(KeyError::DotSegment),
            ),
        ];
        for (key, classic, strict) in table {
            assert_eq!(
                validate_key(key, KeyUse::Single, KeyRules::Classic).err(),
                *classic,
                "classic {key:?}"
            );
            assert_eq!(
                validate_key(key, KeyUse::Single, KeyRules::Consul122).err(),
                *strict,
                "1.22 {key:?}"
            );
        }
        // An empty prefix stays the whole store under either rule.
        assert_eq!(
            validate_key("", KeyUse::Prefix, KeyRules::Consul122),
            Ok(())
        );
    }

    #[test]
    fn query_writer() {
        let mut q = Query::new();
        q.flag("recurse").pair("dc", "dc 2&x").num("index", 7);
        assert_eq!(q.finish(), "?recurse&dc=dc%202%26x&index=7");
    }
}
