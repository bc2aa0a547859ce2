//! Property tests of the incremental list decoder (`consul_kv_proto::stream`): whatever the
//! chunking of the body, it yields exactly what the one-shot parse of the same body yields,
//! and it never panics on arbitrary input. Cases per property: `PROPTEST_CASES`, default
//! 10,000.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use consul_kv_proto::kv::{encode_entries, ListItems};
use consul_kv_proto::stream::{Decode, Streaming};
use consul_kv_proto::{KvPair, Operation, ResponseError};
use http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-consul-index", HeaderValue::from_static("42"));
    h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
    h
}

fn one_shot(body: &[u8]) -> Result<Vec<KvPair>, ResponseError> {
    let mut resp = http::Response::new(Bytes::copy_from_slice(body));
    *resp.headers_mut() = headers();
    ListItems::new("").parse(resp).map(|r| r.value)
}

/// Feeds `body` cut at `cuts` (sorted offsets) and collects every entry.
fn streamed(body: &[u8], cuts: &[usize]) -> Result<Vec<KvPair>, ResponseError> {
    let (meta, mut decoder) = ListItems::new("").start(StatusCode::OK, &headers())?;
    assert_eq!(meta.last_index.get(), 42);
    let mut out = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&body.len())) {
        let to = to.clamp(from, body.len());
        let mut rest = &body[from..to];
        while !rest.is_empty() {
            let (n, entry) = decoder.decode(rest)?;
            assert!(n > 0 && n <= rest.len(), "progress: {n} of {}", rest.len());
            rest = &rest[n..];
            out.extend(entry);
        }
        from = to;
    }
    decoder.finish()?;
    Ok(out)
}

fn cuts(len: usize, raw: &[usize]) -> Vec<usize> {
    let mut c: Vec<usize> = raw.iter().map(|r| r % (len + 1)).collect();
    c.sort_unstable();
    c
}

fn pair() -> impl Strategy<Value = KvPair> {
    (
        "[a-z/ ?#%\"\\\\{}\\[\\],:é日😀\u{0}-\u{1f}]{1,24}",
        prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(key, value, flags, c, m, l)| {
            let mut w = consul_kv_proto::kv::wire::KvEntry::new(key, value.as_deref());
            w.flags = flags;
            w.create_index = c;
            w.modify_index = m;
            w.lock_index = l;
            let body = serde_json::to_vec(&[w]).unwrap();
            one_shot(&body).unwrap().pop().unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_gives_the_one_shot_entries(
        pairs in prop::collection::vec(pair(), 0..12),
        pretty in any::<bool>(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let body = if pretty {
            let wire: Vec<_> = pairs.iter().map(KvPair::to_wire).collect();
            serde_json::to_vec_pretty(&wire).unwrap()
        } else {
            encode_entries(&pairs).unwrap()
        };
        let whole = one_shot(&body).unwrap();
        prop_assert_eq!(&whole, &pairs);
        let got = streamed(&body, &cuts(body.len(), &raw_cuts)).unwrap();
        prop_assert_eq!(got, whole);
    }

    #[test]
    fn arbitrary_input_never_panics_and_agrees_with_the_one_shot_parse(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            // JSON-looking bytes, to get past the first few characters.
            prop::collection::vec(
                prop::sample::select(b"[]{},:\" \\\nKeyValu0123=null".to_vec()),
                0..200,
            ),
            // A valid answer with one byte changed.
            (prop::collection::vec(pair(), 1..4), any::<usize>(), any::<u8>()).prop_map(
                |(pairs, at, b)| {
                    let mut body = encode_entries(&pairs).unwrap();
                    let i = at % body.len();
                    body[i] = b;
                    body
                }
            ),
        ],
        raw_cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = one_shot(&body);
        let got = streamed(&body, &cuts(body.len(), &raw_cuts));
        match (whole, got) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (a, b) => prop_assert!(false, "one-shot {:?} but streamed {:?} for {:?}",
                a, b, String::from_utf8_lossy(&body)),
        }
    }
}
