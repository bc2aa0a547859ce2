//! The fixed-response server: a plain hyper HTTP/1.1 server that answers every request with
//! one canned Consul response, so a run against it measures the client and nothing else.
//!
//! Each canned response has its own listener (its own base URL), so the server never looks
//! at the request beyond reading its body: `get` (one 128-byte entry), `set` (`true`),
//! `items` (the whole list) and `keys` (the key names). The bodies are byte for byte what the
//! devserver, and Consul, send for the same data.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use consul_kv_proto::kv::wire::KvEntry;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::http::{HeaderValue, Request, Response};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The canned responses the server can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canned {
    /// `GET /v1/kv/<key>`: one entry.
    Get,
    /// `PUT /v1/kv/<key>`: `true`.
    Set,
    /// `GET /v1/kv/<prefix>?recurse`: every entry.
    Items,
    /// `GET /v1/kv/<prefix>?keys`: every key name.
    Keys,
}

impl Canned {
    /// Every canned response.
    pub const ALL: [Self; 4] = [Self::Get, Self::Set, Self::Items, Self::Keys];

    /// Its name in the `serve` output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Set => "set",
            Self::Items => "items",
            Self::Keys => "keys",
        }
    }
}

/// The data the canned bodies describe.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The single key of `get`.
    pub key: String,
    /// The list prefix of `items`/`keys`.
    pub prefix: String,
    /// Entries under the prefix.
    pub keys: usize,
    /// Bytes per value.
    pub value_size: usize,
}

impl Default for Dataset {
    fn default() -> Self {
        Self {
            key: "bench/get".into(),
            prefix: crate::harness::DEFAULT_PREFIX.into(),
            keys: 10_000,
            value_size: 128,
        }
    }
}

/// The index every canned response reports.
const INDEX: u64 = 20_042;

impl Dataset {
    /// The value of every key: `value_size` ASCII bytes (what `seed` writes).
    pub fn value(&self) -> Vec<u8> {
        vec![b'v'; self.value_size]
    }

    /// The `i`-th key under the prefix (`bench/items/00042`).
    pub fn item_key(&self, i: usize) -> String {
        format!("{}{i:05}", self.prefix)
    }

    fn entry(&self, key: String) -> KvEntry {
        let value = self.value();
        let mut e = KvEntry::new(key, Some(&value));
        e.create_index = 11;
        e.modify_index = INDEX;
        e
    }

    /// The body of a canned response, exactly as Consul serialises it.
    pub fn body(&self, kind: Canned) -> Bytes {
        let json = match kind {
            Canned::Get => serde_json::to_vec(&[self.entry(self.key.clone())]),
            Canned::Set => Ok(b"true".to_vec()),
            Canned::Items => serde_json::to_vec(
                &(0..self.keys)
                    .map(|i| self.entry(self.item_key(i)))
                    .collect::<Vec<_>>(),
            ),
            Canned::Keys => {
                serde_json::to_vec(&(0..self.keys).map(|i| self.item_key(i)).collect::<Vec<_>>())
            }
        };
        Bytes::from(json.unwrap_or_default())
    }

    /// The full canned response (headers as a Consul 1.2x agent sends them).
    pub fn response(&self, kind: Canned) -> Response<Bytes> {
        canned_response(self.body(kind), kind != Canned::Set)
    }
}

fn canned_response(body: Bytes, read: bool) -> Response<Bytes> {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("vary", HeaderValue::from_static("Accept-Encoding"));
    if read {
        h.insert(
            "x-consul-default-acl-policy",
            HeaderValue::from_static("allow"),
        );
        h.insert(
            "x-consul-effective-consistency",
            HeaderValue::from_static("leader"),
        );
        h.insert("x-consul-index", HeaderValue::from(INDEX));
        h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
        h.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
        h.insert(
            "x-consul-query-backend",
            HeaderValue::from_static("blocking-query"),
        );
    }
    r
}

/// A running fixed-response server: one listener per canned response.
#[derive(Debug)]
pub struct FixedServer {
    urls: Vec<(Canned, String)>,
    tasks: Vec<JoinHandle<()>>,
}

impl FixedServer {
    /// Binds one loopback listener per canned response and starts answering.
    ///
    /// # Errors
    /// A listener cannot bind.
    pub async fn start(data: &Dataset) -> std::io::Result<Self> {
        let mut urls = Vec::new();
        let mut tasks = Vec::new();
        for kind in Canned::ALL {
            let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
            let addr = listener.local_addr()?;
            urls.push((kind, format!("http://{addr}")));
            tasks.push(tokio::spawn(accept_loop(listener, data.response(kind))));
        }
        Ok(Self { urls, tasks })
    }

    /// The base URL that answers with `kind`.
    pub fn url(&self, kind: Canned) -> &str {
        self.urls
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or("", |(_, u)| u.as_str())
    }

    /// Every base URL, by canned response.
    pub fn urls(&self) -> impl Iterator<Item = (Canned, &str)> {
        self.urls.iter().map(|(k, u)| (*k, u.as_str()))
    }
}

impl Drop for FixedServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, canned: Response<Bytes>) {
    let (parts, body) = canned.into_parts();
    let head = std::sync::Arc::new(parts);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Consul's Go server disables Nagle too.
        let _ = stream.set_nodelay(true);
        let (head, body) = (head.clone(), body.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (head, body) = (head.clone(), body.clone());
                async move {
                    // Read the request body so the connection stays reusable.
                    let _ = req.into_body().collect().await;
                    let mut r = Response::new(Full::new(body));
                    *r.status_mut() = head.status;
                    *r.headers_mut() = head.headers.clone();
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
