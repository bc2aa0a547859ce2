//! Leader failover against a real three-server Consul cluster on loopback.
//!
//! The client talks to a follower; mid-run the leader is killed. A CAS counter (8 tasks × 200
//! increments) must end exact, every watcher must converge on the final value, and no call may
//! hang past its deadline. The outage as the client saw it is printed.
//!
//! Needs the Consul binary from `cargo xtask consul` (or `CONSUL_KV_CONSUL_BIN`); without it
//! the test records a skip and returns, unless `CONSUL_KV_REQUIRE_CONSUL=1` (which `cargo xtask
//! ci` sets after it has built the binary): then a missing binary fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consul_kv::{Client, RetryPolicy};
use consul_kv_tests::consul::{binary, ConsulCluster};
use consul_kv_tests::workloads::{cas_increment, read_counter};

const CALL_DEADLINE: Duration = Duration::from_secs(10);

fn client(base: &str) -> Client {
    Client::builder()
        .address(base)
        .timeout(CALL_DEADLINE)
        .retry(
            RetryPolicy::default()
                .max_attempts(12)
                .base(Duration::from_millis(100))
                .cap(Duration::from_secs(1))
                .budget(Duration::from_secs(20)),
        )
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_during_cas_counter_and_watches() {
    let Some(bin) = binary() else {
        assert!(
            std::env::var_os("CONSUL_KV_REQUIRE_CONSUL").is_none(),
            "CONSUL_KV_REQUIRE_CONSUL is set but there is no Consul binary"
        );
        consul_kv_tests::skips::record(
            "cluster-failover",
            "no Consul binary (run `cargo xtask consul` or set CONSUL_KV_CONSUL_BIN)",
        );
        return;
    };
    let mut cluster = tokio::task::spawn_blocking(move || {
        ConsulCluster::start(&bin, 3, Duration::from_secs(60)).unwrap()
    })
    .await
    .unwrap();
    let leader = cluster.leader_index().expect("a leader");
    let follower = (leader + 1) % 3;
    let base = cluster.agents()[follower].base_url();
    let c = client(&base);
    let (tasks, each) = (8usize, 200usize);
    let total = (tasks * each) as u64;

    // Watchers on a key the writer below keeps changing.
    let finals: Arc<Vec<Mutex<Vec<u8>>>> =
        Arc::new((0..8).map(|_| Mutex::new(Vec::new())).collect());
    let mut watchers = Vec::new();
    for w in 0..8 {
        let mut watch = c
            .kv()
            .watch("cluster/watched")
            .wait(Duration::from_secs(5))
            .min_interval(Duration::from_millis(50));
        let finals = finals.clone();
        watchers.push(tokio::spawn(async move {
            while let Some(ev) = watch.next().await {
                if let Ok(Some(k)) = ev {
                    *finals[w].lock().unwrap() = k.bytes().to_vec();
                }
            }
        }));
    }

    // The outage as clients see it: the longest gap between two successful increments.
    let last_success = Arc::new(Mutex::new(Instant::now()));
    let longest_gap = Arc::new(AtomicU64::new(0));
    let hangs = Arc::new(AtomicU64::new(0));
    let done_count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let c = c.clone();
        let (last_success, longest_gap, hangs, done_count) = (
            last_success.clone(),
            longest_gap.clone(),
            hangs.clone(),
            done_count.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..each {
                let token = format!("t{t}-{i}");
                // A whole increment may take several calls; none may hang.
                let res = tokio::time::timeout(
                    Duration::from_secs(120),
                    cas_increment(&c, "cluster", &token),
                )
                .await;
                let Ok((n, _)) = res else {
                    hangs.fetch_add(1, Ordering::Relaxed);
                    panic!("increment {token} hung");
                };
                mine.push(n);
                done_count.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                let mut last = last_success.lock().unwrap();
                let gap = now.duration_since(*last).as_millis() as u64;
                longest_gap.fetch_max(gap, Ordering::Relaxed);
                *last = now;
            }
            mine
        }));
    }

    // A writer for the watched key; it stops with the counter tasks.
    let writer_done = Arc::new(AtomicBool::new(false));
    let writer = {
        let c = c.clone();
        let writer_done = writer_done.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            let mut last_written = None;
            while !writer_done.load(Ordering::Relaxed) {
                let v = format!("w{i}");
                let res = tokio::time::timeout(
                    CALL_DEADLINE * 3,
                    c.kv().set("cluster/watched", v.clone()),
                )
                .await;
                if let Ok(Ok(true)) = res {
                    last_written = Some(v);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The final value, written once more after the cluster settled.
            loop {
                let v = format!("final-{i}");
                if let Ok(true) = c.kv().set("cluster/watched", v.clone()).await {
                    return (v, last_written);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // Kill the leader a third of the way in.
    while done_count.load(Ordering::Relaxed) < total / 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_at = Instant::now();
    let killed = tokio::task::spawn_blocking(move || {
        let k = cluster.kill_leader();
        let elected = cluster.wait_for_new_leader(Duration::from_secs(60));
        (cluster, k, elected)
    })
    .await
    .unwrap();
    let (cluster, killed_index, elected) = killed;
    eprintln!(
        "killed server {killed_index:?} at {:.1} s; new leader after {elected:?}",
        killed_at.duration_since(start).as_secs_f64()
    );

    let mut claimed = Vec::new();
    for h in handles {
        claimed.extend(h.await.unwrap());
    }
    writer_done.store(true, Ordering::Relaxed);
    let (final_value, _) = writer.await.unwrap();
    let took = start.elapsed();

    // Exact count and one chain.
    let counter = read_counter(&c, "cluster").await.unwrap();
    claimed.sort_unstable();
    let chain_ok = claimed == (1..=total).collect::<Vec<_>>();
    let log = c.kv().items("cluster/log/").await.unwrap();

    // Every watcher converges on the final value.
    let converge_start = Instant::now();
    let mut converged = None;
    while converge_start.elapsed() < Duration::from_secs(20) {
        if finals
            .iter()
            .all(|f| *f.lock().unwrap() == final_value.as_bytes())
        {
            converged = Some(converge_start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for w in watchers {
        w.abort();
    }
    drop(cluster);
    let gap = longest_gap.load(Ordering::Relaxed);
    println!(
        "CLUSTER | {tasks}×{each} CAS increments through a leader kill | final {counter}/{total}, chain {chain_ok}, \
         {} log entries | longest client-visible outage {gap} ms (election {elected:?}) | watchers converged after {converged:?} | \
         hangs {} | total {:.1} s",
        log.entries().len(),
        hangs.load(Ordering::Relaxed),
        took.as_secs_f64()
    );
    assert!(killed_index.is_some() && elected.is_some());
    assert_eq!(counter, total);
    assert!(chain_ok);
    assert_eq!(log.entries().len() as u64, total);
    assert!(converged.is_some(), "watchers did not converge");
    assert_eq!(hangs.load(Ordering::Relaxed), 0);
}
