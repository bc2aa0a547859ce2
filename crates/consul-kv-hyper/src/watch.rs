//! [`HyperWatch`]: drives a [`proto::WatchMachine`] over a [`HyperClient`].

use std::fmt;
use std::time::Instant;

use proto::{Blocking, Index, Indexed, QueryMeta, WatchMachine, WatchOptions};

use crate::client::{AttemptSpec, HyperClient};
use crate::error::{Error, RequestTarget};

/// A blocking-query loop that yields each change of a value. Created by
/// [`HyperClient::watch`].
///
/// It follows Consul's blocking-query rules through [`proto::WatchMachine`]: the first call reads at
/// once; later calls block on the last index, reset when the index goes backwards, and are rate
/// limited by a token bucket. A response whose value equals the last one yielded is not a
/// change and is skipped.
///
/// **Errors.** On a transient failure (connect error, reset, timeout, `429`, `503`,
/// `500 No cluster leader`, `502`, `504`) [`next`](Self::next) keeps going, after the watch's
/// exponential backoff. It returns an error only when it is not retryable (`403`, a malformed
/// response, [`Error::BodyTooLarge`], an invalid request); the watcher stays usable and the
/// next call resumes after the backoff. Every error, a request that cannot be built included,
/// goes through the backoff, so calling `next` again after an error never spins.
///
/// **Cancellation.** `next` is cancel-safe: dropping its future (for example in
/// `tokio::select!`) drops the request in flight and its connection, and the next call starts
/// afresh (after a short backoff, with a plain read, so no change is lost).
///
/// ```no_run
/// use std::time::Duration;
/// use consul_kv_hyper::{proto::{kv::Get, WatchOptions}, HyperClient};
///
/// # async fn run() -> Result<(), consul_kv_hyper::Error> {
/// let client = HyperClient::builder().build()?;
/// let mut watcher = client.watch(Get::new("config"), WatchOptions::default().wait(Duration::from_secs(30)));
/// loop {
///     let change = watcher.next().await?;
///     println!("now {:?} (index {})", change.value.map(|p| p.value), change.meta.last_index);
/// }
/// # }
/// ```
pub struct HyperWatch<O: Blocking> {
    client: HyperClient,
    watch: WatchMachine<O>,
    /// A request was handed out and its result not yet given back (the future was dropped).
    in_flight: bool,
}

impl<O> fmt::Debug for HyperWatch<O>
where
    O: Blocking,
    O::Value: Clone + PartialEq,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperWatch")
            .field("client", &self.client)
            .field("index", &self.watch.index())
            .field("requests", &self.watch.requests())
            .finish_non_exhaustive()
    }
}

impl<O> HyperWatch<O>
where
    O: Blocking,
    O::Value: Clone + PartialEq,
{
    pub(crate) fn new(client: HyperClient, op: O, opts: WatchOptions) -> Self {
        Self {
            client,
            watch: WatchMachine::new(op, opts),
            in_flight: false,
        }
    }

    /// The state machine: last value, index, request and reset counts.
    pub fn state(&self) -> &WatchMachine<O> {
        &self.watch
    }

    /// Waits for the next change and returns it with its meta.
    ///
    /// # Errors
    /// Only errors that are not retryable (see the type's documentation).
    pub async fn next(&mut self) -> Result<Indexed<O::Value>, Error> {
        loop {
            match self.step().await {
                WatchStep::Changed(change) => return Ok(change),
                WatchStep::Unchanged(_) | WatchStep::Retrying(_) => {}
                WatchStep::Failed(e) => return Err(e),
            }
        }
    }

    /// One round of the loop: waits out the rate limit or backoff, sends one request and
    /// reports what came of it, including the answers that changed nothing and the transient
    /// failures that [`next`](Self::next) hides. For callers that report a watch's health.
    ///
    /// Cancel-safe like `next`.
    pub async fn step(&mut self) -> WatchStep<O::Value> {
        if self.in_flight {
            // The previous call was cancelled mid-request: its answer is lost.
            self.in_flight = false;
            self.watch.handle_failure(Instant::now());
        }
        let req = loop {
            match self
                .watch
                .poll_request(Instant::now(), self.client.context())
            {
                Err(e) => {
                    // Through the backoff like every other error: a caller that keeps calling
                    // `step` on a request that cannot be built must not spin.
                    self.watch.handle_failure(Instant::now());
                    return WatchStep::Failed(Error::Build(e));
                }
                Ok(Some(req)) => break req,
                Ok(None) => {
                    if let Some(at) = self.watch.poll_timeout() {
                        tokio::time::sleep_until(at.into()).await;
                    } else {
                        // Cannot happen (no request is in flight here); do not spin.
                        tokio::task::yield_now().await;
                    }
                }
            }
        };
        self.in_flight = true;
        let secret = proto::Token::carried_by(&req).map(str::to_owned);
        let deadline = self.watch.request_timeout();
        // No transparent repeat on a new connection here: a pooled connection that died may
        // mean the server restarted, and the index we hold may be from before the restart
        // (blocking on it would wait out the whole `wait`). The watch machine re-reads instead.
        // A watch call blocks for its `wait`: naming it up front costs nothing that matters.
        let target = RequestTarget::of(&req);
        let spec = AttemptSpec {
            deadline,
            number: 1,
            safe: true,
            stream: false,
        };
        let result = self
            .client
            .attempt(req, spec)
            .await
            .map(|head| head.into_response());
        self.in_flight = false;
        let now = Instant::now();
        match result {
            Err(f) if f.is_stale_connection() => {
                tracing::debug!(error = %f.error, "watch: connection lost; re-reading");
                self.watch.handle_connection_lost();
                WatchStep::Retrying(f.error)
            }
            Ok(resp) => match self.watch.handle_response(now, resp) {
                Ok(Some(change)) => WatchStep::Changed(change),
                // `handle_response` records the meta of every answer it accepts.
                Ok(None) => {
                    WatchStep::Unchanged(self.watch.last_meta().cloned().unwrap_or_else(|| {
                        QueryMeta::with_index(self.watch.index().unwrap_or(Index::new(1)))
                    }))
                }
                Err(mut e) => {
                    if let Some(t) = &secret {
                        e.redact(t);
                    }
                    if !e.is_retryable() {
                        return WatchStep::Failed(Error::from(e).with_request(target));
                    }
                    tracing::debug!(error = %e, "watch: retrying after backoff");
                    WatchStep::Retrying(Error::from(e))
                }
            },
            Err(f) => {
                self.watch.handle_failure(now);
                if !f.error.is_retryable() {
                    return WatchStep::Failed(f.error.with_request(target));
                }
                tracing::debug!(error = %f.error, "watch: retrying after backoff");
                WatchStep::Retrying(f.error)
            }
        }
    }
}

/// What one [`HyperWatch::step`] came to.
#[non_exhaustive]
#[derive(Debug)]
pub enum WatchStep<V> {
    /// Consul answered with a changed value.
    Changed(Indexed<V>),
    /// Consul answered, and nothing changed (the wait ran out, or a write elsewhere woke the
    /// query): the answer's meta.
    Unchanged(QueryMeta),
    /// A transient failure (connect error, reset, timeout, `429`, `503`,
    /// `500 No cluster leader`, a lost pooled connection): the next step retries after the
    /// backoff.
    Retrying(Error),
    /// A failure that is not retryable (`403`, a malformed answer, a body over the limit, an
    /// invalid request). The watcher stays usable: after an answer or a transport failure the
    /// next step waits out the backoff; a request that cannot be built fails the same way
    /// again, so a caller stops there.
    Failed(Error),
}
