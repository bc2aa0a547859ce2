//! Devserver benchmark: GET, PUT and CAS operations per second over loopback, the wake latency
//! of blocking queries with many watchers, and memory per 100,000 keys. Prints one table.
//!
//! ```text
//! cargo run --release -p consul-kv-devserver --example devserver_bench -- \
//!     [--ops 20000] [--conns 8] [--watchers 1000] [--keys 100000] [--rounds 3]
//! ```
//!
//! Every option can also come from the environment: `DEVSERVER_BENCH_OPS`,
//! `DEVSERVER_BENCH_CONNS`, `DEVSERVER_BENCH_WATCHERS`, `DEVSERVER_BENCH_KEYS`,
//! `DEVSERVER_BENCH_ROUNDS`. Memory is the growth of this process's `VmRSS`
//! (`/proc/self/status`) while the keys are written through the HTTP API, scaled to
//! 100,000 keys; it includes allocator slack, so it is an upper bound.

use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use consul_kv_devserver::{DevServer, DevServerHandle};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type BoxError = Box<dyn Error + Send + Sync>;
type Conn = SendRequest<Full<Bytes>>;

#[derive(Debug, Clone, Copy)]
struct Opts {
    ops: usize,
    conns: usize,
    watchers: usize,
    keys: usize,
    rounds: usize,
}

fn opts() -> Result<Opts, BoxError> {
    let env = |name: &str, default: usize| -> Result<usize, BoxError> {
        match std::env::var(name) {
            Ok(v) => Ok(v.parse()?),
            Err(_) => Ok(default),
        }
    };
    let mut o = Opts {
        ops: env("DEVSERVER_BENCH_OPS", 20_000)?,
        conns: env("DEVSERVER_BENCH_CONNS", 8)?,
        watchers: env("DEVSERVER_BENCH_WATCHERS", 1000)?,
        keys: env("DEVSERVER_BENCH_KEYS", 100_000)?,
        rounds: env("DEVSERVER_BENCH_ROUNDS", 3)?,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--bench" {
            continue; // passed by `cargo bench`-style wrappers
        }
        let value: usize = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse()?;
        match flag.as_str() {
            "--ops" => o.ops = value,
            "--conns" => o.conns = value.max(1),
            "--watchers" => o.watchers = value,
            "--keys" => o.keys = value,
            "--rounds" => o.rounds = value.max(1),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(o)
}

async fn connect(addr: SocketAddr) -> Result<Conn, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(
    conn: &mut Conn,
    method: &str,
    uri: &str,
    body: Bytes,
) -> Result<(u16, Option<u64>, Bytes), BoxError> {
    conn.ready().await?;
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "devserver")
        .body(Full::new(body))?;
    let resp = conn.send_request(req).await?;
    let status = resp.status().as_u16();
    let index = resp
        .headers()
        .get("x-consul-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, index, body))
}

/// Runs `per_conn` operations on each of `conns` connections; returns operations per second.
async fn throughput<F, Fut>(
    addr: SocketAddr,
    conns: usize,
    total: usize,
    op: F,
) -> Result<f64, BoxError>
where
    F: Fn(Conn, usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<usize, BoxError>> + Send,
{
    let per_conn = total.div_ceil(conns);
    let mut handles = Vec::new();
    let mut ready = Vec::new();
    for _ in 0..conns {
        ready.push(connect(addr).await?);
    }
    let start = Instant::now();
    for (worker, conn) in ready.into_iter().enumerate() {
        let op = op.clone();
        handles.push(tokio::spawn(
            async move { op(conn, worker, per_conn).await },
        ));
    }
    let mut done = 0;
    for h in handles {
        done += h.await??;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn wake_latency(
    server: &DevServerHandle,
    watchers: usize,
    rounds: usize,
) -> Result<(Duration, Duration, Duration, Duration), BoxError> {
    let addr = server.addr();
    let mut writer = connect(addr).await?;
    send(
        &mut writer,
        "PUT",
        "/v1/kv/bench/watch",
        Bytes::from_static(b"0"),
    )
    .await?;
    let mut conns = Vec::with_capacity(watchers);
    for _ in 0..watchers {
        conns.push(connect(addr).await?);
    }
    let mut all = Vec::new();
    let mut drained = Duration::ZERO;
    for round in 0..rounds {
        let (_, index, _) = send(&mut writer, "GET", "/v1/kv/bench/watch", Bytes::new()).await?;
        let index = index.ok_or("no index")?;
        let mut handles = Vec::with_capacity(watchers);
        for mut c in conns.drain(..) {
            let uri = format!("/v1/kv/bench/watch?index={index}&wait=60s");
            handles.push(tokio::spawn(async move {
                let r = send(&mut c, "GET", &uri, Bytes::new()).await;
                (c, r.map(|_| Instant::now()))
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.waiters() < watchers {
            if Instant::now() > deadline {
                return Err(format!(
                    "only {} of {watchers} watchers registered",
                    server.waiters()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let written = Instant::now();
        // Server side: the moment every waiter has been woken and has re-run its query,
        // watched from the writer's task while the write is in flight.
        let monitor = async {
            // Polled every millisecond (a spinning poll would steal CPU from the server).
            while server.waiters() > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Instant::now()
        };
        let write = send(
            &mut writer,
            "PUT",
            "/v1/kv/bench/watch",
            Bytes::from(round.to_string() + "!"),
        );
        let (written_ok, all_woken) = tokio::join!(write, monitor);
        written_ok?;
        drained = drained.max(all_woken.duration_since(written));
        for h in handles {
            let (c, at) = h.await?;
            all.push(at?.duration_since(written));
            conns.push(c);
        }
    }
    all.sort();
    Ok((
        drained,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or_default(),
    ))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let o = opts()?;
    let server = DevServer::builder().start().await?;
    let addr = server.addr();
    let started = Instant::now();

    // Memory first, while the allocator holds no freed memory from other phases: RSS growth
    // while writing `keys` keys with 64-byte values.
    let rss_before = vm_rss_kib();
    let keys = o.keys;
    let key_count_before = server.key_count("").unwrap_or(0);
    throughput(addr, o.conns, keys, |mut c, w, n| async move {
        let value = Bytes::from(vec![b'm'; 64]);
        for i in 0..n {
            send(
                &mut c,
                "PUT",
                &format!("/v1/kv/bench/mem/{w:02}/{i:08}"),
                value.clone(),
            )
            .await?;
        }
        Ok(n)
    })
    .await?;
    let rss_after = vm_rss_kib();
    let added = server
        .key_count("")
        .unwrap_or(0)
        .saturating_sub(key_count_before);
    let mem = match (rss_before, rss_after) {
        (Some(b), Some(a)) if added > 0 => {
            let per_key = a.saturating_sub(b) as f64 * 1024.0 / added as f64;
            format!(
                "{:.1} MiB ({per_key:.0} B/key, {added} keys of 64 B)",
                per_key * 100_000.0 / (1024.0 * 1024.0)
            )
        }
        _ => "n/a (no /proc/self/status)".to_owned(),
    };

    // PUT: distinct keys, 64-byte values.
    let put = throughput(addr, o.conns, o.ops, |mut c, w, n| async move {
        let value = Bytes::from(vec![b'v'; 64]);
        for i in 0..n {
            let (s, _, _) = send(
                &mut c,
                "PUT",
                &format!("/v1/kv/bench/put/{w}/{i}"),
                value.clone(),
            )
            .await?;
            if s != 200 {
                return Err(format!("PUT answered {s}").into());
            }
        }
        Ok(n)
    })
    .await?;

    // GET: single-key reads of existing keys.
    let get = throughput(addr, o.conns, o.ops, |mut c, w, n| async move {
        for i in 0..n {
            let (s, _, _) = send(
                &mut c,
                "GET",
                &format!("/v1/kv/bench/put/{w}/{}", i % 1000),
                Bytes::new(),
            )
            .await?;
            if s != 200 {
                return Err(format!("GET answered {s}").into());
            }
        }
        Ok(n)
    })
    .await?;

    // CAS: a read-modify-write cycle per operation (GET for ModifyIndex, PUT ?cas=).
    let cas = throughput(addr, o.conns, o.ops / 2, |mut c, w, n| async move {
        let key = format!("/v1/kv/bench/cas/{w}");
        send(&mut c, "PUT", &key, Bytes::from_static(b"0")).await?;
        for i in 0..n {
            let (_, index, _) = send(&mut c, "GET", &key, Bytes::new()).await?;
            let index = index.ok_or("no index")?;
            let (_, _, body) = send(
                &mut c,
                "PUT",
                &format!("{key}?cas={index}"),
                Bytes::from(i.to_string()),
            )
            .await?;
            if body.as_ref() != b"true" {
                return Err("CAS lost on an uncontended key".into());
            }
        }
        Ok(n)
    })
    .await?;

    let (drained, p50, p99, max) = wake_latency(&server, o.watchers, o.rounds).await?;

    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "consul-kv-devserver benchmark ({profile}, {} conns, loopback)",
        o.conns
    );
    println!("| metric                                   | value |");
    println!("|------------------------------------------|-------|");
    println!(
        "| GET ops/s ({} ops)                    | {get:.0} |",
        o.ops
    );
    println!(
        "| PUT ops/s ({} ops)                    | {put:.0} |",
        o.ops
    );
    println!(
        "| CAS ops/s (GET + PUT ?cas, {} cycles) | {cas:.0} |",
        o.ops / 2
    );
    println!(
        "| wake latency at the client, {} watchers (p50/p99/max) | {:.2} / {:.2} / {:.2} ms |",
        o.watchers,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    println!(
        "| all {} watchers answered by the server (max) | {:.2} ms |",
        o.watchers,
        drained.as_secs_f64() * 1e3
    );
    println!("| memory per 100,000 keys                  | {mem} |");
    println!(
        "| total time                               | {:.1} s |",
        started.elapsed().as_secs_f64()
    );
    server.shutdown().await?;
    Ok(())
}
