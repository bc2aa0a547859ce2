//! gzip answers: asked for with [`HyperClientBuilder::gzip`](crate::HyperClientBuilder::gzip),
//! decoded here with the body limit applied to the decompressed size, so a small compressed
//! body cannot expand past what the caller allowed.

use bytes::Bytes;
use http::response::Parts;

use crate::error::Error;
#[cfg(feature = "gzip")]
use crate::error::TransportKind;

/// Whether the answer says it is gzip-compressed.
fn is_gzip(parts: &Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
}

/// Decodes a gzip body (at most `limit` bytes once decompressed) and drops the headers that
/// described the compressed form. Other bodies pass through unchanged.
///
/// # Errors
/// [`Error::BodyTooLarge`] when the decompressed body exceeds `limit`; a body
/// [`Error::Transport`] when it is not valid gzip (or the `gzip` feature is off, which
/// [`build`](crate::HyperClientBuilder::build) prevents for clients that ask for gzip).
pub(crate) fn decode_response(
    mut parts: Parts,
    body: Bytes,
    limit: usize,
) -> Result<(Parts, Bytes), Error> {
    if !is_gzip(&parts) || body.is_empty() {
        return Ok((parts, body));
    }
    let decoded = decode(&body, limit)?;
    parts.headers.remove(http::header::CONTENT_ENCODING);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Ok((parts, decoded))
}

#[cfg(feature = "gzip")]
fn decode(body: &[u8], limit: usize) -> Result<Bytes, Error> {
    use std::io::Read;
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    // Read one byte past the limit to tell "exactly at the limit" from "over it".
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(body)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| Error::transport(TransportKind::Body, GzipError(e.to_string())))?;
    if out.len() > limit {
        return Err(Error::body_too_large(limit));
    }
    Ok(Bytes::from(out))
}

#[cfg(not(feature = "gzip"))]
fn decode(_body: &[u8], _limit: usize) -> Result<Bytes, Error> {
    Err(Error::transport(
        crate::error::TransportKind::Body,
        GzipError("a gzip answer came, and this build has no gzip decoder".to_owned()),
    ))
}

/// A gzip body that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed gzip body: {0}")]
struct GzipError(String);

#[cfg(all(test, feature = "gzip"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gz(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    fn parts(encoding: Option<&str>) -> Parts {
        let mut b = http::Response::builder().header("content-length", "10");
        if let Some(e) = encoding {
            b = b.header("content-encoding", e);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn decodes_within_the_limit_and_drops_the_encoding_headers() {
        let plain = b"[{\"Key\":\"a\"}]".repeat(100);
        let (p, body) = decode_response(parts(Some("gzip")), gz(&plain), plain.len()).unwrap();
        assert_eq!(&body[..], &plain[..]);
        assert!(p.headers.get("content-encoding").is_none());
        assert!(p.headers.get("content-length").is_none());
    }

    #[test]
    fn the_limit_applies_to_the_decompressed_size() {
        // 8 MiB of zeros compress to a few KiB: a bomb against a 1 MiB limit.
        let bomb = gz(&vec![0u8; 8 << 20]);
        assert!(bomb.len() < 64 * 1024);
        let e = decode_response(parts(Some("gzip")), bomb, 1 << 20).unwrap_err();
        assert!(
            matches!(e, Error::BodyTooLarge { limit, .. } if limit == 1 << 20),
            "{e:?}"
        );
    }

    #[test]
    fn garbage_is_a_typed_error_and_plain_bodies_pass() {
        let e =
            decode_response(parts(Some("gzip")), Bytes::from_static(b"not gzip"), 100).unwrap_err();
        assert!(matches!(e, Error::Transport { .. }), "{e:?}");
        let (p, body) = decode_response(parts(None), Bytes::from_static(b"plain"), 100).unwrap();
        assert_eq!(&body[..], b"plain");
        assert!(p.headers.get("content-length").is_some());
    }
}
