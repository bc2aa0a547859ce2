//! [`HyperClient`]: runs [`Operation`]s with deadlines, bounded bodies and safe retries.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::client::legacy::connect::capture_connection;
use hyper_util::client::legacy::Client;
use proto::{blocking_deadline, Blocking, Operation, RequestContext, WatchOptions};
use tracing::Instrument as _;

use crate::body::read_limited;
use crate::builder::HyperClientBuilder;
use crate::connect::{Connector, RequestTrace, StatsHandle};
use crate::error::{Error, RequestTarget, TransportKind};
use crate::retry::RetryPolicy;
use crate::watch::HyperWatch;

/// The shared state behind every clone of a [`HyperClient`].
pub(crate) struct Inner {
    pub(crate) client: Client<Connector, Full<Bytes>>,
    pub(crate) base: String,
    pub(crate) display: String,
    pub(crate) cx: RequestContext,
    /// `Authorization: Basic …` for every request, when basic auth is configured.
    pub(crate) auth: Option<http::HeaderValue>,
    pub(crate) timeout: Duration,
    pub(crate) blocking_margin: Duration,
    pub(crate) max_body: usize,
    pub(crate) max_error_body: usize,
    pub(crate) retry: RetryPolicy,
    /// Admission: at most `max_connections` requests in flight; the rest queue (FIFO).
    pub(crate) admission: tokio::sync::Semaphore,
}

/// A Consul HTTP client: one connection pool, shared by all clones.
///
/// Cloning is cheap (an `Arc`). Every call runs under a deadline, reads at most a bounded
/// body, and is retried only when that is safe (see [`execute`](Self::execute)). `Debug`
/// never shows the token.
///
/// ```
/// # use consul_kv_hyper::HyperClient;
/// let client = HyperClient::builder().address("127.0.0.1:8500").token("secret").build()?;
/// assert_eq!(client.address(), "http://127.0.0.1:8500");
/// assert!(!format!("{client:?}").contains("secret"));
/// # Ok::<(), consul_kv_hyper::Error>(())
/// ```
#[derive(Clone)]
pub struct HyperClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for HyperClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("HyperClient")
            .field("address", &i.display)
            .field("token", &i.cx.token.as_ref().map(|_| "***"))
            .field("basic_auth", &i.auth.as_ref().map(|_| "***"))
            .field("datacenter", &i.cx.datacenter)
            .field("namespace", &i.cx.namespace)
            .field("partition", &i.cx.partition)
            .field("timeout", &i.timeout)
            .field("retry", &i.retry)
            .finish_non_exhaustive()
    }
}

/// Per-call settings for [`HyperClient::execute_with`]; unset fields take the client's.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// The deadline of each attempt, instead of [`HyperClient::deadline_for`].
    pub timeout: Option<Duration>,
    /// The retry policy, instead of the client's.
    pub retry: Option<RetryPolicy>,
}

impl CallOptions {
    /// Sets the deadline of each attempt.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }
}

/// Whether the request of a failed attempt can have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Certainly not: no connection, or not a byte written.
    No,
    /// Perhaps: written, but no response head came back.
    Maybe,
    /// Yes: the response head arrived (the body then failed).
    Yes,
}

/// A failed attempt.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    sent: Sent,
    trace: Option<RequestTrace>,
}

impl Failure {
    fn unsent(error: Error) -> Self {
        Self {
            error,
            sent: Sent::No,
            trace: None,
        }
    }

    /// A pooled connection that the server had closed: nothing (`Sent::No`) or nothing
    /// answered.
    pub(crate) fn is_stale_connection(&self) -> bool {
        matches!(self.error, Error::Transport { .. })
            && self
                .trace
                .is_some_and(|t| t.reused && (t.nothing_sent || t.nothing_received))
    }
}

impl HyperClient {
    /// A builder with the defaults; see [`HyperClientBuilder`].
    pub fn builder() -> HyperClientBuilder {
        HyperClientBuilder::default()
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The defaults every request is built with: token, datacenter, namespace, partition.
    pub fn context(&self) -> &RequestContext {
        &self.inner.cx
    }

    /// The agent's address as configured (`http://host:port[/prefix]`, `https://…` or
    /// `unix:///…`).
    pub fn address(&self) -> &str {
        &self.inner.display
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// The deadline `execute` gives one attempt of `op`: the call timeout, or
    /// `wait + wait/16 + blocking_margin` for a blocking read.
    pub fn deadline_for<O: Operation>(&self, op: &O) -> Duration {
        match op.blocking_wait() {
            Some(wait) => blocking_deadline(wait, self.inner.blocking_margin),
            None => self.inner.timeout,
        }
    }

    /// Runs one operation: build, send, read the body under its limit, parse.
    ///
    /// **Deadline.** Each attempt (waiting for a connection, connecting, sending, the response
    /// head and the whole body) runs under one deadline, [`deadline_for`](Self::deadline_for);
    /// when it passes the connection is dropped and the result is [`Error::Timeout`]. A timed
    /// out attempt is not retried, so a server that never answers costs one deadline, not
    /// several.
    ///
    /// **Retries** (with the [`RetryPolicy`]'s full-jitter backoff, attempt limit and budget;
    /// `Retry-After` is honoured):
    /// - any operation, when the request certainly did not reach Consul: a connect error, a
    ///   pooled connection found closed before the request was written; and
    ///   `429`, `503`, `500 No cluster leader`, which Consul returns before applying anything;
    /// - reads and idempotent writes ([`proto::OpKind::is_safe_to_repeat`]), also on any other
    ///   transport failure (reset, truncated body) and on `502`/`504`.
    ///
    /// A pooled connection the server had closed while idle is retried at once, without
    /// backoff and without counting as an attempt, once per attempt.
    ///
    /// **Ambiguous writes.** When a non-idempotent write failed after its request may have
    /// reached Consul (reset or timeout after sending, truncated response, `502`/`504` from a
    /// proxy), the result is [`Error::OutcomeUnknown`]; it is never retried.
    ///
    /// ```no_run
    /// use consul_kv_hyper::{proto::kv::Get, HyperClient};
    ///
    /// # async fn run() -> Result<(), consul_kv_hyper::Error> {
    /// let client = HyperClient::builder().build()?;
    /// let found = client.execute(&Get::new("config/db")).await?;
    /// if let Some(pair) = found.value {
    ///     println!("{:?} at index {}", pair.value, found.meta.last_index);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// See [`Error`]; the error is the last attempt's.
    pub async fn execute<O: Operation>(&self, op: &O) -> Result<O::Output, Error> {
        self.execute_with(op, &CallOptions::default()).await
    }

    /// Like [`execute`](Self::execute), with a per-call deadline or retry policy.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use consul_kv_hyper::{proto::kv::Get, CallOptions, HyperClient, RetryPolicy};
    ///
    /// # async fn run(client: HyperClient) -> Result<(), consul_kv_hyper::Error> {
    /// let opts = CallOptions::default()
    ///     .timeout(Duration::from_secs(2))
    ///     .retry(RetryPolicy::none());
    /// let found = client.execute_with(&Get::new("config"), &opts).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// See [`execute`](Self::execute).
    pub async fn execute_with<O: Operation>(
        &self,
        op: &O,
        opts: &CallOptions,
    ) -> Result<O::Output, Error> {
        let req = op.build(&self.inner.cx)?;
        let target = RequestTarget::of(&req);
        self.run(op, req, opts)
            .await
            .map_err(|e| e.with_request(target))
    }

    /// The attempts of one call, with retries; [`execute_with`](Self::execute_with) names the
    /// request in the error.
    async fn run<O: Operation>(
        &self,
        op: &O,
        req: Request<Bytes>,
        opts: &CallOptions,
    ) -> Result<O::Output, Error> {
        let safe = op.kind().is_safe_to_repeat();
        let deadline = opts.timeout.unwrap_or_else(|| self.deadline_for(op));
        let policy = opts.retry.as_ref().unwrap_or(&self.inner.retry);
        let started = Instant::now();
        // Durations only, saturating: a budget or deadline near `Duration::MAX` must not
        // overflow an `Instant`.
        let budget = policy
            .budget
            .saturating_add(if op.blocking_wait().is_some() {
                deadline
            } else {
                Duration::ZERO
            });
        let secret = token_of(&req);
        // Seeded from the process-wide generator: concurrent calls draw different backoffs.
        let mut rng = fastrand::Rng::new();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let (err, retry_after) = match self.round_trip(&req, deadline, safe, attempt).await {
                Ok(resp) => match op.parse(resp) {
                    Ok(out) => return Ok(out),
                    Err(mut e) => {
                        if let Some(s) = &secret {
                            e.redact(s);
                        }
                        let rejected = e.is_rejected_before_apply();
                        let retry = e.is_retryable() && (safe || rejected);
                        let ambiguous = !safe && !rejected && e.is_ambiguous();
                        let retry_after = e.retry_after();
                        let e = Error::from(e);
                        if ambiguous {
                            return Err(Error::outcome_unknown(e));
                        }
                        if !retry {
                            return Err(e);
                        }
                        (e, retry_after)
                    }
                },
                Err(f) => {
                    let retry = match (&f.error, f.sent) {
                        (Error::Timeout { .. } | Error::BodyTooLarge { .. }, _) => false,
                        (Error::Transport { .. }, Sent::No) => true,
                        (Error::Transport { .. }, _) => safe,
                        _ => false,
                    };
                    let e = if !safe && f.sent != Sent::No {
                        Error::outcome_unknown(f.error)
                    } else {
                        f.error
                    };
                    if !retry {
                        return Err(e);
                    }
                    (e, None)
                }
            };
            if attempt >= policy.max_attempts {
                tracing::debug!(attempt, "giving up: attempts exhausted");
                return Err(err);
            }
            let mut delay = policy.delay(attempt, &mut rng);
            if let Some(ra) = retry_after {
                delay = delay.max(ra);
            }
            // An absurd `Retry-After` (up to u64::MAX seconds) ends here: it is over budget.
            if started.elapsed().saturating_add(delay) > budget {
                tracing::debug!(attempt, ?delay, "giving up: retry budget exhausted");
                return Err(err);
            }
            tracing::debug!(attempt, ?delay, error = %err, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// A blocking-query loop over `op` that yields each change. See [`HyperWatch`].
    ///
    /// The watch's request deadline is [`proto::WatchMachine::request_timeout`]
    /// (`wait + wait/16 + opts.deadline_margin`).
    pub fn watch<O>(&self, op: O, opts: WatchOptions) -> HyperWatch<O>
    where
        O: Blocking + Send + 'static,
        O::Value: Clone + PartialEq + Send,
    {
        HyperWatch::new(self.clone(), op, opts)
    }

    /// One attempt, plus one immediate repeat on a new connection when a pooled connection
    /// turned out to be closed by the server (always when nothing was sent; for `safe`
    /// operations also when it was sent but nothing came back).
    pub(crate) async fn round_trip(
        &self,
        req: &Request<Bytes>,
        deadline: Duration,
        safe: bool,
        attempt: u32,
    ) -> Result<Response<Bytes>, Failure> {
        match self.attempt(req, deadline, attempt).await {
            Err(f) if f.is_stale_connection() && (f.sent == Sent::No || safe) => {
                tracing::debug!(error = %f.error, "pooled connection was closed; repeating on a new one");
                self.attempt(req, deadline, attempt).await
            }
            other => other,
        }
    }

    pub(crate) async fn attempt(
        &self,
        req: &Request<Bytes>,
        deadline: Duration,
        attempt: u32,
    ) -> Result<Response<Bytes>, Failure> {
        let inner = &*self.inner;
        let span = tracing::debug_span!(
            "consul_request",
            method = %req.method(),
            path = %req.uri().path(),
            attempt,
            status = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
        );
        let mut hreq = self.to_hyper(req).map_err(Failure::unsent)?;
        let capture = capture_connection(&mut hreq);
        let started = Instant::now();
        let mut got_head = false;
        let result = {
            let got_head = &mut got_head;
            let span2 = span.clone();
            let fut = async move {
                // Queue behind the requests in flight when the connection cap is reached.
                let _admitted = inner
                    .admission
                    .acquire()
                    .await
                    .map_err(|e| Error::transport(TransportKind::Connect, e))?;
                let resp = inner.client.request(hreq).await.map_err(|e| {
                    let kind = if e.is_connect() {
                        TransportKind::Connect
                    } else {
                        TransportKind::Request
                    };
                    Error::transport(kind, e)
                })?;
                *got_head = true;
                span2.record("status", resp.status().as_u16());
                let (parts, body) = resp.into_parts();
                let limit = if parts.status.as_u16() >= 400 {
                    inner.max_error_body
                } else {
                    inner.max_body
                };
                let bytes = read_limited(body, limit).await?;
                Ok::<_, Error>(Response::from_parts(parts, bytes))
            };
            tokio::time::timeout(deadline, fut)
                .instrument(span.clone())
                .await
                .unwrap_or(Err(Error::timeout(deadline)))
        };
        let elapsed = started.elapsed();
        span.record("elapsed_ms", elapsed.as_millis() as u64);
        let stats = {
            let meta = capture.connection_metadata();
            meta.as_ref().and_then(|c| {
                let mut ext = http::Extensions::new();
                c.get_extras(&mut ext);
                ext.remove::<StatsHandle>()
            })
        };
        let error = match result {
            Ok(resp) => {
                if let Some(s) = &stats {
                    s.0.complete();
                }
                span.in_scope(|| tracing::debug!("response"));
                return Ok(resp);
            }
            Err(e) => e,
        };
        if let Some(c) = capture.connection_metadata().as_ref() {
            // The connection cannot be trusted any more: keep it out of the pool.
            c.poison();
        }
        let trace = stats.map(|s| s.0.trace());
        let sent = match (&error, trace) {
            (Error::Transport { error: t, .. }, _) if t.is_connect() => Sent::No,
            (_, None) => Sent::No,
            (_, Some(t)) if t.nothing_sent => Sent::No,
            _ if got_head => Sent::Yes,
            _ => Sent::Maybe,
        };
        span.in_scope(|| tracing::debug!(error = %error, ?sent, ?trace, "request failed"));
        Err(Failure { error, sent, trace })
    }

    fn to_hyper(&self, req: &Request<Bytes>) -> Result<Request<Full<Bytes>>, Error> {
        let pq = req
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        let uri: http::Uri =
            format!("{}{}", self.inner.base, pq)
                .parse()
                .map_err(|e: http::uri::InvalidUri| {
                    Error::Build(proto::BuildError::Http(http::Error::from(e)))
                })?;
        let mut out = Request::new(Full::new(req.body().clone()));
        *out.method_mut() = req.method().clone();
        *out.uri_mut() = uri;
        *out.headers_mut() = req.headers().clone();
        if let Some(auth) = &self.inner.auth {
            out.headers_mut()
                .insert(http::header::AUTHORIZATION, auth.clone());
        }
        Ok(out)
    }
}

/// The token a request carries, to redact it from server messages.
pub(crate) fn token_of(req: &Request<Bytes>) -> Option<String> {
    req.headers()
        .get("x-consul-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
