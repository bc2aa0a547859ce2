//! The servers every contender runs against in one bench run — the devserver and the
//! fixed-response server — and writing the keys the list workloads read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use consul_kv_devserver::{DevServer, DevServerHandle};
use http_body_util::{BodyExt as _, Full};
use hyper::http::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::fixed::{Dataset, FixedServer};

/// The running servers.
#[derive(Debug)]
pub struct Servers {
    /// The embedded Consul-compatible server.
    pub devserver: DevServerHandle,
    /// The fixed-response server.
    pub fixed: FixedServer,
}

impl Servers {
    /// Starts both on loopback ephemeral ports.
    ///
    /// # Errors
    /// A server cannot start.
    pub async fn start(data: &Dataset) -> Result<Self, String> {
        let devserver = DevServer::builder()
            .start()
            .await
            .map_err(|e| format!("devserver: {e}"))?;
        let fixed = FixedServer::start(data)
            .await
            .map_err(|e| format!("fixed-response server: {e}"))?;
        Ok(Self { devserver, fixed })
    }

    /// The line `serve` prints:
    /// `{"devserver":"http://..","fixed":{"get":"http://..","set":..,"items":..,"keys":..}}`.
    pub fn urls_json(&self) -> String {
        let fixed: serde_json::Map<String, serde_json::Value> = self
            .fixed
            .urls()
            .map(|(k, u)| (k.name().to_owned(), u.into()))
            .collect();
        serde_json::json!({
            "devserver": self.devserver.http_addr(),
            "fixed": fixed,
        })
        .to_string()
    }
}

/// Writes `data.keys` keys of `data.value_size` bytes under `data.prefix` with plain HTTP
/// PUTs, `inflight` at a time; returns how many were written.
///
/// # Errors
/// A PUT fails or is not answered `true`.
pub async fn seed(target: &str, data: &Dataset, inflight: usize) -> Result<usize, String> {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, Full<Bytes>>(HttpConnector::new());
    let next = Arc::new(AtomicUsize::new(0));
    let value = Bytes::from(data.value());
    let mut tasks = Vec::new();
    for _ in 0..inflight.max(1) {
        let (client, next, value, data) =
            (client.clone(), next.clone(), value.clone(), data.clone());
        let target = target.trim_end_matches('/').to_owned();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= data.keys {
                    return Ok::<(), String>(());
                }
                let uri = format!("{target}/v1/kv/{}", data.item_key(i));
                let req = Request::builder()
                    .method(Method::PUT)
                    .uri(&uri)
                    .body(Full::new(value.clone()))
                    .map_err(|e| e.to_string())?;
                let resp = client
                    .request(req)
                    .await
                    .map_err(|e| format!("PUT {uri}: {e}"))?;
                let status = resp.status();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                if !status.is_success() || body.as_ref() != b"true" {
                    return Err(format!("PUT {uri}: {status} {body:?}"));
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(data.keys)
}

/// Seeds and reports `{"seeded":N,"seconds":S}`.
///
/// # Errors
/// As [`seed`].
pub async fn seed_json(target: &str, data: &Dataset) -> Result<String, String> {
    let start = Instant::now();
    let n = seed(target, data, 16).await?;
    Ok(serde_json::json!({
        "seeded": n,
        "seconds": start.elapsed().as_secs_f64(),
    })
    .to_string())
}
