//! The rows of the matrix that complete R1–R20: renewal under faults (R3), blocking calls at
//! maximum jitter (R5), parse cost and recursion (R13), and a leader-loss drill during the CAS
//! counter and watchers (R20). R19 (server conformance) is the conformance suite, which
//! `cargo xtask soak` runs and reports as its own row.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use consul_kv::proto::kv::ListItems;
use consul_kv::proto::Operation as _;
use consul_kv::{Consistency, SessionLost, WatchOptions};
use consul_kv_devserver::{DevServer, Jitter};
use consul_kv_tests::proxy::{Fault, FaultProxy};
use consul_kv_tests::workloads::{cas_increment, read_counter};

use crate::{client, devserver, figure, size};

/// Consul's shortest session TTL, which the server reports back and the keeper adopts.
const TTL: Duration = Duration::from_secs(10);

/// One R3 trial: a session kept alive through its own proxy; after a renewal succeeded, and a
/// random part of the renew interval later, every renewal fails (`500`, or a reset before the
/// request is forwarded) for `outage`. Returns whether the keeper falsely gave up.
async fn renewal_trial(
    upstream: std::net::SocketAddr,
    outage: Duration,
    phase: Duration,
    reset: bool,
) -> bool {
    let proxy = FaultProxy::start(upstream).await;
    let c = client(&proxy.base_url());
    let session = c.session().create().ttl(TTL).await.unwrap();
    let keeper = session.keep_alive();
    let renews = |p: &FaultProxy| {
        p.stats()
            .request_lines()
            .iter()
            .filter(|l| l.contains("/v1/session/renew/"))
            .count()
    };
    // Wait for the first successful renewal (at TTL/2), then for the phase.
    let deadline = Instant::now() + TTL * 2;
    while renews(&proxy) == 0 {
        assert!(Instant::now() < deadline, "no renewal was sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let observed = Instant::now();
    tokio::time::sleep(phase).await;
    proxy.set_default(if reset {
        Fault::ResetBeforeForward
    } else {
        Fault::Inject {
            status: 500,
            headers: Vec::new(),
            body: b"injected outage".to_vec(),
        }
    });
    tokio::time::sleep(outage).await;
    proxy.set_default(Fault::Pass);
    // Until the keeper would have given up had it been going to (1.5 × TTL after the last
    // success), and a second more for a renewal to succeed again.
    tokio::time::sleep_until((observed + TTL * 3 / 2 + Duration::from_secs(1)).into()).await;
    let false_expiry = !keeper.is_alive();
    let on_server = client(&upstream.to_string())
        .session()
        .info(session.id())
        .await;
    assert!(
        matches!(on_server, Ok(Some(_))),
        "the server lost the session: {on_server:?}"
    );
    let _ = keeper.stop().await;
    false_expiry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_renewal_survives_outages_shorter_than_the_ttl() {
    let server = devserver().await;
    let trials = size(4, 100);
    // The matrix's outage is 0.9 × TTL; at CI size, on a loaded machine, 0.5 × TTL keeps the
    // margin to the keeper's retry schedule well above any scheduling stall.
    let outage = if crate::soak() { TTL * 9 / 10 } else { TTL / 2 };
    let mut handles = Vec::new();
    for t in 0..trials {
        // Phases spread over the renew interval (TTL/2), where the outage may start.
        let phase = (TTL / 2) * (t as u32 % 10) / 10;
        handles.push(tokio::spawn(renewal_trial(
            server.addr(),
            outage,
            phase,
            t % 2 == 1,
        )));
    }
    let mut false_expiries = 0;
    for h in handles {
        if h.await.unwrap() {
            false_expiries += 1;
        }
    }
    // A 404 to a renewal ends the keeper with `Expired` within one renew interval.
    let c = client(&server.http_addr());
    let session = c.session().create().ttl(TTL).await.unwrap();
    let keeper = session.keep_alive();
    assert!(c.session().destroy(session.id()).await.unwrap());
    let t = Instant::now();
    let lost = tokio::time::timeout(TTL * 2, keeper.lost()).await;
    let expired_after = t.elapsed();
    let bound = crate::latency_bound(TTL / 2 + Duration::from_secs(1));
    figure(
        &format!("R3 renewal under faults, {trials} trials"),
        &format!(
            "{false_expiries} false expirations (outage {} s of 500s or resets at 10 phases; TTL 10 s); 404 → Expired after {} ms",
            outage.as_secs_f64(),
            expired_after.as_millis()
        ),
        &format!(
            "0 false expirations; 404 → SessionExpired within one renew interval (≤ {} ms)",
            bound.as_millis()
        ),
        false_expiries == 0
            && matches!(lost, Ok(SessionLost::Expired(_)))
            && expired_after <= bound,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_no_spurious_timeouts_at_maximum_jitter() {
    // The server holds every blocking call for exactly wait + wait/16.
    let server = DevServer::builder()
        .jitter(Jitter::Max)
        .start()
        .await
        .unwrap();
    // The default deadline: wait + wait/16 + 8 s.
    let c = consul_kv::Client::builder()
        .address(server.http_addr())
        .build()
        .unwrap();
    assert!(c.kv().set("r5/k", "v").await.unwrap());
    let index = c
        .kv()
        .get("r5/k")
        .await
        .unwrap()
        .unwrap()
        .consul()
        .last_index();
    let calls = size(100, 1_000);
    let tasks = 50;
    let wait = Duration::from_millis(160);
    let timeouts = Arc::new(AtomicUsize::new(0));
    let early = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (c, timeouts, early) = (c.clone(), timeouts.clone(), early.clone());
        handles.push(tokio::spawn(async move {
            for _ in (t..calls).step_by(tasks) {
                let t0 = Instant::now();
                match c.kv().get("r5/k").block(index, wait).await {
                    Ok(_) if t0.elapsed() < wait => {
                        early.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(e) if e.is_timeout() => {
                        timeouts.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let (timeouts, early) = (
        timeouts.load(Ordering::SeqCst),
        early.load(Ordering::SeqCst),
    );
    figure(
        &format!("R5 {calls} blocking calls at maximum jitter"),
        &format!(
            "{timeouts} spurious timeouts, {early} answered before the wait ({} ms wait held {} ms; {:.1} s)",
            wait.as_millis(),
            (wait + wait / 16).as_millis(),
            start.elapsed().as_secs_f64()
        ),
        "0 spurious timeouts with the default deadline",
        timeouts == 0 && early == 0,
    );
}

/// `n` entries of a `?recurse` answer, about `n × 150` bytes.
fn items_body(n: usize) -> Bytes {
    let mut s = String::from("[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"LockIndex":0,"Key":"app/config/{i:08}","Flags":0,"Value":"dmFsdWUgb2Yga2V5IHt9","CreateIndex":{i},"ModifyIndex":{i}}}"#
        ));
    }
    s.push(']');
    Bytes::from(s)
}

fn response(body: Bytes) -> http::Response<Bytes> {
    http::Response::builder()
        .status(200)
        .header("X-Consul-Index", "7")
        .body(body)
        .unwrap()
}

/// The least time of `runs` parses of `body` (the least is the parse without interference).
fn parse_time(body: &Bytes, runs: usize) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            let out = ListItems::new("app/")
                .parse(response(body.clone()))
                .unwrap();
            let took = t.elapsed();
            assert!(!out.value.is_empty());
            took
        })
        .min()
        .unwrap_or_default()
}

#[test]
fn r13_parse_cost_is_linear_and_recursion_bounded() {
    let small = items_body(size(2_000, 7_000));
    let large = items_body(size(20_000, 70_000));
    let runs = size(3, 7);
    // Warm up allocator and caches.
    let _ = parse_time(&small, 1);
    let t_small = parse_time(&small, runs);
    let t_large = parse_time(&large, runs);
    let per_mib = |t: Duration, b: &Bytes| t.as_secs_f64() * 1e3 / (b.len() as f64 / 1048576.0);
    // 10× the bytes: a linear parser takes about 10× the time, a quadratic one about 100×.
    let ratio = t_large.as_secs_f64() / t_small.as_secs_f64().max(1e-9);
    // Recursion: 10 000 nested arrays are refused by serde_json's depth limit, with a typed
    // error and no stack overflow, at every nesting an attacker may choose.
    let mut refused = 0;
    let depths = [200, 1_000, 10_000, 100_000];
    for depth in depths {
        let mut body = "[".repeat(depth);
        body.push_str(&"]".repeat(depth));
        let e = ListItems::new("app/").parse(response(Bytes::from(body)));
        if matches!(e, Err(consul_kv::proto::ResponseError::Json(_))) {
            refused += 1;
        }
    }
    figure(
        "R13 parse cost and recursion",
        &format!(
            "{:.0} KiB in {:.2} ms ({:.1} ms/MiB), 10× bytes in {:.2} ms ({:.1} ms/MiB): ratio {ratio:.1}; {refused}/{} nesting depths ≥ 200 refused as JSON errors",
            small.len() as f64 / 1024.0,
            t_small.as_secs_f64() * 1e3,
            per_mib(t_small, &small),
            t_large.as_secs_f64() * 1e3,
            per_mib(t_large, &large),
            depths.len()
        ),
        "10× bytes ≤ 30× time (linear; quadratic would be ~100×); depth limit kept",
        ratio <= 30.0 && refused == depths.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r20_leader_loss_drill_during_cas_counter_and_watchers() {
    let server = DevServer::builder()
        .leader_hold(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    let c = client(&server.http_addr());
    assert!(c.kv().set("r20/marker", "m").await.unwrap());
    let (tasks, each) = (size(4, 16), size(20, 100));
    let outage = if crate::soak() {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(2)
    };
    // Watchers of the counter. Their error backoff is capped at 1 s: with the default cap
    // (30 s, doubling from 200 ms) a watcher that failed all through a 10 s outage may sleep up
    // to 6.4 s after the leader is back, by design (it spares a recovering cluster); a
    // service that wants to follow an election closely sets a lower cap, as here.
    let watchers = size(4, 16);
    let watch_options =
        WatchOptions::default().backoff(Duration::from_millis(100), Duration::from_secs(1));
    let finals: Arc<Vec<std::sync::Mutex<Vec<u8>>>> = Arc::new(
        (0..watchers)
            .map(|_| std::sync::Mutex::new(Vec::new()))
            .collect(),
    );
    let mut watch_tasks = Vec::new();
    for w in 0..watchers {
        let (c, finals, watch_options) = (c.clone(), finals.clone(), watch_options.clone());
        watch_tasks.push(tokio::spawn(async move {
            let mut watch = c.kv().watch("r20/counter").options(watch_options);
            while let Some(item) = watch.next().await {
                if let Ok(Some(k)) = item {
                    *finals[w].lock().unwrap() = k.bytes().to_vec();
                }
            }
        }));
    }
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..each {
                cas_increment(&c, "r20", &format!("t{t}-{i}")).await;
            }
        }));
    }
    // The drill: the leader goes away mid-run, stale reads say so, then it comes back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.set_leader(false);
    tokio::time::sleep(outage / 2).await;
    let stale = c
        .kv()
        .get("r20/marker")
        .consistency(Consistency::Stale)
        .await
        .unwrap();
    let flagged = stale.as_ref().is_some_and(|k| !k.consul().known_leader());
    tokio::time::sleep(outage / 2).await;
    server.set_leader(true);
    for h in handles {
        h.await.unwrap();
    }
    let took = start.elapsed();
    let total = (tasks * each) as u64;
    let counter = read_counter(&c, "r20").await.unwrap_or(0);
    let log = c.kv().items("r20/log/").await.unwrap();
    // Watchers converge on the final value after the recovery.
    let want = total.to_string().into_bytes();
    let bound = crate::latency_bound(Duration::from_secs(2));
    let t = Instant::now();
    let converged = loop {
        if finals.iter().all(|f| *f.lock().unwrap() == want) {
            break Some(t.elapsed());
        }
        if t.elapsed() > Duration::from_secs(30) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    for w in watch_tasks {
        w.abort();
    }
    figure(
        &format!("R20 leader-loss drill ({} s) during CAS {tasks}×{each} and {watchers} watchers", outage.as_secs()),
        &format!(
            "final {counter} of {total}, {} log entries; stale read during the outage KnownLeader=false: {flagged}; watchers converged {} ms after the run; {:.1} s",
            log.len(),
            converged.map_or(-1, |d| d.as_millis() as i64),
            took.as_secs_f64()
        ),
        &format!(
            "exact count, one chain; outage flagged; watchers converge ≤ {} ms",
            bound.as_millis()
        ),
        counter == total
            && log.len() as u64 == total
            && flagged
            && converged.is_some_and(|d| d <= bound),
    );
}
