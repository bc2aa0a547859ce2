//! The sans-IO promise, demonstrated against processes: the proto crate's blocking example
//! (`crates/consul-kv-proto/examples/blocking_ureq.rs`, ureq and no tokio) runs against the
//! devserver binary, each in its own process, over loopback.
//!
//! The two programs are built with `cargo build --bin consul-kv-devserver --example
//! blocking_ureq` from the workspace root (a no-op after `cargo test` at the root, which builds
//! both), and their paths are read from cargo's JSON messages.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The devserver binary and the example, built once per test process.
fn build() -> (PathBuf, PathBuf) {
    static BUILT: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_once).clone()
}

/// Builds the devserver binary and the example; their executables, by target name.
fn build_once() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--bin",
            "consul-kv-devserver",
            "--example",
            "blocking_ureq",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(out.status.success(), "cargo build failed");
    let (mut server, mut example) = (None, None);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str())
        else {
            continue;
        };
        match name {
            "consul-kv-devserver" => server = Some(PathBuf::from(exe)),
            "blocking_ureq" => example = Some(PathBuf::from(exe)),
            _ => {}
        }
    }
    (
        server.expect("the devserver binary"),
        example.expect("the blocking_ureq example"),
    )
}

/// The devserver process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Starts the devserver binary on a free port and waits until it accepts connections.
fn start_devserver(bin: &Path) -> (Server, SocketAddr) {
    let addr = free_addr();
    let child = Command::new(bin)
        .args(["--listen", &addr.to_string(), "--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the devserver binary");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        assert!(Instant::now() < deadline, "the devserver never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, addr)
}

#[test]
fn blocking_ureq_example_runs_every_operation_against_the_devserver_binary() {
    let (server_bin, example_bin) = build();
    let (_server, addr) = start_devserver(&server_bin);
    let mut child = Command::new(&example_bin)
        .arg(format!("http://{addr}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "example failed: {status}\n{stdout}\n{stderr}"
    );
    for step in [
        "ok: set with CAS from the read",
        "ok: set with a stale CAS is rejected",
        "ok: items lists three entries",
        "ok: keys with a separator folds dir/",
        "ok: acquire",
        "ok: release",
        "ok: destroy the session",
        "ok: transaction committed",
        "ok: delete",
        "ok: the prefix is empty",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
}

#[test]
fn blocking_ureq_example_fails_loudly_without_a_server() {
    let (_, example_bin) = build();
    // A port nothing listens on: the first call fails and the example says why.
    let addr = free_addr();
    let out = Command::new(&example_bin)
        .arg(addr.to_string())
        .output()
        .expect("run the example");
    assert!(!out.status.success());
    assert!(!out.stderr.is_empty());
}
