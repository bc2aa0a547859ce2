//! Byte-for-byte equivalents of the Go library behaviour the `consul` CLI's output depends on:
//! `encoding/json` string escaping and indentation, `encoding/base64` decoding (including what
//! it returns alongside an error), and `text/tabwriter` alignment.

use std::fmt::Write as _;

/// Appends `s` as a JSON string the way Go's `encoding/json` writes it: `<`, `>`, `&`, U+2028
/// and U+2029 escaped as `\u003c` …, control characters as `\n`, `\r`, `\t` or `\u00XX`, and
/// invalid UTF-8 replaced by `\ufffd`.
pub fn push_json_string(out: &mut String, s: &[u8]) {
    out.push('"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        if !chunk.invalid().is_empty() {
            out.push_str("\\ufffd");
        }
    }
    out.push('"');
}

/// A JSON value in Go's field order, for output only.
#[derive(Debug, Clone)]
pub enum Json {
    /// `null`.
    Null,
    /// A number, written as is.
    Uint(u64),
    /// A string of bytes (escaped as Go escapes a `string`).
    Str(Vec<u8>),
    /// An array.
    Array(Vec<Self>),
    /// An object with fields in this order.
    Object(Vec<(&'static str, Self)>),
}

impl Json {
    /// Go's `json.MarshalIndent(v, "", indent)`.
    pub fn indented(&self, indent: &str) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(indent), 0);
        out
    }

    /// Go's `json.Marshal(v)`.
    pub fn compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None, 0);
        out
    }

    fn newline(out: &mut String, indent: Option<&str>, depth: usize) {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(ind);
            }
        }
    }

    fn write(&self, out: &mut String, indent: Option<&str>, depth: usize) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Uint(n) => {
                let _ = write!(out, "{n}");
            }
            Self::Str(s) => push_json_string(out, s),
            Self::Array(items) => {
                if items.is_empty() {
                    out.push_str("[]");
                    return;
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    Self::newline(out, indent, depth + 1);
                    item.write(out, indent, depth + 1);
                }
                Self::newline(out, indent, depth);
                out.push(']');
            }
            Self::Object(fields) => {
                if fields.is_empty() {
                    out.push_str("{}");
                    return;
                }
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    Self::newline(out, indent, depth + 1);
                    push_json_string(out, k.as_bytes());
                    out.push(':');
                    if indent.is_some() {
                        out.push(' ');
                    }
                    v.write(out, indent, depth + 1);
                }
                Self::newline(out, indent, depth);
                out.push('}');
            }
        }
    }
}

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The standard alphabet's decoding table: 0xff for a byte outside it.
const DECODE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 64 {
        t[STD[i] as usize] = i as u8;
        i += 1;
    }
    t
};

fn decode_map(b: u8) -> Option<u8> {
    match DECODE[usize::from(b)] {
        0xff => None,
        v => Some(v),
    }
}

/// Go's `base64.StdEncoding.DecodeString`: the bytes decoded and, on failure, the offset Go
/// reports (`illegal base64 data at input byte N`). Like Go, the bytes of every complete
/// quantum before the bad one are returned with the error; `\r` and `\n` are skipped.
pub fn go_base64_decode(src: &[u8]) -> (Vec<u8>, Option<usize>) {
    let mut dst = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    loop {
        if si >= src.len() {
            return (dst, None);
        }
        let mut dbuf = [0u8; 4];
        let mut dlen = 4;
        let mut err = None;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return (dst, None);
                }
                // Std encoding has padding: a short final quantum is an error.
                return (dst, Some(si - j));
            }
            let ch = src[si];
            si += 1;
            if let Some(v) = decode_map(ch) {
                dbuf[j] = v;
                j += 1;
                continue;
            }
            if ch == b'\n' || ch == b'\r' {
                continue;
            }
            if ch != b'=' {
                return (dst, Some(si - 1));
            }
            // Padding: the end of the data.
            match j {
                0 | 1 => return (dst, Some(si - 1)),
                2 => {
                    while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                        si += 1;
                    }
                    if si == src.len() {
                        return (dst, Some(src.len()));
                    }
                    if src[si] != b'=' {
                        return (dst, Some(si - 1));
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                si += 1;
            }
            if si < src.len() {
                err = Some(si);
            }
            dlen = j;
            break;
        }
        let val = u32::from(dbuf[0]) << 18
            | u32::from(dbuf[1]) << 12
            | u32::from(dbuf[2]) << 6
            | u32::from(dbuf[3]);
        let bytes = [(val >> 16) as u8, (val >> 8) as u8, val as u8];
        dst.extend_from_slice(&bytes[..dlen - 1]);
        if let Some(e) = err {
            return (dst, Some(e));
        }
        if dlen < 4 {
            return (dst, None);
        }
    }
}

/// Go's `text/tabwriter` with `minwidth 0, tabwidth 2, padchar ' ', flags 0` and the given
/// padding (`consul kv get -detailed` uses 6), applied to `input` as one write plus a flush.
pub fn tabwrite(input: &[u8], padding: usize) -> Vec<u8> {
    let mut tw = TabWriter {
        padding,
        out: Vec::with_capacity(input.len() + 64),
        buf: Vec::new(),
        pos: 0,
        lines: vec![Vec::new()],
        cell: Cell::default(),
        widths: Vec::new(),
        in_escape: false,
    };
    tw.write(input);
    tw.flush();
    tw.out
}

#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    size: usize,
    width: usize,
}

struct TabWriter {
    padding: usize,
    out: Vec<u8>,
    buf: Vec<u8>,
    /// Where the width of the current cell was last brought up to date.
    pos: usize,
    lines: Vec<Vec<Cell>>,
    cell: Cell,
    widths: Vec<usize>,
    in_escape: bool,
}

/// Go's `utf8.RuneCount`: each invalid byte counts as one rune.
fn rune_count(b: &[u8]) -> usize {
    b.utf8_chunks()
        .map(|c| c.valid().chars().count() + c.invalid().len())
        .sum()
}

const ESCAPE: u8 = 0xff;

impl TabWriter {
    fn append(&mut self, text: &[u8]) {
        self.buf.extend_from_slice(text);
        self.cell.size += text.len();
    }

    fn update_width(&mut self) {
        self.cell.width += rune_count(&self.buf[self.pos..]);
        self.pos = self.buf.len();
    }

    fn end_escape(&mut self) {
        self.update_width();
        // The two Escape bytes do not count.
        self.cell.width = self.cell.width.saturating_sub(2);
        self.in_escape = false;
    }

    fn terminate_cell(&mut self) -> usize {
        let cell = std::mem::take(&mut self.cell);
        match self.lines.last_mut() {
            Some(l) => {
                l.push(cell);
                l.len()
            }
            None => {
                self.lines.push(vec![cell]);
                1
            }
        }
    }

    fn write(&mut self, input: &[u8]) {
        let mut n = 0;
        for (i, &ch) in input.iter().enumerate() {
            if !self.in_escape {
                match ch {
                    b'\t' | 0x0b | b'\n' | 0x0c => {
                        self.append(&input[n..i]);
                        self.update_width();
                        n = i + 1;
                        let ncells = self.terminate_cell();
                        if ch == b'\n' || ch == 0x0c {
                            self.lines.push(Vec::new());
                            if ch == 0x0c || ncells == 1 {
                                // A line of one cell cannot affect later alignment.
                                self.flush_lines();
                            }
                        }
                    }
                    ESCAPE => {
                        self.append(&input[n..i]);
                        self.update_width();
                        n = i;
                        self.in_escape = true;
                    }
                    _ => {}
                }
            } else if ch == ESCAPE {
                self.append(&input[n..=i]);
                n = i + 1;
                self.end_escape();
            }
        }
        self.append(&input[n..]);
    }

    fn flush(&mut self) {
        if self.cell.size > 0 {
            if self.in_escape {
                self.end_escape();
            }
            self.terminate_cell();
        }
        self.flush_lines();
    }

    fn flush_lines(&mut self) {
        let nlines = self.lines.len();
        self.format(0, 0, nlines);
        self.buf.clear();
        self.pos = 0;
        self.lines = vec![Vec::new()];
        self.cell = Cell::default();
    }

    fn format(&mut self, mut pos: usize, line0: usize, line1: usize) -> usize {
        let column = self.widths.len();
        let mut line0 = line0;
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            pos = self.write_lines(pos, line0, this);
            line0 = this;
            let mut width = 0;
            while this < line1 {
                let line = &self.lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                let c = line[column];
                width = width.max(c.width + self.padding);
                this += 1;
            }
            self.widths.push(width);
            pos = self.format(pos, line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(pos, line0, line1)
    }

    fn write_lines(&mut self, mut pos: usize, line0: usize, line1: usize) -> usize {
        for i in line0..line1 {
            let ncells = self.lines[i].len();
            for j in 0..ncells {
                let c = self.lines[i][j];
                if c.size > 0 {
                    self.out.extend_from_slice(&self.buf[pos..pos + c.size]);
                    pos += c.size;
                }
                if let Some(&w) = self.widths.get(j) {
                    self.out
                        .extend(std::iter::repeat_n(b' ', w.saturating_sub(c.width)));
                }
            }
            if i + 1 == self.lines.len() {
                // The last buffered line has no newline: write what is left of the cell.
                let end = pos + self.cell.size;
                if end <= self.buf.len() {
                    self.out.extend_from_slice(&self.buf[pos..end]);
                    pos = end;
                }
            } else {
                self.out.push(b'\n');
            }
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_like_go() {
        let mut s = String::new();
        push_json_string(&mut s, b"a<b>&\"\\\n\x01\xff\xe2\x80\xa8z");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\u0001\ufffd\u2028z""#);
    }

    #[test]
    fn marshal_indent_layout() {
        let v = Json::Array(vec![Json::Object(vec![
            ("key", Json::Str(b"k".to_vec())),
            ("flags", Json::Uint(0)),
        ])]);
        assert_eq!(
            v.indented("\t"),
            "[\n\t{\n\t\t\"key\": \"k\",\n\t\t\"flags\": 0\n\t}\n]"
        );
        assert_eq!(v.compact(), r#"[{"key":"k","flags":0}]"#);
        assert_eq!(Json::Array(vec![]).indented("\t"), "[]");
    }

    #[test]
    fn base64_like_go() {
        assert_eq!(go_base64_decode(b"aGVsbG8="), (b"hello".to_vec(), None));
        assert_eq!(go_base64_decode(b"aGVs\nbG8="), (b"hello".to_vec(), None));
        assert_eq!(go_base64_decode(b"aGVsbG8"), (b"hel".to_vec(), Some(4)));
        assert_eq!(go_base64_decode(b"aGVs!!!!"), (b"hel".to_vec(), Some(4)));
        assert_eq!(go_base64_decode(b"aGVsbA==x"), (b"hell".to_vec(), Some(8)));
        assert_eq!(go_base64_decode(b"a==="), (vec![], Some(1)));
        assert_eq!(go_base64_decode(b""), (vec![], None));
    }

    #[test]
    fn tabwriter_aligns_the_first_column() {
        let out = tabwrite(b"Key\tfoo\nModifyIndex\t5\nValue\tbar", 6);
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "Key              foo\nModifyIndex      5\nValue            bar"
        );
        // A line without a tab ends the column block.
        let out = tabwrite(b"A\tx\nValue\tline1\nline2", 6);
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "A          x\nValue      line1\nline2"
        );
    }
}
