//! Bounded body reads: the only place a response body is collected.
//!
//! [`read_limited`] counts the bytes as the frames arrive, so at most `limit` bytes are
//! buffered whatever the server sends. Past the limit the read stops with
//! [`Error::BodyTooLarge`]; the caller then drops the body, which closes the connection instead of
//! returning it to the pool.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use crate::error::{BoxError, Error, TransportKind};

/// Collects `body` into one buffer of at most `limit` bytes.
///
/// A body whose `Content-Length` already exceeds the limit is refused before any byte is read.
/// The usual answer arrives as one data frame, which is returned as it is (no copy, no
/// allocation); only a body in several frames is copied into one buffer. Trailers are ignored.
///
/// # Errors
/// [`Error::BodyTooLarge`] past the limit; [`Error::Transport`] (with
/// [`TransportError::is_truncated_body`]) when the body ends early or the connection breaks.
pub(crate) async fn read_limited<B>(mut body: B, limit: usize) -> Result<Bytes, Error>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    if body
        .size_hint()
        .exact()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(Error::body_too_large(limit));
    }
    // The first data frame, kept as it is until a second one arrives.
    let mut first: Option<Bytes> = None;
    // All frames so far, once there is more than one.
    let mut joined: Option<BytesMut> = None;
    let mut total: usize = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::transport(TransportKind::Body, e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(Error::body_too_large(limit));
        }
        if data.is_empty() {
            continue;
        }
        match (&mut first, &mut joined) {
            (None, None) => first = Some(data),
            (_, Some(buf)) => buf.extend_from_slice(&data),
            (Some(head), None) => {
                let hint = body.size_hint().lower();
                let more = usize::try_from(hint).unwrap_or(0).min(limit - total);
                let mut buf = BytesMut::with_capacity(total + more);
                buf.extend_from_slice(head);
                buf.extend_from_slice(&data);
                first = None;
                joined = Some(buf);
            }
        }
    }
    Ok(match (first, joined) {
        (_, Some(buf)) => buf.freeze(),
        (Some(one), None) => one,
        (None, None) => Bytes::new(),
    })
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

    #[tokio::test]
    async fn frames_are_joined_in_order_up_to_exactly_the_limit() {
        let frames = vec![
            Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from_static(b"ab"))),
            Ok(hyper::body::Frame::data(Bytes::new())),
            Ok(hyper::body::Frame::data(Bytes::from_static(b"\xffc"))),
            Ok(hyper::body::Frame::data(Bytes::from_static(b"d"))),
            Ok(hyper::body::Frame::trailers(http::HeaderMap::new())),
        ];
        let got = read_limited(StreamBody::new(Iter(frames.into_iter())), 5)
            .await
            .unwrap();
        assert_eq!(&got[..], b"ab\xffcd");
        // One frame comes back as it is, and an empty body as empty.
        let one = Bytes::from_static(b"whole");
        let got = read_limited(Full::new(one.clone()), 5).await.unwrap();
        assert_eq!(got.as_ptr(), one.as_ptr(), "a single frame is not copied");
        let none = read_limited(http_body_util::Empty::<Bytes>::new(), 0)
            .await
            .unwrap();
        assert!(none.is_empty());
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
