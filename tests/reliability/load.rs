//! Load with correctness checks: CAS counter (R1), lock exclusion and loss (R2), watchers
//! (R4), and connection caps and leaks (R17).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consul_kv_devserver::DevServer;
use consul_kv_tests::proxy::{Fault, FaultProxy};
use consul_kv_tests::workloads::{cas_increment, read_counter};

use crate::{client, devserver, figure, size, EXCLUSIVE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_cas_counter_through_random_faults_loses_nothing() {
    let _x = crate::EXCLUSIVE.read().await;
    let server = devserver().await;
    let proxy = FaultProxy::start(server.addr()).await;
    proxy.set_random(
        10,
        vec![
            Fault::too_many_requests(None),
            Fault::no_leader(),
            Fault::unavailable(),
            Fault::TruncateAt(40),
            Fault::ResetAfterForward,
            Fault::DelayHeaders(Duration::from_millis(30)),
            Fault::CloseAfterResponse,
        ],
        7,
    );
    let (tasks, each) = (size(8, 32), size(25, 500));
    let c = client(&proxy.base_url());
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..each {
                let (n, _) = cas_increment(&c, "r1", &format!("t{t}-{i}")).await;
                mine.push(n);
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for h in handles {
        claimed.extend(h.await.unwrap());
    }
    let took = start.elapsed();
    proxy.clear();
    let total = (tasks * each) as u64;
    let clean = client(&server.http_addr());
    let counter = read_counter(&clean, "r1").await.unwrap_or(0);
    // The chain: every value 1..=total was produced exactly once, by the writer who claimed it.
    let log = clean.kv().items("r1/log/").await.unwrap();
    let tokens: HashSet<&[u8]> = log.entries().iter().map(|p| p.value_bytes()).collect();
    claimed.sort_unstable();
    let chain_ok = claimed == (1..=total).collect::<Vec<_>>()
        && log.entries().len() as u64 == total
        && tokens.len() as u64 == total;
    figure(
        &format!("R1 CAS counter {tasks}×{each}, 10% faults"),
        &format!(
            "final {counter} of {total}; chain intact: {chain_ok}; {:.1} s",
            took.as_secs_f64()
        ),
        "exact count, one chain, no duplicate",
        counter == total && chain_ok,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_lock_contenders_never_overlap() {
    let _x = crate::EXCLUSIVE.read().await;
    let server = devserver().await;
    let (contenders, rounds) = (size(4, 8), size(10, 100));
    let holders = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..contenders {
        let c = client(&server.http_addr());
        let (holders, overlaps, counter) = (holders.clone(), overlaps.clone(), counter.clone());
        handles.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let lock = c
                    .lock("r2/leader")
                    .lock_delay(Duration::ZERO)
                    .acquire()
                    .await
                    .unwrap();
                if holders.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                // A non-atomic read-modify-write that only exclusion keeps correct.
                let v = counter.load(Ordering::SeqCst);
                tokio::task::yield_now().await;
                counter.store(v + 1, Ordering::SeqCst);
                holders.fetch_sub(1, Ordering::SeqCst);
                lock.release().await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let total = (contenders * rounds) as u64;
    let n = counter.load(Ordering::SeqCst);
    let o = overlaps.load(Ordering::SeqCst);
    figure(
        &format!("R2 lock {contenders} contenders × {rounds}"),
        &format!(
            "{o} overlaps, counter {n}/{total}, {:.1} s",
            start.elapsed().as_secs_f64()
        ),
        "0 overlapping holds, exact counter",
        o == 0 && n == total,
    );
}

#[tokio::test]
async fn r2_lock_loss_is_reported_within_a_second_and_renewal_stops() {
    let bound = crate::latency_bound(Duration::from_secs(1));
    let _x = crate::EXCLUSIVE.read().await;
    let server = devserver().await;
    let proxy = FaultProxy::start(server.addr()).await;
    let c = client(&proxy.base_url());
    // The shortest TTL Consul accepts: the keeper renews every 5 s.
    let lock = c
        .lock("r2/loss")
        .session_ttl(Duration::from_secs(10))
        .acquire()
        .await
        .unwrap();
    let session = lock.session().clone();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    assert!(client(&server.http_addr())
        .session()
        .destroy(&session)
        .await
        .unwrap());
    let lost = tokio::time::timeout(Duration::from_secs(10), lock.lost()).await;
    let took = start.elapsed();
    let renews = |p: &FaultProxy| {
        p.stats()
            .request_lines()
            .iter()
            .filter(|l| l.contains("/v1/session/renew/"))
            .count()
    };
    // Renewal must stop within 1 s of the loss: over the next renew period nothing is sent.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_grace = renews(&proxy);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let later = renews(&proxy);
    figure(
        "R2 lock loss after session destroy",
        &format!(
            "loss reported after {} ms; renew requests 1–7 s after the loss: {}",
            took.as_millis(),
            later - after_grace
        ),
        &format!(
            "loss ≤ {} ms; renewal stopped within 1 s",
            bound.as_millis()
        ),
        lost.is_ok() && took <= bound && later == after_grace,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_watchers_converge_on_the_final_value_across_deletes_and_a_restart() {
    let _x = EXCLUSIVE.write().await;
    let first = DevServer::builder().start().await.unwrap();
    let addr = first.addr();
    let proxy = FaultProxy::start(addr).await;
    let c = client(&proxy.base_url());
    let (key_watchers, prefix_watchers, writes) = (size(16, 64), size(4, 16), size(600, 10_000));
    let keys = 8;
    let finals: Arc<Vec<std::sync::Mutex<Vec<u8>>>> = Arc::new(
        (0..key_watchers + prefix_watchers)
            .map(|_| std::sync::Mutex::new(Vec::new()))
            .collect(),
    );
    let mut tasks = Vec::new();
    for w in 0..key_watchers {
        let mut watch = c
            .kv()
            .watch(format!("r4/k{}", w % keys))
            .wait(Duration::from_secs(5))
            .min_interval(Duration::from_millis(100));
        let finals = finals.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = watch.next().await {
                if let Ok(v) = ev {
                    *finals[w].lock().unwrap() = v.map(|k| k.bytes().to_vec()).unwrap_or_default();
                }
            }
        }));
    }
    for p in 0..prefix_watchers {
        let mut watch = c
            .kv()
            .watch_prefix("r4/")
            .wait(Duration::from_secs(5))
            .min_interval(Duration::from_millis(100));
        let finals = finals.clone();
        let slot = key_watchers + p;
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = watch.next().await {
                if let Ok(items) = ev {
                    let summary: Vec<u8> = items
                        .entries()
                        .iter()
                        .flat_map(|e| e.value_bytes().iter().copied().chain([b';']))
                        .collect();
                    *finals[slot].lock().unwrap() = summary;
                }
            }
        }));
    }
    let writer = client(&proxy.base_url());
    // Writes are repeated until they succeed: across the restart a write may fail with
    // OutcomeUnknown, and writing the same value again is harmless here.
    let set = |k: usize, v: String| {
        let writer = writer.clone();
        async move {
            while writer
                .kv()
                .set(format!("r4/k{k}"), v.clone())
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let mut server = Some(first);
    let mut restart = Duration::ZERO;
    for i in 0..writes {
        let k = i % keys;
        set(k, format!("v{i}")).await;
        if i % 97 == 13 {
            // Delete the key with the highest index, then write it again.
            while writer.kv().delete(format!("r4/k{k}")).await.is_err() {}
            set(k, format!("v{i}")).await;
        }
        if i == writes / 2 {
            // Restart: a fresh server on the same port, so every index goes back to the start.
            let t = Instant::now();
            server.take().unwrap().shutdown().await.unwrap();
            server = Some(DevServer::builder().listen(addr).start().await.unwrap());
            restart = t.elapsed();
        }
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    // The final state: k0..k7 hold the last value written to each.
    let expected_key = |w: usize| {
        let k = w % keys;
        let last = (0..writes).rev().find(|i| i % keys == k).unwrap();
        format!("v{last}").into_bytes()
    };
    let expected_prefix: Vec<u8> = (0..keys)
        .flat_map(|k| {
            let last = (0..writes).rev().find(|i| i % keys == k).unwrap();
            format!("v{last};").into_bytes()
        })
        .collect();
    let last_write = Instant::now();
    let mut converged_after = None;
    while last_write.elapsed() < Duration::from_secs(10) {
        let all = (0..key_watchers + prefix_watchers).all(|w| {
            let got = finals[w].lock().unwrap().clone();
            if w < key_watchers {
                got == expected_key(w)
            } else {
                got == expected_prefix
            }
        });
        if all {
            converged_after = Some(last_write.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let requests = proxy.stats().requests.load(Ordering::Relaxed) as f64;
    let watchers = (key_watchers + prefix_watchers) as f64;
    let per_watcher = (requests - writes as f64 * 1.02) / watchers;
    for t in tasks {
        t.abort();
    }
    figure(
        &format!("R4 {key_watchers}+{prefix_watchers} watchers, {writes} writes, deletes, restart"),
        &format!(
            "all converged after {} ms; ~{per_watcher:.0} requests per watcher; restart took {} ms",
            converged_after.map_or(-1, |d| d.as_millis() as i64),
            restart.as_millis()
        ),
        &format!(
            "≤ {} ms after the last write; no busy loop",
            crate::latency_bound(Duration::from_secs(1)).as_millis()
        ),
        converged_after.is_some_and(|d| d <= crate::latency_bound(Duration::from_secs(1)))
            && per_watcher < writes as f64,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_connection_cap_and_no_leaks_from_dropped_blocking_calls() {
    // Open fds are process-wide: count them in a process that runs nothing else.
    if !crate::isolated("load::r17_connection_cap_and_no_leaks_from_dropped_blocking_calls") {
        return;
    }
    let _x = EXCLUSIVE.write().await;
    let server = devserver().await;
    let proxy = FaultProxy::start(server.addr()).await;
    let cap = 64;
    let c = consul_kv::Client::builder()
        .address(proxy.base_url())
        .max_connections_per_host(cap)
        .build()
        .unwrap();
    c.kv().set("r17/k", "v").await.unwrap();
    let index = c
        .kv()
        .get("r17/k")
        .await
        .unwrap()
        .unwrap()
        .consul()
        .last_index();
    let baseline_fds = crate::open_fds();
    // Many concurrent blocking reads through one client.
    let concurrent = size(100, 500);
    let mut handles = Vec::new();
    for _ in 0..concurrent {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            c.kv()
                .get("r17/k")
                .block(index, Duration::from_millis(300))
                .await
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let peak = proxy.stats().peak_open.load(Ordering::Relaxed);
    // Dropped blocking futures: each is cancelled after it reached the server.
    let dropped = size(1_000, 10_000);
    for _ in 0..dropped / 100 {
        let mut batch = Vec::new();
        for _ in 0..100 {
            let c = c.clone();
            batch.push(tokio::spawn(async move {
                let _ = c
                    .kv()
                    .get("r17/k")
                    .block(index, Duration::from_secs(30))
                    .await;
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for b in batch {
            b.abort();
        }
    }
    // Give the pool's idle connections and the server's waiters time to go.
    let mut waiters = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        waiters = server.waiters();
        if waiters == 0 && crate::open_fds() <= baseline_fds + 2 + cap {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after_drop = crate::open_fds();
    figure(
        &format!("R17 {concurrent} blocking reads, {dropped} dropped blocking futures (cap {cap})"),
        &format!(
            "peak {peak} connections; server waiters {waiters}; fds {baseline_fds} → {after_drop} after the client drops"
        ),
        "peak ≤ cap; waiters 0; fds back to baseline ± 2",
        peak as usize <= cap && waiters == 0 && after_drop <= baseline_fds + 2,
    );
}
