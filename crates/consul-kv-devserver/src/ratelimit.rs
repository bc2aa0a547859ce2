//! The server rate limiter of Consul 1.15+ (`limits.request_limits { mode = "enforcing",
//! read_rate, write_rate }`): one token bucket for reads and one for writes. A read over its
//! rate gets `429` ("try again later or against a different server": another server may have
//! capacity); a write over its rate gets `503` ("… can only be performed by the leader, try
//! again later"). Both are refused before anything is applied, which is what makes a write
//! safe to repeat.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use http::StatusCode;
use tokio::time::Instant;

use crate::reply::{text, Resp};

/// Consul's `ErrRetryElsewhere` text (answered with `429`).
pub(crate) const RETRY_ELSEWHERE: &str =
    "rate limit exceeded, try again later or against a different server";
/// Consul's `ErrRetryLater` text (answered with `503`).
pub(crate) const RETRY_LATER: &str =
    "rate limit exceeded for operation that can only be performed by the leader, try again later";

/// Rates for the devserver's rate limiter, in requests per second; each bucket holds one
/// second's worth of requests.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Reads (GET) per second.
    pub read_rate: f64,
    /// Writes (PUT, DELETE) per second.
    pub write_rate: f64,
}

impl RateLimit {
    /// Reads and writes per second. Rates are clamped to at least 0.01 per second.
    pub fn new(read_rate: f64, write_rate: f64) -> Self {
        let clamp = |r: f64| if r.is_finite() { r.max(0.01) } else { 0.01 };
        Self {
            read_rate: clamp(read_rate),
            write_rate: clamp(write_rate),
        }
    }
}

/// The error of parsing a [`RateLimit`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a rate limit is READ,WRITE in requests per second (e.g. 100,20), not {0:?}")]
pub struct BadRateLimit(String);

impl FromStr for RateLimit {
    type Err = BadRateLimit;

    /// `READ,WRITE` in requests per second, e.g. `100,20`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadRateLimit(s.to_owned());
        let (r, w) = s.split_once(',').ok_or_else(bad)?;
        let parse = |v: &str| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0)
        };
        Ok(Self::new(
            parse(r).ok_or_else(bad)?,
            parse(w).ok_or_else(bad)?,
        ))
    }
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate.max(1.0),
            at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The limiter a running server holds.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    buckets: Mutex<Option<(Bucket, Bucket)>>,
    refused: AtomicU64,
}

impl Limiter {
    /// Turns the limiter on with `limit`, or off with `None`.
    pub(crate) fn set(&self, limit: Option<RateLimit>) {
        let now = Instant::now();
        *self.buckets.lock().unwrap_or_else(|e| e.into_inner()) = limit.map(|l| {
            (
                Bucket::new(l.read_rate, now),
                Bucket::new(l.write_rate, now),
            )
        });
    }

    /// How many requests were refused so far.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// `None` when the request may go on; the refusal otherwise.
    pub(crate) fn check(&self, write: bool) -> Option<Resp> {
        self.check_at(write, Instant::now())
    }

    fn check_at(&self, write: bool, now: Instant) -> Option<Resp> {
        let mut guard = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (reads, writes) = guard.as_mut()?;
        let ok = if write {
            writes.take(now)
        } else {
            reads.take(now)
        };
        drop(guard);
        if ok {
            return None;
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        Some(if write {
            text(StatusCode::SERVICE_UNAVAILABLE, RETRY_LATER)
        } else {
            text(StatusCode::TOO_MANY_REQUESTS, RETRY_ELSEWHERE)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!("100,20".parse(), Ok(RateLimit::new(100.0, 20.0)));
        assert_eq!(" 0.5 , 2 ".parse(), Ok(RateLimit::new(0.5, 2.0)));
        for bad in ["", "100", "a,b", "0,1", "-1,2", "inf,1"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn buckets_refuse_past_the_rate_and_refill() {
        let l = Limiter::default();
        assert!(l.check(true).is_none(), "off by default");
        l.set(Some(RateLimit::new(2.0, 1.0)));
        // Buckets start full at `set`; a moment later (well under one refill) they are read.
        let t0 = Instant::now();
        assert!(l.check_at(false, t0).is_none());
        assert!(l.check_at(false, t0).is_none());
        let r = l.check_at(false, t0).expect("third read refused");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(l.check_at(true, t0).is_none());
        let w = l.check_at(true, t0).expect("second write refused");
        assert_eq!(w.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(l.refused(), 2);
        let later = t0
            .checked_add(std::time::Duration::from_secs(2))
            .expect("an instant two seconds on");
        assert!(l.check_at(true, later).is_none(), "refilled");
        l.set(None);
        assert!(l.check(true).is_none());
    }
}
