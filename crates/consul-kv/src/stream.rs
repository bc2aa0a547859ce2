//! [`ItemsStream`]: every entry under a prefix, yielded as the answer arrives, for trees of
//! any size.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use consul_kv_hyper::ListStream;
use consul_kv_proto::kv as op;
use consul_kv_proto::KvPair;
use futures_core::Stream;

use crate::meta::ConsulMeta;
use crate::Result;

/// A [`Stream`] of every entry under a prefix, from [`Kv::items_stream`](crate::Kv::items_stream):
/// each [`KvPair`] is yielded as soon as its bytes have arrived.
///
/// Consul has no pagination: a `recurse` read is one JSON array of the whole tree.
/// [`Kv::items`](crate::Kv::items) holds the answer and the parsed pairs in memory and
/// refuses answers over the client's body limit (64 MiB by default); this stream holds one
/// entry and one read chunk at a time, so it reads trees of any size in bounded memory. The
/// entries are the same, in the same order (sorted by key).
///
/// Limits: the head within the call deadline (retried like any read), then each chunk of the
/// body within the call timeout of the previous one; at most
/// [`max_stream_body`](crate::ClientBuilder::max_stream_body) bytes in all (16 GiB by
/// default). A failure after the first entry ends the stream with an error; it is not
/// repeated, since that would yield entries twice. The request starts on the first poll.
///
/// ```no_run
/// # async fn demo() -> consul_kv::Result<()> {
/// let client = consul_kv::Client::from_env()?;
/// let mut entries = client.kv().items_stream("huge/tree/");
/// let (mut keys, mut bytes) = (0usize, 0usize);
/// while let Some(pair) = entries.next().await {
///     let pair = pair?;
///     keys += 1;
///     bytes += pair.value_bytes().len();
/// }
/// println!("{keys} keys, {bytes} bytes, index {:?}", entries.consul().map(|m| m.last_index()));
/// # Ok(()) }
/// ```
pub struct ItemsStream {
    inner: ListStream<op::ListItems>,
}

impl ItemsStream {
    pub(crate) fn new(inner: ListStream<op::ListItems>) -> Self {
        Self { inner }
    }

    /// The next entry; `None` at the end of the tree (or after an error).
    ///
    /// # Errors
    /// As [`Kv::items`](crate::Kv::items) until the answer starts; then a transport error, a
    /// timeout between chunks, [`Error::BodyTooLarge`](crate::Error::BodyTooLarge) past the
    /// stream limit, or a malformed entry.
    pub async fn next(&mut self) -> Option<Result<KvPair>> {
        self.inner.next().await
    }

    /// The meta of the read (the index to block on next, leader information), once the
    /// answer has started.
    pub fn consul(&self) -> Option<ConsulMeta> {
        self.inner.meta().cloned().map(ConsulMeta::for_list)
    }
}

impl Stream for ItemsStream {
    type Item = Result<KvPair>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().inner.poll_next_item(cx)
    }
}

impl fmt::Debug for ItemsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemsStream")
            .field("inner", &self.inner)
            .finish()
    }
}
