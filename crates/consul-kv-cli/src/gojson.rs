//! Reading an export file as `consul kv import` reads it: Go's `encoding/json` into
//! `[]*Entry{key, flags, value}`, with Go's error messages (syntax errors from its scanner,
//! then type errors), field names matched case-insensitively as Go does.

use serde_json::Value;

/// One entry of an export file. `value` is base64 text, decoded when written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The flags.
    pub flags: u64,
    /// The value, base64.
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    BeginValueOrEmpty,
    BeginValue,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    Lit(&'static [u8], usize, &'static str),
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Go's `quoteChar` for a scanner error: the byte read as a Latin-1 rune, quoted as
/// `strconv.Quote` would, in single quotes.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_owned(),
        b'"' => "'\"'".to_owned(),
        0x07 => "'\\a'".to_owned(),
        0x08 => "'\\b'".to_owned(),
        0x0c => "'\\f'".to_owned(),
        b'\n' => "'\\n'".to_owned(),
        b'\r' => "'\\r'".to_owned(),
        b'\t' => "'\\t'".to_owned(),
        0x0b => "'\\v'".to_owned(),
        b'\\' => "'\\\\'".to_owned(),
        c if c < 0x20 || c == 0x7f => format!("'\\x{c:02x}'"),
        c if (0x80..0xa1).contains(&c) || c == 0xad => format!("'\\u{:04x}'", u32::from(c)),
        c => format!("'{}'", char::from(c)),
    }
}

struct Scanner {
    stack: Vec<Parse>,
    st: St,
}

impl Scanner {
    fn err(c: u8, ctx: &str) -> String {
        format!("invalid character {} {ctx}", quote_char(c))
    }

    fn end_value(&mut self, c: u8) -> Result<(), String> {
        let Some(top) = self.stack.last().copied() else {
            self.st = St::EndTop;
            return self.step(c);
        };
        if is_space(c) {
            self.st = St::EndValue;
            return Ok(());
        }
        match top {
            Parse::ObjectKey => {
                if c == b':' {
                    if let Some(t) = self.stack.last_mut() {
                        *t = Parse::ObjectValue;
                    }
                    self.st = St::BeginValue;
                    return Ok(());
                }
                Err(Self::err(c, "after object key"))
            }
            Parse::ObjectValue => match c {
                b',' => {
                    if let Some(t) = self.stack.last_mut() {
                        *t = Parse::ObjectKey;
                    }
                    self.st = St::BeginString;
                    Ok(())
                }
                b'}' => {
                    self.stack.pop();
                    self.st = St::EndValue;
                    Ok(())
                }
                _ => Err(Self::err(c, "after object key:value pair")),
            },
            Parse::ArrayValue => match c {
                b',' => {
                    self.st = St::BeginValue;
                    Ok(())
                }
                b']' => {
                    self.stack.pop();
                    self.st = St::EndValue;
                    Ok(())
                }
                _ => Err(Self::err(c, "after array element")),
            },
        }
    }

    fn begin_value(&mut self, c: u8) -> Result<(), String> {
        if is_space(c) {
            return Ok(());
        }
        self.st = match c {
            b'{' => {
                self.stack.push(Parse::ObjectKey);
                St::BeginStringOrEmpty
            }
            b'[' => {
                self.stack.push(Parse::ArrayValue);
                St::BeginValueOrEmpty
            }
            b'"' => St::InString,
            b'-' => St::Neg,
            b'0' => St::Zero,
            b'1'..=b'9' => St::One,
            b't' => St::Lit(b"true", 1, "in literal true"),
            b'f' => St::Lit(b"false", 1, "in literal false"),
            b'n' => St::Lit(b"null", 1, "in literal null"),
            _ => return Err(Self::err(c, "looking for beginning of value")),
        };
        Ok(())
    }

    fn step(&mut self, c: u8) -> Result<(), String> {
        match self.st {
            St::BeginValueOrEmpty => {
                if is_space(c) {
                    return Ok(());
                }
                if c == b']' {
                    return self.end_value(c);
                }
                self.begin_value(c)
            }
            St::BeginValue => self.begin_value(c),
            St::BeginStringOrEmpty => {
                if is_space(c) {
                    return Ok(());
                }
                if c == b'}' {
                    if let Some(t) = self.stack.last_mut() {
                        *t = Parse::ObjectValue;
                    }
                    return self.end_value(c);
                }
                self.st = St::BeginString;
                self.step(c)
            }
            St::BeginString => {
                if is_space(c) {
                    return Ok(());
                }
                if c == b'"' {
                    self.st = St::InString;
                    return Ok(());
                }
                Err(Self::err(c, "looking for beginning of object key string"))
            }
            St::EndValue => self.end_value(c),
            St::EndTop => {
                if is_space(c) {
                    Ok(())
                } else {
                    Err(Self::err(c, "after top-level value"))
                }
            }
            St::InString => {
                match c {
                    b'"' => self.st = St::EndValue,
                    b'\\' => self.st = St::InStringEsc,
                    c if c < 0x20 => return Err(Self::err(c, "in string literal")),
                    _ => {}
                }
                Ok(())
            }
            St::InStringEsc => {
                self.st = match c {
                    b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => St::InString,
                    b'u' => St::InStringEscU(0),
                    _ => return Err(Self::err(c, "in string escape code")),
                };
                Ok(())
            }
            St::InStringEscU(n) => {
                if !c.is_ascii_hexdigit() {
                    return Err(Self::err(c, "in \\u hexadecimal character escape"));
                }
                self.st = if n == 3 {
                    St::InString
                } else {
                    St::InStringEscU(n + 1)
                };
                Ok(())
            }
            St::Neg => {
                self.st = match c {
                    b'0' => St::Zero,
                    b'1'..=b'9' => St::One,
                    _ => return Err(Self::err(c, "in numeric literal")),
                };
                Ok(())
            }
            St::One => {
                if c.is_ascii_digit() {
                    return Ok(());
                }
                self.zero(c)
            }
            St::Zero => self.zero(c),
            St::Dot => {
                if c.is_ascii_digit() {
                    self.st = St::Dot0;
                    return Ok(());
                }
                Err(Self::err(c, "after decimal point in numeric literal"))
            }
            St::Dot0 => {
                if c.is_ascii_digit() {
                    return Ok(());
                }
                if c == b'e' || c == b'E' {
                    self.st = St::E;
                    return Ok(());
                }
                self.end_value(c)
            }
            St::E => {
                if c == b'+' || c == b'-' {
                    self.st = St::ESign;
                    return Ok(());
                }
                self.st = St::ESign;
                self.step(c)
            }
            St::ESign => {
                if c.is_ascii_digit() {
                    self.st = St::E0;
                    return Ok(());
                }
                Err(Self::err(c, "in exponent of numeric literal"))
            }
            St::E0 => {
                if c.is_ascii_digit() {
                    return Ok(());
                }
                self.end_value(c)
            }
            St::Lit(word, i, ctx) => {
                if c != word[i] {
                    return Err(format!(
                        "invalid character {} {ctx} (expecting {})",
                        quote_char(c),
                        quote_char(word[i])
                    ));
                }
                self.st = if i + 1 == word.len() {
                    St::EndValue
                } else {
                    St::Lit(word, i + 1, ctx)
                };
                Ok(())
            }
        }
    }

    fn zero(&mut self, c: u8) -> Result<(), String> {
        match c {
            b'.' => {
                self.st = St::Dot;
                Ok(())
            }
            b'e' | b'E' => {
                self.st = St::E;
                Ok(())
            }
            _ => self.end_value(c),
        }
    }
}

/// Go's `checkValid`: the first syntax error, worded as Go words it.
pub fn check_valid(data: &[u8]) -> Result<(), String> {
    let mut s = Scanner {
        stack: Vec::new(),
        st: St::BeginValue,
    };
    for &c in data {
        s.step(c)?;
    }
    if s.st == St::EndTop {
        return Ok(());
    }
    // Go's eof(): a final space ends a top-level number.
    if s.step(b' ').is_ok() && s.st == St::EndTop {
        return Ok(());
    }
    Err("unexpected end of JSON input".to_owned())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Decodes an export file as `consul kv import` does, with Go's error text.
///
/// # Errors
/// The text Go's `json.Unmarshal` would give (without consul's `Cannot unmarshal data: `).
pub fn parse_entries(data: &[u8]) -> Result<Vec<Entry>, String> {
    check_valid(data)?;
    let v: Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type []*impexp.Entry",
                kind(&other)
            ))
        }
    };
    let mut first_err: Option<String> = None;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let obj = match item {
            Value::Object(o) => o,
            Value::Null => {
                first_err.get_or_insert_with(|| "null entry in the list".to_owned());
                continue;
            }
            other => {
                first_err.get_or_insert_with(|| {
                    format!(
                        "json: cannot unmarshal {} into Go value of type impexp.Entry",
                        kind(&other)
                    )
                });
                continue;
            }
        };
        let mut e = Entry {
            key: String::new(),
            flags: 0,
            value: String::new(),
        };
        for field in ["key", "flags", "value"] {
            // Go: the exact name first, else the last case-insensitive match.
            let val = obj.get(field).or_else(|| {
                obj.iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(field))
                    .map(|(_, v)| v)
                    .next_back()
            });
            let Some(val) = val else { continue };
            let type_err = |what: String, ty: &str| {
                format!(
                    "json: cannot unmarshal {what} into Go struct field Entry.{field} of type {ty}"
                )
            };
            match (field, val) {
                (_, Value::Null) => {}
                ("key", Value::String(s)) => e.key = s.clone(),
                ("value", Value::String(s)) => e.value = s.clone(),
                ("flags", Value::Number(n)) => match n.as_u64() {
                    Some(f) => e.flags = f,
                    None => {
                        first_err.get_or_insert_with(|| type_err(format!("number {n}"), "uint64"));
                    }
                },
                ("flags", other) => {
                    first_err.get_or_insert_with(|| type_err(kind(other).to_owned(), "uint64"));
                }
                (_, other) => {
                    first_err.get_or_insert_with(|| type_err(kind(other).to_owned(), "string"));
                }
            }
        }
        out.push(e);
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn go_syntax_errors() {
        let e = |s: &str| check_valid(s.as_bytes()).unwrap_err();
        assert_eq!(
            e("xyz"),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(
            e("nope"),
            "invalid character 'o' in literal null (expecting 'u')"
        );
        assert_eq!(e("[{\"key\":\"a\""), "unexpected end of JSON input");
        assert_eq!(e(""), "unexpected end of JSON input");
        assert_eq!(
            e("[1,]"),
            "invalid character ']' looking for beginning of value"
        );
        assert_eq!(e("{\"a\" 1}"), "invalid character '1' after object key");
        assert_eq!(e("[1] x"), "invalid character 'x' after top-level value");
        assert_eq!(
            e("{1:2}"),
            "invalid character '1' looking for beginning of object key string"
        );
        assert!(check_valid(b" [ {\"a\": -1.5e+3, \"b\": [true, false, null]} ] ").is_ok());
        assert!(check_valid(b"12").is_ok());
    }

    #[test]
    fn entries_and_type_errors() {
        let v = parse_entries(br#"[{"Key":"a","flags":3,"value":"eA=="},{"key":"b"}]"#).unwrap();
        assert_eq!(v[0].key, "a");
        assert_eq!(v[0].flags, 3);
        assert_eq!(v[1].value, "");
        assert_eq!(
            parse_entries(b"{}").unwrap_err(),
            "json: cannot unmarshal object into Go value of type []*impexp.Entry"
        );
        assert_eq!(
            parse_entries(br#"[{"key":1}]"#).unwrap_err(),
            "json: cannot unmarshal number into Go struct field Entry.key of type string"
        );
        assert_eq!(
            parse_entries(br#"[{"flags":-1}]"#).unwrap_err(),
            "json: cannot unmarshal number -1 into Go struct field Entry.flags of type uint64"
        );
        assert!(parse_entries(b"null").unwrap().is_empty());
    }
}
