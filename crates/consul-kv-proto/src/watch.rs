//! Blocking queries as a sans-IO state machine: [`WatchMachine`].
//!
//! [`WatchMachine`] owns the rules of Consul's blocking-query documentation
//! (`api-docs/features/blocking`):
//!
//! - **Reset the index when it goes backwards** (tombstone reaping, a restarted server): the
//!   next request is a plain read, then blocking resumes from the fresh index.
//! - **Never block with index 0**: without an index the request is sent without `index=`.
//! - **A return is not a change**: a result is emitted only when its value differs from the
//!   last one emitted.
//! - **Rate limit** with a token bucket (burst 2 by default) instead of a sleep per loop.
//! - **Back off on errors**, exponentially with jitter, up to a cap; after an error the index is
//!   reset, because a restarted server may have a lower one.
//!
//! Time is an input. The driver loop is:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use consul_kv_proto::{kv::Get, RequestContext, WatchMachine, WatchOptions};
//!
//! let mut watch = WatchMachine::new(Get::new("config"), WatchOptions::default());
//! let cx = RequestContext::new();
//! # let t0 = Instant::now();
//! # let mut now = t0;
//! // 1. Ask for a request; `None` means "wait until poll_timeout()".
//! let req = watch.poll_request(now, &cx).unwrap().expect("the first request is immediate");
//! assert_eq!(req.uri(), "/v1/kv/config");
//! // 2. Send it with a deadline of `watch.request_timeout()`, then hand back the response.
//! let resp = http::Response::builder()
//!     .status(200)
//!     .header("X-Consul-Index", "5")
//!     .body(Bytes::from_static(br#"[{"Key":"config","Value":"YQ==","ModifyIndex":5}]"#))
//!     .unwrap();
//! let event = watch.handle_response(now, resp).unwrap().expect("first result is emitted");
//! assert_eq!(event.value.unwrap().value.unwrap(), "a");
//! // 3. The next request blocks on index 5.
//! now += Duration::from_millis(1);
//! let req = watch.poll_request(now, &cx).unwrap().unwrap();
//! assert_eq!(req.uri(), "/v1/kv/config?index=5&wait=60s");
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};

use crate::error::{BuildError, ResponseError};
use crate::op::Operation;
use crate::time::{instant_after, MAX_WAIT};
use crate::{Index, Indexed, QueryMeta, RequestContext};

/// A read that can block on an index.
pub trait Blocking: Operation<Output = Indexed<Self::Value>> {
    /// The value the read returns.
    type Value;

    /// Sets the index to block on (`None`: do not block) and the wait.
    fn set_block(&mut self, index: Option<Index>, wait: Duration);
}

/// Tuning of a [`WatchMachine`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// The `wait` sent with each blocking request. Default 60 s (Consul's own default of 5 min
    /// is longer than most callers want).
    pub wait: Duration,
    /// Token-bucket refill interval: at most one request per interval once the burst is spent.
    /// Default 500 ms.
    pub min_interval: Duration,
    /// Token-bucket size. Default 2.
    pub burst: u32,
    /// First delay after an error. Default 200 ms.
    pub backoff_base: Duration,
    /// Largest delay after repeated errors. Default 30 s.
    pub backoff_max: Duration,
    /// Added to `wait + wait/16` to form the request deadline: Consul may hold a request up to
    /// 7 s while it looks for a leader. Default 8 s.
    pub deadline_margin: Duration,
    /// Seed of the jitter generator (any value; vary it between watchers).
    pub seed: u64,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(60),
            min_interval: Duration::from_millis(500),
            burst: 2,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            deadline_margin: Duration::from_secs(8),
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

impl WatchOptions {
    /// Sets the wait.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Sets the rate-limit interval.
    pub fn min_interval(mut self, d: Duration) -> Self {
        self.min_interval = d;
        self
    }

    /// Sets the jitter seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the error backoff base and cap.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }
}

/// The deadline for one blocking request: `wait + wait/16 + margin`, with `wait` capped at
/// Consul's 10 minutes ([`MAX_WAIT`]) as the server caps it, and the sum saturating.
pub fn blocking_deadline(wait: Duration, margin: Duration) -> Duration {
    let wait = wait.min(MAX_WAIT);
    wait.saturating_add(wait / 16).saturating_add(margin)
}

/// A blocking-query loop over a [`Blocking`] read, without I/O or clock reads.
#[derive(Debug)]
pub struct WatchMachine<O: Blocking> {
    op: O,
    opts: WatchOptions,
    index: Option<Index>,
    last: Option<O::Value>,
    last_meta: Option<QueryMeta>,
    tokens: u32,
    refilled_at: Option<Instant>,
    not_before: Option<Instant>,
    failures: u32,
    in_flight: bool,
    rng: fastrand::Rng,
    resets: u64,
    requests: u64,
}

impl<O> WatchMachine<O>
where
    O: Blocking,
    O::Value: Clone + PartialEq,
{
    /// A watch over `op`. The first request is a plain (non-blocking) read.
    pub fn new(op: O, opts: WatchOptions) -> Self {
        let burst = opts.burst.max(1);
        let rng = fastrand::Rng::with_seed(opts.seed);
        Self {
            op,
            opts,
            index: None,
            last: None,
            last_meta: None,
            tokens: burst,
            refilled_at: None,
            not_before: None,
            failures: 0,
            in_flight: false,
            rng,
            resets: 0,
            requests: 0,
        }
    }

    /// The index the next request will block on, if any.
    pub fn index(&self) -> Option<Index> {
        self.index
    }

    /// The last value emitted.
    pub fn current(&self) -> Option<&O::Value> {
        self.last.as_ref()
    }

    /// The meta (index, `KnownLeader`, `LastContact`) of the last successful answer, whether
    /// or not it changed the value.
    pub fn last_meta(&self) -> Option<&QueryMeta> {
        self.last_meta.as_ref()
    }

    /// How many times the index went backwards and was reset.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// How many requests were handed out.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The options.
    pub fn options(&self) -> &WatchOptions {
        &self.opts
    }

    /// The deadline to give each request: `wait + wait/16 + deadline_margin`.
    pub fn request_timeout(&self) -> Duration {
        blocking_deadline(self.opts.wait, self.opts.deadline_margin)
    }

    fn refill(&mut self, now: Instant) {
        let burst = self.opts.burst.max(1);
        let interval = self.opts.min_interval;
        match self.refilled_at {
            None => self.refilled_at = Some(now),
            Some(mut at) => {
                if interval.is_zero() {
                    self.tokens = burst;
                    self.refilled_at = Some(now);
                    return;
                }
                while self.tokens < burst && now >= instant_after(at, interval) {
                    self.tokens += 1;
                    at = instant_after(at, interval);
                }
                if self.tokens >= burst {
                    at = now;
                }
                self.refilled_at = Some(at);
            }
        }
    }

    /// The next request, or `None` when one is in flight or the watch must wait until
    /// [`poll_timeout`](Self::poll_timeout).
    ///
    /// # Errors
    /// A [`BuildError`] from the operation; the watch stays usable.
    pub fn poll_request(
        &mut self,
        now: Instant,
        cx: &RequestContext,
    ) -> Result<Option<Request<Bytes>>, BuildError> {
        if self.in_flight {
            return Ok(None);
        }
        if self.not_before.is_some_and(|nb| now < nb) {
            return Ok(None);
        }
        self.refill(now);
        if self.tokens == 0 {
            return Ok(None);
        }
        self.op.set_block(self.index, self.opts.wait);
        let req = self.op.build(cx)?;
        self.tokens -= 1;
        self.in_flight = true;
        self.requests += 1;
        Ok(Some(req))
    }

    /// When to call [`poll_request`](Self::poll_request) again; `None` while a request is in
    /// flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight {
            return None;
        }
        let token_at = if self.tokens == 0 {
            self.refilled_at
                .map(|at| instant_after(at, self.opts.min_interval))
        } else {
            None
        };
        match (self.not_before, token_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles the response to the last request. Returns the new value when it changed.
    ///
    /// # Errors
    /// The operation's [`ResponseError`]; the watch schedules a backed-off retry and stays
    /// usable.
    pub fn handle_response(
        &mut self,
        now: Instant,
        resp: Response<Bytes>,
    ) -> Result<Option<Indexed<O::Value>>, ResponseError> {
        self.in_flight = false;
        let out = match self.op.parse(resp) {
            Ok(out) => out,
            Err(e) => {
                self.fail(now);
                return Err(e);
            }
        };
        self.failures = 0;
        self.not_before = None;
        self.last_meta = Some(out.meta.clone());
        let new = out.meta.last_index;
        match self.index {
            Some(old) if new < old => {
                // The index went backwards: do one plain read, then block from its index.
                self.index = None;
                self.resets += 1;
            }
            _ => self.index = Some(new),
        }
        if self.last.as_ref() == Some(&out.value) {
            return Ok(None);
        }
        self.last = Some(out.value.clone());
        Ok(Some(out))
    }

    /// Records that the connection of the last request was lost before any answer, as when a
    /// pooled connection turns out to be closed: the server may have restarted, so the next
    /// request is a plain read (no index), sent without backoff.
    pub fn handle_connection_lost(&mut self) {
        self.in_flight = false;
        if self.index.take().is_some() {
            self.resets += 1;
        }
    }

    /// Records a failure to get a response (connect error, timeout, truncated body).
    pub fn handle_failure(&mut self, now: Instant) {
        self.in_flight = false;
        self.fail(now);
    }

    fn fail(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        // A restarted server may have a lower index: the next request must not block on ours.
        self.index = None;
        let shift = (self.failures - 1).min(20);
        let full = self
            .opts
            .backoff_base
            .saturating_mul(1u32 << shift)
            .min(self.opts.backoff_max);
        // Equal jitter: half fixed, half random.
        let half = full / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.rng.u64(..nanos))
        };
        self.not_before = Some(instant_after(now, half.saturating_add(jitter)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Get;

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    fn resp(index: &str, value: &str) -> Response<Bytes> {
        let body = format!(
            r#"[{{"Key":"k","Value":"{}","ModifyIndex":1}}]"#,
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, value)
        );
        Response::builder()
            .status(200)
            .header("X-Consul-Index", index)
            .body(Bytes::from(body))
            .unwrap()
    }

    fn uri(w: &mut WatchMachine<Get>, now: Instant) -> Option<String> {
        w.poll_request(now, &RequestContext::new())
            .unwrap()
            .map(|r| r.uri().to_string())
    }

    fn opts() -> WatchOptions {
        WatchOptions::default()
            .wait(Duration::from_secs(10))
            .min_interval(Duration::ZERO)
    }

    #[test]
    fn index_sequence_5_5_7_3_0() {
        let mut w = WatchMachine::new(Get::new("k"), opts());
        let now = t0();
        // index: response index, value, expected emission, expected next uri
        let steps: &[(&str, &str, bool, &str)] = &[
            ("5", "a", true, "/v1/kv/k?index=5&wait=10s"),
            ("5", "a", false, "/v1/kv/k?index=5&wait=10s"),
            ("7", "b", true, "/v1/kv/k?index=7&wait=10s"),
            // Backwards: reset, one plain read.
            ("3", "c", true, "/v1/kv/k"),
            // 0 is read as 1: from a reset, adopt it; never send index=0.
            ("0", "c", false, "/v1/kv/k?index=1&wait=10s"),
        ];
        assert_eq!(uri(&mut w, now).as_deref(), Some("/v1/kv/k"));
        for (index, value, emit, next) in steps {
            let ev = w.handle_response(now, resp(index, value)).unwrap();
            assert_eq!(ev.is_some(), *emit, "index {index}");
            assert_eq!(uri(&mut w, now).as_deref(), Some(*next), "after {index}");
        }
        assert_eq!(w.resets(), 1);
    }

    #[test]
    fn same_index_new_value_is_emitted_and_same_value_new_index_is_not() {
        let mut w = WatchMachine::new(Get::new("k"), opts());
        let now = t0();
        uri(&mut w, now);
        assert!(w.handle_response(now, resp("5", "a")).unwrap().is_some());
        uri(&mut w, now);
        // Index moved but value did not (a spurious wake-up): nothing emitted.
        assert!(w.handle_response(now, resp("9", "a")).unwrap().is_none());
        assert_eq!(w.index(), Some(Index::new(9)));
    }

    #[test]
    fn token_bucket_allows_a_burst_of_two_then_one_per_interval() {
        let o = WatchOptions::default().min_interval(Duration::from_secs(1));
        let mut w = WatchMachine::new(Get::new("k"), o);
        let start = t0();
        let mut sent = Vec::new();
        let mut now = start;
        let mut index = 1;
        // Simulate a key that changes continuously for 5 s: each response returns at once.
        while now < start + Duration::from_secs(5) {
            if uri(&mut w, now).is_some() {
                sent.push(now - start);
                index += 1;
                w.handle_response(now, resp(&index.to_string(), &index.to_string()))
                    .unwrap();
            } else {
                let next = w.poll_timeout().expect("a deadline when out of tokens");
                assert!(next > now);
                now = next;
            }
        }
        // Two at once, then one per second.
        assert_eq!(sent[0], Duration::ZERO);
        assert_eq!(sent[1], Duration::ZERO);
        for pair in sent[2..].windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_secs(1), "{sent:?}");
        }
        assert!(sent.len() <= 2 + 5, "{sent:?}");
    }

    #[test]
    fn errors_back_off_with_a_cap_and_reset_the_index() {
        let o = opts().backoff(Duration::from_millis(100), Duration::from_secs(2));
        let mut w = WatchMachine::new(Get::new("k"), o);
        let mut now = t0();
        uri(&mut w, now);
        w.handle_response(now, resp("50", "a")).unwrap();
        let mut delays = Vec::new();
        for _ in 0..8 {
            assert!(uri(&mut w, now).is_some());
            w.handle_failure(now);
            assert_eq!(w.index(), None);
            assert!(uri(&mut w, now).is_none(), "no request during backoff");
            let at = w.poll_timeout().unwrap();
            delays.push(at - now);
            now = at;
        }
        // Each delay lies in [half, full] of base * 2^n, capped at 2 s.
        for (n, d) in delays.iter().enumerate() {
            let full = Duration::from_millis(100 * (1 << n)).min(Duration::from_secs(2));
            assert!(*d >= full / 2 && *d <= full, "attempt {n}: {d:?}");
        }
        // After the errors the next request is a plain read; a response clears the backoff.
        assert_eq!(uri(&mut w, now).as_deref(), Some("/v1/kv/k"));
        w.handle_response(now, resp("3", "a")).unwrap();
        assert_eq!(
            uri(&mut w, now).as_deref(),
            Some("/v1/kv/k?index=3&wait=10s")
        );
    }

    #[test]
    fn error_status_is_returned_and_backed_off() {
        let mut w = WatchMachine::new(Get::new("k"), opts());
        let now = t0();
        uri(&mut w, now);
        let r = Response::builder()
            .status(500)
            .body(Bytes::from_static(b"No cluster leader"))
            .unwrap();
        let e = w.handle_response(now, r).unwrap_err();
        assert!(e.is_retryable());
        assert!(uri(&mut w, now).is_none());
    }

    #[test]
    fn a_lost_connection_means_one_plain_read_without_backoff() {
        let mut w = WatchMachine::new(Get::new("k"), opts());
        let now = t0();
        uri(&mut w, now);
        w.handle_response(now, resp("50", "a")).unwrap();
        assert_eq!(
            uri(&mut w, now).as_deref(),
            Some("/v1/kv/k?index=50&wait=10s")
        );
        w.handle_connection_lost();
        assert_eq!(uri(&mut w, now).as_deref(), Some("/v1/kv/k"));
        // The restarted server's lower index is adopted, and the value is emitted if it changed.
        assert!(w.handle_response(now, resp("3", "b")).unwrap().is_some());
        assert_eq!(
            uri(&mut w, now).as_deref(),
            Some("/v1/kv/k?index=3&wait=10s")
        );
    }

    #[test]
    fn only_one_request_in_flight() {
        let mut w = WatchMachine::new(Get::new("k"), opts());
        let now = t0();
        assert!(uri(&mut w, now).is_some());
        assert!(uri(&mut w, now).is_none());
        assert_eq!(w.poll_timeout(), None);
    }

    #[test]
    fn deadline_exceeds_wait_plus_jitter() {
        let w = WatchMachine::new(
            Get::new("k"),
            WatchOptions::default().wait(Duration::from_secs(64)),
        );
        assert_eq!(w.request_timeout(), Duration::from_secs(64 + 4 + 8));
    }
}
