//! Every facade call against a hostile server: arbitrary statuses, arbitrary values of every
//! header the client reads, arbitrary bodies. No call may panic, every call must end within a
//! bound derived from its deadline, and background tasks (the session keeper) must survive.
//!
//! The server is a raw TCP listener that writes whatever the case says, byte for byte, so
//! even answers an HTTP library would refuse to produce reach the client.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consul_kv::{Client, Error, RetryPolicy, SessionId};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server answers to every request.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
}

/// Requests seen, by method.
#[derive(Default)]
struct Seen {
    total: AtomicUsize,
    puts: AtomicUsize,
}

struct Hostile {
    addr: String,
    answer: Arc<Mutex<Answer>>,
    seen: Arc<Seen>,
}

impl Hostile {
    async fn start(first: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new(first));
        let seen = Arc::new(Seen::default());
        let (a, s) = (answer.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (a, s) = (a.clone(), s.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, &a, &s).await;
                });
            }
        });
        Self { addr, answer, seen }
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }
}

/// Reads one request (head and `Content-Length` body), writes the answer, closes.
async fn serve(mut conn: TcpStream, answer: &Mutex<Answer>, seen: &Seen) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    seen.total.fetch_add(1, Ordering::SeqCst);
    if head.starts_with("put ") {
        seen.puts.fetch_add(1, Ordering::SeqCst);
    }
    let a = answer.lock().unwrap().clone();
    let mut out = format!("HTTP/1.1 {} X\r\n", a.status).into_bytes();
    for (name, value) in &a.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            a.body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&a.body);
    conn.write_all(&out).await?;
    conn.shutdown().await
}

/// The per-attempt deadline every client in this file runs with.
const TIMEOUT: Duration = Duration::from_millis(400);

fn client(addr: &str) -> Client {
    Client::builder()
        .address(addr)
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .blocking_margin(TIMEOUT)
        .retry(
            RetryPolicy::default()
                .max_attempts(2)
                .base(Duration::from_millis(1))
                .cap(Duration::from_millis(5))
                .budget(Duration::from_millis(50)),
        )
        .build()
        .unwrap()
}

/// A call ends well within this: two attempts of [`TIMEOUT`] plus the retry budget, with room
/// for a loaded machine. A hang would exceed it by far.
const BOUND: Duration = Duration::from_secs(10);

async fn bounded<T>(what: &str, fut: impl std::future::IntoFuture<Output = T>) -> T {
    match tokio::time::timeout(BOUND, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not end within {BOUND:?}"),
    }
}

/// Runs every facade call once against the server's current answer.
async fn every_call(c: &Client) {
    let kv = c.kv();
    let sid = SessionId::new("adf4238a-882b-9ddc-4a9d-5b6758e4159e").unwrap();
    let _ = bounded("get", kv.get("k")).await;
    let _ = bounded(
        "blocking get",
        kv.get("k").block(consul_kv::Index::new(7), Duration::MAX),
    )
    .await;
    let _ = bounded("raw", kv.raw("k")).await;
    let _ = bounded("items", kv.items("p/")).await;
    let _ = bounded("keys", kv.keys("p/").separator("/")).await;
    let _ = bounded("set", kv.set("k", "v")).await;
    let _ = bounded("set cas", kv.set("k", "v").cas(consul_kv::Index::new(3))).await;
    let _ = bounded("acquire", kv.acquire("k", &sid)).await;
    let _ = bounded("release", kv.release("k", &sid)).await;
    let _ = bounded("delete", kv.delete("k")).await;
    let _ = bounded("delete_tree", kv.delete_tree("p/")).await;
    let _ = bounded("txn", kv.txn().set("a", "1").get("b").delete("c")).await;
    let s = c.session();
    let _ = bounded("session create", s.create().ttl(Duration::from_secs(15))).await;
    let _ = bounded("session destroy", s.destroy(&sid)).await;
    let _ = bounded("session renew", s.renew(&sid)).await;
    let _ = bounded("session info", s.info(&sid)).await;
    let _ = bounded("session node", s.node("n1")).await;
    let _ = bounded("session list", s.list()).await;
    let _ = bounded("lock try_acquire", c.lock("l").try_acquire()).await;
    let _ = bounded(
        "semaphore try_acquire",
        c.semaphore("sem/", 2).try_acquire(),
    )
    .await;
    // Watches do not end by themselves; poll each briefly: a panic would surface here.
    let mut w = kv.watch("k");
    let _ = tokio::time::timeout(Duration::from_millis(50), w.next()).await;
    let mut w = kv.watch_prefix("p/");
    let _ = tokio::time::timeout(Duration::from_millis(50), w.next()).await;
    // The keeper renews every ttl/2 in a task of its own; a panic there ends the task
    // without a reason.
    let keeper = s.keep_alive(&sid, Duration::from_millis(40));
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(
        keeper.is_alive() || keeper.lost_reason().is_some(),
        "the session keeper task ended without a reason (a panic)"
    );
}

const HEADERS: &[&str] = &[
    "X-Consul-Index",
    "X-Consul-KnownLeader",
    "X-Consul-LastContact",
    "X-Consul-Effective-Consistency",
    "X-Consul-Default-ACL-Policy",
    "X-Consul-Results-Filtered-By-ACLs",
    "Retry-After",
    "Content-Type",
];

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"18446744073709551615".to_vec()),
        Just(b"18446744073709551616".to_vec()),
        Just(b"0".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"1".to_vec()),
        Just(b"".to_vec()),
        Just(b"true".to_vec()),
        Just(b"2562047h".to_vec()),
        Just(b"text/html".to_vec()),
        Just(b"application/json".to_vec()),
        (0u64..=u64::MAX).prop_map(|n| n.to_string().into_bytes()),
        proptest::collection::vec(0x20u8..0x7f, 0..24),
        proptest::collection::vec(0x80u8..=0xff, 1..8),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-1".to_owned()),
        Just("1e400".to_owned()),
        (0u64..=u64::MAX).prop_map(|n| n.to_string()),
    ]
}

fn ttl() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("2562047h".to_owned()),
        Just("2562048h".to_owned()),
        Just("18446744073709551615s".to_owned()),
        Just("15s".to_owned()),
        Just("".to_owned()),
        Just("-5s".to_owned()),
        "[0-9a-z.]{0,12}",
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"true".to_vec()),
        Just(b"false".to_vec()),
        Just(b"null".to_vec()),
        Just(b"[]".to_vec()),
        Just(b"{}".to_vec()),
        Just(b"<html><body><h1>503 Service Unavailable</h1></body></html>".to_vec()),
        Just(b"rate limit exceeded, try again later".to_vec()),
        Just(b"No cluster leader".to_vec()),
        Just(vec![b'['; 5000]),
        (number(), number(), number(), "[A-Za-z0-9+/=]{0,12}").prop_map(|(a, b, c, v)| {
            format!(
                r#"[{{"Key":"k","Value":"{v}","Flags":{a},"LockIndex":{b},"CreateIndex":{c},"ModifyIndex":{a},"Session":"x"}}]"#
            )
            .into_bytes()
        }),
        (ttl(), number(), number()).prop_map(|(t, a, d)| {
            format!(
                r#"[{{"ID":"adf4238a-882b-9ddc-4a9d-5b6758e4159e","Name":"n","Node":"n1","LockDelay":{d},"Behavior":"release","TTL":"{t}","CreateIndex":{a},"ModifyIndex":{a}}}]"#
            )
            .into_bytes()
        }),
        (ttl(), number()).prop_map(|(t, a)| format!(r#"{{"ID":"{t}","CreateIndex":{a}}}"#).into_bytes()),
        number().prop_map(|n| format!(
            r#"{{"Results":[{{"KV":{{"Key":"a","ModifyIndex":{n}}}}}],"Errors":[{{"OpIndex":{n},"What":"x"}}]}}"#
        )
        .into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    let status = prop_oneof![
        Just(200u16),
        Just(404),
        Just(429),
        Just(500),
        Just(502),
        Just(503),
        Just(504),
        Just(403),
        Just(409),
        Just(413),
        100u16..=599,
    ];
    let headers =
        proptest::collection::vec((proptest::sample::select(HEADERS), header_value()), 0..8);
    (status, headers, body()).prop_map(|(status, headers, body)| Answer {
        status,
        headers,
        body,
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn no_answer_panics_or_hangs_any_call() {
    let rt = runtime();
    let server = rt.block_on(Hostile::start(Answer {
        status: 200,
        headers: vec![],
        body: vec![],
    }));
    let c = rt.block_on(async { client(&server.addr) });
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(a in answer())| {
        server.set(a);
        rt.block_on(every_call(&c));
    });
}

/// The three answers an outside review used to crash or fool the client, one after another.
#[tokio::test]
async fn huge_retry_after_html_503_on_a_put_and_a_2562047h_ttl() {
    // A 429 asking for u64::MAX seconds: over the retry budget, so the call ends at once.
    let server = Hostile::start(Answer {
        status: 429,
        headers: vec![("Retry-After", b"18446744073709551615".to_vec())],
        body: vec![],
    })
    .await;
    let c = client(&server.addr);
    let e = bounded("get", c.kv().get("k")).await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(429), "{e:?}");
    assert_eq!(server.seen.total.load(Ordering::SeqCst), 1);

    // An HTML 503 from a proxy on a PUT: sent once, outcome unknown.
    server.set(Answer {
        status: 503,
        headers: vec![("Content-Type", b"text/html".to_vec())],
        body: b"<html><body><h1>503 Service Unavailable</h1></body></html>".to_vec(),
    });
    let e = bounded("set", c.kv().set("k", "v")).await.unwrap_err();
    assert!(e.is_outcome_unknown(), "{e:?}");
    assert!(matches!(e, Error::OutcomeUnknown { .. }));
    assert_eq!(server.seen.puts.load(Ordering::SeqCst), 1);

    // Consul's own leader-only rate-limit 503 proves nothing was applied: the PUT is repeated.
    server.set(Answer {
        status: 503,
        headers: vec![],
        body: b"rate limit exceeded, try again later".to_vec(),
    });
    // (A budget that a loaded machine cannot exhaust between the two attempts.)
    let patient = Client::builder()
        .address(&server.addr)
        .timeout(TIMEOUT)
        .retry(
            RetryPolicy::default()
                .max_attempts(2)
                .base(Duration::from_millis(1))
                .cap(Duration::from_millis(5))
                .budget(Duration::from_secs(30)),
        )
        .build()
        .unwrap();
    let e = bounded("set", patient.kv().set("k", "v"))
        .await
        .unwrap_err();
    assert!(!e.is_outcome_unknown(), "{e:?}");
    assert_eq!(server.seen.puts.load(Ordering::SeqCst), 3, "1 + 2 attempts");

    // A renew answer with a TTL of 2562047h: the keeper clamps it to 24 h and keeps running.
    server.set(Answer {
        status: 200,
        headers: vec![("X-Consul-Index", b"9".to_vec())],
        body: br#"[{"ID":"adf4238a-882b-9ddc-4a9d-5b6758e4159e","TTL":"2562047h","CreateIndex":9,"ModifyIndex":9}]"#.to_vec(),
    });
    let sid = SessionId::new("adf4238a-882b-9ddc-4a9d-5b6758e4159e").unwrap();
    let before = server.seen.puts.load(Ordering::SeqCst);
    let keeper = c.session().keep_alive(&sid, Duration::from_millis(100));
    // The first renewal comes after ttl/2 = 50 ms; wait for it (generously).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.seen.puts.load(Ordering::SeqCst) == before {
        assert!(std::time::Instant::now() < deadline, "no renewal was sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(keeper.is_alive(), "{:?}", keeper.lost_reason());
    // The adopted TTL is 24 h, so no second renewal comes for hours.
    assert_eq!(server.seen.puts.load(Ordering::SeqCst), before + 1);
}

/// Caller settings near `Duration::MAX` work: no overflow, the call still ends.
#[tokio::test]
async fn settings_near_duration_max_do_not_overflow() {
    let server = Hostile::start(Answer {
        status: 503,
        headers: vec![("Retry-After", b"1".to_vec())],
        body: b"rate limit exceeded, try again later".to_vec(),
    })
    .await;
    let c = Client::builder()
        .address(&server.addr)
        .timeout(Duration::MAX)
        .connect_timeout(Duration::MAX)
        .blocking_margin(Duration::MAX)
        .idle_timeout(Duration::MAX)
        .retry(
            RetryPolicy::default()
                .max_attempts(2)
                .base(Duration::MAX)
                .cap(Duration::MAX)
                .budget(Duration::ZERO),
        )
        .build()
        .unwrap();
    let e = bounded("get", c.kv().get("k")).await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(503));
    // A blocking read with wait = Duration::MAX is sent with Consul's 10-minute cap.
    server.set(Answer {
        status: 404,
        headers: vec![("X-Consul-Index", b"5".to_vec())],
        body: vec![],
    });
    let got = bounded(
        "blocking get",
        c.kv()
            .get("k")
            .block(consul_kv::Index::new(3), Duration::MAX),
    )
    .await
    .unwrap();
    assert!(got.is_none());
    let mut w = c
        .kv()
        .watch("k")
        .min_interval(Duration::MAX)
        .wait(Duration::MAX);
    let first = bounded("watch", w.next()).await.unwrap().unwrap();
    assert!(first.is_none());
}

/// Polls `next` on a watch for `window`, counting the items it yields.
async fn items_within<S>(window: Duration, s: &mut S) -> (usize, bool)
where
    S: futures_core::Stream + Unpin,
{
    let end = tokio::time::Instant::now() + window;
    let mut items = 0;
    loop {
        let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx));
        match tokio::time::timeout_at(end, next).await {
            Ok(Some(_)) => items += 1,
            Ok(None) => return (items, true),
            Err(_) => return (items, false),
        }
    }
}

/// A watch on a persistent error yields (and requests) at the backoff's pace, never in a busy
/// loop. The default backoff starts at 200 ms (at least 100 ms with its jitter) and doubles,
/// so over a 3 s window no kind may exceed 30 requests or items; a busy loop makes thousands.
#[tokio::test]
async fn persistent_errors_go_through_the_backoff() {
    const WINDOW: Duration = Duration::from_secs(3);
    const MAX: usize = 30;
    let forbidden = Hostile::start(Answer {
        status: 403,
        headers: vec![],
        body: b"Permission denied".to_vec(),
    })
    .await;
    let no_dc = Hostile::start(Answer {
        status: 500,
        headers: vec![],
        body: b"No path to datacenter".to_vec(),
    })
    .await;
    let server_error = Hostile::start(Answer {
        status: 500,
        headers: vec![],
        body: b"internal error".to_vec(),
    })
    .await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let build = |addr: &str| Client::builder().address(addr).build().unwrap();

    let invalid = {
        let c = build(&forbidden.addr);
        async move {
            let mut a = c.kv().watch_prefix("/bad");
            let mut b = c.kv().watch("a//b");
            let first = a.next().await;
            assert!(
                matches!(&first, Some(Err(consul_kv::WatchError::Request(e))) if matches!(**e, Error::Build(_))),
                "{first:?}"
            );
            let (more_a, ended_a) = items_within(WINDOW, &mut a).await;
            let (items_b, ended_b) = items_within(WINDOW, &mut b).await;
            assert!(ended_a && ended_b, "a watch on an invalid key ends");
            (more_a, items_b)
        }
    };
    let counted = |server: &Hostile, dc: Option<&str>| {
        let c = build(&server.addr);
        let kv = match dc {
            Some(dc) => c.kv().dc(dc),
            None => c.kv(),
        };
        async move {
            let mut w = kv.watch_prefix("app/");
            items_within(WINDOW, &mut w).await
        }
    };
    let refused_requests = {
        let c = build(&refused);
        async move {
            let mut w = c.executor().watch(
                consul_kv::proto::kv::Get::new("k"),
                consul_kv::WatchOptions::default(),
            );
            let _ = tokio::time::timeout(WINDOW, w.next()).await;
            w.state().requests()
        }
    };
    let (invalid, forbidden_items, no_dc_items, error_items, refused_requests) = tokio::join!(
        invalid,
        counted(&forbidden, None),
        counted(&no_dc, Some("nowhere")),
        counted(&server_error, None),
        refused_requests,
    );
    assert_eq!(
        invalid,
        (0, 1),
        "an invalid key yields one error, then ends"
    );
    for (what, (items, ended), server) in [
        ("403", forbidden_items, &forbidden),
        ("unknown datacenter", no_dc_items, &no_dc),
        ("500", error_items, &server_error),
    ] {
        assert!(!ended, "{what}: the watch goes on");
        assert!(
            (1..=MAX).contains(&items),
            "{what}: {items} items in {WINDOW:?}"
        );
        let requests = server.seen.total.load(Ordering::SeqCst);
        assert!(requests <= MAX, "{what}: {requests} requests in {WINDOW:?}");
    }
    assert!(
        (1..=MAX as u64).contains(&refused_requests),
        "connection refused: {refused_requests} requests in {WINDOW:?}"
    );
}
