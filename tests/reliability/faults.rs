//! One scenario per fault the proxy injects (R5–R12): each ends in a typed error or a bounded
//! retry that succeeds, never a panic or a hang past the deadline.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use consul_kv::{Client, Error, RetryPolicy};
use consul_kv_tests::proxy::{Fault, FaultProxy};

use crate::{client, devserver, figure};

struct Rig {
    _server: consul_kv_devserver::DevServerHandle,
    proxy: FaultProxy,
    client: Client,
}

async fn rig() -> Rig {
    let server = devserver().await;
    let proxy = FaultProxy::start(server.addr()).await;
    let client = client(&proxy.base_url());
    Rig {
        _server: server,
        proxy,
        client,
    }
}

fn forwarded(p: &FaultProxy) -> u64 {
    p.stats().forwarded.load(Ordering::Relaxed)
}

#[tokio::test]
async fn r8_header_delay_past_the_deadline_times_out_on_time() {
    let _x = crate::EXCLUSIVE.read().await;
    let r = rig().await;
    let c = Client::builder()
        .address(r.proxy.base_url())
        .timeout(Duration::from_millis(500))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    r.proxy.push([Fault::DelayHeaders(Duration::from_secs(5))]);
    let start = Instant::now();
    let e = c.kv().get("slow").await.unwrap_err();
    let took = start.elapsed();
    figure(
        "R8 delayed headers",
        &format!("timeout after {} ms (deadline 500 ms)", took.as_millis()),
        "typed Timeout at the 500 ms deadline, not the server's 5 s (≥ 500 ms, < 3 s)",
        e.is_timeout() && took < Duration::from_secs(3) && took >= Duration::from_millis(500),
    );
}

#[tokio::test]
async fn r8_trickled_body_hits_the_total_deadline() {
    let _x = crate::EXCLUSIVE.read().await;
    let r = rig().await;
    r.client.kv().set("trickle", vec![b'x'; 200]).await.unwrap();
    let c = Client::builder()
        .address(r.proxy.base_url())
        .timeout(Duration::from_millis(700))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    // 1 B every 100 ms: every read makes progress, so only a total deadline ends it; the
    // whole answer would take over 30 s.
    r.proxy.push([Fault::Trickle(Duration::from_millis(100))]);
    let start = Instant::now();
    let e = c.kv().get("trickle").await.unwrap_err();
    let took = start.elapsed();
    figure(
        "R8 trickled body (1 B / 100 ms)",
        &format!("timeout after {} ms (deadline 700 ms)", took.as_millis()),
        "typed Timeout at the total deadline: ≥ 700 ms and < 3 s (not per read)",
        e.is_timeout() && took >= Duration::from_millis(700) && took < Duration::from_secs(3),
    );
}

#[tokio::test]
async fn r9_truncated_and_reset_bodies_are_typed_and_reads_retry() {
    let _x = crate::EXCLUSIVE.read().await;
    let r = rig().await;
    r.client.kv().set("trunc", vec![b'v'; 1000]).await.unwrap();
    let mut ok = 0;
    for fault in [
        Fault::TruncateAt(120),
        Fault::ResetAfter(120),
        Fault::ResetAfterForward,
    ] {
        let before = r.proxy.stats().connections.load(Ordering::Relaxed);
        // Read: retried once, then succeeds, byte-identical.
        r.proxy.push([fault.clone()]);
        let v = r.client.kv().get("trunc").await.unwrap().unwrap();
        assert_eq!(v.bytes(), &[b'v'; 1000][..], "{fault:?}");
        // The broken connection was not reused: a new one was opened.
        assert!(
            r.proxy.stats().connections.load(Ordering::Relaxed) > before,
            "{fault:?}"
        );
        // Without retries, the same fault is a typed error and no partial value.
        let c = Client::builder()
            .address(r.proxy.base_url())
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        r.proxy.push([fault.clone()]);
        let e = c.kv().get("trunc").await.unwrap_err();
        assert!(matches!(e, Error::Transport { .. }), "{fault:?}: {e:?}");
        ok += 1;
    }
    figure(
        "R9 truncated / reset bodies",
        &format!(
            "{ok}/3 faults: read retried to a byte-identical value; typed Transport without retry"
        ),
        "typed error, no partial value, connection not pooled",
        ok == 3,
    );
}

#[tokio::test]
async fn r6_ambiguous_write_failure_is_outcome_unknown_and_never_retried() {
    let _x = crate::EXCLUSIVE.read().await;
    let r = rig().await;
    let before = forwarded(&r.proxy);
    r.proxy.push([Fault::ResetAfterForward]);
    let e = r.client.kv().set("ambiguous", "v").await.unwrap_err();
    let sent = forwarded(&r.proxy) - before;
    // The write did reach the server; the client must not claim either outcome.
    let stored = r.client.kv().get("ambiguous").await.unwrap();
    figure(
        "R6 reset after a write was sent",
        &format!(
            "OutcomeUnknown={}, server saw {sent} request(s)",
            e.is_outcome_unknown()
        ),
        "OutcomeUnknown, exactly 1 request",
        e.is_outcome_unknown() && sent == 1 && stored.is_some(),
    );
}

#[tokio::test]
async fn r11_rejections_before_apply_are_retried_for_reads_and_writes() {
    let _x = crate::EXCLUSIVE.read().await;
    let r = rig().await;
    let mut attempts = Vec::new();
    for (name, fault) in [
        ("429", Fault::too_many_requests(None)),
        ("429+Retry-After", Fault::too_many_requests(Some(0))),
        ("503", Fault::unavailable()),
        ("500 No cluster leader", Fault::no_leader()),
    ] {
        let before = r.proxy.stats().requests.load(Ordering::Relaxed);
        r.proxy.push([fault.clone(), fault.clone(), fault.clone()]);
        assert!(r.client.kv().set("rejected", name).await.unwrap(), "{name}");
        r.proxy.push([fault.clone(), fault.clone(), fault]);
        let v = r.client.kv().get("rejected").await.unwrap().unwrap();
        assert_eq!(v.bytes(), name.as_bytes());
        attempts.push(r.proxy.stats().requests.load(Ordering::Relaxed) - before);
    }
    figure(
        "R11 429/503/no-leader bursts of 3",
        &format!("write+read succeeded with {attempts:?} requests"),
        "8 requests each (3 rejected + 1 ok, twice)",
        attempts.iter().all(|&a| a == 8),
    );
}

#[tokio::test]
async fn r11_endless_rejection_ends_in_a_typed_error_within_the_budget() {
    let _x = crate::EXCLUSIVE.read().await;
    let r = rig().await;
    r.proxy.set_default(Fault::no_leader());
    let start = Instant::now();
    let e = r.client.kv().get("down").await.unwrap_err();
    let took = start.elapsed();
    let requests = r.proxy.stats().requests.load(Ordering::Relaxed);
    figure(
        "R11 endless 500 No cluster leader",
        &format!("{requests} attempts in {} ms, then {e}", took.as_millis()),
        "≤ max_attempts (6), typed NoLeader, within budget (5 s)",
        requests <= 6 && took < Duration::from_secs(6) && e.is_retryable(),
    );
}

#[tokio::test]
async fn r10_html_gateway_errors_and_bad_json_are_typed() {
    let _x = crate::EXCLUSIVE.read().await;
    let r = rig().await;
    // A 502 from a proxy: reads retry through it.
    r.proxy.push([Fault::html_bad_gateway()]);
    assert!(r.client.kv().get("gw").await.unwrap().is_none());
    // A write behind a 502 may have reached Consul: it is not retried.
    let before = r.proxy.stats().requests.load(Ordering::Relaxed);
    r.proxy.push([Fault::html_bad_gateway()]);
    let e = r.client.kv().set("gw", "v").await.unwrap_err();
    let write_attempts = r.proxy.stats().requests.load(Ordering::Relaxed) - before;
    let unknown = e.is_outcome_unknown();
    // A malformed 200 body is a typed decode error.
    r.proxy
        .push(std::iter::repeat_n(Fault::malformed_json(), 8));
    let bad = r.client.kv().get("gw").await.unwrap_err();
    figure(
        "R10 HTML 502 and malformed JSON",
        &format!(
            "write: OutcomeUnknown={unknown} after {write_attempts} attempt(s); bad JSON: {bad}"
        ),
        "typed errors; a write behind a gateway error is OutcomeUnknown, not retried",
        unknown && write_attempts == 1 && matches!(bad, Error::Response { .. }),
    );
    r.proxy.clear();
}

#[tokio::test]
async fn r10_wrong_content_type_is_irrelevant() {
    let _x = crate::EXCLUSIVE.read().await;
    let r = rig().await;
    r.client.kv().set("ct", "v").await.unwrap();
    r.proxy.push([Fault::RewriteHeader(
        "Content-Type".into(),
        "text/html".into(),
    )]);
    let v = r.client.kv().get("ct").await.unwrap().unwrap();
    figure(
        "R10 wrong Content-Type",
        "value parsed despite text/html",
        "parsing does not depend on Content-Type",
        v.bytes() == b"v",
    );
}

#[tokio::test]
async fn r12_garbage_index_header_is_a_typed_error_not_a_loop() {
    let _x = crate::EXCLUSIVE.read().await;
    let r = rig().await;
    r.client.kv().set("idx", "v").await.unwrap();
    let c = Client::builder()
        .address(r.proxy.base_url())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let mut typed = 0;
    for garbage in ["abc", "-1", "18446744073709551616", ""] {
        r.proxy.push([Fault::RewriteHeader(
            "X-Consul-Index".into(),
            garbage.into(),
        )]);
        let e = c.kv().get("idx").await.unwrap_err();
        if matches!(
            e.as_response(),
            Some(consul_kv::proto::ResponseError::InvalidHeader { .. })
        ) {
            typed += 1;
        }
    }
    // `0` is read as 1.
    r.proxy
        .push([Fault::RewriteHeader("X-Consul-Index".into(), "0".into())]);
    let zero = c.kv().get("idx").await.unwrap().unwrap();
    figure(
        "R12 garbage X-Consul-Index",
        &format!(
            "{typed}/4 garbage values typed InvalidHeader; 0 read as {}",
            zero.consul().last_index()
        ),
        "typed error, 0 → 1",
        typed == 4 && zero.consul().last_index().get() == 1,
    );
}

#[tokio::test]
async fn r7_stale_pooled_connections_are_retried_transparently() {
    let _x = crate::EXCLUSIVE.read().await;
    let r = rig().await;
    let c = Client::builder()
        .address(r.proxy.base_url())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    c.kv().set("pool", "v").await.unwrap();
    let n = crate::size(500, 10_000);
    let mut failures = 0;
    for i in 0..n {
        // One pooled connection in 50 is closed by the server behind the client's back.
        if i % 50 == 0 {
            // The server side closes the connection after this answer, without a warning.
            r.proxy.push([Fault::CloseAfterResponse]);
        }
        if c.kv().get("pool").await.is_err() {
            failures += 1;
        }
        // Let the close reach the client's pool before the next request reuses the connection.
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let conns = r.proxy.stats().connections.load(Ordering::Relaxed);
    let reuse = 100.0 * (1.0 - conns as f64 / n as f64);
    figure(
        "R7 stale pooled connections",
        &format!("{failures} failures in {n} requests; {reuse:.0}% reused a connection"),
        "0 failures with retries off; ≥ 95% reuse (1 in 50 answers closes its connection)",
        failures == 0 && reuse >= 95.0,
    );
}
