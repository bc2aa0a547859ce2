//! The JSON format of `consul kv export` and `consul kv import`.
//!
//! An export is a JSON array of objects `{"key": "<key>", "flags": <u64>, "value": "<base64>"}`
//! in key order (Consul Enterprise adds `"namespace"` and `"partition"` when set). A key
//! without a value exports as `""`. The CLI writes the array indented with tabs and Go's
//! escaping (`<`, `>`, `&` as `\u003c`, `\u003e`, `\u0026`), followed by a newline.
//!
//! [`ExportEntry`] is one element, with the value as bytes: serde reads and writes the base64
//! form, so `serde_json` reads a file the CLI wrote and writes one the CLI imports.
//! [`to_cli_json`] writes exactly the bytes the CLI would.
//!
//! ```
//! use consul_kv_proto::export::{to_cli_json, ExportEntry};
//!
//! let file = "[\n\t{\n\t\t\"key\": \"app/a<b\",\n\t\t\"flags\": 0,\n\t\t\"value\": \"aGk=\"\n\t}\n]\n";
//! let entries: Vec<ExportEntry> = serde_json::from_str(file)?;
//! assert_eq!(entries[0].key, "app/a<b");
//! assert_eq!(&entries[0].value[..], b"hi");
//! // The CLI escapes `<` as \u003c; to_cli_json does too.
//! assert_eq!(to_cli_json(&entries), file.replace('<', "\\u003c"));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::io;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::kv::{KvPair, B64};
use crate::value::IntoValue;

/// One entry of a `consul kv export` file: key, flags and value.
///
/// Serialises exactly as the CLI's entries (`key`, `flags`, `value` in base64, then
/// `namespace` and `partition` only when set); deserialising accepts what the CLI writes and
/// decodes the value. A missing `flags` or `value` reads as `0` or empty, as the CLI's import
/// reads it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportEntry {
    /// The key.
    pub key: String,
    /// The flags.
    pub flags: u64,
    /// The value (empty for a key stored without one).
    pub value: Bytes,
    /// The namespace (Consul Enterprise), when the export carried one.
    pub namespace: Option<String>,
    /// The admin partition (Consul Enterprise), when the export carried one.
    pub partition: Option<String>,
}

impl ExportEntry {
    /// An entry.
    pub fn new(key: impl Into<String>, flags: u64, value: impl IntoValue) -> Self {
        Self {
            key: key.into(),
            flags,
            value: value.into_value(),
            namespace: None,
            partition: None,
        }
    }

    /// The entry of a stored pair (a missing value becomes empty, as in the CLI).
    pub fn from_pair(pair: &KvPair) -> Self {
        Self::new(
            pair.key.clone(),
            pair.flags,
            pair.value.clone().unwrap_or_default(),
        )
    }
}

impl From<&KvPair> for ExportEntry {
    fn from(pair: &KvPair) -> Self {
        Self::from_pair(pair)
    }
}

impl From<KvPair> for ExportEntry {
    fn from(pair: KvPair) -> Self {
        Self::new(pair.key, pair.flags, pair.value.unwrap_or_default())
    }
}

impl<K: Into<String>, V: IntoValue> From<(K, V)> for ExportEntry {
    /// A `(key, value)` pair with flags 0.
    fn from((key, value): (K, V)) -> Self {
        Self::new(key, 0, value)
    }
}

impl<K: Into<String>, V: IntoValue> From<(K, V, u64)> for ExportEntry {
    /// A `(key, value, flags)` triple.
    fn from((key, value, flags): (K, V, u64)) -> Self {
        Self::new(key, flags, value)
    }
}

#[derive(Serialize)]
struct WireOut<'a> {
    key: &'a str,
    flags: u64,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<&'a str>,
}

#[derive(Deserialize)]
struct WireIn {
    key: String,
    #[serde(default)]
    flags: u64,
    #[serde(default)]
    value: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    partition: Option<String>,
}

impl Serialize for ExportEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireOut {
            key: &self.key,
            flags: self.flags,
            value: B64.encode(&self.value),
            namespace: self.namespace.as_deref().filter(|n| !n.is_empty()),
            partition: self.partition.as_deref().filter(|p| !p.is_empty()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ExportEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireIn::deserialize(d)?;
        let value = B64.decode(w.value.as_bytes()).map_err(|e| {
            serde::de::Error::custom(format_args!("value of key {:?} is not base64: {e}", w.key))
        })?;
        Ok(Self {
            key: w.key,
            flags: w.flags,
            value: Bytes::from(value),
            namespace: w.namespace.filter(|n| !n.is_empty()),
            partition: w.partition.filter(|p| !p.is_empty()),
        })
    }
}

/// Rewrites `key` from under `from` to under `to`: `None` when `key` does not start with
/// `from`.
///
/// ```
/// use consul_kv_proto::export::rewrite_prefix;
/// assert_eq!(rewrite_prefix("old/a/b", "old/", "new/").as_deref(), Some("new/a/b"));
/// assert_eq!(rewrite_prefix("a/b", "", "copy/").as_deref(), Some("copy/a/b"));
/// assert_eq!(rewrite_prefix("other/a", "old/", "new/"), None);
/// ```
pub fn rewrite_prefix(key: &str, from: &str, to: &str) -> Option<String> {
    key.strip_prefix(from).map(|rest| format!("{to}{rest}"))
}

/// Writes `entries` byte for byte as `consul kv export` prints them: a JSON array indented
/// with tabs, strings escaped as Go's `encoding/json` escapes them, and a final newline.
pub fn to_cli_json(entries: &[ExportEntry]) -> String {
    let mut buf = Vec::with_capacity(entries.len() * 64 + 4);
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, GoFormatter::new());
    if entries.serialize(&mut ser).is_err() {
        // Serialising strings and integers into a Vec cannot fail.
        return "[]\n".to_owned();
    }
    buf.push(b'\n');
    String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// serde_json's pretty printer with a tab indent and Go's extra escapes (`<`, `>`, `&`,
/// U+2028, U+2029).
struct GoFormatter {
    inner: serde_json::ser::PrettyFormatter<'static>,
}

impl GoFormatter {
    fn new() -> Self {
        Self {
            inner: serde_json::ser::PrettyFormatter::with_indent(b"\t"),
        }
    }
}

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.inner.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.inner.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_layout_and_round_trip() {
        let entries = vec![
            ExportEntry::new("a/b", 7, &b"val"[..]),
            ExportEntry::new("empty", 0, Bytes::new()),
            ExportEntry::new("x&y>z\u{2028}\"q\"\\", 1, &[0xff, 0x00][..]),
        ];
        let s = to_cli_json(&entries);
        assert!(s.starts_with(
            "[\n\t{\n\t\t\"key\": \"a/b\",\n\t\t\"flags\": 7,\n\t\t\"value\": \"dmFs\"\n\t},\n"
        ));
        assert!(s.contains("\"key\": \"x\\u0026y\\u003ez\\u2028\\\"q\\\"\\\\\""));
        assert!(s.ends_with("}\n]\n"));
        let back: Vec<ExportEntry> = serde_json::from_str(&s).unwrap();
        assert_eq!(back, entries);
        assert_eq!(to_cli_json(&[]), "[]\n");
    }

    #[test]
    fn reads_what_the_cli_may_write() {
        let s = r#"[{"key":"k","value":""},{"key":"n","flags":2,"value":"AA==","namespace":"team","partition":""}]"#;
        let e: Vec<ExportEntry> = serde_json::from_str(s).unwrap();
        assert_eq!(e[0], ExportEntry::new("k", 0, Bytes::new()));
        assert_eq!(e[1].namespace.as_deref(), Some("team"));
        assert_eq!(e[1].partition, None);
        assert_eq!(&e[1].value[..], &[0u8]);
        let err = serde_json::from_str::<Vec<ExportEntry>>(r#"[{"key":"bad","value":"%%"}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"bad\""), "{err}");
        assert!(serde_json::from_str::<Vec<ExportEntry>>(r#"[{"value":""}]"#).is_err());
    }

    #[test]
    fn serde_pretty_matches_after_reparse() {
        let e = vec![ExportEntry::new("k", 1, &b"v"[..])];
        let a = serde_json::to_string_pretty(&e).unwrap();
        let b: Vec<ExportEntry> = serde_json::from_str(&to_cli_json(&e)).unwrap();
        assert_eq!(a, serde_json::to_string_pretty(&b).unwrap());
    }
}
