//! [`ListStream`]: a list read whose entries are decoded as the body arrives.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Body as _;
use proto::stream::{Decode, Streaming};
use proto::QueryMeta;

use crate::client::{CallOptions, HeadBody, HyperClient, Open};
use crate::error::{Error, RequestTarget, TransportKind};

type Opening<D> = Pin<Box<dyn Future<Output = Result<(QueryMeta, D, Open), Error>> + Send>>;

/// A streamed list read, from [`HyperClient::stream`]: yields each item (for
/// [`proto::kv::ListItems`], each `KvPair`) as soon as its bytes have arrived.
///
/// Memory is bounded by one item plus one read chunk, not by the answer, so a tree larger
/// than [`max_body`](crate::HyperClientBuilder::max_body) can be read. The limits:
///
/// - **size**: at most [`max_stream_body`](crate::HyperClientBuilder::max_stream_body) bytes in all
///   (default 16 GiB), each entry at most 64 MiB of JSON; past either, an error and the
///   connection is dropped;
/// - **time**: the response head within the call's deadline (as for
///   [`execute`](HyperClient::execute)), then each chunk of the body within the call timeout
///   of the previous one, so a tree of any size can take as long as it needs while a stalled
///   server still fails in bounded time.
///
/// Until the head arrives the read is retried like any read (connect errors, `429`, `503`,
/// ...); once entries have been yielded a failure ends the stream with an error (a repeat would
/// yield them twice). After an error or the end, the stream yields `None`.
///
/// The request starts on the first poll. It holds one of the client's connections (and one
/// admission slot of the connection cap) until it ends or is dropped.
pub struct ListStream<O: Streaming> {
    state: State<O::Decoder>,
    meta: Option<QueryMeta>,
    idle: Duration,
    limit: u64,
    /// Named in every error.
    target: Option<RequestTarget>,
}

enum State<D> {
    Opening(Opening<D>),
    Reading(Reading<D>),
    Done,
}

struct Reading<D> {
    decoder: D,
    open: Open,
    chunk: Bytes,
    pos: usize,
    read: u64,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl<O: Streaming> fmt::Debug for ListStream<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Opening(_) => "opening",
            State::Reading(_) => "reading",
            State::Done => "done",
        };
        f.debug_struct("ListStream")
            .field("state", &state)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl HyperClient {
    /// Starts a streamed read of `op` (such as [`proto::kv::ListItems`]): a [`ListStream`] that
    /// yields each entry as the body arrives, for answers of any size.
    ///
    /// ```no_run
    /// use consul_kv_hyper::{proto::kv::ListItems, HyperClient};
    ///
    /// # async fn run() -> Result<(), consul_kv_hyper::Error> {
    /// let client = HyperClient::builder().build()?;
    /// let mut entries = client.stream(ListItems::new("huge/tree/"));
    /// let mut bytes = 0;
    /// while let Some(pair) = entries.next().await {
    ///     bytes += pair?.value_bytes().len();
    /// }
    /// println!("{bytes} bytes of values at index {:?}", entries.meta().map(|m| m.last_index));
    /// # Ok(()) }
    /// ```
    pub fn stream<O>(&self, op: O) -> ListStream<O>
    where
        O: Streaming + Send + Sync + 'static,
        O::Decoder: Send + 'static,
    {
        let target = op
            .build(self.context())
            .ok()
            .map(|req| RequestTarget::of(&req));
        let client = self.clone();
        let opening: Opening<O::Decoder> = Box::pin(async move {
            let opts = CallOptions::default();
            client
                .run(&op, &opts, true, |head| match head.body {
                    HeadBody::Open(open) => {
                        let (meta, decoder) = op.start(head.parts.status, &head.parts.headers)?;
                        Ok((meta, decoder, open))
                    }
                    HeadBody::Collected(_) => {
                        op.parse(head.into_response())?;
                        Err(proto::ResponseError::unexpected(
                            "a streamed read got a body it cannot stream",
                        ))
                    }
                })
                .await
        });
        ListStream {
            state: State::Opening(opening),
            meta: None,
            idle: self.inner().timeout,
            limit: self.inner().max_stream_body,
            target,
        }
    }
}

impl<O: Streaming> ListStream<O> {
    /// The meta of the read (index, leader), once the response head has arrived.
    pub fn meta(&self) -> Option<&QueryMeta> {
        self.meta.as_ref()
    }

    /// The next item; `None` at the end (or after an error).
    ///
    /// # Errors
    /// As [`HyperClient::execute`] until the head arrives; then a transport error, a timeout
    /// between chunks, [`Error::BodyTooLarge`] past the stream limit, or a malformed answer.
    pub async fn next(&mut self) -> Option<Result<O::Item, Error>> {
        std::future::poll_fn(|cx| self.poll_next_item(cx)).await
    }

    /// Polls for the next item, for use in a hand-written `Stream` or future.
    pub fn poll_next_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<O::Item, Error>>> {
        loop {
            match &mut self.state {
                State::Done => return Poll::Ready(None),
                State::Opening(fut) => match ready!(fut.as_mut().poll(cx)) {
                    Ok((meta, decoder, open)) => {
                        self.meta = Some(meta);
                        self.state = State::Reading(Reading {
                            decoder,
                            open,
                            chunk: Bytes::new(),
                            pos: 0,
                            read: 0,
                            sleep: Box::pin(tokio::time::sleep(self.idle)),
                        });
                    }
                    Err(e) => return self.fail(e),
                },
                State::Reading(r) => {
                    // Items already in hand first.
                    while r.pos < r.chunk.len() {
                        match r.decoder.decode(&r.chunk[r.pos..]) {
                            Ok((n, item)) => {
                                r.pos += n.max(1).min(r.chunk.len() - r.pos);
                                if let Some(item) = item {
                                    return Poll::Ready(Some(Ok(item)));
                                }
                            }
                            Err(e) => return self.fail(Error::from(e)),
                        }
                    }
                    match Pin::new(&mut r.open.body).poll_frame(cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            if let Ok(data) = frame.into_data() {
                                r.read = r.read.saturating_add(data.len() as u64);
                                if r.read > self.limit {
                                    let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
                                    return self.fail(Error::body_too_large(limit));
                                }
                                r.chunk = data;
                                r.pos = 0;
                                let next =
                                    tokio::time::Instant::from_std(proto::time::instant_after(
                                        std::time::Instant::now(),
                                        self.idle,
                                    ));
                                r.sleep.as_mut().reset(next);
                            }
                        }
                        Poll::Ready(Some(Err(e))) => {
                            return self.fail(Error::transport(TransportKind::Body, e))
                        }
                        Poll::Ready(None) => {
                            if let Err(e) = r.decoder.finish() {
                                return self.fail(Error::from(e));
                            }
                            if let Some(s) = &r.open.stats {
                                s.0.complete();
                            }
                            self.state = State::Done;
                            return Poll::Ready(None);
                        }
                        Poll::Pending => {
                            if r.sleep.as_mut().poll(cx).is_ready() {
                                let after = self.idle;
                                return self.fail(Error::timeout(after));
                            }
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<O::Item, Error>>> {
        if let State::Reading(r) = &self.state {
            // Whatever is left of the body must not be read as the next answer.
            if let Some(s) = &r.open.stats {
                s.0.doom();
            }
        }
        self.state = State::Done;
        let e = match self.target.clone() {
            Some(t) => e.with_request(t),
            None => e,
        };
        Poll::Ready(Some(Err(e)))
    }
}

impl<O: Streaming> Unpin for ListStream<O> {}

impl<O: Streaming> futures_core::Stream for ListStream<O> {
    type Item = Result<O::Item, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_item(cx)
    }
}
