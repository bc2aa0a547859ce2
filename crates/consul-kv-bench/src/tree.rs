//! `consul-kv-bench tree`: a huge tree read through [`Kv::items_stream`], beside
//! [`Kv::items`] on the largest part of it the whole-body limit allows.
//!
//! The devserver runs in a child process (`consul-kv-bench serve`), so this process's memory
//! is the client's alone. The tree is written through `/v1/txn` (64 keys per transaction) as
//! `tree/<b>/<i>`, where `b = i / 250,000`: one bucket's answer (250,000 entries of 100-byte
//! values, about 60 MB of JSON) is the largest that fits the 64 MiB default limit of `items()`.
//!
//! Peak memory is the growth of `VmHWM` over `VmRSS` at the start of each read; the peak is
//! reset before each read through `/proc/self/clear_refs` (Linux), so reads do not mask one
//! another. Each read runs `--rounds` times; min and median are reported.

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

/// Resets the peak (`VmHWM`) to the current resident set; `false` where it cannot.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// One measured read: seconds, entries, value bytes, peak growth in KiB.
#[derive(Debug, Clone, Copy)]
struct Read {
    seconds: f64,
    entries: usize,
    bytes: usize,
    peak_growth_kb: u64,
}

async fn measured<F, Fut>(f: F) -> Result<Read, Error>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(usize, usize), Error>>,
{
    reset_peak();
    let (rss0, _) = rss_kb();
    let t = Instant::now();
    let (entries, bytes) = f().await?;
    let seconds = t.elapsed().as_secs_f64();
    let (_, hwm) = rss_kb();
    Ok(Read {
        seconds,
        entries,
        bytes,
        peak_growth_kb: hwm.saturating_sub(rss0),
    })
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
        streamed.push(
            measured(|| stream(&client, "tree/"))
                .await
                .map_err(|e| e.to_string())?,
        );
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
        whole_reads.push(
            measured(|| whole(&client, bucket))
                .await
                .map_err(|e| e.to_string())?,
        );
        bucket_streams.push(
            measured(|| stream(&client, bucket))
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(json!({
        "tree": {
            "keys": p.keys,
            "value_size": p.value_size,
            "fill_seconds": filled.as_secs_f64(),
            "peak_reset": reset_peak(),
        },
        "stream_all": summary(&streamed),
        "items_all": refused,
        "items_bucket": summary(&whole_reads),
        "stream_bucket": summary(&bucket_streams),
    })
    .to_string())
}
