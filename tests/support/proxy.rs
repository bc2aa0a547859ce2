//! A byte-level HTTP/1.1 fault proxy for reliability tests.
//!
//! It sits between a client and a server on loopback. For each request it takes the next
//! [`Fault`] from a queue (or the default fault) and either forwards the exchange — with the
//! response delayed, trickled, truncated, reset or with its headers rewritten — or answers by
//! itself with an injected response (429, 500 `No cluster leader`, 503, an HTML 502, …).
//!
//! The proxy parses just enough HTTP/1.1 to find message boundaries (request heads, bodies with
//! `Content-Length`, chunked response bodies), so keep-alive connections work through it and a
//! fault applies to one request, not one connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward unchanged.
    Pass,
    /// Hold the response's first byte for this long.
    DelayHeaders(Duration),
    /// Send the response one byte at a time with this gap.
    Trickle(Duration),
    /// Send the first `n` bytes of the response, then close cleanly (FIN).
    TruncateAt(usize),
    /// Send the first `n` bytes of the response, then reset the connection (RST).
    ResetAfter(usize),
    /// Read the request, send nothing, and reset (the server never saw it).
    ResetBeforeForward,
    /// Forward the request, then reset before any response byte (an ambiguous failure).
    ResetAfterForward,
    /// Answer by itself: status, extra headers, body. The request never reaches the server.
    Inject {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
    },
    /// Forward, replacing (or adding) one response header.
    RewriteHeader(String, String),
    /// Forward, then close the connection silently (no `Connection: close`), so that the
    /// client's pool holds a dead connection.
    CloseAfterResponse,
}

impl Fault {
    /// `429 Too Many Requests` with an empty body and an optional `Retry-After`.
    pub fn too_many_requests(retry_after: Option<u64>) -> Self {
        let headers = retry_after
            .map(|s| vec![("Retry-After".to_owned(), s.to_string())])
            .unwrap_or_default();
        Self::Inject {
            status: 429,
            headers,
            body: Vec::new(),
        }
    }

    /// `500 No cluster leader`.
    pub fn no_leader() -> Self {
        Self::Inject {
            status: 500,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: b"No cluster leader".to_vec(),
        }
    }

    /// `503 Service Unavailable` (Consul's leader write limit).
    pub fn unavailable() -> Self {
        Self::Inject {
            status: 503,
            headers: Vec::new(),
            // Consul's own text (its rate limiter, for leader-only writes): only with it does a
            // 503 prove that nothing was applied.
            body: b"rate limit exceeded, try again later".to_vec(),
        }
    }

    /// An HTML `502 Bad Gateway` from a proxy in front of Consul.
    pub fn html_bad_gateway() -> Self {
        Self::Inject {
            status: 502,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
                .to_vec(),
        }
    }

    /// A `200` whose JSON body is cut short.
    pub fn malformed_json() -> Self {
        Self::Inject {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-Consul-Index".into(), "5".into()),
            ],
            body: br#"[{"Key":"#.to_vec(),
        }
    }
}

#[derive(Debug, Default)]
struct Plan {
    queue: VecDeque<Fault>,
    default: Option<Fault>,
    random: Option<(u32, Vec<Fault>, fastrand::Rng)>,
}

impl Plan {
    fn next(&mut self) -> Fault {
        if let Some(f) = self.queue.pop_front() {
            return f;
        }
        if let Some((percent, faults, rng)) = &mut self.random {
            if !faults.is_empty() && rng.u32(..100) < *percent {
                return faults[rng.usize(..faults.len())].clone();
            }
        }
        self.default.clone().unwrap_or(Fault::Pass)
    }
}

/// Counters kept by the proxy.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Connections accepted from clients.
    pub connections: AtomicU64,
    /// Requests read from clients.
    pub requests: AtomicU64,
    /// Requests forwarded to the server.
    pub forwarded: AtomicU64,
    /// Connections currently open from clients.
    pub open: AtomicU64,
    /// Most connections open at once.
    pub peak_open: AtomicU64,
    /// The request lines seen (`GET /v1/kv/k?stale HTTP/1.1`), the latest 10,000.
    pub request_lines: Mutex<VecDeque<String>>,
}

impl ProxyStats {
    /// A copy of the request lines seen.
    pub fn request_lines(&self) -> Vec<String> {
        self.request_lines.lock().unwrap().iter().cloned().collect()
    }
}

/// A running proxy. Dropping it stops accepting; open connections end with their tasks.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    stats: Arc<ProxyStats>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let plan = Arc::new(Mutex::new(Plan::default()));
        let stats = Arc::new(ProxyStats::default());
        let task = tokio::spawn({
            let plan = plan.clone();
            let stats = stats.clone();
            async move {
                while let Ok((sock, _)) = listener.accept().await {
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    let open = stats.open.fetch_add(1, Ordering::Relaxed) + 1;
                    stats.peak_open.fetch_max(open, Ordering::Relaxed);
                    let plan = plan.clone();
                    let stats = stats.clone();
                    tokio::spawn(async move {
                        let _ = serve(sock, upstream, &plan, &stats).await;
                        stats.open.fetch_sub(1, Ordering::Relaxed);
                    });
                }
            }
        });
        Self {
            addr,
            plan,
            stats,
            task,
        }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues faults for the next requests, in order.
    pub fn push(&self, faults: impl IntoIterator<Item = Fault>) {
        self.plan.lock().unwrap().queue.extend(faults);
    }

    /// Sets the fault used when the queue is empty.
    pub fn set_default(&self, fault: Fault) {
        self.plan.lock().unwrap().default = Some(fault);
    }

    /// Applies one of `faults` to `percent`% of requests (after the queue), chosen by a seeded
    /// generator.
    pub fn set_random(&self, percent: u32, faults: Vec<Fault>, seed: u64) {
        self.plan.lock().unwrap().random =
            Some((percent.min(100), faults, fastrand::Rng::with_seed(seed)));
    }

    /// Clears the queue, the default and the random faults.
    pub fn clear(&self) {
        let mut p = self.plan.lock().unwrap();
        p.queue.clear();
        p.default = None;
        p.random = None;
    }

    /// The counters.
    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }
}

/// A parsed message head: its length in bytes and its headers (name, raw value).
type Head = (usize, Vec<(String, Vec<u8>)>);

/// Parses the HTTP/1.1 message head at the start of `buf` (a response when it starts with
/// `HTTP/`, else a request): its length and headers, `None` while incomplete.
fn parse_head(buf: &[u8]) -> std::io::Result<Option<Head>> {
    let mut raw = [httparse::EMPTY_HEADER; 64];
    let parsed = if buf.starts_with(b"HTTP/") {
        httparse::Response::new(&mut raw).parse(buf)
    } else {
        httparse::Request::new(&mut raw).parse(buf)
    };
    match parsed.map_err(std::io::Error::other)? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(len) => {
            let headers = raw
                .iter()
                .take_while(|h| !h.name.is_empty())
                .map(|h| (h.name.to_owned(), h.value.to_vec()))
                .collect();
            Ok(Some((len, headers)))
        }
    }
}

/// Reads one HTTP/1.1 message head (up to and including the blank line).
async fn read_head(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        if let Some((end, _)) = parse_head(buf)? {
            let head: Vec<u8> = buf.drain(..end).collect();
            return Ok(Some(head));
        }
        if buf.len() > 1 << 20 {
            return Err(std::io::Error::other("head too large"));
        }
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of header `name` in a complete head (trimmed, `None` when absent or not UTF-8).
fn header(head: &[u8], name: &str) -> Option<String> {
    let (_, headers) = parse_head(head).ok()??;
    headers.into_iter().find_map(|(k, v)| {
        k.eq_ignore_ascii_case(name)
            .then(|| String::from_utf8(v).ok().map(|v| v.trim().to_owned()))
            .flatten()
    })
}

/// Reads exactly `n` bytes (some may already be in `buf`).
async fn read_exact_buffered(
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
    n: usize,
) -> std::io::Result<Vec<u8>> {
    while buf.len() < n {
        let mut chunk = [0u8; 65536];
        let got = sock.read(&mut chunk).await?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..got]);
    }
    Ok(buf.drain(..n).collect())
}

/// Reads a message body framed by `Content-Length` or chunked encoding; returns its raw bytes
/// (chunk framing included, so it can be forwarded verbatim).
async fn read_body(
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
    head: &[u8],
) -> std::io::Result<Vec<u8>> {
    if header(head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut raw = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                let mut chunk = [0u8; 8192];
                let n = sock.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let line: Vec<u8> = buf.drain(..line_end + 2).collect();
            let size_text = std::str::from_utf8(&line[..line_end]).unwrap_or("0");
            let size_text = size_text.split(';').next().unwrap_or("0").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            raw.extend_from_slice(&line);
            let data = read_exact_buffered(sock, buf, size + 2).await?;
            raw.extend_from_slice(&data);
            if size == 0 {
                return Ok(raw);
            }
        }
    }
    let len = header(head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    read_exact_buffered(sock, buf, len).await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn rewrite_header(head: &[u8], name: &str, value: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut lines: Vec<String> = Vec::new();
    let mut replaced = false;
    for line in text.trim_end_matches("\r\n").split("\r\n") {
        match line.split_once(':') {
            Some((k, _)) if k.trim().eq_ignore_ascii_case(name) => {
                lines.push(format!("{name}: {value}"));
                replaced = true;
            }
            _ => lines.push(line.to_owned()),
        }
    }
    if !replaced {
        lines.push(format!("{name}: {value}"));
    }
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// Resolves when the peer closes `sock` (or it fails); data that arrives meanwhile is kept.
async fn closed(sock: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    loop {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn reset(sock: TcpStream) {
    // SO_LINGER 0 turns the close into a RST.
    let _ = sock.set_zero_linger();
    drop(sock);
}

async fn serve(
    mut down: TcpStream,
    upstream: SocketAddr,
    plan: &Mutex<Plan>,
    stats: &ProxyStats,
) -> std::io::Result<()> {
    let _ = down.set_nodelay(true);
    let mut down_buf = Vec::new();
    let mut up: Option<(TcpStream, Vec<u8>)> = None;
    loop {
        let Some(req_head) = read_head(&mut down, &mut down_buf).await? else {
            return Ok(());
        };
        let req_body = read_body(&mut down, &mut down_buf, &req_head).await?;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut lines) = stats.request_lines.lock() {
            let head = String::from_utf8_lossy(&req_head);
            lines.push_back(head.lines().next().unwrap_or_default().to_owned());
            if lines.len() > 10_000 {
                lines.pop_front();
            }
        }
        let fault = plan.lock().map(|mut p| p.next()).unwrap_or(Fault::Pass);
        match &fault {
            Fault::ResetBeforeForward => {
                reset(down);
                return Ok(());
            }
            Fault::Inject {
                status,
                headers,
                body,
            } => {
                let mut resp = format!("HTTP/1.1 {status} {}\r\n", reason(*status));
                for (k, v) in headers {
                    resp.push_str(&format!("{k}: {v}\r\n"));
                }
                resp.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                let mut bytes = resp.into_bytes();
                bytes.extend_from_slice(body);
                down.write_all(&bytes).await?;
                continue;
            }
            _ => {}
        }
        if up.is_none() {
            let s = TcpStream::connect(upstream).await?;
            let _ = s.set_nodelay(true);
            up = Some((s, Vec::new()));
        }
        let Some((up_sock, up_buf)) = up.as_mut() else {
            return Ok(());
        };
        up_sock.write_all(&req_head).await?;
        up_sock.write_all(&req_body).await?;
        stats.forwarded.fetch_add(1, Ordering::Relaxed);
        if fault == Fault::ResetAfterForward {
            reset(down);
            return Ok(());
        }
        // While the server holds the request (a blocking query), watch the client side: if the
        // client goes away, drop both connections so that the server sees the disconnect.
        let head = tokio::select! {
            r = read_head(up_sock, up_buf) => r?,
            () = closed(&mut down, &mut down_buf) => return Ok(()),
        };
        let Some(mut resp_head) = head else {
            return Ok(());
        };
        let resp_body = read_body(up_sock, up_buf, &resp_head).await?;
        if let Fault::RewriteHeader(name, value) = &fault {
            resp_head = rewrite_header(&resp_head, name, value);
        }
        let mut resp = resp_head;
        resp.extend_from_slice(&resp_body);
        match fault {
            Fault::DelayHeaders(d) => {
                tokio::time::sleep(d).await;
                down.write_all(&resp).await?;
            }
            Fault::Trickle(gap) => {
                for b in resp {
                    down.write_all(&[b]).await?;
                    down.flush().await?;
                    tokio::time::sleep(gap).await;
                }
            }
            Fault::TruncateAt(n) => {
                down.write_all(&resp[..n.min(resp.len())]).await?;
                down.shutdown().await?;
                return Ok(());
            }
            Fault::ResetAfter(n) => {
                down.write_all(&resp[..n.min(resp.len())]).await?;
                down.flush().await?;
                reset(down);
                return Ok(());
            }
            Fault::CloseAfterResponse => {
                down.write_all(&resp).await?;
                down.shutdown().await?;
                return Ok(());
            }
            _ => down.write_all(&resp).await?,
        }
    }
}
