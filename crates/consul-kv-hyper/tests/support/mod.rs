//! Test support: a scriptable HTTP/1.1 server on 127.0.0.1:0 (or a Unix socket), a raw TCP
//! server for byte-level faults, and a tracing capture.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// 0-based request number across all connections.
    pub n: usize,
    /// 0-based connection number.
    pub conn: usize,
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Counters kept by the servers.
#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicUsize,
    pub open: AtomicUsize,
    pub max_open: AtomicUsize,
    pub seen: Mutex<Vec<Seen>>,
}

impl Stats {
    fn opened(&self) -> usize {
        let n = self.accepted.fetch_add(1, Ordering::SeqCst);
        let open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_open.fetch_max(open, Ordering::SeqCst);
        n
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn max_open(&self) -> usize {
        self.max_open.load(Ordering::SeqCst)
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }
}

pub type Reply = Response<Full<Bytes>>;

/// A response with a status, a body and `X-Consul-Index`.
pub fn reply(status: u16, index: u64, body: impl Into<Bytes>) -> Reply {
    Response::builder()
        .status(status)
        .header("X-Consul-Index", index.to_string())
        .header("X-Consul-KnownLeader", "true")
        .body(Full::new(body.into()))
        .unwrap()
}

/// The JSON body of `GET /v1/kv/<key>` for one key.
pub fn kv_json(key: &str, value_b64: &str, index: u64) -> String {
    format!(
        r#"[{{"LockIndex":0,"Key":"{key}","Flags":0,"Value":"{value_b64}","CreateIndex":{index},"ModifyIndex":{index}}}]"#
    )
}

/// A scriptable hyper server.
pub struct Server {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Handler =
    Arc<dyn Fn(Seen) -> std::pin::Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Seen) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    Arc::new(move |s| Box::pin(f(s)))
}

async fn serve_conn<IO>(io: IO, conn: usize, stats: Arc<Stats>, h: Handler)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let stats = Arc::clone(&stats);
        let h = Arc::clone(&h);
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let seen = {
                let mut v = stats.seen.lock().unwrap();
                let s = Seen {
                    n: v.len(),
                    conn,
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    body,
                };
                v.push(s.clone());
                s
            };
            Ok::<_, Infallible>(h(seen).await)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

impl Server {
    /// Starts a server answering every request with `f`.
    pub async fn start<F, Fut>(f: F) -> Self
    where
        F: Fn(Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let h = handler(f);
        let st = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                let conn = st.opened();
                let (st, h) = (Arc::clone(&st), Arc::clone(&h));
                tokio::spawn(async move {
                    serve_conn(s, conn, Arc::clone(&st), h).await;
                    st.closed();
                });
            }
        });
        Self { addr, stats, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A hyper server on a Unix socket in a fresh temporary directory.
pub struct UnixServer {
    pub path: PathBuf,
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl UnixServer {
    pub async fn start<F, Fut>(f: F) -> Self
    where
        F: Fn(Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "consul-kv-hyper-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("consul.sock");
        let l = UnixListener::bind(&path).unwrap();
        let stats = Arc::new(Stats::default());
        let h = handler(f);
        let st = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                let conn = st.opened();
                let (st, h) = (Arc::clone(&st), Arc::clone(&h));
                tokio::spawn(async move {
                    serve_conn(s, conn, Arc::clone(&st), h).await;
                    st.closed();
                });
            }
        });
        Self { path, stats, task }
    }
}

/// The path of a file under `tests/data`.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A rustls server configuration with the test certificate; optionally requiring a client
/// certificate signed by the test CA.
#[cfg(feature = "rustls")]
pub fn tls_server_config(require_client_cert: bool) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_file_iter(data("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(data("server.key")).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(data("ca.pem")).unwrap())
            .unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(builder.with_single_cert(certs, key).unwrap())
}

/// A hyper server behind TLS.
#[cfg(feature = "rustls")]
pub struct TlsServer {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    /// Connections whose TLS handshake failed.
    pub handshake_failures: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

#[cfg(feature = "rustls")]
impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(feature = "rustls")]
impl TlsServer {
    pub async fn start<F, Fut>(config: Arc<rustls::ServerConfig>, f: F) -> Self
    where
        F: Fn(Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let failures = Arc::new(AtomicUsize::new(0));
        let h = handler(f);
        let (st, fl) = (Arc::clone(&stats), Arc::clone(&failures));
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                let conn = st.opened();
                let (st, fl, h, acceptor) = (
                    Arc::clone(&st),
                    Arc::clone(&fl),
                    Arc::clone(&h),
                    acceptor.clone(),
                );
                tokio::spawn(async move {
                    match acceptor.accept(s).await {
                        Ok(tls) => serve_conn(tls, conn, Arc::clone(&st), h).await,
                        Err(_) => {
                            fl.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    st.closed();
                });
            }
        });
        Self {
            addr,
            stats,
            handshake_failures: failures,
            task,
        }
    }
}

/// A TCP server whose connections are handled by hand, byte by byte.
pub struct RawServer {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    /// Runs `f(stream, connection number, stats)` for each connection.
    pub async fn start<F, Fut>(f: F) -> Self
    where
        F: Fn(TcpStream, usize, Arc<Stats>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let st = Arc::clone(&stats);
        let f = Arc::new(f);
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                let conn = st.opened();
                let (st, f) = (Arc::clone(&st), Arc::clone(&f));
                tokio::spawn(async move {
                    f(s, conn, Arc::clone(&st)).await;
                    st.closed();
                });
            }
        });
        Self { addr, stats, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Reads one HTTP/1.1 request (head and Content-Length body) and records it. `None` on EOF.
pub async fn read_request(s: &mut TcpStream, conn: usize, stats: &Stats) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut raw_headers = [httparse::EMPTY_HEADER; 64];
    loop {
        let mut probe = [httparse::EMPTY_HEADER; 64];
        if httparse::Request::new(&mut probe)
            .parse(&buf)
            .ok()?
            .is_complete()
        {
            break;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut req = httparse::Request::new(&mut raw_headers);
    let httparse::Status::Complete(head_end) = req.parse(&buf).ok()? else {
        return None;
    };
    let method = req.method?.to_owned();
    let uri = req.path?.to_owned();
    let mut headers = HeaderMap::new();
    let mut len = 0usize;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
        }
        headers.append(
            http::HeaderName::from_bytes(h.name.as_bytes()).ok()?,
            http::HeaderValue::from_bytes(h.value).ok()?,
        );
    }
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = Bytes::copy_from_slice(&buf[head_end..head_end + len]);
    let mut v = stats.seen.lock().unwrap();
    let seen = Seen {
        n: v.len(),
        conn,
        method,
        uri,
        headers,
        body,
    };
    v.push(seen.clone());
    Some(seen)
}

/// Writes a complete response with `Content-Length`.
pub async fn write_response(s: &mut TcpStream, status: u16, index: u64, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nX-Consul-Index: {index}\r\nContent-Type: application/json\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body).await;
    let _ = s.flush().await;
}

/// Closes with a TCP reset instead of a FIN.
pub fn reset(s: TcpStream) {
    // A zero linger does not block on drop: it sends RST at once.
    #[allow(deprecated)]
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

/// Captured tracing output, for checking that the token never appears.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// Installs a TRACE-level subscriber for the current thread that writes into the returned
/// buffer.
pub fn capture_tracing() -> (Captured, tracing::subscriber::DefaultGuard) {
    let cap = Captured::default();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(cap.clone())
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    (cap, tracing::subscriber::set_default(sub))
}
