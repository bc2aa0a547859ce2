//! Reliability suite (rows R1–R20 of the matrix in `tests/reliability/README.md`; this suite
//! measures every row but R19, the conformance suite, which `cargo xtask soak` adds):
//! faults injected by a byte-level proxy, load with correctness checks, leaks, and bad input.
//!
//! Each scenario is one test that prints one figure as a line
//! `RELIABILITY | scenario | figure | target | PASS`, and fails when the target is missed.
//! `cargo xtask ci` runs it at CI size; `cargo xtask soak` sets `CONSUL_KV_SOAK=1` for the full
//! sizes listed in the README and prints the lines as one table.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod bad_input;
mod changes;
mod faults;
mod helpers;
mod load;
mod matrix;
mod rate_limit;

use std::net::SocketAddr;
use std::time::Duration;

use consul_kv::{Client, RetryPolicy};
use consul_kv_devserver::{DevServer, DevServerHandle};

/// Whether the suite runs at full (soak) size.
pub fn soak() -> bool {
    std::env::var_os("CONSUL_KV_SOAK").is_some_and(|v| v != "0")
}

/// `ci` at CI size, `full` under `cargo xtask soak`.
pub fn size(ci: usize, full: usize) -> usize {
    if soak() {
        full
    } else {
        ci
    }
}

/// A latency target of the matrix: exact at soak size (`cargo xtask soak`, one scenario at a
/// time), five times wider at CI size, where the suite runs beside every other test on a
/// loaded machine and a scheduling stall must not fail it.
pub fn latency_bound(target: Duration) -> Duration {
    if soak() {
        target
    } else {
        target * 5
    }
}

/// The environment variable that marks a child process running one isolated scenario.
const ISOLATED: &str = "CONSUL_KV_RELIABILITY_ISOLATED";

/// Runs scenario `name` (its path in this binary, e.g. `load::r17_…`) alone in a child
/// process, for figures that sample the whole process (open fds, RSS): other tests running
/// beside it in this process would move them. Returns `true` in that child, which runs the
/// scenario; in the parent it runs the child, prints its figure lines, fails when the child
/// failed, and returns `false`.
pub fn isolated(name: &str) -> bool {
    if std::env::var_os(ISOLATED).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ISOLATED, "1")
        .output()
        .expect("run the scenario in a child process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines().filter(|l| l.contains("RELIABILITY | ")) {
        println!("{}", &line[line.find("RELIABILITY | ").unwrap_or(0)..]);
    }
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in a child process:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Prints the scenario's figure and fails the test when `pass` is false.
pub fn figure(scenario: &str, figure: &str, target: &str, pass: bool) {
    println!(
        "RELIABILITY | {scenario} | {figure} | {target} | {}",
        if pass { "PASS" } else { "FAIL" }
    );
    assert!(pass, "{scenario}: {figure} misses the target {target}");
}

/// A devserver on a free port.
pub async fn devserver() -> DevServerHandle {
    DevServer::builder().start().await.expect("devserver")
}

/// The socket address behind a `http://host:port` base URL.
pub fn addr_of(base: &str) -> SocketAddr {
    base.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("a socket address")
}

/// A facade client for `base` with short deadlines and fast retries, as tests want.
pub fn client(base: &str) -> Client {
    Client::builder()
        .address(base)
        .timeout(Duration::from_secs(3))
        .retry(
            RetryPolicy::default()
                .max_attempts(6)
                .base(Duration::from_millis(20))
                .cap(Duration::from_millis(200))
                .budget(Duration::from_secs(5)),
        )
        .build()
        .expect("client")
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
pub fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Keeps the scenarios that measure process-wide figures (memory, file descriptors) alone in
/// the process: they take it for writing, every other scenario for reading, so no other test
/// opens or closes sockets while a figure is taken.
pub static EXCLUSIVE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());
