//! Our two contenders behind the shared [`harness`](crate::harness):
//!
//! - [`ConsulKv`]: the facade, used as its docs show (`Client::builder().address(..)`,
//!   `client.kv()`, `kv.get(key).await`, `kv.watch(key)`).
//! - [`Floor`]: the physical limit — a raw `hyper-util` client that sends a prebuilt request
//!   (URI parsed once), reads the body and runs a typed serde parse, with no client logic:
//!   no key checks, no deadlines, no retries, no body limit, no meta parsing.

use std::time::Duration;

use bytes::Bytes;
use consul_kv::{Cas, Client, Index, KeyWatch, Kv, DEFAULT_MAX_CONNECTIONS};
use consul_kv_proto::kv::wire::KvEntry;
use http_body_util::{BodyExt as _, Full};
use hyper::http::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::harness::{Contender, OpError, Params, Watcher, Workload};

/// The facade, `consul-kv`.
#[derive(Debug)]
pub struct ConsulKv {
    kv: Kv,
    /// The value `set`/`cas` write, held as `Bytes` the way a caller would hold it.
    value: Bytes,
}

impl ConsulKv {
    /// A client for `p.target` with the defaults, except that the connection cap
    /// ([`DEFAULT_MAX_CONNECTIONS`])
    /// is raised to 16 over what the workload keeps busy when that is more: one connection
    /// per watcher for `watch` (every blocking query holds an HTTP/1.1 connection), one per
    /// worker for `--inflight` 64. The floor has no cap at all; with the cap exactly at the
    /// number in flight, hyper-util's pool hands over its last idle connection on almost
    /// every request (removing and re-inserting the host's idle list), which measures the
    /// cap's setting rather than the client.
    ///
    /// # Errors
    /// The client cannot be built.
    pub fn new(p: &Params) -> Result<Self, String> {
        let mut b = Client::builder().address(p.target.clone());
        let busy = if p.workload == Workload::Watch {
            p.watchers
        } else {
            p.inflight
        };
        if busy + 16 > DEFAULT_MAX_CONNECTIONS {
            b = b.max_connections_per_host(busy + 16);
        }
        let client = b.build().map_err(|e| e.to_string())?;
        Ok(Self {
            kv: client.kv(),
            value: Bytes::from(p.value()),
        })
    }

    fn value(&self, v: &[u8]) -> Bytes {
        if v == &self.value[..] {
            self.value.clone()
        } else {
            Bytes::copy_from_slice(v)
        }
    }
}

impl Contender for ConsulKv {
    type Watcher = ConsulKvWatch;

    async fn get(&self, key: &str) -> Result<Option<(usize, u64)>, OpError> {
        let found = self.kv.get(key).await.map_err(OpError::failed)?;
        Ok(found.map(|k| (k.bytes().len(), k.pair().modify_index)))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<bool, OpError> {
        self.kv
            .set(key, self.value(value))
            .await
            .map_err(OpError::failed)
    }

    async fn cas(&self, key: &str, value: &[u8], index: u64) -> Result<bool, OpError> {
        let cas = Index::new_nonzero(index).map_or(Cas::Absent, Cas::ModifyIndex);
        self.kv
            .set(key, self.value(value))
            .cas(cas)
            .await
            .map_err(OpError::failed)
    }

    async fn items(&self, prefix: &str) -> Result<usize, OpError> {
        let items = self.kv.items(prefix).await.map_err(OpError::failed)?;
        Ok(items.len())
    }

    async fn keys(&self, prefix: &str) -> Result<usize, OpError> {
        let keys = self.kv.keys(prefix).await.map_err(OpError::failed)?;
        Ok(keys.len())
    }

    async fn watch(&self, key: &str) -> Result<ConsulKvWatch, OpError> {
        Ok(ConsulKvWatch(Box::new(
            self.kv.watch(key).wait(Duration::from_secs(30)),
        )))
    }
}

/// `kv.watch(key)`: a stream of the key's changes.
#[derive(Debug)]
pub struct ConsulKvWatch(Box<KeyWatch>);

impl Watcher for ConsulKvWatch {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, OpError> {
        match self.0.next().await {
            Some(Ok(v)) => Ok(v.map(|k| k.bytes().to_vec())),
            Some(Err(e)) => Err(OpError::failed(e)),
            None => Err(OpError::Failed("the watch ended".into())),
        }
    }
}

type RawClient = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

/// The floor: raw hyper-util, prebuilt requests, typed serde parse.
#[derive(Debug, Clone)]
pub struct Floor {
    client: RawClient,
    base: String,
    /// `/v1/kv/<key>` for get, set and watch (parsed once).
    key_uri: Uri,
    /// `/v1/kv/<prefix>?recurse`.
    items_uri: Uri,
    /// `/v1/kv/<prefix>?keys`.
    keys_uri: Uri,
    value: Bytes,
    key: String,
    prefix: String,
}

impl Floor {
    /// A raw client for `p.target`, with every request URI the workload needs built once.
    ///
    /// # Errors
    /// A target that does not make a valid URI.
    pub fn new(p: &Params) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(http);
        let uri = |s: String| s.parse::<Uri>().map_err(|e| format!("{s}: {e}"));
        Ok(Self {
            client,
            key_uri: uri(format!("{}/v1/kv/{}", p.target, p.key))?,
            items_uri: uri(format!("{}/v1/kv/{}?recurse", p.target, p.prefix))?,
            keys_uri: uri(format!("{}/v1/kv/{}?keys", p.target, p.prefix))?,
            base: p.target.clone(),
            value: Bytes::from(p.value()),
            key: p.key.clone(),
            prefix: p.prefix.clone(),
        })
    }

    fn uri_for(&self, key: &str, cached: &Uri, query: &str) -> Result<Uri, OpError> {
        if query.is_empty() && (key == self.key || key == self.prefix) {
            return Ok(cached.clone());
        }
        format!("{}/v1/kv/{key}{query}", self.base)
            .parse()
            .map_err(OpError::failed)
    }

    /// Sends one request; the status, the `X-Consul-Index` and the whole body.
    async fn send(
        &self,
        method: Method,
        uri: Uri,
        body: Bytes,
    ) -> Result<(StatusCode, u64, Bytes), OpError> {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body))
            .map_err(OpError::failed)?;
        let resp = self.client.request(req).await.map_err(OpError::failed)?;
        let status = resp.status();
        let index = resp
            .headers()
            .get("x-consul-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(OpError::failed)?
            .to_bytes();
        match status {
            StatusCode::OK | StatusCode::NOT_FOUND => Ok((status, index, body)),
            s => Err(OpError::Failed(format!("status {s}"))),
        }
    }

    async fn read_entries(&self, uri: Uri) -> Result<Vec<KvEntry>, OpError> {
        let (status, _, body) = self.send(Method::GET, uri, Bytes::new()).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        serde_json::from_slice(&body).map_err(OpError::failed)
    }

    async fn put(&self, uri: Uri, value: &[u8]) -> Result<bool, OpError> {
        let body = if value == &self.value[..] {
            self.value.clone()
        } else {
            Bytes::copy_from_slice(value)
        };
        let (_, _, body) = self.send(Method::PUT, uri, body).await?;
        serde_json::from_slice(&body).map_err(OpError::failed)
    }
}

impl Contender for Floor {
    type Watcher = FloorWatch;

    async fn get(&self, key: &str) -> Result<Option<(usize, u64)>, OpError> {
        let uri = self.uri_for(key, &self.key_uri, "")?;
        let entries = self.read_entries(uri).await?;
        Ok(entries.first().map(|e| {
            (
                e.value.as_ref().map_or(0, |v| v.len() / 4 * 3),
                e.modify_index,
            )
        }))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<bool, OpError> {
        let uri = self.uri_for(key, &self.key_uri, "")?;
        self.put(uri, value).await
    }

    async fn cas(&self, key: &str, value: &[u8], index: u64) -> Result<bool, OpError> {
        let uri = self.uri_for(key, &self.key_uri, &format!("?cas={index}"))?;
        self.put(uri, value).await
    }

    async fn items(&self, prefix: &str) -> Result<usize, OpError> {
        let uri = self.uri_for(prefix, &self.items_uri, "")?;
        Ok(self.read_entries(uri).await?.len())
    }

    async fn keys(&self, prefix: &str) -> Result<usize, OpError> {
        let uri = self.uri_for(prefix, &self.keys_uri, "")?;
        let (status, _, body) = self.send(Method::GET, uri, Bytes::new()).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(0);
        }
        let keys: Vec<String> = serde_json::from_slice(&body).map_err(OpError::failed)?;
        Ok(keys.len())
    }

    async fn watch(&self, key: &str) -> Result<FloorWatch, OpError> {
        Ok(FloorWatch {
            floor: self.clone(),
            key: key.to_owned(),
            index: None,
        })
    }
}

/// A bare blocking-query loop: `?index=N&wait=30s`, following `X-Consul-Index`.
#[derive(Debug)]
pub struct FloorWatch {
    floor: Floor,
    key: String,
    index: Option<u64>,
}

impl Watcher for FloorWatch {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, OpError> {
        let query = match self.index {
            Some(i) => format!("?index={i}&wait=30s"),
            None => String::new(),
        };
        let uri = self.floor.uri_for(&self.key, &self.floor.key_uri, &query)?;
        let (status, index, body) = self.floor.send(Method::GET, uri, Bytes::new()).await?;
        // Consul's rule: an index that went backwards restarts from 0.
        self.index = Some(if self.index.is_some_and(|i| index < i) {
            0
        } else {
            index
        });
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let entries: Vec<KvEntry> = serde_json::from_slice(&body).map_err(OpError::failed)?;
        Ok(entries
            .into_iter()
            .next()
            .and_then(|e| e.value)
            .map(|v| decode_base64(v.as_bytes())))
    }
}

/// Standard padded base64, just enough for the watch markers (invalid input decodes to junk,
/// which only means "not a marker").
fn decode_base64(input: &[u8]) -> Vec<u8> {
    fn six(c: u8) -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    for chunk in input.chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let n = chunk.iter().fold(0u32, |acc, &c| (acc << 6) | six(c)) << (6 * (4 - chunk.len()));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad.min(2)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn base64_markers() {
        assert_eq!(decode_base64(b"cm91bmQtMQ=="), b"round-1");
        assert_eq!(decode_base64(b"cm91bmQtMTI="), b"round-12");
        assert_eq!(decode_base64(b"cm91bmQtMTIz"), b"round-123");
        assert_eq!(decode_base64(b""), b"");
    }
}
