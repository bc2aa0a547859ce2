//! `consul-kv-bench gzip`: `items()` over one prefix with and without gzip, against one server,
//! in one process: median and minimum time per read, and the bytes on the wire each way.

use std::time::{Duration, Instant};

use bytes::Bytes;
use consul_kv::Client;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as RawClient;
use hyper_util::rt::TokioExecutor;

use crate::fixed::Dataset;
use crate::serve::seed;

/// What one gzip comparison measured.
#[derive(Debug, Clone)]
pub struct GzipResult {
    /// The server's base URL.
    pub target: String,
    /// Keys under the prefix.
    pub keys: usize,
    /// Reads per mode.
    pub rounds: usize,
    /// Median and minimum of a plain `items()`.
    pub plain: (Duration, Duration),
    /// Median and minimum of a gzip `items()`.
    pub gzip: (Duration, Duration),
    /// Body bytes of the plain answer.
    pub plain_bytes: usize,
    /// Body bytes of the gzip answer.
    pub gzip_bytes: usize,
}

impl GzipResult {
    /// One JSON line.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "kind": "gzip",
            "target": self.target,
            "keys": self.keys,
            "rounds": self.rounds,
            "plain_p50_us": self.plain.0.as_micros() as u64,
            "plain_min_us": self.plain.1.as_micros() as u64,
            "gzip_p50_us": self.gzip.0.as_micros() as u64,
            "gzip_min_us": self.gzip.1.as_micros() as u64,
            "plain_bytes": self.plain_bytes,
            "gzip_bytes": self.gzip_bytes,
        })
        .to_string()
    }
}

async fn wire_bytes(url: &str, gzip: bool) -> Result<usize, String> {
    let raw = RawClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = http::Request::get(url);
    if gzip {
        req = req.header("accept-encoding", "gzip");
    }
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let resp = raw.request(req).await.map_err(|e| e.to_string())?;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body.to_bytes().len())
}

async fn time_reads(
    client: &Client,
    prefix: &str,
    rounds: usize,
) -> Result<(Duration, Duration), String> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let items = client.kv().items(prefix).await.map_err(|e| e.to_string())?;
        samples.push(t.elapsed());
        if items.is_empty() {
            return Err("the prefix is empty: was it seeded?".into());
        }
    }
    samples.sort();
    let median = samples.get(samples.len() / 2).copied().unwrap_or_default();
    let min = samples.first().copied().unwrap_or_default();
    Ok((median, min))
}

/// Seeds `data` at `target` (unless `seeded`), then reads the prefix `rounds` times each way,
/// interleaving the modes so that machine noise falls on both.
pub async fn run(
    target: &str,
    data: &Dataset,
    rounds: usize,
    seeded: bool,
) -> Result<GzipResult, String> {
    if !seeded {
        seed(target, data, 16).await?;
    }
    let build = |gzip: bool| {
        Client::builder()
            .address(target)
            .gzip(gzip)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())
    };
    let (plain, gzip) = (build(false)?, build(true)?);
    // Warm both connections.
    time_reads(&plain, &data.prefix, 1).await?;
    time_reads(&gzip, &data.prefix, 1).await?;
    let (mut p, mut g) = (Vec::new(), Vec::new());
    let per = rounds.div_ceil(5).max(1);
    for _ in 0..5 {
        p.push(time_reads(&plain, &data.prefix, per).await?);
        g.push(time_reads(&gzip, &data.prefix, per).await?);
    }
    let summarize = |v: &mut Vec<(Duration, Duration)>| {
        v.sort();
        (
            v.get(v.len() / 2).map(|x| x.0).unwrap_or_default(),
            v.iter().map(|x| x.1).min().unwrap_or_default(),
        )
    };
    let url = format!(
        "{}/v1/kv/{}?recurse",
        target.trim_end_matches('/'),
        data.prefix
    );
    Ok(GzipResult {
        target: target.to_owned(),
        keys: data.keys,
        rounds: per * 5,
        plain: summarize(&mut p),
        gzip: summarize(&mut g),
        plain_bytes: wire_bytes(&url, false).await?,
        gzip_bytes: wire_bytes(&url, true).await?,
    })
}
