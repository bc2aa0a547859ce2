//! Consistency under faults, checked like Jepsen, against a real three-server Consul cluster
//! on loopback.
//!
//! Four faults, each its own run with its own registers and history, one after the other on
//! one cluster (healthy again before each run): a follower paused (SIGSTOP, then SIGCONT), the
//! client's connection cut mid-request (the fault proxy resets connections before and after
//! forwarding and truncates answers), the leader paused for longer than the election timeout
//! and then resumed (a stale leader), and the leader killed (SIGKILL).
//!
//! In every run, clients in each read mode (default, `consistent`, `stale`) — each its own
//! `consul_kv::Client`, spread over the three servers — read, write and compare-and-set a few
//! registers of their own, and every operation is recorded with its invocation and completion
//! time ([`consul_kv_tests::history`]). Each (fault, read mode) history is written to
//! `target/consistency/<fault>-<mode>.jsonl` and checked for linearizability by porcupine
//! (the Go program in `xtask/linearizability`), which writes the shortest anomalous window it
//! finds next to the history. During the leader pause, the lock scenario of [`lock`] runs too.
//!
//! The table goes to `target/consistency/table.md` and to stdout. The test fails when a
//! `consistent` history is not linearizable, when the writes and compare-and-sets of any
//! history are not linearizable on their own, when a fenced write of an old lock holder was
//! accepted after a newer holder acquired the lock, or when a Consul process outlives the
//! cluster. What default and stale reads do is reported, not asserted: Consul documents that
//! default reads can be stale around a leader change and stale reads at any time.
//!
//! `CONSUL_KV_CONSISTENCY_SIZE=full` (what `cargo xtask consistency` sets) runs more clients
//! for longer. Needs the Consul binary (`cargo xtask consul`) and, to check the histories, Go;
//! without the binary the test says so and returns, without Go it records but cannot check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod lock;
mod registers;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consul_kv_tests::consul::{binary, http_get, ConsulCluster};
use consul_kv_tests::history::{Counts, History};
use consul_kv_tests::proxy::{Fault as ProxyFault, FaultProxy};
use serde_json::Value;

use crate::lock::{LockReport, Scenario, VARIANTS};
use crate::registers::MODES;

/// How big a run is.
#[derive(Debug, Clone)]
struct Size {
    name: &'static str,
    /// Clients per read mode (spread over the three servers).
    per_mode: usize,
    /// Registers per read mode.
    registers: usize,
    /// Workload before the fault.
    warm: Duration,
    /// How long a pause or a connection-cutting spell lasts.
    fault: Duration,
    /// Workload after the fault ends.
    after: Duration,
    /// Mean gap between one client's operations.
    gap: Duration,
    /// The lock scenarios run side by side under one leader pause: (session TTL, lock-delay).
    locks: Vec<(Duration, Duration)>,
    /// How long each contender holds the lock.
    hold: Duration,
}

fn size() -> Size {
    let full = std::env::var("CONSUL_KV_CONSISTENCY_SIZE").is_ok_and(|v| v == "full");
    if full {
        Size {
            name: "full",
            per_mode: 6,
            registers: 3,
            warm: Duration::from_secs(3),
            fault: Duration::from_secs(6),
            after: Duration::from_secs(4),
            gap: Duration::from_millis(30),
            // A short lock-delay, and Consul's defaults (TTL 15 s, lock-delay 15 s).
            locks: vec![
                (Duration::from_secs(15), Duration::from_secs(1)),
                (Duration::from_secs(15), Duration::from_secs(15)),
            ],
            hold: Duration::from_millis(1500),
        }
    } else {
        Size {
            name: "small",
            per_mode: 3,
            registers: 2,
            warm: Duration::from_millis(1500),
            fault: Duration::from_secs(4),
            after: Duration::from_secs(2),
            gap: Duration::from_millis(40),
            locks: vec![(Duration::from_secs(10), Duration::from_secs(1))],
            hold: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    FollowerPaused,
    ConnectionCut,
    LeaderPaused,
    LeaderKilled,
}

impl Fault {
    const ALL: [Self; 4] = [
        Self::FollowerPaused,
        Self::ConnectionCut,
        Self::LeaderPaused,
        Self::LeaderKilled,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::FollowerPaused => "follower paused",
            Self::ConnectionCut => "connection cut",
            Self::LeaderPaused => "leader paused",
            Self::LeaderKilled => "leader killed",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Self::FollowerPaused => "follower-paused",
            Self::ConnectionCut => "connection-cut",
            Self::LeaderPaused => "leader-paused",
            Self::LeaderKilled => "leader-killed",
        }
    }
}

/// `target/consistency` (or `CONSUL_KV_CONSISTENCY_DIR`), emptied of earlier results.
fn out_dir() -> PathBuf {
    let dir = std::env::var_os("CONSUL_KV_CONSISTENCY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/consistency"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap_or(dir)
}

/// The workspace root.
fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// Blocking cluster calls (they make short HTTP requests with their own timeouts).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Raft voters in the configuration, as `addr` reports it.
fn voters(addr: std::net::SocketAddr) -> Option<usize> {
    let (status, body) = http_get(
        addr,
        "/v1/operator/raft/configuration",
        Duration::from_secs(2),
    )
    .ok()?;
    let v: Value = serde_json::from_str(&body).ok().filter(|_| status == 200)?;
    let servers = v.get("Servers")?.as_array()?;
    Some(
        servers
            .iter()
            .filter(|s| s.get("Voter").and_then(Value::as_bool) == Some(true))
            .count(),
    )
}

/// Waits until every running server reports the same leader, that leader is running, a
/// consistent read succeeds through every server, and every running server is a Raft voter.
/// The last matters after a long pause: Consul's autopilot removes a server that was failed for
/// a while and re-adds it as a non-voter for a stabilization period, during which losing
/// another server loses the quorum.
fn wait_healthy(cluster: &mut ConsulCluster, timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        let mut leaders = Vec::new();
        let mut reads_ok = true;
        let mut running = 0;
        let mut voters_seen = None;
        for a in cluster.agents_mut().iter_mut() {
            if !a.is_running() || a.is_paused() {
                continue;
            }
            running += 1;
            if voters_seen.is_none() {
                voters_seen = voters(a.http_addr());
            }
            leaders.push(a.leader());
            let probe = http_get(
                a.http_addr(),
                "/v1/kv/consistency-probe?consistent",
                Duration::from_secs(2),
            );
            reads_ok &= matches!(probe, Ok((200 | 404, _)));
        }
        let agreed = leaders.first().cloned().flatten().is_some()
            && leaders.iter().all(|l| *l == leaders[0]);
        if agreed && reads_ok && voters_seen == Some(running) && cluster.leader_index().is_some() {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("cluster not healthy after {timeout:?}"))
}

/// What one fault run produced besides its history.
#[derive(Debug, Default)]
struct PhaseNotes {
    text: String,
    locks: Vec<LockReport>,
}

async fn run_phase(
    cluster: &mut ConsulCluster,
    fault: Fault,
    size: &Size,
    h: &Arc<History>,
    prefix: &str,
) -> PhaseNotes {
    let mut notes = PhaseNotes::default();
    let leader = blocking(|| cluster.leader_index()).expect("a leader");
    let (f1, f2) = ((leader + 1) % 3, (leader + 2) % 3);
    let agents: Vec<(String, String, std::net::SocketAddr)> = cluster
        .agents()
        .iter()
        .map(|a| (a.node().to_owned(), a.base_url(), a.http_addr()))
        .collect();
    let mut proxies = Vec::new();
    if fault == Fault::ConnectionCut {
        for (_, _, addr) in &agents {
            proxies.push(FaultProxy::start(*addr).await);
        }
    }
    let mut servers: Vec<(String, String)> = agents
        .iter()
        .enumerate()
        .map(|(i, (node, url, _))| {
            let role = if i == leader { "leader" } else { "follower" };
            let url = proxies
                .get(i)
                .map_or_else(|| url.clone(), FaultProxy::base_url);
            (format!("{node} ({role})"), url)
        })
        .collect();
    // A paused server gets as many clients again: each keeps one request queued on it, and
    // those requests are what it answers first when it wakes up.
    let mut per_mode = size.per_mode;
    let paused = match fault {
        Fault::FollowerPaused => Some(f1),
        Fault::LeaderPaused => Some(leader),
        _ => None,
    };
    if let Some(p) = paused {
        let extra = servers[p].clone();
        let n = servers.len();
        servers.extend(std::iter::repeat_n(extra, n));
        per_mode *= 2;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let odd = Arc::new(registers::Oddities::default());
    let workers = registers::spawn(
        h,
        &stop,
        &odd,
        prefix,
        &servers,
        per_mode,
        size.registers,
        size.gap,
    );
    tokio::time::sleep(size.warm).await;
    let fault_start = Instant::now();
    match fault {
        Fault::FollowerPaused => {
            blocking(|| cluster.agents_mut()[f1].pause()).unwrap();
            tokio::time::sleep(size.fault).await;
            blocking(|| cluster.agents_mut()[f1].resume()).unwrap();
            notes.text = format!("paused follower {f1} for {:?}", size.fault);
        }
        Fault::ConnectionCut => {
            for (i, p) in proxies.iter().enumerate() {
                p.set_random(
                    30,
                    vec![
                        ProxyFault::ResetBeforeForward,
                        ProxyFault::ResetAfterForward,
                        ProxyFault::ResetAfter(12),
                        ProxyFault::TruncateAt(40),
                    ],
                    0xC0FFEE + i as u64,
                );
            }
            tokio::time::sleep(size.fault).await;
            for p in &proxies {
                p.clear();
            }
            let forwarded: u64 = proxies
                .iter()
                .map(|p| p.stats().forwarded.load(Ordering::Relaxed))
                .sum();
            notes.text = format!(
                "30 % of requests cut for {:?}; {forwarded} requests forwarded",
                size.fault
            );
        }
        Fault::LeaderPaused => {
            notes.locks = leader_paused_with_locks(cluster, size, h, prefix, leader, f1, f2).await;
            notes.text = format!(
                "paused leader {leader} for {:.1} s",
                fault_start.elapsed().as_secs_f64()
            );
        }
        Fault::LeaderKilled => {
            let (killed, elected) = blocking(|| {
                let k = cluster.kill_leader();
                (k, cluster.wait_for_new_leader(Duration::from_secs(60)))
            });
            assert!(killed.is_some(), "no leader to kill");
            notes.text = format!("killed leader {killed:?}; new leader after {elected:?}");
        }
    }
    tokio::time::sleep(size.after).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(
        odd.malformed.load(Ordering::Relaxed),
        0,
        "a register held a value no client wrote"
    );
    drop(proxies);
    notes
}

/// The leader-pause run with the lock scenarios: in each, A holds a lock through the leader,
/// the leader is paused, and contenders take the lock in turn through a follower until A has
/// learned that it lost the lock (and at least one contender held it); then the leader resumes.
async fn leader_paused_with_locks(
    cluster: &mut ConsulCluster,
    size: &Size,
    h: &Arc<History>,
    prefix: &str,
    leader: usize,
    f1: usize,
    f2: usize,
) -> Vec<LockReport> {
    let url = |i: usize| cluster.agents()[i].base_url();
    let holder_a = registers::client(&url(leader));
    let contender = registers::client(&url(f1));
    let store = registers::client(&url(f2));
    let mut holders = Vec::new();
    for (i, (ttl, delay)) in size.locks.iter().enumerate() {
        let scenario = Arc::new(Scenario::new(
            h.clone(),
            &format!("{prefix}/lock{i}"),
            *ttl,
            *delay,
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let a = scenario
            .acquire("A", &holder_a, &store, deadline)
            .await
            .expect("holder A acquires the free lock");
        let stop_a = Arc::new(AtomicBool::new(false));
        let a_task = tokio::spawn({
            let (scenario, store, stop_a) = (scenario.clone(), store.clone(), stop_a.clone());
            async move {
                scenario.work("A", &a, &store, &stop_a, None).await;
                a
            }
        });
        holders.push((scenario, stop_a, a_task));
    }
    blocking(|| cluster.agents_mut()[leader].pause()).unwrap();
    let paused_at = tokio::time::Instant::now();
    let mut contenders = Vec::new();
    for (scenario, _, a_task) in &holders {
        // Long enough for the election, the failure detection that invalidates A's session,
        // the lock-delay and A's own TTL; the cap bounds the run if something never happens.
        let cap = paused_at + scenario.ttl * 2 + scenario.lock_delay + Duration::from_secs(10);
        let (scenario, contender, store) = (scenario.clone(), contender.clone(), store.clone());
        let a_done = a_task.abort_handle();
        let hold = size.hold;
        contenders.push(tokio::spawn(async move {
            let names = ["B", "C", "D", "E", "F", "G", "H"];
            // Each contender holds, then releases; the loop ends at the first one that cannot
            // acquire before the cap.
            for (n, name) in names.into_iter().enumerate() {
                if tokio::time::Instant::now() >= cap || (a_done.is_finished() && n > 0) {
                    break;
                }
                let Some(lock) = scenario.acquire(name, &contender, &store, cap).await else {
                    break;
                };
                let never = AtomicBool::new(false);
                scenario.work(name, &lock, &store, &never, Some(hold)).await;
                let _ = lock.release().await;
            }
        }));
    }
    for c in contenders {
        c.await.unwrap();
    }
    // Never shorter than a pause of the other runs.
    tokio::time::sleep_until(paused_at + size.fault).await;
    blocking(|| cluster.agents_mut()[leader].resume()).unwrap();
    let mut reports = Vec::new();
    for (scenario, stop_a, a_task) in holders {
        // A learns of the loss from its monitor once its agent answers again.
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while !a_task.is_finished() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        stop_a.store(true, Ordering::Relaxed);
        drop(a_task.await.unwrap());
        reports.push(scenario.report());
    }
    reports
}

/// The Go checker: `CONSUL_KV_LINEARIZABILITY_BIN`, else built from `xtask/linearizability`
/// into `dir`. `Err` says why there is none.
fn checker(dir: &Path) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("CONSUL_KV_LINEARIZABILITY_BIN") {
        return Ok(PathBuf::from(p));
    }
    let go_ok = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !go_ok {
        return Err("no Go toolchain".into());
    }
    let bin = dir.join("linearizability");
    let src = root().join("xtask/linearizability");
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .output()
        .map_err(|e| format!("go build: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "go build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(bin)
}

/// One (fault, mode) row.
#[derive(Debug)]
struct Row {
    fault: Fault,
    mode: &'static str,
    path: PathBuf,
    counts: Counts,
    verdict: Option<Value>,
}

fn cell(v: &Option<Value>, field: &str) -> String {
    v.as_ref()
        .and_then(|v| v.get(field))
        .and_then(Value::as_str)
        .unwrap_or("not checked")
        .to_owned()
}

fn relative(p: &str) -> String {
    Path::new(p)
        .strip_prefix(root())
        .map_or_else(|_| p.to_owned(), |r| r.display().to_string())
}

fn table(rows: &[Row], locks: &[LockReport], horizon: u64, notes: &[String]) -> String {
    let mut t = String::new();
    t.push_str(
        "| fault | read mode | ops | failed | unknown | linearizable | writes + CAS alone | shortest anomaly |\n\
         |---|---|---:|---:|---:|---|---|---|\n",
    );
    for r in rows {
        let anomaly = r
            .verdict
            .as_ref()
            .and_then(|v| v.get("anomaly"))
            .and_then(Value::as_str)
            .map(|p| {
                let ops = r
                    .verdict
                    .as_ref()
                    .and_then(|v| v.get("anomaly_ops"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                format!("`{}` ({ops} ops)", relative(p))
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.fault.name(),
            r.mode,
            r.counts.ops,
            r.counts.fail,
            r.counts.unknown,
            cell(&r.verdict, "linearizable"),
            cell(&r.verdict, "writes_linearizable"),
            anomaly
        );
    }
    if !locks.is_empty() {
        t.push_str(
            "\nLock, leader paused: A holds the lock through the leader's agent; contenders take \
             it through a follower. The last three counts: writes the store accepted from a \
             holder after a newer holder had acquired the lock, of all writes it accepted:\n\n\
             | session TTL | lock-delay | holders | overlapping pairs | overlap | unfenced `set` | \
             txn `check-session` + `set` | txn `check-index` + `set` | fencing tokens (LockIndex) |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---|\n",
        );
    }
    for l in locks {
        let (pairs, secs) = l.overlaps(horizon);
        let late = |v: &str| {
            let (accepted, late) = l.effects(v);
            format!("{late} of {accepted}")
        };
        let tokens: Vec<String> = l
            .tenures
            .iter()
            .map(|t| format!("{} {}", t.holder, t.lock_index))
            .collect();
        let _ = writeln!(
            t,
            "| {:?} | {:?} | {} | {pairs} | {secs:.1} s | {} | {} | {} | {} |",
            l.ttl,
            l.lock_delay,
            l.tenures.len(),
            late(VARIANTS[0]),
            late(VARIANTS[1]),
            late(VARIANTS[2]),
            tokens.join(", ")
        );
    }
    if !notes.is_empty() {
        t.push('\n');
        for n in notes {
            let _ = writeln!(t, "- {n}");
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_under_faults() {
    let dir = out_dir();
    let Some(bin) = binary() else {
        let why = "no Consul binary (run `cargo xtask consul` or set CONSUL_KV_CONSUL_BIN)";
        std::fs::write(dir.join("SKIPPED"), why).unwrap();
        eprintln!("SKIPPED: {why}");
        return;
    };
    let size = size();
    let started = Instant::now();
    let h = Arc::new(History::new());
    let mut cluster = blocking(|| ConsulCluster::start(&bin, 3, Duration::from_secs(90))).unwrap();
    let pids: Vec<u32> = cluster.agents().iter().filter_map(|a| a.pid()).collect();
    let run = format!("consistency/{}-{}", std::process::id(), h.now());
    let mut notes = Vec::new();
    let mut lock_reports = Vec::new();
    for fault in Fault::ALL {
        let healthy = blocking(|| wait_healthy(&mut cluster, Duration::from_secs(60)))
            .unwrap_or_else(|e| panic!("before {}: {e}", fault.name()));
        let t0 = Instant::now();
        eprintln!(
            "consistency: {} (cluster healthy after {:.1} s)",
            fault.name(),
            healthy.as_secs_f64()
        );
        let prefix = format!("{run}/{}", fault.slug());
        let phase = run_phase(&mut cluster, fault, &size, &h, &prefix).await;
        notes.push(format!(
            "{}: {} (healthy after {:.1} s; run {:.1} s)",
            fault.name(),
            phase.text,
            healthy.as_secs_f64(),
            t0.elapsed().as_secs_f64()
        ));
        lock_reports.extend(phase.locks);
    }
    drop(cluster);
    let horizon = h.now();

    let mut rows = Vec::new();
    for fault in Fault::ALL {
        for (_, mode) in MODES {
            let ops = h.ops_under(&format!("{run}/{}/{mode}/", fault.slug()));
            let path = dir.join(format!("{}-{mode}.jsonl", fault.slug()));
            let counts = History::write_jsonl(&ops, &path).unwrap();
            rows.push(Row {
                fault,
                mode,
                path,
                counts,
                verdict: None,
            });
        }
    }
    for (i, l) in lock_reports.iter().enumerate() {
        std::fs::write(dir.join(format!("lock{i}.jsonl")), l.to_jsonl()).unwrap();
    }
    match checker(&dir) {
        Ok(bin) => {
            let out = Command::new(&bin)
                .arg("-timeout")
                .arg("120s")
                .args(rows.iter().map(|r| &r.path))
                .output()
                .expect("run the checker");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let verdicts: Vec<Value> = stdout
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            assert_eq!(
                verdicts.len(),
                rows.len(),
                "checker output: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            for (r, v) in rows.iter_mut().zip(verdicts) {
                r.verdict = Some(v);
            }
        }
        Err(why) => {
            std::fs::write(dir.join("UNCHECKED"), &why).unwrap();
            eprintln!("NOT CHECKED: {why}: the histories are in {}", dir.display());
            notes.push(format!("histories recorded but NOT CHECKED: {why}"));
        }
    }
    notes.push(format!(
        "size {}: {} clients per read mode, {} registers each; {:.0} s in all",
        size.name,
        size.per_mode,
        size.registers,
        started.elapsed().as_secs_f64()
    ));
    let t = table(&rows, &lock_reports, horizon, &notes);
    std::fs::write(dir.join("table.md"), &t).unwrap();
    println!("{t}");

    // Every Consul process is gone (SIGCONT, then SIGKILL, then reaped).
    for pid in &pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "consul process {pid} outlived the cluster"
        );
    }
    for r in &rows {
        assert!(
            r.counts.ok >= 10,
            "{} / {}: only {} operations answered",
            r.fault.name(),
            r.mode,
            r.counts.ok
        );
        if let Some(v) = &r.verdict {
            assert!(
                v.get("error").is_none(),
                "checker error on {}: {v}",
                r.path.display()
            );
            assert_eq!(
                cell(&r.verdict, "writes_linearizable"),
                "yes",
                "{} / {}: writes and CAS alone are not linearizable: {v}",
                r.fault.name(),
                r.mode
            );
            if r.mode == "consistent" {
                assert_eq!(
                    cell(&r.verdict, "linearizable"),
                    "yes",
                    "{}: consistent reads are not linearizable: {v}",
                    r.fault.name()
                );
            }
        }
    }
    assert_eq!(
        lock_reports.len(),
        size.locks.len(),
        "the lock scenarios ran"
    );
    for lock in &lock_reports {
        assert!(
            lock.tenures.len() >= 2,
            "no contender acquired the lock while the leader was paused: {:?}",
            lock.tenures
        );
        for v in ["session", "index"] {
            let (accepted, late) = lock.effects(v);
            assert!(accepted > 0, "no {v}-fenced write was ever accepted");
            assert_eq!(
                late, 0,
                "{v}-fenced writes of an old holder were accepted after a newer holder acquired"
            );
        }
    }
}
