//! Response compression, as Consul's HTTP server does it: answers of at least
//! [`MIN_SIZE`] bytes to a request that accepts gzip are sent compressed, with
//! `Content-Encoding: gzip`. `Vary: Accept-Encoding` is on every answer either way.
//!
//! Only answers built whole are compressed: a `?recurse` answer streamed chunk by chunk (over
//! 1,024 entries, see `api_kv`) goes out plain, so that serving a huge tree never holds it in
//! memory. A client must accept either (Consul's clients do: the header says which).

use std::io::Write;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::reply::{set_header, Body, Resp};

/// The smallest body compressed: Consul wraps its handlers in a gzip handler whose minimum is
/// 1400 bytes (a real 1.14.11 agent sent a 185-byte answer plain and a 2.7 KB one compressed).
pub(crate) const MIN_SIZE: usize = 1400;

/// Whether `Accept-Encoding` lists gzip (or `*`) with a non-zero weight.
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let zero = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero
        })
}

/// Compresses `resp` when it is large enough, built whole and not already encoded.
pub(crate) fn compress(resp: Resp) -> Resp {
    if resp.status() == StatusCode::NO_CONTENT
        || resp.status() == StatusCode::NOT_MODIFIED
        || resp.headers().contains_key(http::header::CONTENT_ENCODING)
    {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match body {
        Body::Full(Some(b)) if b.len() >= MIN_SIZE => b,
        other => return Resp::from_parts(parts, other),
    };
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    let packed = match enc.write_all(&bytes).and_then(|()| enc.finish()) {
        Ok(v) => v,
        // Writing into a Vec does not fail; should it, the plain answer is still correct.
        Err(_) => return Resp::from_parts(parts, Body::from(bytes)),
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let mut r = Resp::from_parts(parts, Body::from(Bytes::from(packed)));
    set_header(&mut r, "content-encoding", "gzip");
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(http::header::ACCEPT_ENCODING, v.parse().unwrap());
        m
    }

    #[test]
    fn accept_encoding() {
        assert!(accepts_gzip(&h("gzip")));
        assert!(accepts_gzip(&h("deflate, GZIP;q=0.5")));
        assert!(accepts_gzip(&h("*")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&h("br, deflate")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn small_answers_stay_plain_large_ones_shrink() {
        use http_body_util::BodyExt;
        let small = crate::reply::text(StatusCode::OK, "x".repeat(MIN_SIZE - 1));
        let r = compress(small);
        assert!(!r.headers().contains_key("content-encoding"));

        let json = format!(
            "[{}]",
            vec!["{\"Key\":\"k\",\"Value\":null}"; 200].join(",")
        );
        let big = crate::reply::text(StatusCode::OK, json.clone());
        let r = compress(big);
        assert_eq!(r.headers()["content-encoding"], "gzip");
        let packed = r.into_body().collect().await.unwrap().to_bytes();
        assert!(packed.len() * 4 < json.len());
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&packed[..]), &mut out)
            .unwrap();
        assert_eq!(out, json);
    }
}
