//! [`Kv::update`]: read-modify-write with check-and-set, retried on conflict.

use std::fmt;
use std::future::IntoFuture;
use std::time::Duration;

use bytes::Bytes;
use consul_kv_proto::batch::{op_body_len, TxnLimits};
use consul_kv_proto::txn::TxnOp;
use consul_kv_proto::{Cas, Index, KvPair, QueryMeta};

use crate::kv::{Key, Kv};
use crate::scope::BoxFuture;
use crate::txn::TxnOutcome;
use crate::Error;

/// The default number of attempts of an [`UpdateRequest`].
pub const DEFAULT_UPDATE_ATTEMPTS: u32 = 100;

/// Why a [`Kv::update`] failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Every attempt lost a race with another writer.
    #[error("key {key:?} changed under every one of {attempts} attempts")]
    Contended {
        /// The key.
        key: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A Consul call failed. When it was the write and its outcome was unknown, the key was
    /// read back first: this error means that read failed too, so the write may or may not
    /// have been applied.
    #[error("a Consul call failed")]
    Consul(#[from] Error),
}

impl UpdateError {
    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Contended { .. } => true,
            Self::Consul(e) => e.is_retryable(),
        }
    }

    /// The HTTP status Consul answered with, when it answered with an error.
    pub fn status(&self) -> Option<consul_kv_proto::http::StatusCode> {
        match self {
            Self::Contended { .. } => None,
            Self::Consul(e) => e.status(),
        }
    }
}

impl Kv {
    /// Read-modify-write of one key: reads it, calls `f` with the entry (`None` when absent),
    /// and writes what `f` returns with check-and-set (create-only when the key was absent).
    /// When another writer got there first, it reads again and calls `f` again, after a
    /// jittered backoff, up to [`max_attempts`](UpdateRequest::max_attempts). `f` returning
    /// `None` leaves the key as it is.
    ///
    /// Resolves to the entry as it stands afterwards (`None` when absent and left absent),
    /// with its new modify index: the write and the read-back are one transaction (`cas` +
    /// `get`), so no second round trip is needed; its [`consul()`](Key::consul) meta carries
    /// that modify index as the last index (a write answer has no leader headers, so those
    /// fields are the defaults). The key's flags are kept. A value too large for a transaction
    /// body is written with a `PUT ?cas=` and read back.
    ///
    /// A write whose outcome is unknown (the connection dropped after sending) is resolved by
    /// reading the key: if it holds exactly the value written, at a new modify index, the
    /// write counts as applied; otherwise the loop goes on from what was read.
    ///
    /// ```no_run
    /// # async fn demo(kv: consul_kv::Kv) -> Result<(), consul_kv::UpdateError> {
    /// // A counter many processes increment: none is lost.
    /// let key = kv
    ///     .update("stats/visits", |current| {
    ///         let n: u64 = current
    ///             .and_then(|p| std::str::from_utf8(p.value_bytes()).ok()?.parse().ok())
    ///             .unwrap_or(0);
    ///         Some((n + 1).to_string().into())
    ///     })
    ///     .await?;
    /// let key = key.expect("just written");
    /// println!("now {} at index {}", key.as_str().unwrap_or(""), key.modify_index);
    /// # Ok(()) }
    /// ```
    pub fn update<F>(&self, key: impl Into<String>, f: F) -> UpdateRequest<F>
    where
        F: FnMut(Option<&KvPair>) -> Option<Bytes> + Send + 'static,
    {
        UpdateRequest {
            kv: self.clone(),
            key: key.into(),
            f,
            max_attempts: DEFAULT_UPDATE_ATTEMPTS,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(500),
        }
    }
}

/// A [`Kv::update`] request. Resolves to `Option<Key>`: the entry afterwards.
#[must_use = "a request does nothing until it is awaited"]
pub struct UpdateRequest<F> {
    kv: Kv,
    key: String,
    f: F,
    max_attempts: u32,
    base: Duration,
    cap: Duration,
}

impl<F> fmt::Debug for UpdateRequest<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateRequest")
            .field("kv", &self.kv)
            .field("key", &self.key)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &(self.base, self.cap))
            .finish_non_exhaustive()
    }
}

impl<F> UpdateRequest<F>
where
    F: FnMut(Option<&KvPair>) -> Option<Bytes> + Send + 'static,
{
    /// How many read-write rounds before giving up with [`UpdateError::Contended`] (default
    /// [`DEFAULT_UPDATE_ATTEMPTS`], at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The backoff after a lost race: a random delay in `[0, min(cap, base × 2^(n-1))]`
    /// before attempt `n + 1` (default 5 ms, capped at 500 ms).
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.base = base;
        self.cap = cap.max(base);
        self
    }

    /// Runs the loop.
    ///
    /// # Errors
    /// [`UpdateError::Contended`] after `max_attempts` lost races; [`UpdateError::Consul`]
    /// when a read or write fails (reads and safe writes were already retried).
    pub async fn send(mut self) -> Result<Option<Key>, UpdateError> {
        let mut rng = Jitter::new();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let current = self.kv.get(self.key.clone()).await?;
            let Some(value) = (self.f)(current.as_ref().map(Key::pair)) else {
                return Ok(current);
            };
            let cas = current
                .as_ref()
                .map_or(Cas::Absent, |k| Cas::from(k.pair()));
            let flags = current.as_ref().map_or(0, |k| k.flags);
            match write(&self.kv, &self.key, cas, value.clone(), flags).await {
                Ok(Some(key)) => return Ok(Some(key)),
                Ok(None) => {}
                Err(e) if e.is_outcome_unknown() => {
                    // Decide from the key itself.
                    let now = self.kv.get(self.key.clone()).await?;
                    if let Some(k) = &now {
                        let seen = current.as_ref().map_or(0, |c| c.modify_index);
                        if k.modify_index != seen && k.value_bytes() == &value[..] {
                            return Ok(now);
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
            if attempt >= self.max_attempts {
                return Err(UpdateError::Contended {
                    key: self.key,
                    attempts: attempt,
                });
            }
            tokio::time::sleep(rng.delay(attempt, self.base, self.cap)).await;
        }
    }
}

/// One conditional write; `Ok(None)` when the condition failed.
async fn write(
    kv: &Kv,
    key: &str,
    cas: Cas,
    value: Bytes,
    flags: u64,
) -> Result<Option<Key>, Error> {
    let op = TxnOp::cas(key.to_owned(), value.clone(), cas).with_flags(flags);
    let body = 2 + op_body_len(&op) + 1 + op_body_len(&TxnOp::get(key.to_owned()));
    if body > TxnLimits::default().max_body_bytes {
        // Too large for a transaction body: PUT ?cas=, then read back.
        let applied = kv.set(key.to_owned(), value).flags(flags).cas(cas).await?;
        return if applied {
            kv.get(key.to_owned()).await
        } else {
            Ok(None)
        };
    }
    let outcome = kv.txn().op(op).get(key.to_owned()).await?;
    match outcome {
        TxnOutcome::Committed(r) => {
            // Results: the `cas` echo (no value), then the `get` (with the value).
            let pair = r.results.into_iter().last();
            Ok(pair.map(|p| {
                let meta = QueryMeta::with_index(Index::new(p.modify_index));
                Key::new(p, meta)
            }))
        }
        TxnOutcome::RolledBack(_) => Ok(None),
    }
}

impl<F> IntoFuture for UpdateRequest<F>
where
    F: FnMut(Option<&KvPair>) -> Option<Bytes> + Send + 'static,
{
    type Output = Result<Option<Key>, UpdateError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// Full-jitter backoff, from the workspace's one random number generator.
struct Jitter(fastrand::Rng);

impl Jitter {
    fn new() -> Self {
        Self(fastrand::Rng::new())
    }

    fn delay(&mut self, attempt: u32, base: Duration, cap: Duration) -> Duration {
        let ceiling = base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(cap);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.0.u64(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_under_the_ceiling() {
        let mut j = Jitter::new();
        let (base, cap) = (Duration::from_millis(5), Duration::from_millis(500));
        for attempt in 1..40 {
            let ceiling = (base * 2u32.pow((attempt - 1).min(16))).min(cap);
            for _ in 0..20 {
                assert!(j.delay(attempt, base, cap) <= ceiling);
            }
        }
        assert_eq!(j.delay(3, Duration::ZERO, Duration::ZERO), Duration::ZERO);
    }
}
