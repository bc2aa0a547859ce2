//! Bounded body reads: the only place a response body is collected.
//!
//! [`read_limited`] wraps the body in [`http_body_util::Limited`], so at most `limit` bytes are
//! buffered whatever the server sends. Past the limit the read stops with
//! [`Error::BodyTooLarge`]; the caller then drops the body, which closes the connection instead of
//! returning it to the pool.

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::{BoxError, Error, TransportKind};

/// Collects `body` into one buffer of at most `limit` bytes.
///
/// A body whose `Content-Length` already exceeds the limit is refused before any byte is read.
///
/// # Errors
/// [`Error::BodyTooLarge`] past the limit; [`Error::Transport`] (with
/// [`TransportError::is_truncated_body`]) when the body ends early or the connection breaks.
pub(crate) async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, Error>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if body
        .size_hint()
        .exact()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(Error::body_too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(Error::body_too_large(limit)),
        Err(e) => Err(Error::transport(TransportKind::Body, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    #[tokio::test]
    async fn within_and_over_the_limit() {
        let ok = read_limited(Full::new(Bytes::from_static(b"12345")), 5)
            .await
            .unwrap();
        assert_eq!(ok, "12345");
        let err = read_limited(Full::new(Bytes::from_static(b"123456")), 5)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::BodyTooLarge { limit: 5, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn streamed_body_over_the_limit_without_a_length() {
        let chunks = (0..10).map(|_| {
            Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from_static(b"0123456789")))
        });
        let body = StreamBody::new(Iter(chunks.collect::<Vec<_>>().into_iter()));
        let err = read_limited(body, 25).await.unwrap_err();
        assert!(
            matches!(err, Error::BodyTooLarge { limit: 25, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_broken_stream_is_a_truncated_body() {
        let frames = vec![
            Ok(hyper::body::Frame::data(Bytes::from_static(b"01234"))),
            Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "cut",
            )),
        ];
        let err = read_limited(StreamBody::new(Iter(frames.into_iter())), 100)
            .await
            .unwrap_err();
        match err {
            Error::Transport { error: t, .. } => assert!(t.is_truncated_body()),
            other => panic!("{other:?}"),
        }
    }

    /// A minimal `Stream` over an iterator (no futures-util needed).
    struct Iter<I>(I);

    impl<I: Iterator + Unpin> futures_core::Stream for Iter<I> {
        type Item = I::Item;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<I::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
}
