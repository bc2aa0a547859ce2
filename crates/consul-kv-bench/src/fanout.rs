//! Watch fan-out (`consul-kv-bench watch-fanout`, run by `cargo xtask bench watch`): many
//! subscribers of a few keys, each a `kv.watch(key)` stream, with one shared blocking query
//! per key (the default) or one private query per subscriber (`.shared(false)`).
//!
//! It measures, against a server in another process:
//!
//! - **wake-up latency**: from just before each write is sent to the moment each subscriber of
//!   that key yields the new value (every subscriber gives one sample), and per write the time
//!   until the last of them did;
//! - **requests at the server**: the blocking-query answers the server sent during the write
//!   phase, counted from the watches' health (`WatchHealth::answers`, one count per query, so
//!   a shared query is counted once), plus the writes themselves; and that per second, with
//!   the writes paced (default one every 50 ms, 20 writes/s);
//! - the number of blocking queries held (`Client::shared_watch_queries`, or one per
//!   subscriber without sharing) and how long it took for every subscriber's first answer.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use consul_kv::{Client, WatchHealth};
use tokio::sync::watch;

/// One fan-out run.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// The server's base URL.
    pub target: String,
    /// Watch streams.
    pub subscribers: usize,
    /// Keys they spread over (subscriber `s` watches key `s % keys`).
    pub keys: usize,
    /// One shared query per key, or one query per subscriber.
    pub shared: bool,
    /// Writes, round-robin over the keys; each waits until every subscriber of its key saw it.
    pub writes: usize,
    /// Pace of the writes: write `i` is sent `i × interval` after the first (or as soon as
    /// the previous one reached every subscriber, when that is later).
    pub interval: Duration,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct FanoutResult {
    /// The configuration.
    pub config: FanoutConfig,
    /// Blocking queries the subscribers held.
    pub queries: usize,
    /// Time until every subscriber had its first answer.
    pub setup: Duration,
    /// Per-subscriber wake-up latency, sorted, in microseconds.
    pub samples_us: Vec<u64>,
    /// Per write: until the last subscriber of the key woke, in microseconds, sorted.
    pub all_woke_us: Vec<u64>,
    /// Writes after which some subscriber did not see the value within 60 s.
    pub missed: usize,
    /// Blocking-query answers during the write phase.
    pub answers: u64,
    /// Length of the write phase.
    pub elapsed: Duration,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

impl FanoutResult {
    /// One JSON line.
    pub fn to_json(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let requests = self.answers + self.config.writes as u64;
        serde_json::json!({
            "bench": "watch-fanout",
            "subscribers": self.config.subscribers,
            "keys": self.config.keys,
            "shared": self.config.shared,
            "writes": self.config.writes,
            "interval_ms": self.config.interval.as_secs_f64() * 1000.0,
            "queries": self.queries,
            "setup_ms": self.setup.as_secs_f64() * 1000.0,
            "wake_p50_ms": pct(&self.samples_us, 0.5),
            "wake_p99_ms": pct(&self.samples_us, 0.99),
            "wake_max_ms": pct(&self.samples_us, 1.0),
            "all_woke_p50_ms": pct(&self.all_woke_us, 0.5),
            "all_woke_max_ms": pct(&self.all_woke_us, 1.0),
            "missed": self.missed,
            "answers": self.answers,
            "requests": requests,
            "write_phase_s": secs,
            "requests_per_s": requests as f64 / secs,
            "answers_per_write": self.answers as f64 / self.config.writes.max(1) as f64,
        })
        .to_string()
    }
}

struct Board {
    t0: Instant,
    /// When write `i` was sent, in ns since `t0` (0: not yet).
    sent_at: Vec<AtomicU64>,
    /// How many subscribers saw write `i`.
    arrived: Vec<AtomicUsize>,
    /// Latest wake-up of write `i`, in ns since it was sent.
    slowest: Vec<AtomicU64>,
    samples: Mutex<Vec<u64>>,
    first: AtomicUsize,
}

impl Board {
    fn since_t0(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn saw(&self, value: &[u8]) {
        let Some(i) = std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.strip_prefix('w'))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            return;
        };
        let Some(sent) = self.sent_at.get(i).map(|a| a.load(Ordering::SeqCst)) else {
            return;
        };
        if sent == 0 {
            return;
        }
        let lat = self.since_t0().saturating_sub(sent);
        self.slowest[i].fetch_max(lat, Ordering::SeqCst);
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(lat / 1000);
        self.arrived[i].fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs one fan-out measurement.
///
/// # Errors
/// The client cannot be built, or a write fails.
pub async fn run(cfg: FanoutConfig) -> Result<FanoutResult, String> {
    let keys = cfg.keys.max(1);
    let cap = if cfg.shared { 64 } else { cfg.subscribers + 64 };
    let client = Client::builder()
        .address(&cfg.target)
        .max_connections_per_host(cap)
        .build()
        .map_err(|e| format!("client: {e}"))?;
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let key = |j: usize| format!("bench/fanout/{run_id}/k{j}");
    let kv = client.kv();
    for j in 0..keys {
        kv.set(key(j), "init")
            .await
            .map_err(|e| format!("seed write: {e}"))?;
    }
    let board = Arc::new(Board {
        t0: Instant::now(),
        sent_at: (0..cfg.writes).map(|_| AtomicU64::new(0)).collect(),
        arrived: (0..cfg.writes).map(|_| AtomicUsize::new(0)).collect(),
        slowest: (0..cfg.writes).map(|_| AtomicU64::new(0)).collect(),
        samples: Mutex::new(Vec::new()),
        first: AtomicUsize::new(0),
    });
    let mut health: Vec<watch::Receiver<WatchHealth>> = Vec::new();
    let mut tasks = Vec::with_capacity(cfg.subscribers);
    let setup_started = Instant::now();
    for s in 0..cfg.subscribers {
        let mut w = kv
            .watch(key(s % keys))
            .shared(cfg.shared)
            .wait(Duration::from_secs(60))
            .min_interval(Duration::from_millis(10));
        let h = w.health_receiver();
        // One receiver per query: shared watches of one key share theirs.
        if !cfg.shared || s < keys {
            health.push(h);
        }
        let board = board.clone();
        tasks.push(tokio::spawn(async move {
            let mut first = true;
            while let Some(item) = w.next().await {
                if let Ok(Some(k)) = item {
                    if first {
                        first = false;
                        board.first.fetch_add(1, Ordering::SeqCst);
                    }
                    board.saw(k.bytes());
                }
            }
        }));
    }
    while board.first.load(Ordering::SeqCst) < cfg.subscribers {
        if setup_started.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "only {} of {} subscribers got a first answer within 120 s",
                board.first.load(Ordering::SeqCst),
                cfg.subscribers
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let setup = setup_started.elapsed();
    let queries = if cfg.shared {
        client.shared_watch_queries()
    } else {
        cfg.subscribers
    };
    // Let every query get back to blocking before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers =
        |h: &[watch::Receiver<WatchHealth>]| -> u64 { h.iter().map(|r| r.borrow().answers).sum() };
    let before = answers(&health);
    let started = Instant::now();
    let mut missed = 0;
    for i in 0..cfg.writes {
        let due = cfg
            .interval
            .saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
        tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
        let j = i % keys;
        let expected = (0..cfg.subscribers).filter(|s| s % keys == j).count();
        board.sent_at[i].store(board.since_t0().max(1), Ordering::SeqCst);
        kv.set(key(j), format!("w{i}"))
            .await
            .map_err(|e| format!("write {i}: {e}"))?;
        let written = Instant::now();
        while board.arrived[i].load(Ordering::SeqCst) < expected {
            if written.elapsed() > Duration::from_secs(60) {
                missed += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let elapsed = started.elapsed();
    let answered = answers(&health) - before;
    for t in &tasks {
        t.abort();
    }
    let mut samples_us =
        std::mem::take(&mut *board.samples.lock().unwrap_or_else(PoisonError::into_inner));
    samples_us.sort_unstable();
    let mut all_woke_us: Vec<u64> = board
        .slowest
        .iter()
        .map(|a| a.load(Ordering::SeqCst) / 1000)
        .collect();
    all_woke_us.sort_unstable();
    let _ = kv.delete_tree(format!("bench/fanout/{run_id}/")).await;
    Ok(FanoutResult {
        config: cfg,
        queries,
        setup,
        samples_us,
        all_woke_us,
        missed,
        answers: answered,
        elapsed,
    })
}
