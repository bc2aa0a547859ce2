//! [`RetryPolicy`]: full-jitter exponential backoff with an attempt limit and a time budget.

use std::time::Duration;

/// How a call is retried after a retryable failure.
///
/// The delay before retry `n` (1-based) is drawn uniformly from
/// `[0, min(cap, base × 2^(n-1))]` ("full jitter"); a `Retry-After` header raises it to at
/// least the server's value. A retry is made only while fewer than `max_attempts` attempts
/// were made and the retry would start within `budget` of the call's start (for a blocking
/// read, `budget` counts from the end of the first attempt's blocking deadline).
///
/// What is retried at all depends on the operation (see
/// [`HyperClient::execute`](crate::HyperClient::execute)).
///
/// ```
/// use std::time::Duration;
/// use consul_kv_hyper::RetryPolicy;
///
/// let p = RetryPolicy::default().max_attempts(6).budget(Duration::from_secs(30));
/// assert_eq!(p.max_attempts, 6);
/// assert_eq!(RetryPolicy::none().max_attempts, 1);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included. `1` disables retries. Default 4.
    pub max_attempts: u32,
    /// Backoff ceiling of the first retry. Default 100 ms.
    pub base: Duration,
    /// Largest backoff ceiling. Default 10 s.
    pub cap: Duration,
    /// No retry starts later than this after the call began. Default 15 s.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
            budget: Duration::from_secs(15),
        }
    }
}

impl RetryPolicy {
    /// No retries at all (`max_attempts = 1`). The executor still repeats a request once on a
    /// new connection when a pooled connection turned out to be closed before the request
    /// was sent.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Sets the number of attempts (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the first backoff ceiling.
    pub fn base(mut self, d: Duration) -> Self {
        self.base = d;
        self
    }

    /// Sets the largest backoff ceiling.
    pub fn cap(mut self, d: Duration) -> Self {
        self.cap = d;
        self
    }

    /// Sets the time budget.
    pub fn budget(mut self, d: Duration) -> Self {
        self.budget = d;
        self
    }

    /// The backoff before retry `retry` (1-based), drawn with `rng`.
    pub(crate) fn delay(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        let shift = retry.saturating_sub(1).min(31);
        let ceiling = self.base.saturating_mul(1u32 << shift).min(self.cap);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.u64(..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_the_exponential_ceiling() {
        let p = RetryPolicy::default();
        let mut rng = fastrand::Rng::new();
        for retry in 1..40 {
            let ceiling = (Duration::from_millis(100) * 2u32.pow((retry - 1).min(20)))
                .min(Duration::from_secs(10));
            for _ in 0..50 {
                assert!(p.delay(retry, &mut rng) <= ceiling);
            }
        }
    }

    #[test]
    fn jitter_spreads() {
        let p = RetryPolicy::default().base(Duration::from_secs(1));
        let mut rng = fastrand::Rng::new();
        let d: Vec<_> = (0..64).map(|_| p.delay(1, &mut rng)).collect();
        assert!(d.iter().any(|x| *x < Duration::from_millis(500)));
        assert!(d.iter().any(|x| *x >= Duration::from_millis(500)));
    }

    #[test]
    fn huge_settings_do_not_overflow() {
        let p = RetryPolicy::default()
            .base(Duration::MAX)
            .cap(Duration::MAX)
            .budget(Duration::MAX);
        let mut rng = fastrand::Rng::new();
        for retry in [1, 2, 31, 32, u32::MAX] {
            let _ = p.delay(retry, &mut rng);
        }
    }
}
