//! One-pass decoding of `DirEntry` JSON straight into [`KvPair`]s.
//!
//! A list answer (`?recurse`) is parsed in a single pass with no intermediate wire struct:
//! each key becomes its `String` (one allocation, the only one per entry), and every base64
//! value is decoded into **one** buffer shared by the whole answer; each pair's `value` is a
//! [`Bytes`] slice of it. Keeping any one value alive therefore keeps that buffer alive.
//!
//! Base64 text is read as raw bytes (`deserialize_bytes`), so it is never UTF-8 validated:
//! base64 is ASCII, and anything else fails the decode with [`ResponseError::Base64`].
//!
//! Two paths read the same bytes: [`scan`] takes the shape Consul always sends (no escapes,
//! canonical base64, flat objects) in one hand-written pass, and gives up on anything else;
//! the serde path below then decides, so every error is the serde path's.

mod scan;

use std::fmt;
use std::ops::Range;

use base64::Engine as _;
use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::{ErrorDetail, ResponseError};
use crate::kv::{KvPair, B64};
use crate::session::SessionId;

/// Parses a JSON array of `DirEntry` objects in one pass.
///
/// # Errors
/// [`ResponseError::Json`] for malformed JSON or a missing `Key`, [`ResponseError::Base64`]
/// for a value that is not base64.
pub(crate) fn parse_list(body: &[u8]) -> Result<Vec<KvPair>, ResponseError> {
    if let Some(pairs) = scan::list(body) {
        return Ok(pairs);
    }
    parse_list_serde(body)
}

/// The serde path of [`parse_list`]: every shape JSON allows, and every error.
fn parse_list_serde(body: &[u8]) -> Result<Vec<KvPair>, ResponseError> {
    let mut state = State {
        // Every value's base64 text lies inside the body, so 3/4 of it bounds the decoded
        // total: one allocation, never grown.
        values: Vec::with_capacity(body.len() / 4 * 3),
        ranges: Vec::new(),
        base64_error: None,
    };
    let mut pairs = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = ListSeed {
        state: &mut state,
        out: &mut pairs,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Some(e) = state.base64_error.take() {
        return Err(e);
    }
    parsed.map_err(ResponseError::Json)?;
    attach(&mut pairs, state.values, state.ranges);
    Ok(pairs)
}

/// Gives each pair its value: a slice of the answer's one decoded buffer (`None` for a null
/// value, an empty `Bytes` that holds no buffer for an empty one).
fn attach(pairs: &mut [KvPair], values: Vec<u8>, ranges: Vec<Option<Range<usize>>>) {
    let values = Bytes::from(values);
    for (pair, range) in pairs.iter_mut().zip(ranges) {
        pair.value = range.map(|r| {
            if r.is_empty() {
                Bytes::new()
            } else {
                values.slice(r)
            }
        });
    }
}

/// Parses one `DirEntry` object (an element of a list answer), decoding its value into its
/// own exact-size buffer.
///
/// # Errors
/// As [`parse_list`].
pub(crate) fn parse_one(element: &[u8]) -> Result<KvPair, ResponseError> {
    if let Some(pair) = scan::one(element) {
        return Ok(pair);
    }
    let mut state = State {
        values: Vec::new(),
        ranges: Vec::with_capacity(1),
        base64_error: None,
    };
    let mut de = serde_json::Deserializer::from_slice(element);
    let parsed = EntrySeed { state: &mut state }
        .deserialize(&mut de)
        .and_then(|pair| de.end().map(|()| pair));
    if let Some(e) = state.base64_error.take() {
        return Err(e);
    }
    let mut pair = parsed.map_err(ResponseError::Json)?;
    pair.value = match state.ranges.pop().flatten() {
        None => None,
        Some(r) if r.is_empty() => Some(Bytes::new()),
        Some(_) => Some(Bytes::from(state.values.into_boxed_slice())),
    };
    Ok(pair)
}

/// What the visitors share: the values buffer, each entry's range in it, and a base64
/// failure (reported as [`ResponseError::Base64`], which serde's error type cannot carry).
struct State {
    values: Vec<u8>,
    /// Per entry, in order: `None` for a null or absent value.
    ranges: Vec<Option<Range<usize>>>,
    base64_error: Option<ResponseError>,
}

struct ListSeed<'s> {
    state: &'s mut State,
    out: &'s mut Vec<KvPair>,
}

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of KV entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.out.reserve(n);
            self.state.ranges.reserve(n);
        }
        while let Some(pair) = seq.next_element_seed(EntrySeed {
            state: &mut *self.state,
        })? {
            self.out.push(pair);
        }
        Ok(())
    }
}

struct EntrySeed<'s> {
    state: &'s mut State,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = KvPair;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<KvPair, D::Error> {
        d.deserialize_map(self)
    }
}

/// The `DirEntry` fields.
enum Field {
    LockIndex,
    Key,
    Flags,
    Value,
    Session,
    CreateIndex,
    ModifyIndex,
    Other,
}

struct FieldVisitor;

impl Visitor<'_> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a DirEntry field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
        Ok(match v {
            "Key" => Field::Key,
            "Value" => Field::Value,
            "Flags" => Field::Flags,
            "LockIndex" => Field::LockIndex,
            "CreateIndex" => Field::CreateIndex,
            "ModifyIndex" => Field::ModifyIndex,
            "Session" => Field::Session,
            _ => Field::Other,
        })
    }
}

impl<'de> serde::Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(FieldVisitor)
    }
}

/// A JSON string into an owned `String`: one allocation, none for the borrowed case beyond
/// the copy itself.
struct OwnedString;

impl Visitor<'_> for OwnedString {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(OwnedString)
    }
}

struct SessionSeed;

impl<'de> DeserializeSeed<'de> for SessionSeed {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_option(OptionOf(OwnedString))
    }
}

/// `null` or a value of the inner visitor.
struct OptionOf<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for OptionOf<V> {
    type Value = Option<V::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null or ")?;
        self.0.expecting(f)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self.0).map(Some)
    }
}

/// The base64 text of a value, as raw bytes (no UTF-8 check), kept for decoding once the
/// key is known.
struct RawBytes<'a>(&'a mut Vec<u8>);

impl<'de> Visitor<'de> for RawBytes<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.0.clear();
        self.0.extend_from_slice(v);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.visit_bytes(v.as_bytes())
    }
}

/// A value's base64 text: borrowed from the body when it has no JSON escapes (the usual
/// case), else copied aside. It is decoded once the whole entry is read, so that a decoding
/// error can name the key.
struct ValueSeed<'s> {
    /// The value's text when it could not be borrowed (it had JSON escapes).
    spill: &'s mut Vec<u8>,
}

enum ValueText<'de> {
    Null,
    Borrowed(&'de [u8]),
    Spilled,
}

struct ValueVisitor<'s> {
    spill: &'s mut Vec<u8>,
}

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = ValueText<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null or a base64 string")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(ValueText::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(ValueText::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_bytes(self)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        Ok(ValueText::Borrowed(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(ValueText::Borrowed(v.as_bytes()))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        RawBytes(self.spill).visit_bytes(v)?;
        Ok(ValueText::Spilled)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.visit_bytes(v.as_bytes())
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ValueText<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ValueText<'de>, D::Error> {
        d.deserialize_option(ValueVisitor { spill: self.spill })
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = KvPair;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a KV entry object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KvPair, A::Error> {
        let mut key: Option<String> = None;
        let mut value = ValueText::Null;
        let mut spill = Vec::new();
        let mut session: Option<String> = None;
        let (mut lock_index, mut flags, mut create_index, mut modify_index) = (0, 0, 0, 0);
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Key => key = Some(map.next_value_seed(KeySeed)?),
                Field::Value => {
                    value = map.next_value_seed(ValueSeed { spill: &mut spill })?;
                }
                Field::Session => session = map.next_value_seed(SessionSeed)?,
                Field::Flags => flags = map.next_value::<Option<u64>>()?.unwrap_or(0),
                Field::LockIndex => lock_index = map.next_value::<Option<u64>>()?.unwrap_or(0),
                Field::CreateIndex => {
                    create_index = map.next_value::<Option<u64>>()?.unwrap_or(0);
                }
                Field::ModifyIndex => {
                    modify_index = map.next_value::<Option<u64>>()?.unwrap_or(0);
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let key = key.ok_or_else(|| de::Error::missing_field("Key"))?;
        let text: Option<&[u8]> = match value {
            ValueText::Null => None,
            ValueText::Borrowed(b) => Some(b),
            ValueText::Spilled => Some(&spill),
        };
        let range = match text {
            None => None,
            Some(text) => {
                let values = &mut self.state.values;
                let start = values.len();
                if let Err(e) = B64.decode_vec(text, values) {
                    values.truncate(start);
                    self.state.base64_error = Some(ResponseError::Base64 {
                        key,
                        detail: ErrorDetail::new(e.to_string()),
                    });
                    return Err(de::Error::custom("malformed base64 value"));
                }
                Some(start..values.len())
            }
        };
        self.state.ranges.push(range);
        Ok(KvPair {
            key,
            value: None,
            flags,
            create_index,
            modify_index,
            lock_index,
            session: session
                .filter(|s| !s.is_empty())
                .map(SessionId::from_server),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_share_one_buffer_and_nulls_stay_none() {
        let body = br#"[{"Key":"a","Value":"YQ==","Flags":1,"CreateIndex":2,"ModifyIndex":3,"LockIndex":4,"Session":"s-1"},
            {"Key":"b\u00e9","Value":null},{"Key":"c","Value":""},{"Key":"d","Value":"ZGRk","Extra":[1,{"x":2}]}]"#;
        let pairs = parse_list(body).unwrap();
        assert_eq!(pairs.len(), 4);
        assert_eq!(pairs[0].value.as_deref(), Some(&b"a"[..]));
        assert_eq!(
            (
                pairs[0].flags,
                pairs[0].create_index,
                pairs[0].modify_index,
                pairs[0].lock_index
            ),
            (1, 2, 3, 4)
        );
        assert_eq!(pairs[0].session.as_ref().map(|s| s.as_str()), Some("s-1"));
        assert_eq!(pairs[1].key, "bé");
        assert_eq!(pairs[1].value, None);
        assert_eq!(pairs[2].value.as_deref(), Some(&b""[..]));
        assert_eq!(pairs[3].value.as_deref(), Some(&b"ddd"[..]));
        // Both values point into one allocation.
        let (a, d) = (
            pairs[0].value.as_ref().unwrap(),
            pairs[3].value.as_ref().unwrap(),
        );
        assert_eq!(start_distance(a, d), 1);
    }

    /// How far apart two slices start (they share one buffer when this is small).
    fn start_distance(a: &Bytes, b: &Bytes) -> usize {
        (b.as_ptr() as usize).abs_diff(a.as_ptr() as usize)
    }

    /// The shape Consul sends takes the fast path, and gets what the serde path gets.
    #[test]
    fn consul_shaped_answers_take_the_scanner() {
        let body = r#"[{"LockIndex":1,"Key":"app/config/été","Flags":42,"Value":"aGVsbG8=","Session":"adf4238a-882b-9ddc-4a9d-5b6758e4159e","CreateIndex":12,"ModifyIndex":18},
  {"LockIndex":0,"Key":"app/folder/","Flags":0,"Value":null,"CreateIndex":3,"ModifyIndex":3},
  {"LockIndex":0,"Key":"app/empty","Flags":0,"Value":"","CreateIndex":4,"ModifyIndex":5,"Namespace":"default","Partial":false},
  {"LockIndex":0,"Key":"a","Flags":18446744073709551615,"Value":"YWI=","CreateIndex":6,"ModifyIndex":6}]"#;
        let body = body.as_bytes();
        let fast = scan::list(body).expect("the scanner takes Consul's shape");
        assert_eq!(fast, parse_list_serde(body).unwrap());
        assert_eq!(fast[0].key, "app/config/été");
        assert_eq!(fast[0].value.as_deref(), Some(&b"hello"[..]));
        assert_eq!(fast[1].value, None);
        assert_eq!(fast[2].value.as_deref(), Some(&b""[..]));
        assert_eq!(fast[3].value.as_deref(), Some(&b"ab"[..]));
        assert_eq!(fast[3].flags, u64::MAX);
        // The values share one allocation: "hello", then "" (no buffer), then "ab".
        let (a, d) = (
            fast[0].value.as_ref().unwrap(),
            fast[3].value.as_ref().unwrap(),
        );
        assert_eq!(start_distance(a, d), 5);
        let one = scan::one(br#" {"Key":"k","Value":"dGVzdA=="} "#).unwrap();
        assert_eq!(one.value.as_deref(), Some(&b"test"[..]));
        assert_eq!(scan::list(b"[]"), Some(Vec::new()));
    }

    /// What the scanner leaves to the serde path (each is an answer or an error there).
    #[test]
    fn the_scanner_gives_up_on_every_unusual_shape() {
        for body in [
            &br#"[{"Key":"a\"b","Value":null}]"#[..],
            br#"[{"Key":"k","Value":"P\/8="}]"#,
            br#"[{"Key":"k","Value":"YQ"}]"#,
            br#"[{"Key":"k","Value":"YR=="}]"#,
            br#"[{"Key":"k","Value":"YQ==YQ=="}]"#,
            br#"[{"Key":"k","Flags":01}]"#,
            br#"[{"Key":"k","Flags":1.0}]"#,
            br#"[{"Key":"k","Flags":-1}]"#,
            br#"[{"Key":"k","Flags":18446744073709551616}]"#,
            br#"[{"Key":"k","Key":"j"}]"#,
            br#"[{"Key":"k","X":[1]}]"#,
            br#"[{"Key":"k",}]"#,
            br#"[{"Key":"k"},]"#,
            br#"[{"Key":"k"}] x"#,
            br#"[{"Value":null}]"#,
            b"[{\"Key\":\"\xff\"}]",
            b"[{\"Key\":\"a\x01\"}]",
            br#"[null]"#,
            br#"{}"#,
            b"",
        ] {
            assert_eq!(scan::list(body), None, "{}", String::from_utf8_lossy(body));
        }
    }

    mod agreement {
        use super::super::{parse_list_serde, scan};
        use base64::Engine as _;
        use proptest::prelude::*;

        fn json_str(s: &str) -> String {
            serde_json::to_string(s).unwrap()
        }

        /// One entry's fields as JSON text, in a shuffled order with odd whitespace, some
        /// unknown or repeated fields, and sometimes a damaged value.
        fn entry() -> impl Strategy<Value = String> {
            (
                any::<String>(),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
                any::<u64>(),
                any::<u64>(),
                proptest::option::of("[a-f0-9-]{0,36}"),
                proptest::sample::select(vec![
                    "",
                    r#""Namespace":"default""#,
                    r#""X":[1]"#,
                    r#""Y":-1"#,
                    r#""Z":1.5"#,
                    r#""W":true"#,
                    r#""Key":"dup""#,
                    r#""V":"é""#,
                    r#""N":null"#,
                ]),
                proptest::sample::select(vec![
                    "", " ", "
  ", "	", "
",
                ]),
                0..5usize,
                any::<u64>(),
            )
                .prop_map(
                    |(key, value, flags, index, session, extra, ws, damage, seed)| {
                        let value = match value {
                            None => "null".to_owned(),
                            Some(v) => {
                                let mut t = base64::engine::general_purpose::STANDARD.encode(v);
                                match damage {
                                    1 => t = t.trim_end_matches('=').to_owned(),
                                    2 => t = t.replace('/', "\\/"),
                                    // Often non-canonical: unused bits set in the last symbol.
                                    3 if t.ends_with('=') => {
                                        let at = t.trim_end_matches('=').len() - 1;
                                        t.replace_range(
                                            at..=at,
                                            ["B", "I", "Y", "/"][(seed % 4) as usize],
                                        );
                                    }
                                    _ => {}
                                }
                                format!("\"{t}\"")
                            }
                        };
                        let mut fields = vec![
                            format!("\"Key\":{ws}{}", json_str(&key)),
                            format!("\"Value\":{value}"),
                            format!("\"Flags\":{flags}"),
                            format!("\"ModifyIndex\":{ws}{index}"),
                            format!("\"CreateIndex\":{}", index / 2),
                            "\"LockIndex\":null".to_owned(),
                        ];
                        if let Some(s) = session {
                            fields.push(format!("\"Session\":{}", json_str(&s)));
                        }
                        if !extra.is_empty() {
                            fields.push(extra.to_owned());
                        }
                        let n = fields.len();
                        fields.rotate_left((seed as usize) % n);
                        format!("{{{ws}{}{ws}}}", fields.join(&format!(",{ws}")))
                    },
                )
        }

        fn body() -> impl Strategy<Value = Vec<u8>> {
            (
                proptest::collection::vec(entry(), 0..6),
                proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
                proptest::option::of(any::<prop::sample::Index>()),
            )
                .prop_map(|(entries, flip, cut)| {
                    let mut b = format!("[{}]", entries.join(",")).into_bytes();
                    if let Some((at, byte)) = flip {
                        let i = at.index(b.len());
                        b[i] = byte;
                    }
                    if let Some(at) = cut {
                        b.truncate(at.index(b.len() + 1));
                    }
                    b
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4_000))]

            /// Whenever the scanner answers, the serde path answers the same.
            #[test]
            fn scan_agrees_with_serde(body in body()) {
                if let Some(fast) = scan::list(&body) {
                    match parse_list_serde(&body) {
                        Ok(slow) => prop_assert_eq!(fast, slow),
                        Err(e) => prop_assert!(false, "scanner took what serde refuses: {e}"),
                    }
                }
            }
        }
    }

    #[test]
    fn escaped_base64_and_errors() {
        // JSON may escape the `/` of base64; the escaped text still decodes.
        let pairs = parse_list(br#"[{"Key":"k","Value":"P\/8="}]"#).unwrap();
        assert_eq!(pairs[0].value.as_deref(), Some(&[0x3f, 0xff][..]));
        match parse_list(br#"[{"Key":"bad","Value":"!!"}]"#) {
            Err(ResponseError::Base64 { key, .. }) => assert_eq!(key, "bad"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_list(br#"[{"Value":null}]"#),
            Err(ResponseError::Json(_))
        ));
        assert!(matches!(
            parse_list(br#"[{"Key":"k"}] x"#),
            Err(ResponseError::Json(_))
        ));
        assert!(matches!(parse_list(b"{}"), Err(ResponseError::Json(_))));
        let one = parse_one(br#"{"Key":"k","Value":"dGVzdA=="}"#).unwrap();
        assert_eq!(one.value.as_deref(), Some(&b"test"[..]));
    }
}
