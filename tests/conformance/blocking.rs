//! Blocking queries: wake-ups, timeouts, jitter, disconnects and many waiters.

use std::time::{Duration, Instant};

use consul_kv_devserver::{DevServer, Jitter};
use consul_kv_tests::server;

use crate::client::{unique, C};
use crate::setup;

async fn index_of(c: &C, path: &str) -> u64 {
    c.get(path).await.index()
}

#[tokio::test]
async fn returns_at_once_when_the_index_is_behind() {
    let (_s, c, p) = setup("block-behind").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "1").await;
    let idx = index_of(&c, &format!("/v1/kv/{p}k")).await;
    let t = Instant::now();
    let r = c
        .get(&format!("/v1/kv/{p}k?index={}&wait=10s", idx - 1))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.index(), idx);
    // At once, not after the 10 s wait (half of it is a bound that holds under load).
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_write_to_the_key_wakes_the_query() {
    let (_s, c, p) = setup("block-wake").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "1").await;
    let idx = index_of(&c, &format!("/v1/kv/{p}k")).await;
    let c2 = c.clone();
    let path = format!("/v1/kv/{p}k?index={idx}&wait=30s");
    let t = Instant::now();
    let waiter = tokio::spawn(async move { c2.get(&path).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.put_ok(&format!("/v1/kv/{p}k"), "2").await;
    let r = waiter.await.unwrap();
    let took = t.elapsed();
    assert_eq!(r.status, 200);
    assert!(r.index() > idx);
    // Woken by the write, not by the 30 s wait.
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(took >= Duration::from_millis(200));
}

#[tokio::test]
async fn unrelated_writes_do_not_end_the_wait() {
    let (_s, c, p) = setup("block-unrelated").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "1").await;
    let idx = index_of(&c, &format!("/v1/kv/{p}k")).await;
    let c2 = c.clone();
    let path = format!("/v1/kv/{p}k?index={idx}&wait=600ms");
    let t = Instant::now();
    let waiter = tokio::spawn(async move { c2.get(&path).await });
    for i in 0..5 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.put_ok(&format!("/v1/kv/{p}other{i}"), "x").await;
    }
    let r = waiter.await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.index(), idx, "timeout answers the unchanged result");
}

#[tokio::test]
async fn timeout_stays_within_wait_plus_a_sixteenth() {
    let (_s, c, p) = setup("block-jitter").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "1").await;
    let idx = index_of(&c, &format!("/v1/kv/{p}k")).await;
    // The shortest of three holds is the server's hold plus the least scheduling delay: a
    // loaded machine can slow one answer, not all three. Wait 2 s, so wait/16 = 125 ms.
    let mut shortest = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let r = c.get(&format!("/v1/kv/{p}k?index={idx}&wait=2s")).await;
        let took = t.elapsed();
        assert_eq!(r.status, 200);
        assert!(took >= Duration::from_secs(2), "{took:?}");
        shortest = shortest.min(took);
    }
    assert!(
        shortest <= Duration::from_millis(2000 + 125 + 600),
        "jitter must stay below wait/16: shortest hold {shortest:?}"
    );
}

/// Devserver-only: `Jitter::Max` holds for exactly wait + wait/16.
#[tokio::test]
async fn max_jitter_mode_is_exact() {
    let Some(s) =
        server::start_devserver("max-jitter", DevServer::builder().jitter(Jitter::Max)).await
    else {
        return;
    };
    let c = C::new(&s.base_url());
    let p = unique("max-jitter");
    let t = Instant::now();
    let r = c.get(&format!("/v1/kv/{p}k?index=1&wait=1600ms")).await;
    let took = t.elapsed();
    assert_eq!(r.status, 404);
    assert!(took >= Duration::from_millis(1700), "{took:?}");
    // The held time is the lower bound above (no jitter would be 1600 ms); the upper bound
    // only rules out the default 5 min wait, with room for a loaded machine.
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// Devserver-only: the cap (`max_query_time`, 10 min by default) is configurable.
#[tokio::test]
async fn wait_is_capped_by_max_query_time() {
    let Some(s) = server::start_devserver(
        "max-query-time",
        DevServer::builder()
            .jitter(Jitter::None)
            .max_query_time(Duration::from_millis(300))
            .default_query_time(Duration::from_millis(200)),
    )
    .await
    else {
        return;
    };
    let c = C::new(&s.base_url());
    let p = unique("max-query-time");
    let t = Instant::now();
    c.get(&format!("/v1/kv/{p}k?index=1&wait=10m")).await;
    let capped = t.elapsed();
    assert!(
        capped >= Duration::from_millis(300) && capped < Duration::from_secs(10),
        "{capped:?}"
    );
    let t = Instant::now();
    c.get(&format!("/v1/kv/{p}k?index=1")).await;
    let default = t.elapsed();
    assert!(
        default >= Duration::from_millis(200) && default < Duration::from_secs(10),
        "{default:?}"
    );
}

#[tokio::test]
async fn prefix_query_wakes_on_a_delete_under_the_prefix() {
    let (_s, c, p) = setup("block-prefix").await;
    c.put_ok(&format!("/v1/kv/{p}a"), "1").await;
    c.put_ok(&format!("/v1/kv/{p}b"), "1").await;
    let idx = index_of(&c, &format!("/v1/kv/{p}?recurse")).await;
    let c2 = c.clone();
    let path = format!("/v1/kv/{p}?recurse&index={idx}&wait=30s");
    let waiter = tokio::spawn(async move { c2.get(&path).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    c.put_ok(&format!("/v1/kv/outside-{p}x"), "x").await;
    c.delete(&format!("/v1/kv/{p}a")).await;
    let r = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert!(r.index() > idx);
    c.delete(&format!("/v1/kv/outside-{p}x")).await;
}

/// Version-dependent: since Consul 1.11 a blocking read of a missing key keeps blocking until
/// the key exists (older servers returned on any KV write).
#[tokio::test]
async fn missing_key_query_waits_for_the_key() {
    let (_s, c, p) = setup("block-missing").await;
    let idx = index_of(&c, &format!("/v1/kv/{p}k")).await;
    let c2 = c.clone();
    let path = format!("/v1/kv/{p}k?index={idx}&wait=30s");
    let t = Instant::now();
    let waiter = tokio::spawn(async move { c2.get(&path).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.put_ok(&format!("/v1/kv/{p}unrelated"), "x").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "an unrelated write must not end the wait"
    );
    c.put_ok(&format!("/v1/kv/{p}k"), "now").await;
    let r = waiter.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(400));
}

/// Devserver-only: the pre-1.11 behaviour on request.
#[tokio::test]
async fn legacy_mode_wakes_missing_key_queries_on_any_write() {
    let Some(s) = server::start_devserver(
        "legacy-missing",
        DevServer::builder().legacy_missing_key_wakeups(true),
    )
    .await
    else {
        return;
    };
    let c = C::new(&s.base_url());
    let p = unique("legacy-missing");
    let idx = index_of(&c, &format!("/v1/kv/{p}k")).await;
    let c2 = c.clone();
    let path = format!("/v1/kv/{p}k?index={idx}&wait=30s");
    let waiter = tokio::spawn(async move { c2.get(&path).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.put_ok(&format!("/v1/kv/{p}unrelated"), "x").await;
    let r = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(r.status, 404);
    assert!(r.index() > idx);
}

#[tokio::test]
async fn an_index_from_the_future_blocks_until_timeout() {
    let (_s, c, p) = setup("block-future").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "1").await;
    let idx = index_of(&c, &format!("/v1/kv/{p}k")).await;
    let t = Instant::now();
    let r = c
        .get(&format!("/v1/kv/{p}k?index={}&wait=300ms", idx + 1_000_000))
        .await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.index(), idx);
}

#[tokio::test]
async fn session_info_blocks_until_destroy() {
    let (_s, c, _p) = setup("block-session").await;
    let id = c.session("{}").await;
    let r = c.get(&format!("/v1/session/info/{id}")).await;
    let idx = r.index();
    let c2 = c.clone();
    let path = format!("/v1/session/info/{id}?index={idx}&wait=30s");
    let waiter = tokio::spawn(async move { c2.get(&path).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    c.put_ok(&format!("/v1/session/destroy/{id}"), "").await;
    let r = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(r.json(), serde_json::json!([]));
    assert!(r.index() > idx);
}

/// Devserver-only: uses the waiter count. A client that disconnects frees its waiter.
#[tokio::test]
async fn a_disconnect_frees_the_waiter() {
    let (s, c, p) = setup("block-disconnect").await;
    let Some(h) = s.handle() else {
        return crate::client::skip("block-disconnect", "needs the waiter count");
    };
    use tokio::io::AsyncWriteExt;
    let mut conns = Vec::new();
    for _ in 0..10 {
        let mut sock = tokio::net::TcpStream::connect(c.authority()).await.unwrap();
        sock.write_all(
            format!("GET /v1/kv/{p}k?index=1&wait=5m HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        conns.push(sock);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.waiters() < 10 {
        assert!(Instant::now() < deadline, "waiters: {}", h.waiters());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.waiters(), 10);
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.waiters() > 0 {
        assert!(Instant::now() < deadline, "waiters left: {}", h.waiters());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Devserver-only (a real agent limits a client to 200 connections): 1,000 concurrent
/// blocking queries cost no thread each, and one write wakes them all (in milliseconds on an
/// idle machine; the bounds below only rule out waiting for the 60 s wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_waiters_wake_on_one_write() {
    let (s, c, p) = setup("block-thousand").await;
    let Some(h) = s.handle() else {
        return crate::client::skip("block-thousand", "real Consul caps connections at 200");
    };
    c.put_ok(&format!("/v1/kv/{p}k"), "1").await;
    let idx = index_of(&c, &format!("/v1/kv/{p}k")).await;
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let c = c.clone();
        let path = format!("/v1/kv/{p}k?index={idx}&wait=60s");
        tasks.push(tokio::spawn(async move {
            let r = c.get(&path).await;
            (r.index(), Instant::now())
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.waiters() < 1000 {
        assert!(Instant::now() < deadline, "only {} waiters", h.waiters());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = Instant::now();
    c.put_ok(&format!("/v1/kv/{p}k"), "2").await;
    // Server side: every waiter has been woken, has re-run its query and has answered.
    while h.waiters() > 0 {
        // Woken by the write, not by their 60 s wait: a bound far below that, which holds
        // when the machine is loaded.
        assert!(
            written.elapsed() < Duration::from_secs(20),
            "{} waiters left",
            h.waiters()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let drained = written.elapsed();
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (i, at) = t.await.unwrap();
        assert!(i > idx);
        slowest = slowest.max(at.duration_since(written));
    }
    eprintln!("1000 waiters woken: all answered by the server {drained:?} after the write; slowest client read {slowest:?}");
    assert!(drained < Duration::from_secs(20), "{drained:?}");
    assert!(slowest < Duration::from_secs(30), "{slowest:?}");
    assert_eq!(h.waiters(), 0);
}
