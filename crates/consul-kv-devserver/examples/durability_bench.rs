//! What `--data` costs: PUT operations per second at 16 in flight, with and without the
//! write-ahead log, and (when the binary is cached) against a real `consul agent -dev` with
//! the same client. Run by `cargo xtask bench devserver`.
//!
//! ```text
//! cargo run --release -p consul-kv-devserver --example durability_bench -- [--ops 20000] [--conns 16]
//! ```
//!
//! The real agent is the one `cargo xtask consul` builds, found at
//! `$CONSUL_KV_CONSUL_BIN`, else `~/.cache/consul-kv/consul-1.14.11/consul`; it runs on
//! loopback ports for the measurement only and is killed afterwards.

use std::error::Error;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use consul_kv_devserver::DevServer;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type BoxError = Box<dyn Error + Send + Sync>;
type Conn = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Conn, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn put(conn: &mut Conn, uri: &str, body: Bytes) -> Result<(), BoxError> {
    conn.ready().await?;
    let req = http::Request::builder()
        .method("PUT")
        .uri(uri)
        .header("host", "bench")
        .body(Full::new(body))?;
    let resp = conn.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    // A `-dev` agent pretty-prints its answers: `true` and a newline.
    if status != 200 || body.trim_ascii() != b"true" {
        return Err(format!("PUT answered {status} {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(())
}

/// PUTs of distinct keys with 64-byte values over `conns` connections, one request in flight
/// on each; returns operations per second.
async fn put_rate(addr: SocketAddr, conns: usize, ops: usize, tag: &str) -> Result<f64, BoxError> {
    let per_conn = ops.div_ceil(conns);
    let mut ready = Vec::new();
    for _ in 0..conns {
        ready.push(connect(addr).await?);
    }
    let start = Instant::now();
    let mut handles = Vec::new();
    for (w, mut c) in ready.into_iter().enumerate() {
        let tag = tag.to_owned();
        handles.push(tokio::spawn(async move {
            let value = Bytes::from(vec![b'v'; 64]);
            for i in 0..per_conn {
                put(
                    &mut c,
                    &format!("/v1/kv/bench/{tag}/{w}/{i}"),
                    value.clone(),
                )
                .await?;
            }
            Ok::<_, BoxError>(per_conn)
        }));
    }
    let mut done = 0;
    for h in handles {
        done += h.await??;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

fn free_port() -> Result<u16, BoxError> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A real `consul agent -dev` on loopback, killed on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn consul_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CONSUL_KV_CONSUL_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let home = std::env::var_os("HOME")?;
    Some(PathBuf::from(home).join(".cache/consul-kv/consul-1.14.11/consul")).filter(|p| p.is_file())
}

async fn start_agent(bin: &PathBuf) -> Result<(Agent, SocketAddr), BoxError> {
    let http = free_port()?;
    let args: Vec<String> = [
        "agent",
        "-dev",
        "-bind",
        "127.0.0.1",
        "-client",
        "127.0.0.1",
        "-http-port",
        &http.to_string(),
        "-serf-lan-port",
        &free_port()?.to_string(),
        "-server-port",
        &free_port()?.to_string(),
        "-serf-wan-port",
        "-1",
        "-dns-port",
        "-1",
        "-grpc-port",
        "-1",
        "-grpc-tls-port",
        "-1",
        "-log-level",
        "warn",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let child = Command::new(bin)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let agent = Agent(child);
    let addr: SocketAddr = format!("127.0.0.1:{http}").parse()?;
    // Ready when a write succeeds (a leader was elected).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut c) = connect(addr).await {
            if put(&mut c, "/v1/kv/bench/ready", Bytes::from_static(b"1"))
                .await
                .is_ok()
            {
                return Ok((agent, addr));
            }
        }
        if Instant::now() > deadline {
            return Err("the Consul agent did not become ready in 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let mut ops = 20_000usize;
    let mut conns = 16usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--bench" {
            continue;
        }
        let v: usize = args.next().ok_or("a value is missing")?.parse()?;
        match flag.as_str() {
            "--ops" => ops = v,
            "--conns" => conns = v.max(1),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let started = Instant::now();
    let memory = DevServer::builder().start().await?;
    let _ = put_rate(memory.addr(), conns, ops / 10, "warm").await?;
    let in_memory = put_rate(memory.addr(), conns, ops, "mem").await?;
    memory.shutdown().await?;

    let dir =
        std::env::temp_dir().join(format!("consul-kv-durability-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut log_bytes = 0;
    let mut rates = Vec::new();
    for fsync in [false, true] {
        let file = dir.join(format!("state-{fsync}.wal"));
        let durable = DevServer::builder()
            .data_file(&file)
            .data_fsync(fsync)
            .start()
            .await?;
        let _ = put_rate(durable.addr(), conns, ops / 10, "warm").await?;
        rates.push(put_rate(durable.addr(), conns, ops, "wal").await?);
        durable.shutdown().await?;
        log_bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    }
    let (with_data, with_fsync) = (rates[0], rates[1]);
    let _ = std::fs::remove_dir_all(&dir);

    let consul = match consul_binary() {
        Some(bin) => {
            let (agent, addr) = start_agent(&bin).await?;
            let _ = put_rate(addr, conns, ops / 10, "warm").await?;
            let rate = put_rate(addr, conns, ops, "consul").await?;
            drop(agent);
            Some(rate)
        }
        None => None,
    };

    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("devserver durability benchmark ({profile}, {conns} in flight, {ops} PUTs of 64 B, loopback)");
    println!("| server | PUT/s |");
    println!("|---|---:|");
    println!("| devserver, in memory | {in_memory:.0} |");
    println!(
        "| devserver, `--data` (each write in the log before its answer) | {with_data:.0} ({:.2}× in memory) |",
        with_data / in_memory
    );
    println!(
        "| devserver, `--data --data-fsync` (fdatasync before each answer, group commit) | {with_fsync:.0} ({:.2}× in memory) |",
        with_fsync / in_memory
    );
    match consul {
        Some(c) => println!(
            "| consul agent -dev 1.14.11 | {c:.0} (devserver with `--data`: {:.2}×) |",
            with_data / c
        ),
        None => println!(
            "| consul agent -dev 1.14.11 | not measured: no cached binary (`cargo xtask consul`) |"
        ),
    }
    println!(
        "compacted log after a run: {log_bytes} bytes; total {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
