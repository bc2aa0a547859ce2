//! A tiny raw HTTP client for the conformance cases: hyper-util's pooled client for ordinary
//! requests, and a raw TCP exchange for byte-level cases. No Consul client library.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An answer.
#[derive(Debug, Clone)]
pub(crate) struct R {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl R {
    /// The body as text, without the trailing newline a `-dev` Consul agent adds (dev mode
    /// pretty-prints every JSON answer; production agents and the devserver send compact JSON).
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .trim_end_matches('\n')
            .to_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// `X-Consul-Index`, which must be present and ≥ 1.
    pub(crate) fn index(&self) -> u64 {
        let i: u64 = self
            .header("x-consul-index")
            .unwrap_or_else(|| panic!("no X-Consul-Index (status {})", self.status))
            .parse()
            .unwrap();
        assert!(i >= 1, "X-Consul-Index must be >= 1");
        i
    }
}

/// A client bound to a base URL.
#[derive(Clone, Debug)]
pub(crate) struct C {
    pub(crate) base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl C {
    pub(crate) fn new(base: &str) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(5))
            .build_http();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
        }
    }

    /// `host:port` of the base URL.
    pub(crate) fn authority(&self) -> String {
        self.base
            .split("://")
            .nth(1)
            .unwrap_or(&self.base)
            .to_owned()
    }

    pub(crate) async fn req(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> R {
        let mut b = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body.into())).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(60), self.client.request(req))
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no answer in 60 s"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        R {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> R {
        self.req("GET", path, Bytes::new(), &[]).await
    }

    pub(crate) async fn put(&self, path: &str, body: impl Into<Bytes>) -> R {
        self.req("PUT", path, body, &[]).await
    }

    pub(crate) async fn delete(&self, path: &str) -> R {
        self.req("DELETE", path, Bytes::new(), &[]).await
    }

    /// PUT that must answer `200 true`.
    pub(crate) async fn put_ok(&self, path: &str, body: impl Into<Bytes>) {
        let r = self.put(path, body).await;
        assert_eq!((r.status, r.text().as_str()), (200, "true"), "PUT {path}");
    }

    /// The single entry of `GET /v1/kv/<key>`.
    pub(crate) async fn entry(&self, key: &str) -> Value {
        let r = self.get(&format!("/v1/kv/{key}")).await;
        assert_eq!(r.status, 200, "GET {key}: {}", r.text());
        r.json()[0].clone()
    }

    /// Creates a session with this JSON body; returns its ID.
    pub(crate) async fn session(&self, body: &str) -> String {
        let r = self.put("/v1/session/create", body.to_owned()).await;
        assert_eq!(r.status, 200, "session create: {}", r.text());
        r.json()["ID"].as_str().unwrap().to_owned()
    }

    /// The agent's node name.
    pub(crate) async fn node_name(&self) -> String {
        let r = self.get("/v1/agent/self").await;
        assert_eq!(r.status, 200);
        r.json()["Config"]["NodeName"].as_str().unwrap().to_owned()
    }

    /// A raw HTTP/1.1 exchange: sends `request` verbatim, reads until the server closes.
    pub(crate) async fn raw(&self, request: &[u8]) -> String {
        let mut s = tokio::net::TcpStream::connect(self.authority())
            .await
            .unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
            .await
            .expect("raw exchange timed out")
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A key prefix unique to this test run and case (cases may share one external server).
pub(crate) fn unique(case: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000_000;
    format!(
        "conformance/{case}-{}-{}-{nanos}/",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Base64 (standard, padded).
pub(crate) fn b64(v: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// Decodes base64 (standard, padded).
pub(crate) fn unb64(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// Records a skipped case (see `consul_kv_tests::skips`).
pub(crate) fn skip(case: &str, why: &str) {
    consul_kv_tests::skips::record(case, why);
}
