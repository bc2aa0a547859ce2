//! Overflow-free time arithmetic: [`instant_after`] and the limits Consul itself applies.
//!
//! `Instant + Duration` panics when the sum does not fit ("overflow when adding duration to
//! instant"). A duration that comes from a server (`Retry-After`, a session TTL) or from a
//! caller (`Duration::MAX` as "forever") must never reach that operator. Library code adds
//! durations to instants only through [`instant_after`]; `cargo xtask tidy` flags any other
//! `Instant + Duration` it finds.

use std::time::{Duration, Instant};

/// Consul's longest blocking wait: it caps `?wait=` at 10 minutes.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// Consul's longest session TTL (`SessionTTLMax`, 24 h).
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(24 * 3600);

/// A point far enough away to mean "never" for any timer, yet representable on every
/// platform: about 30 years.
pub const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `at + d`, saturated: a sum that does not fit becomes `at + FAR_FUTURE` (or `at` itself
/// when even that does not fit). Never panics.
///
/// ```
/// use std::time::{Duration, Instant};
/// use consul_kv_proto::time::{instant_after, FAR_FUTURE};
///
/// let now = Instant::now();
/// assert_eq!(instant_after(now, Duration::from_secs(1)), now + Duration::from_secs(1));
/// assert!(instant_after(now, Duration::MAX) >= instant_after(now, FAR_FUTURE));
/// ```
pub fn instant_after(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(FAR_FUTURE))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    #[test]
    fn saturates_instead_of_panicking() {
        let now = Instant::now();
        for d in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            FAR_FUTURE * 1000,
        ] {
            let t = instant_after(now, d);
            assert!(t > now);
        }
        assert_eq!(instant_after(now, Duration::ZERO), now);
    }
}
