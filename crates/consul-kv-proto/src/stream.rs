//! Incremental decoding of list answers, for trees of any size.
//!
//! Consul has no pagination: `GET /v1/kv/<prefix>?recurse` answers with one JSON array of
//! every entry, however large. [`ArraySplitter`] cuts such an array into its elements as the
//! bytes arrive (feed any chunking, get the same elements), and [`EntryDecoder`] turns each
//! element into a [`KvPair`]. Memory is bounded by one element plus whatever chunk the caller
//! holds, never by the tree.
//!
//! Like the rest of this crate it does no I/O: an executor feeds it the body chunk by chunk
//! (`consul-kv-hyper` does so in `HyperClient::stream`).
//!
//! ```
//! use consul_kv_proto::stream::{Decode, EntryDecoder};
//!
//! let body = br#"[{"Key":"a","Value":"MQ=="},{"Key":"b","Value":null}]"#;
//! let mut decoder = EntryDecoder::new();
//! let mut keys = Vec::new();
//! for chunk in body.chunks(7) {
//!     let mut rest = &chunk[..];
//!     while !rest.is_empty() {
//!         let (used, entry) = decoder.decode(rest)?;
//!         rest = &rest[used..];
//!         if let Some(pair) = entry {
//!             keys.push(pair.key);
//!         }
//!     }
//! }
//! decoder.finish()?;
//! assert_eq!(keys, ["a", "b"]);
//! # Ok::<(), consul_kv_proto::ResponseError>(())
//! ```

use http::{HeaderMap, StatusCode};

use crate::error::ResponseError;
use crate::kv::KvPair;
use crate::meta::QueryMeta;
use crate::op::Operation;

/// The largest element [`EntryDecoder::new`] accepts: 64 MiB, the whole-body limit of
/// `consul-kv-hyper` (so nothing a whole read accepts is refused by a streamed one).
pub const DEFAULT_MAX_ELEMENT: usize = 64 << 20;

/// An incremental decoder: bytes in, items out.
pub trait Decode {
    /// What it yields.
    type Item;

    /// Consumes bytes from the front of `input`, up to the end of the next complete item at
    /// most; returns how many were consumed and the item, if one was completed. Call again
    /// with the rest of the input; when `0` bytes are consumed the input was empty.
    ///
    /// # Errors
    /// Malformed input. The decoder must not be used after an error.
    fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Self::Item>), ResponseError>;

    /// Called at the end of the body.
    ///
    /// # Errors
    /// The body ended in the middle of the answer.
    fn finish(&mut self) -> Result<(), ResponseError>;
}

/// A read whose answer can be decoded item by item as the body arrives.
///
/// An executor sends [`Operation::build`]'s request as usual. For a `200` or `404` answer it
/// calls [`start`](Self::start) with the head and feeds the body to the decoder; for any
/// other status it collects the (error) body under its error-body limit and calls
/// [`Operation::parse`], which returns the typed error.
pub trait Streaming: Operation {
    /// What the answer is a sequence of.
    type Item;
    /// Its decoder.
    type Decoder: Decode<Item = Self::Item>;

    /// The meta of a `200` or `404` answer and the decoder for its body.
    ///
    /// # Errors
    /// Another status, or a missing or malformed `X-Consul-*` header.
    fn start(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<(QueryMeta, Self::Decoder), ResponseError>;
}

/// Where the splitter is in the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    /// Before `[`.
    Start,
    /// After `[`: an element or `]`.
    First,
    /// After `,`: an element.
    Next,
    /// Inside an element.
    In,
    /// After an element: `,` or `]`.
    After,
    /// After `]`: only whitespace.
    End,
    /// An answer that must be empty (a `404`): only whitespace.
    Empty,
    /// A previous call failed.
    Failed,
}

/// Cuts a JSON array of objects into its elements, whatever the chunking of the input.
///
/// It tracks only the structure (strings, escapes, nesting); each element is handed out as
/// its exact bytes for a real JSON parser. An element that arrives whole inside one input is
/// handed out borrowed from it; one split across inputs is gathered in an internal buffer,
/// which never holds more than one element (at most the limit given to
/// [`with_max_element`](Self::with_max_element)).
///
/// Never panics, whatever the input.
#[derive(Debug, Clone)]
pub struct ArraySplitter {
    pos: Pos,
    depth: u32,
    in_string: bool,
    escaped: bool,
    buf: Vec<u8>,
    /// `buf` holds an element handed out by the last call: clear it first.
    pending_clear: bool,
    max_element: usize,
    /// Bytes consumed so far, for error messages.
    offset: u64,
}

impl Default for ArraySplitter {
    fn default() -> Self {
        Self::new()
    }
}

/// Nesting deeper than this is refused (serde_json refuses past 128 as well).
const MAX_DEPTH: u32 = 128;

impl ArraySplitter {
    /// A splitter for a top-level array, elements up to [`DEFAULT_MAX_ELEMENT`] bytes.
    pub fn new() -> Self {
        Self::with_max_element(DEFAULT_MAX_ELEMENT)
    }

    /// A splitter whose elements may be at most `max` bytes.
    pub fn with_max_element(max: usize) -> Self {
        Self {
            pos: Pos::Start,
            depth: 0,
            in_string: false,
            escaped: false,
            buf: Vec::new(),
            pending_clear: false,
            max_element: max,
            offset: 0,
        }
    }

    /// A splitter for a body that must be empty or whitespace (Consul's `404` for a list).
    pub fn empty() -> Self {
        Self {
            pos: Pos::Empty,
            ..Self::new()
        }
    }

    fn fail(&mut self, at: usize, what: &str) -> ResponseError {
        self.pos = Pos::Failed;
        self.buf = Vec::new();
        ResponseError::unexpected(format!(
            "{what} at byte {}",
            self.offset.saturating_add(at as u64)
        ))
    }

    /// Consumes `input` up to the end of the next complete element; returns the bytes
    /// consumed and the element (an object's bytes, `{` to `}`), if one was completed.
    ///
    /// # Errors
    /// [`ResponseError::UnexpectedBody`] when the input is not an array of objects, nests too
    /// deeply, or an element is larger than the limit. The splitter is then unusable.
    pub fn split<'a>(
        &'a mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<&'a [u8]>), ResponseError> {
        if self.pending_clear {
            self.buf.clear();
            self.pending_clear = false;
        }
        let mut i = 0;
        // Where the current element starts in `input`, when it started in this call.
        let mut start: Option<usize> = None;
        while i < input.len() {
            let b = input[i];
            match self.pos {
                Pos::Failed => return Err(self.fail(i, "decoder used after an error")),
                Pos::In => {
                    if self.in_string {
                        // Skip to the next quote or backslash.
                        let rest = &input[i..];
                        if self.escaped {
                            self.escaped = false;
                            i += 1;
                            continue;
                        }
                        match rest.iter().position(|&c| c == b'"' || c == b'\\') {
                            None => i = input.len(),
                            Some(n) => {
                                if rest[n] == b'\\' {
                                    self.escaped = true;
                                } else {
                                    self.in_string = false;
                                }
                                i += n + 1;
                            }
                        }
                        continue;
                    }
                    match b {
                        b'"' => self.in_string = true,
                        b'{' | b'[' => {
                            self.depth += 1;
                            if self.depth > MAX_DEPTH {
                                return Err(self.fail(i, "nesting too deep"));
                            }
                        }
                        b'}' | b']' => {
                            self.depth -= 1;
                            if self.depth == 0 {
                                i += 1;
                                self.pos = Pos::After;
                                return self.complete(input, start, i);
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                _ => {
                    if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                        i += 1;
                        continue;
                    }
                    match (self.pos, b) {
                        (Pos::Start, b'[') => self.pos = Pos::First,
                        (Pos::First | Pos::Next, b'{') => {
                            self.pos = Pos::In;
                            self.depth = 1;
                            self.in_string = false;
                            self.escaped = false;
                            start = Some(i);
                        }
                        (Pos::First | Pos::After, b']') => self.pos = Pos::End,
                        (Pos::After, b',') => self.pos = Pos::Next,
                        (Pos::Start | Pos::Empty, _) => {
                            return Err(self.fail(i, "expected a JSON array"))
                        }
                        (Pos::End, _) => return Err(self.fail(i, "trailing data after the array")),
                        (Pos::First | Pos::Next, _) => {
                            return Err(self.fail(i, "expected an object in the array"))
                        }
                        (Pos::After, _) => return Err(self.fail(i, "expected `,` or `]`")),
                        (Pos::In | Pos::Failed, _) => {}
                    }
                    i += 1;
                }
            }
        }
        // The input ended inside an element: keep its part.
        if self.pos == Pos::In {
            let from = start.unwrap_or(0);
            let part = &input[from..];
            if self.buf.len().saturating_add(part.len()) > self.max_element {
                let max = self.max_element;
                return Err(self.fail(input.len(), &format!("an entry is over {max} bytes")));
            }
            self.buf.extend_from_slice(part);
        }
        self.offset = self.offset.saturating_add(input.len() as u64);
        Ok((input.len(), None))
    }

    /// The element that ended just before `end` in `input`.
    fn complete<'a>(
        &'a mut self,
        input: &'a [u8],
        start: Option<usize>,
        end: usize,
    ) -> Result<(usize, Option<&'a [u8]>), ResponseError> {
        let whole_len = self.buf.len().saturating_add(end - start.unwrap_or(0));
        if whole_len > self.max_element {
            let max = self.max_element;
            return Err(self.fail(end, &format!("an entry is over {max} bytes")));
        }
        self.offset = self.offset.saturating_add(end as u64);
        if self.buf.is_empty() {
            let from = start.unwrap_or(0);
            return Ok((end, Some(&input[from..end])));
        }
        self.buf.extend_from_slice(&input[..end]);
        // Hand out the gathered element; the buffer is cleared on the next call.
        self.pending_clear = true;
        Ok((end, Some(&self.buf)))
    }

    /// Checks that the array was complete.
    ///
    /// # Errors
    /// [`ResponseError::UnexpectedBody`] when the body ended before the closing `]` (or
    /// never started one, except for an [`empty`](Self::empty) answer).
    pub fn finish(&mut self) -> Result<(), ResponseError> {
        match self.pos {
            Pos::End | Pos::Empty => Ok(()),
            Pos::Failed => Err(self.fail(0, "decoder used after an error")),
            _ => Err(self.fail(0, "the body ended before the end of the array")),
        }
    }
}

/// Decodes a list answer (`?recurse`) entry by entry: an [`ArraySplitter`] and a one-entry
/// JSON parse per element.
#[derive(Debug, Clone, Default)]
pub struct EntryDecoder {
    splitter: ArraySplitter,
}

impl EntryDecoder {
    /// A decoder for a `200` answer, entries up to [`DEFAULT_MAX_ELEMENT`] bytes of JSON.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder whose entries may be at most `max` bytes of JSON each.
    pub fn with_max_entry(max: usize) -> Self {
        Self {
            splitter: ArraySplitter::with_max_element(max),
        }
    }

    /// A decoder for Consul's `404` answer to a list: an empty body, no entries.
    pub fn empty() -> Self {
        Self {
            splitter: ArraySplitter::empty(),
        }
    }
}

impl Decode for EntryDecoder {
    type Item = KvPair;

    fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<KvPair>), ResponseError> {
        match self.splitter.split(input)? {
            (n, Some(element)) => Ok((n, Some(crate::entries::parse_one(element)?))),
            (n, None) => Ok((n, None)),
        }
    }

    fn finish(&mut self) -> Result<(), ResponseError> {
        self.splitter.finish()
    }
}

impl Streaming for crate::kv::ListItems {
    type Item = KvPair;
    type Decoder = EntryDecoder;

    /// `200`: the entries; `404` (no key under the prefix): none.
    fn start(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Result<(QueryMeta, EntryDecoder), ResponseError> {
        let decoder = match status {
            StatusCode::OK => EntryDecoder::new(),
            StatusCode::NOT_FOUND => EntryDecoder::empty(),
            other => {
                return Err(ResponseError::unexpected(format!(
                    "a streamed list cannot start on status {other}"
                )))
            }
        };
        Ok((QueryMeta::from_headers(headers)?, decoder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(body: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, ResponseError> {
        let mut s = ArraySplitter::with_max_element(1 << 20);
        let mut out = Vec::new();
        for c in body.chunks(chunk.max(1)) {
            let mut rest = c;
            while !rest.is_empty() {
                let (n, e) = s.split(rest)?;
                if let Some(e) = e {
                    out.push(e.to_vec());
                }
                rest = &rest[n..];
            }
        }
        s.finish()?;
        Ok(out)
    }

    #[test]
    fn splits_whatever_the_chunking() {
        let body = br#" [ {"Key":"a]}","Value":"e30="} ,
 {"Key":"b\"{[","N":[1,{"x":[]}]}]  "#;
        let want = split_all(body, body.len()).unwrap();
        assert_eq!(want.len(), 2);
        assert_eq!(want[0], br#"{"Key":"a]}","Value":"e30="}"#);
        for chunk in 1..body.len() {
            assert_eq!(split_all(body, chunk).unwrap(), want, "chunk {chunk}");
        }
        assert_eq!(split_all(b"[]", 1).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn refuses_what_is_not_an_array_of_objects() {
        for bad in [
            &b"{}"[..],
            b"[1]",
            b"[{},]",
            b"[{}",
            b"[{} {}]",
            b"[] x",
            b"",
            b"[{\"a\":\"",
        ] {
            assert!(
                split_all(bad, 3).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut s = ArraySplitter::with_max_element(8);
        assert!(s.split(br#"[{"Key":"long"}]"#).is_err());
        let mut s = ArraySplitter::with_max_element(8);
        assert!(s.split(br#"[{"Ke"#).is_ok());
        assert!(s.split(br#"y":"long"}]"#).is_err());
        let deep = format!("[{}{}]", "[".repeat(200), "]".repeat(200));
        assert!(split_all(deep.as_bytes(), 7).is_err());
    }

    #[test]
    fn empty_answers() {
        let mut d = EntryDecoder::empty();
        assert_eq!(d.decode(b" \n").unwrap().1, None);
        d.finish().unwrap();
        let mut d = EntryDecoder::empty();
        assert!(d.decode(b"[]").is_err());
    }
}
