//! `consul-kv-bench tree`: a huge tree read through [`Kv::items_stream`](consul_kv::Kv::items_stream), beside
//! [`Kv::items`](consul_kv::Kv::items) on the largest part of it the whole-body limit allows.
//!
//! The devserver runs in a child process (`consul-kv-bench serve`), so this process's memory
//! is the client's alone. The tree is written through `/v1/txn` (64 keys per transaction) as
//! `tree/<b>/<i>`, where `b = i / 250,000`: one bucket's answer (250,000 entries of 100-byte
//! values, about 60 MB of JSON) is the largest that fits the 64 MiB default limit of `items()`.
//!
//! Each read runs in a fresh client process (`consul-kv-bench tree-read`), so that memory
//! freed by an earlier read cannot hide a later one's: its peak memory is the growth of
//! `VmHWM` over `VmRSS` just before the read. Each read runs `--rounds` times; min and median
//! are reported.

use std::time::{Duration, Instant};

use consul_kv::{Client, Error};
use serde_json::json;

/// Entries per bucket (`tree/<b>/`).
pub const BUCKET: usize = 250_000;

/// The tree to read.
#[derive(Debug, Clone)]
pub struct TreeParams {
    /// Entries in the whole tree.
    pub keys: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// Reads of each kind.
    pub rounds: usize,
}

/// `VmRSS` and `VmHWM` of this process in KiB.
fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One measured read: seconds, entries, value bytes, peak growth in KiB.
#[derive(Debug, Clone, Copy)]
struct Read {
    seconds: f64,
    entries: usize,
    bytes: usize,
    peak_growth_kb: u64,
}

/// Runs one read in a fresh process: `consul-kv-bench tree-read --target T --prefix P --mode M`.
fn measured(target: &str, prefix: &str, mode: &str) -> Result<Read, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .args([
            "tree-read",
            "--target",
            target,
            "--prefix",
            prefix,
            "--mode",
            mode,
        ])
        .output()
        .map_err(|e| format!("tree-read: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "tree-read {mode} {prefix}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let j: serde_json::Value =
        serde_json::from_str(text.trim()).map_err(|e| format!("tree-read said {text:?}: {e}"))?;
    Ok(Read {
        seconds: j["seconds"].as_f64().unwrap_or(0.0),
        entries: j["entries"].as_u64().unwrap_or(0) as usize,
        bytes: j["value_bytes"].as_u64().unwrap_or(0) as usize,
        peak_growth_kb: j["peak_rss_growth_kib"].as_u64().unwrap_or(0),
    })
}

/// One read in this process (the child side of `measured`); one JSON object.
///
/// # Errors
/// The read fails.
pub async fn read_once(target: &str, prefix: &str, mode: &str) -> Result<String, String> {
    let client = Client::builder()
        .address(target)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    let (rss0, _) = rss_kb();
    let t = Instant::now();
    let (entries, bytes) = match mode {
        "stream" => stream(&client, prefix).await,
        _ => whole(&client, prefix).await,
    }
    .map_err(|e| e.to_string())?;
    let seconds = t.elapsed().as_secs_f64();
    let (_, hwm) = rss_kb();
    Ok(json!({
        "mode": mode,
        "seconds": seconds,
        "entries": entries,
        "value_bytes": bytes,
        "rss_before_kib": rss0,
        "peak_rss_kib": hwm,
        "peak_rss_growth_kib": hwm.saturating_sub(rss0),
    })
    .to_string())
}

async fn stream(client: &Client, prefix: &str) -> Result<(usize, usize), Error> {
    let mut s = client.kv().items_stream(prefix);
    let (mut n, mut bytes) = (0, 0);
    while let Some(pair) = s.next().await {
        let pair = pair?;
        n += 1;
        bytes += pair.value_bytes().len();
    }
    Ok((n, bytes))
}

async fn whole(client: &Client, prefix: &str) -> Result<(usize, usize), Error> {
    let items = client.kv().items(prefix).await?;
    let bytes = items.iter().map(|p| p.value_bytes().len()).sum();
    Ok((items.len(), bytes))
}

/// Writes the tree through `/v1/txn`, 64 keys per transaction, 4 transactions in flight.
async fn fill(client: &Client, p: &TreeParams) -> Result<Duration, String> {
    let t = Instant::now();
    let value = vec![b'v'; p.value_size];
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, next, value, keys) = (client.clone(), next.clone(), value.clone(), p.keys);
        tasks.push(tokio::spawn(async move {
            loop {
                let start = next.fetch_add(64, std::sync::atomic::Ordering::Relaxed);
                if start >= keys {
                    return Ok::<(), String>(());
                }
                let mut txn = client.kv().txn();
                for i in start..(start + 64).min(keys) {
                    txn = txn.set(format!("tree/{}/{i:07}", i / BUCKET), value.clone());
                }
                let outcome = txn.await.map_err(|e| format!("txn: {e}"))?;
                if !outcome.is_committed() {
                    return Err("a fill transaction was rolled back".to_owned());
                }
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(t.elapsed())
}

fn summary(reads: &[Read]) -> serde_json::Value {
    let mut secs: Vec<f64> = reads.iter().map(|r| r.seconds).collect();
    secs.sort_by(f64::total_cmp);
    let mut peaks: Vec<u64> = reads.iter().map(|r| r.peak_growth_kb).collect();
    peaks.sort_unstable();
    let first = reads.first().copied();
    json!({
        "rounds": reads.len(),
        "entries": first.map(|r| r.entries),
        "value_bytes": first.map(|r| r.bytes),
        "seconds_min": secs.first(),
        "seconds_median": secs.get(secs.len() / 2),
        "peak_rss_growth_kib_min": peaks.first(),
        "peak_rss_growth_kib_median": peaks.get(peaks.len() / 2),
    })
}

/// Fills the devserver at `target` and measures; one JSON object.
///
/// # Errors
/// The fill or a read fails (other than the expected refusal of the whole tree by `items()`).
pub async fn run(target: &str, p: &TreeParams) -> Result<String, String> {
    let client = Client::builder()
        .address(target)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    let filled = fill(&client, p).await?;
    let rounds = p.rounds.max(1);
    let mut streamed = Vec::new();
    for _ in 0..rounds {
        // A blocking wait for the child: this runtime has nothing else to do meanwhile.
        streamed.push(measured(target, "tree/", "stream")?);
    }
    // The whole tree is over the whole-body limit: items() must refuse it.
    let refused = match client.kv().items("tree/").await {
        Err(Error::BodyTooLarge { limit, .. }) => json!({ "refused": true, "limit": limit }),
        Err(e) => return Err(format!("items() over the whole tree: {e}")),
        Ok(items) => json!({ "refused": false, "entries": items.len() }),
    };
    let bucket = "tree/0/";
    let mut whole_reads = Vec::new();
    let mut bucket_streams = Vec::new();
    for _ in 0..rounds {
        whole_reads.push(measured(target, bucket, "items")?);
        bucket_streams.push(measured(target, bucket, "stream")?);
    }
    Ok(json!({
        "tree": {
            "keys": p.keys,
            "value_size": p.value_size,
            "fill_seconds": filled.as_secs_f64(),
        },
        "stream_all": summary(&streamed),
        "items_all": refused,
        "items_bucket": summary(&whole_reads),
        "stream_bucket": summary(&bucket_streams),
    })
    .to_string())
}
