//! The lock under a paused leader: how long two holders of one `Lock` both believe they hold
//! it, and whether writes fenced by the lock's session or by the lock key's modify index keep
//! the old holder's work out.
//!
//! Holder A takes the lock through the agent that is the Raft leader, then that agent is
//! paused (SIGSTOP). A's process keeps running: its session renewals and its key monitor hang
//! on the paused agent, so A goes on believing it holds the lock until its keeper gives up
//! after one TTL without a renewal. Meanwhile the other servers elect a leader, mark the
//! paused node failed, invalidate A's session (it is tied to that node's `serfHealth` check),
//! and contenders B, C, … take the lock in turn through a healthy server.
//!
//! Every holder writes to three resources through a healthy server, every 100 ms while it
//! believes it holds the lock:
//!
//! - `plain`: an ordinary `set`;
//! - `session`: a transaction `check-session(lock key, my session)` ([`consul_kv::Lock::fence`])
//!   + `set`;
//! - `index`: a transaction `check-index(lock key, the modify index the key had right after I
//!   acquired it)` + `set`. The lock key's `LockIndex` counts acquisitions and is the token
//!   to hand to a store outside Consul; inside Consul the modify index is what a transaction
//!   can check.
//!
//! An overlap's *effect* is a write by a holder that the store accepted after a later holder's
//! acquisition had completed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consul_kv::{Client, Consistency, SessionId, TxnOutcome};
use consul_kv_tests::history::History;
use serde_json::json;

use crate::registers::{classify, error_text};
use consul_kv_tests::history::Return;

/// The fencing variants, as the table names them.
pub const VARIANTS: [&str; 3] = ["plain", "session", "index"];

/// One holder's tenure: from its acquisition's completion until it stopped acting as holder.
#[derive(Debug, Clone)]
pub struct Tenure {
    pub holder: String,
    pub start: u64,
    pub end: Option<u64>,
    pub session: SessionId,
    pub modify_index: u64,
    pub lock_index: u64,
}

/// One resource write by a holder.
#[derive(Debug, Clone)]
pub struct Write {
    pub holder: String,
    pub variant: &'static str,
    pub invoke: u64,
    pub complete: u64,
    /// `Some(true)`: the store accepted it; `Some(false)`: rejected (fence); `None`: error.
    pub accepted: Option<bool>,
    pub error: Option<String>,
}

/// What the lock scenario found.
#[derive(Debug, Default, Clone)]
pub struct LockReport {
    pub tenures: Vec<Tenure>,
    pub writes: Vec<Write>,
    pub lock_delay: Duration,
    pub ttl: Duration,
}

impl LockReport {
    /// Pairs of tenures that overlap in real time, and the total overlap in seconds. A tenure
    /// that never ended counts until `horizon`.
    pub fn overlaps(&self, horizon: u64) -> (usize, f64) {
        let mut n = 0;
        let mut total = 0u64;
        for (i, a) in self.tenures.iter().enumerate() {
            for b in &self.tenures[i + 1..] {
                let start = a.start.max(b.start);
                let end = a.end.unwrap_or(horizon).min(b.end.unwrap_or(horizon));
                if end > start {
                    n += 1;
                    total += end - start;
                }
            }
        }
        (n, total as f64 / 1e9)
    }

    /// Per variant: (writes accepted, writes accepted after a later holder's acquisition).
    pub fn effects(&self, variant: &str) -> (usize, usize) {
        let mut accepted = 0;
        let mut late = 0;
        for w in self.writes.iter().filter(|w| w.variant == variant) {
            if w.accepted != Some(true) {
                continue;
            }
            accepted += 1;
            let Some(mine) = self.tenures.iter().position(|t| t.holder == w.holder) else {
                continue;
            };
            if self.tenures[mine + 1..].iter().any(|t| w.invoke >= t.start) {
                late += 1;
            }
        }
        (accepted, late)
    }

    /// The scenario as JSON lines, for the record.
    pub fn to_jsonl(&self) -> String {
        let mut s = String::new();
        for t in &self.tenures {
            s.push_str(
                &json!({"tenure": t.holder, "start": t.start, "end": t.end,
                    "session": t.session.to_string(), "modify_index": t.modify_index,
                    "lock_index": t.lock_index})
                .to_string(),
            );
            s.push('\n');
        }
        for w in &self.writes {
            s.push_str(
                &json!({"write": w.variant, "holder": w.holder, "invoke": w.invoke,
                    "complete": w.complete, "accepted": w.accepted, "error": w.error})
                .to_string(),
            );
            s.push('\n');
        }
        s
    }
}

/// Shared state of a running scenario.
pub struct Scenario {
    pub h: Arc<History>,
    pub key: String,
    pub prefix: String,
    pub ttl: Duration,
    pub lock_delay: Duration,
    pub report: Mutex<LockReport>,
}

impl Scenario {
    pub fn new(h: Arc<History>, prefix: &str, ttl: Duration, lock_delay: Duration) -> Self {
        Self {
            h,
            key: format!("{prefix}/leader"),
            prefix: prefix.to_owned(),
            ttl,
            lock_delay,
            report: Mutex::new(LockReport {
                lock_delay,
                ttl,
                ..LockReport::default()
            }),
        }
    }

    fn builder(&self, c: &Client) -> consul_kv::LockBuilder {
        c.lock(self.key.clone())
            .session_ttl(self.ttl)
            .lock_delay(self.lock_delay)
            .lock_retry(Duration::from_millis(200))
            .wait_time(Duration::from_secs(2))
    }

    /// Acquires for `holder` (retrying through an election), reads the key's indexes, and
    /// records the tenure's start. `None` when `deadline` passed first.
    pub async fn acquire(
        &self,
        holder: &str,
        locker: &Client,
        store: &Client,
        deadline: tokio::time::Instant,
    ) -> Option<consul_kv::Lock> {
        let lock = loop {
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            let left = deadline - tokio::time::Instant::now();
            match tokio::time::timeout(left, self.builder(locker).acquire()).await {
                Ok(Ok(lock)) => break lock,
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(_) => return None,
            }
        };
        let start = self.h.now();
        // The fencing token: the key as it is right after this acquisition.
        let (modify_index, lock_index) = loop {
            match store
                .kv()
                .get(self.key.clone())
                .consistency(Consistency::Consistent)
                .await
            {
                Ok(Some(k)) => break (k.pair().modify_index, k.pair().lock_index),
                Ok(None) => break (0, 0),
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => break (0, 0),
            }
        };
        self.report.lock().unwrap().tenures.push(Tenure {
            holder: holder.to_owned(),
            start,
            end: None,
            session: lock.session().clone(),
            modify_index,
            lock_index,
        });
        Some(lock)
    }

    fn end_tenure(&self, holder: &str) {
        let now = self.h.now();
        let mut r = self.report.lock().unwrap();
        if let Some(t) = r.tenures.iter_mut().find(|t| t.holder == holder) {
            t.end.get_or_insert(now);
        }
    }

    /// One round of the three resource writes.
    async fn write_round(&self, holder: &str, lock: &consul_kv::Lock, i: u64, store: &Client) {
        let index = {
            let r = self.report.lock().unwrap();
            let Some(t) = r.tenures.iter().find(|t| t.holder == holder) else {
                return;
            };
            t.modify_index
        };
        let value = format!("{holder}-{i}");
        for variant in VARIANTS {
            let resource = format!("{}/{variant}", self.prefix);
            let kv = store.kv();
            let invoke = self.h.now();
            let res: Result<bool, consul_kv::Error> = match variant {
                "plain" => kv.set(resource, value.clone()).await,
                "session" => kv
                    .txn()
                    .op(lock.fence())
                    .set(resource, value.clone())
                    .await
                    .map(|o| matches!(o, TxnOutcome::Committed(_))),
                _ => kv
                    .txn()
                    .check_index(self.key.clone(), consul_kv::Index::new(index))
                    .set(resource, value.clone())
                    .await
                    .map(|o| matches!(o, TxnOutcome::Committed(_))),
            };
            let complete = self.h.now();
            let (accepted, error) = match res {
                Ok(a) => (Some(a), None),
                Err(e) => match classify(&e) {
                    Return::Unknown(t) => (None, Some(format!("unknown: {t}"))),
                    _ => (None, Some(error_text(&e))),
                },
            };
            self.report.lock().unwrap().writes.push(Write {
                holder: holder.to_owned(),
                variant,
                invoke,
                complete,
                accepted,
                error,
            });
        }
    }

    /// Works as `holder` while `lock` says it is held and `stop` is not set, at most `max`.
    /// The tenure ends when the holder learns of the loss or stops.
    pub async fn work(
        &self,
        holder: &str,
        lock: &consul_kv::Lock,
        store: &Client,
        stop: &AtomicBool,
        max: Option<Duration>,
    ) {
        let started = tokio::time::Instant::now();
        let mut i = 0;
        while lock.is_held()
            && !stop.load(Ordering::Relaxed)
            && max.is_none_or(|m| started.elapsed() < m)
        {
            self.write_round(holder, lock, i, store).await;
            i += 1;
            tokio::select! {
                _ = lock.lost() => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        self.end_tenure(holder);
    }

    /// The report so far.
    pub fn report(&self) -> LockReport {
        self.report.lock().unwrap().clone()
    }
}
