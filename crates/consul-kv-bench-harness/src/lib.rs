//! The measurement harness every Rust contender shares: the command line contract, the
//! workload loops, latency percentiles and the one-line JSON result.
//!
//! A crate of its own (std, tokio and serde_json only) so that consul-kv-bench and the
//! out-of-workspace Rust peers (`xtask/bench-peers/rust`) depend on it by path: every Rust
//! contender is timed by identical code; the Go and Python peers implement the same contract.
//!
//! # Contract
//! `--target URL --workload get|set|cas|items|keys|watch [--inflight N] [--iterations N |
//! --seconds S] [--warmup N] [--keys N] [--value-size B] [--watchers N] [--rounds N]
//! [--prefix P] [--key K]` prints one JSON object on one line (see [`Outcome::to_json`]).
//!
//! # Method
//! Every operation is timed with [`Instant`]; percentiles are nearest-rank over all samples of
//! the measured phase (warm-up operations are not recorded). `--seconds` bounds the measured
//! phase by time, otherwise `--iterations` bounds it by count, shared by the `--inflight`
//! workers. Peak memory is `VmHWM` from `/proc/self/status`, read before the workload's first
//! call and after its last.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Read one key.
    Get,
    /// Write one key (unconditional).
    Set,
    /// Read-modify-write: read a key, write it back with CAS on its modify index, retrying on
    /// a conflict. One cycle is one operation.
    Cas,
    /// List every entry (with values) under the prefix.
    Items,
    /// List every key name under the prefix.
    Keys,
    /// Blocking-query wake latency: `--watchers` watchers on one key, `--rounds` writes.
    Watch,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Self; 6] = [
        Self::Get,
        Self::Set,
        Self::Cas,
        Self::Items,
        Self::Keys,
        Self::Watch,
    ];

    /// Parses a workload name.
    ///
    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| format!("unknown workload {s:?}"))
    }

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Set => "set",
            Self::Cas => "cas",
            Self::Items => "items",
            Self::Keys => "keys",
            Self::Watch => "watch",
        }
    }

    /// The key (or prefix) a workload uses unless `--key` / `--prefix` says otherwise.
    pub fn default_key(self) -> &'static str {
        match self {
            Self::Get => "bench/get",
            Self::Set => "bench/set",
            Self::Cas => "bench/cas",
            Self::Items | Self::Keys => DEFAULT_PREFIX,
            Self::Watch => "bench/watch",
        }
    }
}

/// The prefix the list workloads read, which `consul-kv-bench seed` fills.
pub const DEFAULT_PREFIX: &str = "bench/items/";

/// The usage text of the shared contract.
pub const USAGE: &str = "\
--target URL --workload get|set|cas|items|keys|watch
  [--inflight N]      concurrent workers (default 1)
  [--iterations N]    measured operations in all (default 1000)
  [--seconds S]       measure for S seconds instead of a count
  [--warmup N]        unrecorded operations first (default 100; 1 for items/keys)
  [--keys N]          entries items/keys must return (default 0: do not check)
  [--value-size B]    bytes per written value (default 128)
  [--watchers N]      watchers for `watch` (default 1000)
  [--rounds N]        writes for `watch` (default 5)
  [--prefix P]        list prefix (default bench/items/)
  [--key K]           key for get/set/cas/watch (default bench/<workload>)";

/// The command line every contender accepts.
#[derive(Debug, Clone)]
pub struct Params {
    /// The contender's name, as printed in results.
    pub contender: String,
    /// Base URL of the server, e.g. `http://127.0.0.1:8500`.
    pub target: String,
    /// What to measure.
    pub workload: Workload,
    /// Concurrent workers.
    pub inflight: usize,
    /// Measured operations in all (when `seconds` is zero).
    pub iterations: u64,
    /// Measured seconds (zero: use `iterations`).
    pub seconds: f64,
    /// Unrecorded operations before measuring.
    pub warmup: u64,
    /// The entry count `items`/`keys` must return (zero: unchecked).
    pub keys: usize,
    /// Bytes per written value.
    pub value_size: usize,
    /// Watchers for `watch`.
    pub watchers: usize,
    /// Writes (rounds) for `watch`.
    pub rounds: usize,
    /// The list prefix.
    pub prefix: String,
    /// The key of get/set/cas/watch.
    pub key: String,
}

impl Params {
    /// Parses `--name value` pairs; `contender` names the program when `--contender` is absent.
    ///
    /// # Errors
    /// A missing `--target`/`--workload`, an unknown flag, or a value that does not parse.
    pub fn parse(contender: &str, args: &[String]) -> Result<Self, String> {
        let mut target = None;
        let mut workload = None;
        let mut contender = contender.to_owned();
        let mut inflight = 1usize;
        let mut iterations = 1000u64;
        let mut seconds = 0f64;
        let mut warmup = None;
        let mut keys = 0usize;
        let mut value_size = 128usize;
        let mut watchers = 1000usize;
        let mut rounds = 5usize;
        let mut prefix = None;
        let mut key = None;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))?;
            fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
                v.parse()
                    .map_err(|_| format!("{flag}: {v:?} is not a valid number"))
            }
            match flag.as_str() {
                "--target" => target = Some(value.trim_end_matches('/').to_owned()),
                "--workload" => workload = Some(Workload::parse(value)?),
                "--contender" => contender.clone_from(value),
                "--inflight" => inflight = num(flag, value)?,
                "--iterations" => iterations = num(flag, value)?,
                "--seconds" => seconds = num(flag, value)?,
                "--warmup" => warmup = Some(num(flag, value)?),
                "--keys" => keys = num(flag, value)?,
                "--value-size" => value_size = num(flag, value)?,
                "--watchers" => watchers = num(flag, value)?,
                "--rounds" => rounds = num(flag, value)?,
                "--prefix" => prefix = Some(value.clone()),
                "--key" => key = Some(value.clone()),
                other => return Err(format!("unknown flag {other:?}\n\n{USAGE}")),
            }
        }
        let workload = workload.ok_or_else(|| format!("--workload is required\n\n{USAGE}"))?;
        let target = target.ok_or_else(|| format!("--target is required\n\n{USAGE}"))?;
        let list = matches!(workload, Workload::Items | Workload::Keys);
        Ok(Self {
            contender,
            target,
            workload,
            inflight: inflight.max(1),
            iterations: iterations.max(1),
            seconds,
            warmup: warmup.unwrap_or(if list { 1 } else { 100 }),
            keys,
            value_size,
            watchers: watchers.max(1),
            rounds: rounds.max(1),
            prefix: prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
            key: key.unwrap_or_else(|| workload.default_key().to_owned()),
        })
    }

    /// The value written by `set` and `cas`: `value_size` ASCII bytes.
    pub fn value(&self) -> Vec<u8> {
        vec![b'v'; self.value_size]
    }
}

/// Why an operation did not succeed.
#[derive(Debug, Clone)]
pub enum OpError {
    /// The contender has no way to do this; the workload is reported as unsupported.
    Unsupported(String),
    /// The operation failed.
    Failed(String),
}

impl OpError {
    /// A failure from any displayable error.
    pub fn failed(e: impl std::fmt::Display) -> Self {
        Self::Failed(e.to_string())
    }
}

/// A client under test. Implementations call the client the way a user would.
pub trait Contender: Send + Sync + 'static {
    /// The watch handle of [`Contender::watch`].
    type Watcher: Watcher;

    /// Reads `key`: `(value length, modify index)`, or `None` when it does not exist.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<(usize, u64)>, OpError>> + Send;

    /// Writes `value` to `key`; whether the server applied it.
    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<bool, OpError>> + Send;

    /// Writes `value` to `key` only if its modify index is still `index` (0: only if absent).
    fn cas(
        &self,
        key: &str,
        value: &[u8],
        index: u64,
    ) -> impl Future<Output = Result<bool, OpError>> + Send;

    /// Lists the entries (keys and values) under `prefix`; how many.
    fn items(&self, prefix: &str) -> impl Future<Output = Result<usize, OpError>> + Send;

    /// Lists the key names under `prefix`; how many.
    fn keys(&self, prefix: &str) -> impl Future<Output = Result<usize, OpError>> + Send;

    /// Starts watching `key` with blocking queries.
    fn watch(&self, key: &str) -> impl Future<Output = Result<Self::Watcher, OpError>> + Send;
}

/// A watch on one key.
pub trait Watcher: Send + 'static {
    /// The first call returns the current value; each later call waits for the next change
    /// the server reports and returns the value then.
    fn next(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, OpError>> + Send;
}

/// A watcher for contenders that have no blocking reads.
#[derive(Debug)]
pub struct NoWatch;

impl Watcher for NoWatch {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, OpError> {
        Err(OpError::Unsupported("no blocking queries".into()))
    }
}

/// One result line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// The contender.
    pub contender: String,
    /// The workload name.
    pub workload: String,
    /// Concurrent workers (watchers for `watch`).
    pub inflight: usize,
    /// Measured operations that succeeded (watch: wake-ups seen).
    pub count: u64,
    /// Failed operations (watch: wake-ups never seen).
    pub errors: u64,
    /// Wall time of the measured phase.
    pub seconds: f64,
    /// `count / seconds`.
    pub ops_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// Largest latency, microseconds.
    pub max_us: f64,
    /// Entries returned per list call (items/keys).
    pub entries: Option<u64>,
    /// Growth of the peak resident set over the workload, KiB (items/keys).
    pub rss_delta_kb: Option<u64>,
    /// Peak resident set at the end, KiB (items/keys).
    pub hwm_kb: Option<u64>,
    /// The contender cannot do this workload.
    pub unsupported: bool,
    /// A free-form note (the first error, why unsupported).
    pub note: String,
}

impl Outcome {
    fn new(p: &Params) -> Self {
        Self {
            contender: p.contender.clone(),
            workload: p.workload.name().to_owned(),
            inflight: if p.workload == Workload::Watch {
                p.watchers
            } else {
                p.inflight
            },
            ..Self::default()
        }
    }

    /// A failed or unsupported result.
    pub fn failure(p: &Params, e: OpError) -> Self {
        let mut o = Self::new(p);
        match e {
            OpError::Unsupported(m) => {
                o.unsupported = true;
                o.note = m;
            }
            OpError::Failed(m) => {
                o.errors = 1;
                o.note = m;
            }
        }
        o
    }

    /// The JSON object, on one line; optional fields are `null` when absent.
    pub fn to_json(&self) -> String {
        fn opt(v: Option<u64>) -> String {
            v.map_or_else(|| "null".to_owned(), |v| v.to_string())
        }
        fn num(v: f64) -> String {
            if v.is_finite() {
                format!("{v:.3}")
            } else {
                "0".to_owned()
            }
        }
        format!(
            "{{\"contender\":{},\"workload\":{},\"inflight\":{},\"count\":{},\"errors\":{},\
             \"seconds\":{},\"ops_per_sec\":{},\"p50_us\":{},\"p99_us\":{},\"mean_us\":{},\
             \"max_us\":{},\"entries\":{},\"rss_delta_kb\":{},\"hwm_kb\":{},\"unsupported\":{},\
             \"note\":{}}}",
            json_string(&self.contender),
            json_string(&self.workload),
            self.inflight,
            self.count,
            self.errors,
            num(self.seconds),
            num(self.ops_per_sec),
            num(self.p50_us),
            num(self.p99_us),
            num(self.mean_us),
            num(self.max_us),
            opt(self.entries),
            opt(self.rss_delta_kb),
            opt(self.hwm_kb),
            self.unsupported,
            json_string(&self.note),
        )
    }

    fn fill_latency(&mut self, mut samples_ns: Vec<u64>, seconds: f64) {
        samples_ns.sort_unstable();
        self.count = samples_ns.len() as u64;
        self.seconds = seconds;
        self.ops_per_sec = if seconds > 0.0 {
            self.count as f64 / seconds
        } else {
            0.0
        };
        self.p50_us = percentile(&samples_ns, 50.0) as f64 / 1e3;
        self.p99_us = percentile(&samples_ns, 99.0) as f64 / 1e3;
        self.max_us = samples_ns.last().copied().unwrap_or(0) as f64 / 1e3;
        self.mean_us = if samples_ns.is_empty() {
            0.0
        } else {
            samples_ns.iter().map(|&s| s as f64).sum::<f64>() / samples_ns.len() as f64 / 1e3
        };
    }
}

/// A JSON string literal (serde_json's escaping).
pub fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The end of a contender's `main`: prints the result line and exits 0, or prints the usage
/// error and exits 2. Every Rust contender ends the same way.
pub fn finish(result: Result<Outcome, String>) -> std::process::ExitCode {
    match result {
        Ok(o) => {
            println!("{}", o.to_json());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Nearest-rank percentile of sorted samples (0 when empty).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The peak resident set (`VmHWM`) of this process in KiB, where `/proc` has it.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The whole program of a contender: parses `args` (the contract above), builds the client
/// with `make` inside a multi-thread tokio runtime (the default a user gets), runs the
/// workload and returns the result line to print.
///
/// # Errors
/// Bad arguments (with the usage text), or a runtime that cannot start.
pub fn cli_main<C: Contender>(
    name: &str,
    args: &[String],
    make: impl FnOnce(&Params) -> Result<C, String>,
) -> Result<Outcome, String> {
    let p = Params::parse(name, args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let out = rt.block_on(async {
        match make(&p) {
            Ok(c) => run(c, &p).await,
            Err(e) => Outcome::failure(&p, OpError::Failed(e)),
        }
    });
    // Watchers may still be parked in blocking reads: do not wait for them.
    rt.shutdown_background();
    Ok(out)
}

/// Runs one workload against a contender and returns its result.
pub async fn run<C: Contender>(contender: C, p: &Params) -> Outcome {
    run_shared(Arc::new(contender), p).await
}

/// [`run`] with a contender the caller keeps, so that several runs (a paired comparison's
/// slices) reuse its client, connections included.
pub async fn run_shared<C: Contender>(contender: Arc<C>, p: &Params) -> Outcome {
    if p.workload == Workload::Watch {
        return match watch(contender, p).await {
            Ok(o) => o,
            Err(e) => Outcome::failure(p, e),
        };
    }
    let ctx = Arc::new(Ctx {
        workload: p.workload,
        key: if matches!(p.workload, Workload::Items | Workload::Keys) {
            p.prefix.clone()
        } else {
            p.key.clone()
        },
        value: p.value(),
        expect: p.keys,
        entries: AtomicU64::new(0),
    });
    // Get needs the key; create it unmeasured.
    if p.workload == Workload::Get {
        match contender.get(&ctx.key).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                if let Err(e) = contender.set(&ctx.key, &ctx.value).await {
                    return Outcome::failure(p, e);
                }
            }
            Err(e) => return Outcome::failure(p, e),
        }
    }
    let hwm_before = peak_rss_kb();
    let warm = drive(&contender, &ctx, p.inflight, Budget::count(p.warmup)).await;
    if let Some(e) = warm.fatal {
        return Outcome::failure(p, e);
    }
    let budget = if p.seconds > 0.0 {
        Budget::time(Duration::from_secs_f64(p.seconds))
    } else {
        Budget::count(p.iterations)
    };
    let start = Instant::now();
    let measured = drive(&contender, &ctx, p.inflight, budget).await;
    let seconds = start.elapsed().as_secs_f64();
    if let Some(e) = measured.fatal {
        return Outcome::failure(p, e);
    }
    let mut o = Outcome::new(p);
    o.fill_latency(measured.samples, seconds);
    o.errors = warm.errors + measured.errors;
    o.note = warm
        .first_error
        .or(measured.first_error)
        .unwrap_or_default();
    if matches!(p.workload, Workload::Items | Workload::Keys) {
        o.entries = Some(ctx.entries.load(Ordering::Relaxed));
        let after = peak_rss_kb();
        o.hwm_kb = after;
        o.rss_delta_kb = after.zip(hwm_before).map(|(a, b)| a.saturating_sub(b));
    }
    o
}

struct Ctx {
    workload: Workload,
    key: String,
    value: Vec<u8>,
    expect: usize,
    entries: AtomicU64,
}

struct Budget {
    deadline: Option<Duration>,
    limit: u64,
}

impl Budget {
    fn count(limit: u64) -> Self {
        Self {
            deadline: None,
            limit,
        }
    }
    fn time(d: Duration) -> Self {
        Self {
            deadline: Some(d),
            limit: u64::MAX,
        }
    }
}

#[derive(Default)]
struct Driven {
    samples: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    fatal: Option<OpError>,
}

/// Gives up on a run after this many failed operations.
const MAX_ERRORS: u64 = 100;

async fn drive<C: Contender>(c: &Arc<C>, ctx: &Arc<Ctx>, inflight: usize, b: Budget) -> Driven {
    if b.limit == 0 {
        return Driven::default();
    }
    let started = Instant::now();
    let deadline = b.deadline.map(|d| started + d);
    let taken = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(inflight);
    for _ in 0..inflight {
        let (c, ctx, taken, stop) = (c.clone(), ctx.clone(), taken.clone(), stop.clone());
        let limit = b.limit;
        tasks.push(tokio::spawn(async move {
            let mut d = Driven {
                samples: Vec::with_capacity(4096),
                ..Driven::default()
            };
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match deadline {
                    Some(end) if Instant::now() >= end => break,
                    Some(_) => {}
                    None if taken.fetch_add(1, Ordering::Relaxed) >= limit => break,
                    None => {}
                }
                let t = Instant::now();
                match one(&*c, &ctx).await {
                    Ok(()) => d.samples.push(t.elapsed().as_nanos() as u64),
                    Err(OpError::Unsupported(m)) => {
                        d.fatal = Some(OpError::Unsupported(m));
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    Err(OpError::Failed(m)) => {
                        d.errors += 1;
                        if d.first_error.is_none() {
                            d.first_error = Some(m.clone());
                        }
                        if d.errors >= MAX_ERRORS {
                            d.fatal = Some(OpError::Failed(format!(
                                "{MAX_ERRORS} operations failed; first: {}",
                                d.first_error.clone().unwrap_or(m)
                            )));
                            stop.store(true, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            }
            d
        }));
    }
    let mut all = Driven::default();
    for t in tasks {
        match t.await {
            Ok(d) => {
                all.samples.extend(d.samples);
                all.errors += d.errors;
                all.first_error = all.first_error.or(d.first_error);
                all.fatal = all.fatal.or(d.fatal);
            }
            Err(e) => all.fatal = Some(OpError::failed(format!("worker panicked: {e}"))),
        }
    }
    all
}

async fn one<C: Contender>(c: &C, ctx: &Ctx) -> Result<(), OpError> {
    match ctx.workload {
        Workload::Get => match c.get(&ctx.key).await? {
            Some(_) => Ok(()),
            None => Err(OpError::Failed(format!("{} does not exist", ctx.key))),
        },
        Workload::Set => {
            if c.set(&ctx.key, &ctx.value).await? {
                Ok(())
            } else {
                Err(OpError::Failed("set answered false".into()))
            }
        }
        Workload::Cas => {
            for _ in 0..1000 {
                let index = c.get(&ctx.key).await?.map_or(0, |(_, i)| i);
                if c.cas(&ctx.key, &ctx.value, index).await? {
                    return Ok(());
                }
            }
            Err(OpError::Failed("1000 CAS conflicts in a row".into()))
        }
        Workload::Items | Workload::Keys => {
            let n = if ctx.workload == Workload::Items {
                c.items(&ctx.key).await?
            } else {
                c.keys(&ctx.key).await?
            };
            ctx.entries.store(n as u64, Ordering::Relaxed);
            if ctx.expect != 0 && n != ctx.expect {
                return Err(OpError::Failed(format!(
                    "expected {} entries under {}, got {n}",
                    ctx.expect, ctx.key
                )));
            }
            Ok(())
        }
        Workload::Watch => Err(OpError::Failed("watch is not an operation loop".into())),
    }
}

struct WatchShared {
    /// `ready[r]`: watchers waiting for round `r`.
    ready: Vec<AtomicUsize>,
    /// `seen[r]`: watchers that saw round `r`.
    seen: Vec<AtomicUsize>,
    /// `(round, when)` of every wake-up that saw its round's value.
    wakes: Mutex<Vec<(usize, Instant)>>,
    /// Watchers that stopped with an error.
    failed: AtomicUsize,
    first_error: Mutex<Option<OpError>>,
}

fn marker(round: usize) -> Vec<u8> {
    format!("round-{round}").into_bytes()
}

fn round_of(value: &[u8]) -> Option<usize> {
    std::str::from_utf8(value)
        .ok()?
        .strip_prefix("round-")?
        .parse()
        .ok()
}

/// How long the writer waits, once every watcher is waiting for the next round, before it
/// writes: long enough for the blocking requests to reach the server, and longer than the
/// 500 ms re-arm rate limit some watch APIs apply by default (consul-kv's `min_interval`),
/// so that every contender's watchers are parked in the server when the write lands and the
/// figure is the wake-up path alone. Go and Python use the same rule.
pub fn settle(watchers: usize) -> Duration {
    Duration::from_millis(600 + watchers as u64 / 10)
}

/// How long the writer waits for a round before giving up on the watchers not yet there.
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);

async fn watch<C: Contender>(c: Arc<C>, p: &Params) -> Result<Outcome, OpError> {
    let key = p.key.clone();
    if !c.set(&key, &marker(0)).await? {
        return Err(OpError::Failed("set answered false".into()));
    }
    // Refuse early, before spawning watchers, when the contender has no blocking reads.
    let mut probe = c.watch(&key).await?;
    probe.next().await?;
    drop(probe);

    let rounds = p.rounds;
    let n = p.watchers;
    let shared = Arc::new(WatchShared {
        ready: (0..=rounds).map(|_| AtomicUsize::new(0)).collect(),
        seen: (0..=rounds).map(|_| AtomicUsize::new(0)).collect(),
        wakes: Mutex::new(Vec::with_capacity(n * rounds)),
        failed: AtomicUsize::new(0),
        first_error: Mutex::new(None),
    });
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (c, shared, key) = (c.clone(), shared.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let result = async {
                let mut w = c.watch(&key).await?;
                let mut want = w.next().await?.as_deref().and_then(round_of).unwrap_or(0) + 1;
                while want <= rounds {
                    shared.ready[want].fetch_add(1, Ordering::SeqCst);
                    loop {
                        let v = w.next().await?;
                        let now = Instant::now();
                        let Some(r) = v.as_deref().and_then(round_of) else {
                            continue;
                        };
                        if r >= want {
                            if r == want {
                                lock(&shared.wakes).push((r, now));
                            }
                            shared.seen[r].fetch_add(1, Ordering::SeqCst);
                            want = r + 1;
                            break;
                        }
                    }
                }
                Ok::<(), OpError>(())
            }
            .await;
            if let Err(e) = result {
                shared.failed.fetch_add(1, Ordering::SeqCst);
                lock(&shared.first_error).get_or_insert(e);
            }
        }));
    }

    let mut written = vec![None; rounds + 1];
    let value_wait = |counter: &AtomicUsize, shared: &WatchShared| {
        counter.load(Ordering::SeqCst) + shared.failed.load(Ordering::SeqCst) >= n
    };
    for (r, slot) in written.iter_mut().enumerate().skip(1) {
        let until = Instant::now() + ROUND_TIMEOUT;
        while !value_wait(&shared.ready[r], &shared) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if shared.failed.load(Ordering::SeqCst) >= n {
            break;
        }
        // Let the last blocking requests reach the server before the write.
        tokio::time::sleep(settle(n)).await;
        let t0 = Instant::now();
        if !c.set(&key, &marker(r)).await? {
            return Err(OpError::Failed("set answered false".into()));
        }
        *slot = Some(t0);
        let until = Instant::now() + ROUND_TIMEOUT;
        while !value_wait(&shared.seen[r], &shared) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for t in &tasks {
        t.abort();
    }
    let wakes = std::mem::take(&mut *lock(&shared.wakes));
    let first_t0 = written.iter().flatten().next().copied();
    let samples: Vec<u64> = wakes
        .iter()
        .filter_map(|&(r, at)| written.get(r).copied().flatten().map(|t0| (at, t0)))
        .map(|(at, t0)| at.saturating_duration_since(t0).as_nanos() as u64)
        .collect();
    let mut o = Outcome::new(p);
    let seconds = first_t0.map_or(0.0, |t| t.elapsed().as_secs_f64());
    o.fill_latency(samples, seconds);
    o.errors = (n * rounds) as u64 - o.count.min((n * rounds) as u64);
    if let Some(e) = lock(&shared.first_error).take() {
        match e {
            OpError::Unsupported(m) => {
                o.unsupported = true;
                o.note = m;
            }
            OpError::Failed(m) => o.note = m,
        }
    }
    Ok(o)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
