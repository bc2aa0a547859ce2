//! `--data` durability: a devserver process killed with `SIGKILL` at a random moment under 8
//! concurrent writers keeps every write it acknowledged; a torn or corrupt log tail is cut
//! off at start and reported; every datacenter, sessions and indexes survive a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use consul_kv_devserver::DevServer;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpStream;

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "consul-kv-durability-{name}-{}-{}",
        std::process::id(),
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn random_below(n: u64) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish() % n.max(1)
}

/// The devserver binary on `--data file`, on a free port. Returns the child and its address.
fn spawn(data: &Path, fsync: bool) -> (Child, String, Arc<Mutex<String>>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_consul-kv-devserver"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--datacenter",
        "dc1",
        "--datacenter",
        "dc2",
    ])
    .arg("--data")
    .arg(data);
    if fsync {
        cmd.arg("--data-fsync");
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .filter(|_| line.contains("ready"))
                {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.trim_matches('"').to_owned());
                    }
                }
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
            }
        });
    }
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("the devserver did not start: {}", log.lock().unwrap()));
    let addr = addr.trim_start_matches("http://").to_owned();
    (child, addr, log)
}

/// One HTTP/1.1 connection.
struct Conn(hyper::client::conn::http1::SendRequest<Full<Bytes>>);

impl Conn {
    async fn open(addr: &str) -> Option<Self> {
        let tcp = TcpStream::connect(addr).await.ok()?;
        let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .ok()?;
        tokio::spawn(conn);
        Some(Self(send))
    }

    /// `(status, X-Consul-Index, body)`, or `None` when the connection failed.
    async fn call(&mut self, method: &str, uri: &str, body: &str) -> Option<(u16, u64, Bytes)> {
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "devserver")
            .body(Full::new(Bytes::from(body.to_owned())))
            .ok()?;
        let resp = self.0.send_request(req).await.ok()?;
        let status = resp.status().as_u16();
        let index = resp
            .headers()
            .get("x-consul-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, index, body))
    }
}

/// Every key under `prefix` with its value (decoded) and the list's index.
async fn dump(addr: &str, uri: &str) -> (BTreeMap<String, (String, u64)>, u64) {
    let mut c = Conn::open(addr).await.unwrap();
    let (status, index, body) = c.call("GET", uri, "").await.unwrap();
    let mut out = BTreeMap::new();
    if status == 200 {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for e in v.as_array().unwrap() {
            let value = e["Value"].as_str().map(|s| {
                use base64::Engine as _;
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap())
                    .unwrap()
            });
            out.insert(
                e["Key"].as_str().unwrap().to_owned(),
                (
                    value.unwrap_or_default(),
                    e["ModifyIndex"].as_u64().unwrap(),
                ),
            );
        }
    } else {
        assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    }
    (out, index)
}

/// 20 rounds on one file: 8 writers, `SIGKILL` at a random moment, restart, and every
/// acknowledged write must be there with its value; the index never goes backwards. Odd
/// rounds run with `--data-fsync`, even ones without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_eight_writers_loses_no_acknowledged_write() {
    const ROUNDS: usize = 20;
    const WRITERS: usize = 8;
    let dir = temp_dir("kill9");
    let data = dir.join("state.wal");
    // key -> value, for every write that was answered `true`.
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut last_index = 0u64;
    let mut torn = 0;
    let started = Instant::now();
    for round in 0..ROUNDS {
        let (mut child, addr, log) = spawn(&data, round % 2 == 1);
        // Everything acknowledged in earlier rounds is there, after a kill and a restart.
        let (found, index) = dump(&addr, "/v1/kv/?recurse").await;
        for (k, v) in &acked {
            assert_eq!(
                found.get(k).map(|(v, _)| v),
                Some(v),
                "round {round}: acknowledged write {k} lost"
            );
        }
        assert!(
            index >= last_index,
            "round {round}: index went backwards ({index} < {last_index})"
        );
        if log.lock().unwrap().contains("torn or corrupt") {
            torn += 1;
        }
        let round_acked = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (addr, round_acked) = (addr.clone(), round_acked.clone());
            tasks.push(tokio::spawn(async move {
                let Some(mut c) = Conn::open(&addr).await else {
                    return;
                };
                for n in 0.. {
                    let key = format!("r{round}/w{w}/{n}");
                    let value = format!("v{round}.{w}.{n}");
                    match c.call("PUT", &format!("/v1/kv/{key}"), &value).await {
                        Some((200, _, body)) if &body[..] == b"true" => {
                            round_acked.lock().unwrap().push((key, value));
                        }
                        _ => return,
                    }
                }
            }));
        }
        // Kill at a random moment while the writers run (once they are writing: on a loaded
        // machine the first answer may take a while).
        let deadline = Instant::now() + Duration::from_secs(30);
        while round_acked.lock().unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "round {round}: no write was acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(random_below(300))).await;
        child.kill().unwrap();
        let _ = child.wait();
        for t in tasks {
            t.await.unwrap();
        }
        let got = round_acked.lock().unwrap().clone();
        assert!(!got.is_empty(), "round {round}: no write was acknowledged");
        acked.extend(got);
        last_index = index;
    }
    // The last kill's writes too.
    let (mut child, addr, _log) = spawn(&data, false);
    let (found, _) = dump(&addr, "/v1/kv/?recurse").await;
    for (k, v) in &acked {
        assert_eq!(
            found.get(k).map(|(v, _)| v),
            Some(v),
            "acknowledged write {k} lost"
        );
    }
    // Each acknowledged write got its own index.
    let mut indexes: Vec<u64> = acked.keys().map(|k| found[k].1).collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len(), acked.len());
    child.kill().unwrap();
    let _ = child.wait();
    eprintln!(
        "kill -9: {ROUNDS} rounds × {WRITERS} writers, {} acknowledged writes, all found after restart; {torn} restarts cut a torn tail; {:.1} s",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A devserver with datacenters `dc1` and `dc2`, kept in `data`.
async fn start_two_dcs(data: &std::path::Path) -> consul_kv_devserver::DevServerHandle {
    DevServer::builder()
        .datacenter("dc1")
        .datacenter("dc2")
        .data_file(data)
        .start()
        .await
        .unwrap()
}

/// A torn or corrupt tail is cut off and reported; what precedes it is intact; every
/// datacenter, the sessions and the indexes survive; the file is compacted.
#[tokio::test]
async fn a_torn_tail_is_cut_and_everything_else_survives() {
    let dir = temp_dir("torn");
    let data = dir.join("state.wal");
    let s = start_two_dcs(&data).await;
    let addr = s.addr().to_string();
    let mut c = Conn::open(&addr).await.unwrap();
    for (uri, body) in [
        ("/v1/kv/a?flags=7", "one"),
        ("/v1/kv/b?dc=dc2", "two"),
        ("/v1/kv/gone", "x"),
    ] {
        assert_eq!(c.call("PUT", uri, body).await.unwrap().0, 200);
    }
    assert_eq!(c.call("DELETE", "/v1/kv/gone", "").await.unwrap().0, 200);
    let (_, _, sid) = c
        .call(
            "PUT",
            "/v1/session/create",
            r#"{"TTL":"60s","Name":"keep"}"#,
        )
        .await
        .unwrap();
    let sid: serde_json::Value = serde_json::from_slice(&sid).unwrap();
    let sid = sid["ID"].as_str().unwrap().to_owned();
    let (_, _, locked) = c
        .call("PUT", &format!("/v1/kv/lock?acquire={sid}"), "held")
        .await
        .unwrap();
    assert_eq!(&locked[..], b"true");
    let before_dc1 = s.last_index("dc1").unwrap();
    let before_dc2 = s.last_index("dc2").unwrap();
    // A crash: no graceful stop, so the log is not compacted; then a torn record lands.
    std::mem::forget(s);
    drop(c);
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&data)
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"'])
            .unwrap();
    }
    let len_with_tail = std::fs::metadata(&data).unwrap().len();
    let s = start_two_dcs(&data).await;
    let r = s.recovery().unwrap();
    assert_eq!(r.discarded_bytes, 10, "{r:?}");
    assert!(r.records >= 6, "{r:?}");
    assert!(std::fs::metadata(&data).unwrap().len() < len_with_tail);
    assert!(s.last_index("dc1").unwrap() >= before_dc1);
    assert!(s.last_index("dc2").unwrap() >= before_dc2);
    let addr = s.addr().to_string();
    let (dc1, _) = dump(&addr, "/v1/kv/?recurse").await;
    assert_eq!(dc1["a"].0, "one");
    assert_eq!(dc1["lock"].0, "held");
    assert!(!dc1.contains_key("gone"));
    let (dc2, _) = dump(&addr, "/v1/kv/?recurse&dc=dc2").await;
    assert_eq!(dc2["b"].0, "two");
    let mut c = Conn::open(&addr).await.unwrap();
    let (_, _, info) = c
        .call("GET", &format!("/v1/session/info/{sid}"), "")
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info[0]["Name"], "keep");
    let (_, _, entry) = c.call("GET", "/v1/kv/lock", "").await.unwrap();
    let entry: serde_json::Value = serde_json::from_slice(&entry).unwrap();
    assert_eq!(entry[0]["Session"], sid.as_str());
    assert_eq!(entry[0]["LockIndex"], 1);
    // The deleted key's tombstone survived too: the list index under it did not go back.
    let (status, index, _) = c.call("GET", "/v1/kv/gone", "").await.unwrap();
    assert_eq!(status, 404);
    assert!(index >= 4, "{index}");
    s.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file that is neither a log nor export JSON is refused, not overwritten.
#[tokio::test]
async fn a_foreign_file_is_refused() {
    let dir = temp_dir("foreign");
    let data = dir.join("notes.txt");
    std::fs::write(&data, "hello").unwrap();
    let e = DevServer::builder()
        .data_file(&data)
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("notes.txt") || format!("{e:?}").contains("notes.txt"));
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "hello");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Tombstones are reaped on a timer once older than `tombstone_ttl`.
#[tokio::test]
async fn tombstones_are_reaped_on_a_timer() {
    let s = DevServer::builder()
        .tombstone_ttl(Some(Duration::from_millis(200)))
        .start()
        .await
        .unwrap();
    let addr = s.addr().to_string();
    let mut c = Conn::open(&addr).await.unwrap();
    c.call("PUT", "/v1/kv/p/a", "1").await.unwrap();
    c.call("PUT", "/v1/kv/p/b", "1").await.unwrap();
    c.call("DELETE", "/v1/kv/p/b", "").await.unwrap();
    let (_, with_tomb, _) = c.call("GET", "/v1/kv/p/?recurse", "").await.unwrap();
    // The tombstone of p/b holds the prefix index up; once reaped, it drops to p/a's.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, index, _) = c.call("GET", "/v1/kv/p/?recurse", "").await.unwrap();
        if index < with_tomb {
            break;
        }
        assert!(Instant::now() < deadline, "the tombstone was never reaped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.shutdown().await.unwrap();
}
