//! The fast path of the list parse: a scanner for the exact shape Consul sends.
//!
//! Consul's `DirEntry` JSON is regular: an array of flat objects whose strings (keys, base64
//! values, session IDs) almost never hold an escape. This scanner reads that shape in one pass
//! with no serde machinery, decoding each base64 value in the same pass that finds its closing
//! quote, straight into the answer's shared value buffer.
//!
//! It is all or nothing, and it never decides an error: anything it does not handle (an escape,
//! a control character, a nested unknown field, a duplicate field, a float, a missing `Key`,
//! non-canonical base64, trailing bytes) makes it return `None`, and the caller parses the same
//! bytes with the serde path, which produces the answer or the typed error. So a `Some` is
//! always what the serde path would have returned; the property test
//! `scan_agrees_with_serde` in `mod.rs` holds it to that.

use bytes::{Bytes, BytesMut};

use crate::kv::KvPair;
use crate::session::SessionId;

/// Base64 (standard alphabet) symbol values; `INVALID` for every other byte, padding included.
const INVALID: u8 = 0xFF;
const DECODE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// A whole list answer, or `None` when the serde path must decide.
pub(super) fn list(body: &[u8]) -> Option<Vec<KvPair>> {
    let mut s = Scanner { b: body, i: 0 };
    // Every value's base64 text lies inside the body, so 3/4 of it bounds the decoded total:
    // one allocation, never grown.
    let mut values = Values::for_input(body);
    // A typical entry is a few hundred bytes; a low guess, grown when short.
    let mut pairs: Vec<KvPair> = Vec::with_capacity(body.len() / 512 + 1);
    s.ws();
    s.eat(b'[')?;
    s.ws();
    if !s.eat_if(b']') {
        loop {
            let (mut pair, len) = s.entry(&mut values)?;
            pair.value = len.map(|n| values.take(n));
            pairs.push(pair);
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b']' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    if s.i != body.len() {
        return None;
    }
    Some(pairs)
}

/// One `DirEntry` object (an element of a streamed list), or `None` when the serde path must
/// decide.
pub(super) fn one(element: &[u8]) -> Option<KvPair> {
    let mut s = Scanner { b: element, i: 0 };
    let mut values = Values::for_input(element);
    s.ws();
    let (mut pair, len) = s.entry(&mut values)?;
    s.ws();
    if s.i != element.len() {
        return None;
    }
    // An exact-size copy: a streamed entry may be held long after its neighbours are gone.
    pair.value = len.map(|n| Bytes::copy_from_slice(&values.rest[..n]));
    Some(pair)
}

/// Where the values of one answer are decoded: one zeroed buffer sized once to bound them all
/// (3/4 of the input, plus slack for the decoder's whole-word writes). Each value is decoded
/// at its front and split off as a [`Bytes`] that shares the one allocation.
struct Values {
    rest: BytesMut,
}

impl Values {
    fn for_input(input: &[u8]) -> Self {
        Self {
            rest: BytesMut::zeroed(input.len() / 4 * 3 + 8),
        }
    }

    /// The `len` bytes just decoded at the front, as their own `Bytes`.
    fn take(&mut self, len: usize) -> Bytes {
        if len == 0 {
            Bytes::new()
        } else {
            self.rest.split_to(len).freeze()
        }
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

/// Which fields an entry has had (a repeat goes to the serde path, which keeps the last).
#[derive(Default)]
struct Seen(u8);

impl Seen {
    fn first(&mut self, bit: u8) -> Option<()> {
        if self.0 & bit != 0 {
            return None;
        }
        self.0 |= bit;
        Some(())
    }
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn eat_if(&mut self, c: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&c);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let hit = self.b.get(self.i..self.i + word.len()) == Some(word);
        if hit {
            self.i += word.len();
        }
        hit
    }

    /// A string with no escape and no control character: its bytes between the quotes.
    fn plain_str(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let open = self.i;
        let rest = self.b.get(open..)?;
        let end = rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if rest[end] != b'"' {
            return None;
        }
        self.i = open + end + 1;
        Some(&rest[..end])
    }

    /// `null` (read as 0, as the serde path does) or a plain unsigned integer: no sign,
    /// fraction, exponent, leading zero or overflow (those go to the serde path).
    fn uint(&mut self) -> Option<u64> {
        if self.literal(b"null") {
            return Some(0);
        }
        let digits = self.b.get(self.i..)?;
        let len = digits.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || (len > 1 && digits[0] == b'0') {
            return None;
        }
        let mut n: u64 = 0;
        for &d in &digits[..len] {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.i += len;
        Some(n)
    }

    /// A field this client does not read: a plain string, a plain integer or a literal.
    /// Objects, arrays and other numbers go to the serde path.
    fn skip_scalar(&mut self) -> Option<()> {
        match self.b.get(self.i)? {
            b'"' => self.plain_str().map(drop),
            b'n' | b't' | b'f' => {
                (self.literal(b"null") || self.literal(b"true") || self.literal(b"false"))
                    .then_some(())
            }
            _ => self.uint().map(drop),
        }
    }

    /// A base64 value, decoded at the front of `out` in the pass that finds its closing quote;
    /// its decoded length.
    /// Only canonical padded base64 is taken (what Consul sends and the serde path's decoder
    /// requires); anything else goes to the serde path, which reports it.
    fn base64(&mut self, out: &mut Values) -> Option<usize> {
        self.eat(b'"')?;
        let b = self.b;
        let mut i = self.i;
        let mut o = 0;
        // Eight symbols (six bytes) a step; stops at the closing quote, padding, or anything
        // else. The whole eight bytes are written and the last two overwritten next step.
        while let Some(group) = b.get(i..i + 8) {
            let (mut n, mut bad) = (0u64, 0u8);
            for &c in group {
                let v = DECODE[usize::from(c)];
                bad |= v;
                n = n << 6 | u64::from(v);
            }
            if bad & 0x80 != 0 {
                break;
            }
            // A fixed-size write (a slice of unknown length would be a `memcpy` call).
            let dst: &mut [u8; 8] = out.rest.get_mut(o..o + 8)?.try_into().ok()?;
            *dst = (n << 16).to_be_bytes();
            o += 6;
            i += 8;
        }
        // At most one more whole group of four.
        if let Some(&[c0, c1, c2, c3]) = b.get(i..i + 4) {
            let v = [c0, c1, c2, c3].map(|c| DECODE[usize::from(c)]);
            if (v[0] | v[1] | v[2] | v[3]) & 0x80 == 0 {
                let n = u32::from(v[0]) << 18
                    | u32::from(v[1]) << 12
                    | u32::from(v[2]) << 6
                    | u32::from(v[3]);
                let dst: &mut [u8; 4] = out.rest.get_mut(o..o + 4)?.try_into().ok()?;
                *dst = (n << 8).to_be_bytes();
                o += 3;
                i += 4;
            }
        }
        if b.get(i) != Some(&b'"') {
            // The last group, padded: `xx==` (one byte) or `xxx=` (two). Unused low bits
            // must be zero (canonical).
            let &[c0, c1, c2, c3] = b.get(i..i + 4)? else {
                return None;
            };
            let (a, bb) = (DECODE[usize::from(c0)], DECODE[usize::from(c1)]);
            if (a | bb) & 0x80 != 0 || c3 != b'=' {
                return None;
            }
            let first = a << 2 | bb >> 4;
            if c2 == b'=' {
                if bb & 0x0F != 0 {
                    return None;
                }
                *out.rest.get_mut(o)? = first;
                o += 1;
            } else {
                let c = DECODE[usize::from(c2)];
                if c & 0x80 != 0 || c & 0x03 != 0 {
                    return None;
                }
                out.rest
                    .get_mut(o..o + 2)?
                    .copy_from_slice(&[first, bb << 4 | c >> 2]);
                o += 2;
            }
            i += 4;
            if b.get(i) != Some(&b'"') {
                return None;
            }
        }
        self.i = i + 1;
        Some(o)
    }

    /// One entry object, and the decoded length of its value (left at the front of
    /// `values`; `None` for a null or absent value).
    fn entry(&mut self, values: &mut Values) -> Option<(KvPair, Option<usize>)> {
        const KEY: u8 = 1;
        const VALUE: u8 = 2;
        const FLAGS: u8 = 4;
        const LOCK: u8 = 8;
        const CREATE: u8 = 16;
        const MODIFY: u8 = 32;
        const SESSION: u8 = 64;
        self.eat(b'{')?;
        self.ws();
        let mut seen = Seen::default();
        let mut key = None;
        let mut len = None;
        let mut session = None;
        let (mut flags, mut lock_index, mut create_index, mut modify_index) = (0, 0, 0, 0);
        if !self.eat_if(b'}') {
            loop {
                let name = self.plain_str()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
                match name {
                    b"Key" => {
                        seen.first(KEY)?;
                        key = Some(std::str::from_utf8(self.plain_str()?).ok()?);
                    }
                    b"Value" => {
                        seen.first(VALUE)?;
                        if !self.literal(b"null") {
                            len = Some(self.base64(values)?);
                        }
                    }
                    b"Flags" => flags = seen.first(FLAGS).and_then(|()| self.uint())?,
                    b"LockIndex" => lock_index = seen.first(LOCK).and_then(|()| self.uint())?,
                    b"CreateIndex" => {
                        create_index = seen.first(CREATE).and_then(|()| self.uint())?;
                    }
                    b"ModifyIndex" => {
                        modify_index = seen.first(MODIFY).and_then(|()| self.uint())?;
                    }
                    b"Session" => {
                        seen.first(SESSION)?;
                        if !self.literal(b"null") {
                            let id = std::str::from_utf8(self.plain_str()?).ok()?;
                            session = (!id.is_empty()).then(|| SessionId::from_server(id.into()));
                        }
                    }
                    // An unknown name must be text the serde path would accept as one.
                    other if other.is_ascii() => self.skip_scalar()?,
                    _ => return None,
                }
                self.ws();
                match self.next()? {
                    b',' => self.ws(),
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        Some((
            KvPair {
                key: key?.to_owned(),
                value: None,
                flags,
                create_index,
                modify_index,
                lock_index,
                session,
            },
            len,
        ))
    }
}
