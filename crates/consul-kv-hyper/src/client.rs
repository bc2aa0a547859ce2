//! [`HyperClient`]: runs [`Operation`]s with deadlines, bounded bodies and safe retries.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::client::legacy::connect::capture_connection;
use hyper_util::client::legacy::Client;
use proto::{blocking_deadline, Blocking, Operation, RequestContext, WatchOptions};
use tracing::Instrument as _;

use crate::admission::{Admission, Ticket};
use crate::body::read_limited;
use crate::builder::HyperClientBuilder;
use crate::connect::{Connector, RequestTrace, StatsHandle};
use crate::error::{Error, RequestTarget, TransportKind};
use crate::retry::RetryPolicy;
use crate::watch::HyperWatch;

/// The shared state behind every clone of a [`HyperClient`].
pub(crate) struct Inner {
    pub(crate) client: Client<Connector, Full<Bytes>>,
    pub(crate) base: Base,
    pub(crate) display: String,
    pub(crate) cx: RequestContext,
    /// `Authorization: Basic …` for every request, when basic auth is configured.
    pub(crate) auth: Option<http::HeaderValue>,
    pub(crate) timeout: Duration,
    pub(crate) blocking_margin: Duration,
    pub(crate) max_body: usize,
    /// Ask for gzip answers and decode them.
    pub(crate) gzip: bool,
    pub(crate) max_error_body: usize,
    pub(crate) retry: RetryPolicy,
    /// Admission: at most `max_connections` requests in flight; the rest queue (FIFO).
    pub(crate) admission: Arc<Admission>,
    /// The byte limit of a streamed read ([`HyperClient::stream`]).
    pub(crate) max_stream_body: u64,
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

/// The options of [`HyperClient::execute`]: the client's.
static NO_CALL_OPTIONS: CallOptions = CallOptions {
    timeout: None,
    retry: None,
};

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

/// Why an attempt of [`HyperClient::run`] did not produce a result.
enum Failed {
    /// The request never left: no attempt can succeed (e.g. it could not be built).
    Final(Error),
    /// The answer came, and `finish` refused it (an error status, a body that does not parse).
    Response(proto::ResponseError),
    /// No usable answer came.
    Attempt(Failure),
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

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
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
    pub fn execute<'a, O: Operation>(
        &'a self,
        op: &'a O,
    ) -> impl Future<Output = Result<O::Output, Error>> + 'a {
        self.execute_with(op, &NO_CALL_OPTIONS)
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
    pub fn execute_with<'a, O: Operation>(
        &'a self,
        op: &'a O,
        opts: &'a CallOptions,
    ) -> impl Future<Output = Result<O::Output, Error>> + 'a {
        // No async layer of its own: `run` names the request in its errors.
        self.run(op, opts, false, move |head| op.parse(head.into_response()))
    }

    /// Names the request in a call's error. Done only on failure: the request is built again
    /// (cheap, and rare) rather than every call keeping a copy of its method and path.
    pub(crate) fn name_request<O: Operation>(&self, op: &O, e: Error) -> Error {
        match op.build(&self.inner.cx) {
            Ok(req) => e.with_request(RequestTarget::of(&req)),
            Err(_) => e,
        }
    }

    /// The retry loop shared by [`execute_with`](Self::execute_with) and streamed reads:
    /// attempts until `finish` accepts a head, an error is final, or the policy gives up. Its
    /// errors name the request ([`name_request`](Self::name_request)).
    ///
    /// The first attempt is the common case and runs here; everything after a failure (the
    /// stale-connection repeat, the retry decision, backoff, later attempts) is in
    /// [`recover`](Self::recover), boxed, so that the future every call holds stays small.
    pub(crate) async fn run<O: Operation, T>(
        &self,
        op: &O,
        opts: &CallOptions,
        stream: bool,
        mut finish: impl FnMut(Head) -> Result<T, proto::ResponseError>,
    ) -> Result<T, Error> {
        let spec = AttemptSpec {
            deadline: opts.timeout.unwrap_or_else(|| self.deadline_for(op)),
            number: 1,
            safe: op.kind().is_safe_to_repeat(),
            stream,
        };
        let started = Instant::now();
        let first = self.attempt(op.build(&self.inner.cx)?, spec);
        let failed = match first.await {
            Ok(head) => match finish(head) {
                Ok(out) => return Ok(out),
                Err(e) => Failed::Response(e),
            },
            Err(f) => Failed::Attempt(f),
        };
        Box::pin(self.recover(op, opts, spec, started, &mut finish, failed))
            .await
            .map_err(|e| self.name_request(op, e))
    }

    /// After a failed first attempt: the immediate repeat on a new connection when a pooled
    /// connection turned out to be closed by the server (once per attempt; always when nothing
    /// was sent, for operations safe to repeat also when it was sent but nothing came back),
    /// then the retry decision, the backoff and the later attempts.
    async fn recover<O: Operation, T>(
        &self,
        op: &O,
        opts: &CallOptions,
        mut spec: AttemptSpec,
        started: Instant,
        finish: &mut impl FnMut(Head) -> Result<T, proto::ResponseError>,
        mut failed: Failed,
    ) -> Result<T, Error> {
        let policy = opts.retry.as_ref().unwrap_or(&self.inner.retry);
        // Durations only, saturating: a budget or deadline near `Duration::MAX` must not
        // overflow an `Instant`.
        let budget = policy
            .budget
            .saturating_add(if op.blocking_wait().is_some() {
                spec.deadline
            } else {
                Duration::ZERO
            });
        // Seeded (from the process-wide generator) only if a retry needs a backoff.
        let mut rng: Option<fastrand::Rng> = None;
        loop {
            if let Failed::Attempt(f) = &failed {
                if f.is_stale_connection() && (f.sent == Sent::No || spec.safe) {
                    tracing::debug!(error = %f.error, "pooled connection was closed; repeating on a new one");
                    failed = match self.once(op, spec, finish).await {
                        Ok(out) => return Ok(out),
                        Err(f) => f,
                    };
                }
            }
            let (err, retry_after) = self.judge(op, spec.safe, failed)?;
            if spec.number >= policy.max_attempts {
                tracing::debug!(attempt = spec.number, "giving up: attempts exhausted");
                return Err(err);
            }
            let mut delay = policy.delay(spec.number, rng.get_or_insert_with(fastrand::Rng::new));
            if let Some(ra) = retry_after {
                delay = delay.max(ra);
            }
            // An absurd `Retry-After` (up to u64::MAX seconds) ends here: it is over budget.
            if started.elapsed().saturating_add(delay) > budget {
                tracing::debug!(
                    attempt = spec.number,
                    ?delay,
                    "giving up: retry budget exhausted"
                );
                return Err(err);
            }
            tracing::debug!(attempt = spec.number, ?delay, error = %err, "retrying");
            tokio::time::sleep(delay).await;
            spec.number += 1;
            failed = match self.once(op, spec, finish).await {
                Ok(out) => return Ok(out),
                Err(f) => f,
            };
        }
    }

    /// One more attempt of `op` (its request built again), finished by `finish`.
    async fn once<O: Operation, T>(
        &self,
        op: &O,
        spec: AttemptSpec,
        finish: &mut impl FnMut(Head) -> Result<T, proto::ResponseError>,
    ) -> Result<T, Failed> {
        let req = op
            .build(&self.inner.cx)
            .map_err(|e| Failed::Final(e.into()))?;
        match self.attempt(req, spec).await {
            Ok(head) => finish(head).map_err(Failed::Response),
            Err(f) => Err(Failed::Attempt(f)),
        }
    }

    /// Whether a failure is retried: the error and the server's `Retry-After` if so, the
    /// final error if not.
    fn judge<O: Operation>(
        &self,
        op: &O,
        safe: bool,
        failed: Failed,
    ) -> Result<(Error, Option<Duration>), Error> {
        match failed {
            Failed::Final(e) => Err(e),
            Failed::Response(mut e) => {
                // The token this request carried (rebuilt: rare, and no call keeps a copy of
                // its secret just in case).
                if let Ok(req) = op.build(&self.inner.cx) {
                    if let Some(secret) = proto::Token::carried_by(&req) {
                        e.redact(secret);
                    }
                }
                let rejected = e.is_rejected_before_apply();
                let retry = e.is_retryable() && (safe || rejected);
                let ambiguous = !safe && !rejected && e.is_ambiguous();
                let retry_after = e.retry_after();
                let e = Error::from(e);
                if ambiguous {
                    return Err(Error::outcome_unknown(e));
                }
                if retry {
                    Ok((e, retry_after))
                } else {
                    Err(e)
                }
            }
            Failed::Attempt(f) => {
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
                if retry {
                    Ok((e, None))
                } else {
                    Err(e)
                }
            }
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

    /// One attempt: send `req` and read the answer under one deadline. With `a.stream`, a `200`
    /// or `404` answer is returned with its body unread (the deadline then covers the head).
    ///
    /// The hyper request and hyper-util's (boxed) response future are made before the
    /// returned future first runs, so that the request is not also held in this future's
    /// state while it waits.
    pub(crate) fn attempt(
        &self,
        req: Request<Bytes>,
        a: AttemptSpec,
    ) -> impl Future<Output = Result<Head, Failure>> + '_ {
        let inner = &*self.inner;
        let span = tracing::debug_span!(
            "consul_request",
            method = %req.method(),
            path = %req.uri().path(),
            attempt = a.number,
            status = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
        );
        let prepared = self.to_hyper(req).map(|mut hreq| {
            // A streamed read hands its body on undecoded, so only collected reads ask for
            // gzip.
            if inner.gzip && !a.stream {
                hreq.headers_mut().insert(
                    http::header::ACCEPT_ENCODING,
                    http::HeaderValue::from_static("gzip"),
                );
            }
            // Only a write needs to know, after a timeout, whether its connection had sent
            // anything (to tell "not applied" from "outcome unknown"). A read's failures carry
            // their connection in the error itself (`connect_info`), and a success carries it
            // in the response's extensions, so reads pay for no capture.
            let capture = (!a.safe).then(|| capture_connection(&mut hreq));
            (inner.client.request(hreq), capture)
        });
        // Boxed: the error is rare, and this future holds `prepared` while it runs.
        let prepared = prepared.map_err(Box::new);
        async move {
            let (response, capture) = prepared.map_err(|e| Failure::unsent(*e))?;
            let traced = !span.is_disabled();
            let started = traced.then(Instant::now);
            let mut progress = Progress::Queued;
            let fut = async {
                // Queue behind the requests in flight when the connection cap is reached.
                let permit = inner.admission.enter().await;
                progress = Progress::Sending;
                let (mut parts, body) = response
                    .await
                    .map_err(|e| {
                        let stats = e.connect_info().and_then(|c| {
                            // The connection cannot be trusted any more: keep it out of the pool.
                            c.poison();
                            stats_of(c)
                        });
                        let kind = if e.is_connect() {
                            TransportKind::Connect
                        } else {
                            TransportKind::Request
                        };
                        (Error::transport(kind, e), stats)
                    })?
                    .into_parts();
                progress = Progress::Head;
                let stats = parts.extensions.remove::<StatsHandle>();
                if traced {
                    span.record("status", parts.status.as_u16());
                }
                let status = parts.status.as_u16();
                if a.stream && matches!(status, 200 | 404) {
                    return Ok(Head {
                        parts,
                        body: HeadBody::Open(Open {
                            body,
                            _permit: permit,
                            stats,
                        }),
                    });
                }
                let limit = if status >= 400 {
                    inner.max_error_body
                } else {
                    inner.max_body
                };
                let read = match read_limited(body, limit).await {
                    Ok(bytes) => crate::gzip::decode_response(parts, bytes, limit),
                    Err(e) => Err(e),
                };
                match read {
                    Ok((parts, bytes)) => {
                        drop(permit);
                        if let Some(s) = &stats {
                            s.0.complete();
                        }
                        Ok(Head {
                            parts,
                            body: HeadBody::Collected(bytes),
                        })
                    }
                    Err(e) => {
                        if let Some(s) = &stats {
                            s.0.doom();
                        }
                        Err((e, stats))
                    }
                }
            };
            let result = if traced {
                tokio::time::timeout(a.deadline, fut.instrument(span.clone())).await
            } else {
                tokio::time::timeout(a.deadline, fut).await
            };
            let (error, stats) = match result {
                Ok(Ok(head)) => {
                    if let Some(t) = started {
                        span.record("elapsed_ms", t.elapsed().as_millis() as u64);
                        span.in_scope(|| tracing::debug!("response"));
                    }
                    return Ok(head);
                }
                Ok(Err(e)) => e,
                Err(_) => (Error::timeout(a.deadline), None),
            };
            // A write's connection, when the error did not carry it.
            let stats = stats.or_else(|| {
                let c = capture?;
                let meta = c.connection_metadata();
                let c = meta.as_ref()?;
                c.poison();
                stats_of(c)
            });
            let trace = stats.map(|s| s.0.trace());
            let sent = match (&error, trace) {
                (Error::Transport { error: t, .. }, _) if t.is_connect() => Sent::No,
                _ if progress == Progress::Queued => Sent::No,
                (_, Some(t)) if t.nothing_sent => Sent::No,
                _ if progress == Progress::Head => Sent::Yes,
                // No connection was found: a write's capture saw none, so it never got one.
                (_, None) if !a.safe => Sent::No,
                _ => Sent::Maybe,
            };
            if traced {
                if let Some(t) = started {
                    span.record("elapsed_ms", t.elapsed().as_millis() as u64);
                }
                span.in_scope(|| tracing::debug!(error = %error, ?sent, ?trace, "request failed"));
            }
            Err(Failure { error, sent, trace })
        }
    }

    /// The proto request, moved into a hyper request: the path and query are kept as they
    /// are, the scheme and authority (parsed once, in the builder) are put in front, and the
    /// `Host` header is the one computed once.
    fn to_hyper(&self, req: Request<Bytes>) -> Result<Request<Full<Bytes>>, Error> {
        let (mut parts, body) = req.into_parts();
        let pq = std::mem::take(&mut parts.uri).into_parts().path_and_query;
        parts.uri = self.inner.base.uri(pq)?;
        parts
            .headers
            .entry(http::header::HOST)
            .or_insert_with(|| self.inner.base.host.clone());
        if let Some(auth) = &self.inner.auth {
            parts
                .headers
                .insert(http::header::AUTHORIZATION, auth.clone());
        }
        Ok(Request::from_parts(parts, Full::new(body)))
    }
}

/// The per-connection counters a connection's `Connected` info carries.
fn stats_of(c: &hyper_util::client::legacy::connect::Connected) -> Option<StatsHandle> {
    let mut ext = http::Extensions::new();
    c.get_extras(&mut ext);
    ext.remove::<StatsHandle>()
}

/// How far an attempt got, for deciding whether its request can have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Waiting for admission (the connection cap): nothing sent.
    Queued,
    /// Handed to the connection pool: connecting, writing, or waiting for the head.
    Sending,
    /// The response head arrived.
    Head,
}

/// What one attempt is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttemptSpec {
    pub(crate) deadline: Duration,
    pub(crate) number: u32,
    /// A read or idempotent write.
    pub(crate) safe: bool,
    /// Return a `200`/`404` body unread.
    pub(crate) stream: bool,
}

/// A response head, with its body collected or still open.
pub(crate) struct Head {
    pub(crate) parts: http::response::Parts,
    pub(crate) body: HeadBody,
}

pub(crate) enum HeadBody {
    Collected(Bytes),
    Open(Open),
}

/// A body still to be read, with the admission permit and the connection's counters.
pub(crate) struct Open {
    pub(crate) body: hyper::body::Incoming,
    /// Held until the body is read or dropped.
    pub(crate) _permit: Ticket,
    pub(crate) stats: Option<StatsHandle>,
}

impl Head {
    /// The response with its collected body (an open body, which only a streamed read gets,
    /// reads as empty here).
    pub(crate) fn into_response(self) -> Response<Bytes> {
        let body = match self.body {
            HeadBody::Collected(b) => b,
            HeadBody::Open(_) => Bytes::new(),
        };
        Response::from_parts(self.parts, body)
    }
}

/// The scheme, authority and path prefix of the agent, parsed once per client, and the
/// `Host` header every request carries.
#[derive(Debug, Clone)]
pub(crate) struct Base {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// A path prefix (agents behind a reverse proxy), without a trailing `/`; usually empty.
    prefix: String,
    host: http::HeaderValue,
}

impl Base {
    /// Parses `scheme://authority[/prefix]`.
    pub(crate) fn parse(base: &str) -> Result<Self, Error> {
        let bad = || crate::error::ConfigError::new(format!("invalid address {base:?}"));
        let uri: http::Uri = base.parse().map_err(|_| bad())?;
        let parts = uri.into_parts();
        let scheme = parts.scheme.ok_or_else(bad)?;
        let authority = parts.authority.ok_or_else(bad)?;
        let prefix = parts
            .path_and_query
            .map(|pq| pq.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        // What hyper-util would write per request: the host, and the port unless it is the
        // scheme's default.
        let secure = scheme == http::uri::Scheme::HTTPS;
        let host = match authority.port_u16() {
            Some(443) if secure => authority.host().to_owned(),
            Some(80) if !secure => authority.host().to_owned(),
            Some(p) => format!("{}:{p}", authority.host()),
            None => authority.host().to_owned(),
        };
        let host = http::HeaderValue::from_str(&host).map_err(|_| bad())?;
        Ok(Self {
            scheme,
            authority,
            prefix,
            host,
        })
    }

    /// The absolute URI of a request whose path and query are `pq`.
    fn uri(&self, pq: Option<http::uri::PathAndQuery>) -> Result<http::Uri, Error> {
        let pq = match pq {
            Some(pq) if self.prefix.is_empty() => pq,
            pq => {
                let joined = format!("{}{}", self.prefix, pq.as_ref().map_or("/", |p| p.as_str()));
                http::uri::PathAndQuery::try_from(joined)
                    .map_err(|e| Error::Build(proto::BuildError::Http(http::Error::from(e))))?
            }
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(pq);
        http::Uri::from_parts(parts)
            .map_err(|e| Error::Build(proto::BuildError::Http(http::Error::from(e))))
    }
}
