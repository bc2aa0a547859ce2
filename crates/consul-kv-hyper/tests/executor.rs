//! Executor tests against local servers: the cases a real Consul cannot be made to produce.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use consul_kv_hyper::proto::kv::{Get, Set};
use consul_kv_hyper::proto::{Index, Token, WatchOptions};
use consul_kv_hyper::{Error, HyperClient, RetryPolicy};
use support::*;
use tokio::io::AsyncWriteExt;

/// Slack for deadline checks on a loaded 2-core machine (two busy loops on both cores stall a
/// timer by a second and more). The servers in these tests hold for 5 s or more, so a call
/// that ends within deadline + 2 s was ended by its deadline.
const TOLERANCE: Duration = Duration::from_secs(2);

fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .base(Duration::from_millis(5))
        .cap(Duration::from_millis(20))
}

fn client(url: &str) -> HyperClient {
    HyperClient::builder()
        .address(url)
        .retry(fast_retry())
        .build()
        .unwrap()
}

fn ok_get(seen: &Seen) -> Reply {
    let key = seen.uri.trim_start_matches("/v1/kv/");
    let key = key.split('?').next().unwrap_or("");
    reply(200, 10, kv_json(key, "YmFy", 10))
}

/// Every message an error can print: Display, Debug, alternate Debug and the source chain.
fn all_text(e: &Error) -> String {
    let mut s = format!("{e} | {e:?} | {e:#?}");
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(&format!(" | {x} | {x:?}"));
        src = x.source();
    }
    s
}

fn assert_within(elapsed: Duration, deadline: Duration) {
    assert!(elapsed >= deadline, "{elapsed:?} < {deadline:?}");
    assert!(
        elapsed <= deadline + TOLERANCE,
        "{elapsed:?} > {deadline:?} + {TOLERANCE:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Requests: base path, defaults, token
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn base_path_is_joined_and_defaults_are_sent() {
    let server = Server::start(|s| async move { ok_get(&s) }).await;
    let c = HyperClient::builder()
        .address(format!("{}/consul/", server.url()))
        .datacenter("dc2")
        .build()
        .unwrap();
    let got = c.execute(&Get::new("a b/c")).await.unwrap();
    assert_eq!(got.value.unwrap().value.unwrap(), "bar");
    assert_eq!(got.meta.last_index.get(), 10);
    let seen = server.stats.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.uri, "/consul/v1/kv/a%20b/c?dc=dc2");
    assert!(
        seen.headers.get("x-consul-token").is_none(),
        "no empty token header"
    );

    // A bare host:port is plain HTTP.
    let c = client(&server.addr.to_string());
    assert_eq!(c.address(), server.url());
    c.execute(&Get::new("k")).await.unwrap();
    assert_eq!(server.stats.last().uri, "/v1/kv/k");
}

#[tokio::test]
async fn token_is_sent_in_the_header_and_redacted_everywhere() {
    const SECRET: &str = "sentinel-5e5e-TOKEN-9f3a";
    const OP_SECRET: &str = "per-call-7c1d-TOKEN";
    let (captured, _guard) = capture_tracing();
    let server = Server::start(|s| async move {
        // A hostile server echoes the token in its error message.
        let token = s
            .headers
            .get("x-consul-token")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        if s.uri.starts_with("/v1/kv/ok") {
            ok_get(&s)
        } else {
            reply(403, 1, format!("ACL not found for token {token}"))
        }
    })
    .await;
    let builder = HyperClient::builder()
        .address(server.url())
        .token(SECRET)
        .datacenter("dc1");
    assert!(!format!("{builder:?}").contains(SECRET));
    let c = builder.build().unwrap();
    assert!(!format!("{c:?}").contains(SECRET));
    assert!(!format!("{:?}", c.context()).contains(SECRET));

    c.execute(&Get::new("ok")).await.unwrap();
    let seen = server.stats.last();
    assert_eq!(seen.headers["x-consul-token"], SECRET);
    assert!(!seen.uri.contains("token"), "{}", seen.uri);

    let e = c.execute(&Get::new("denied")).await.unwrap_err();
    assert_eq!(e.status(), Some(http::StatusCode::FORBIDDEN));
    assert!(!e.is_retryable());
    let text = all_text(&e);
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("ACL not found for token ***"), "{text}");

    // A per-call token is redacted too.
    let op = Get::new("denied").token(Token::new(OP_SECRET).unwrap());
    let e = c.execute(&op).await.unwrap_err();
    assert_eq!(server.stats.last().headers["x-consul-token"], OP_SECRET);
    assert!(!all_text(&e).contains(OP_SECRET));

    // The tracing output has the spans, and no token or query string.
    let logs = captured.text();
    assert!(logs.contains("consul_request"), "{logs}");
    assert!(logs.contains("method=GET"), "{logs}");
    assert!(logs.contains("path=/v1/kv/ok"), "{logs}");
    assert!(logs.contains("status=200"), "{logs}");
    assert!(logs.contains("status=403"), "{logs}");
    assert!(!logs.contains("dc=dc1"), "the query is not logged: {logs}");
    assert!(
        !logs.contains(SECRET) && !logs.contains(OP_SECRET),
        "{logs}"
    );
}

#[test]
fn invalid_settings_fail_at_build_without_echoing_the_token() {
    let e = HyperClient::builder()
        .token("bad\r\ntoken-secret")
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)));
    assert!(!all_text(&e).contains("token-secret"));
    let e = HyperClient::builder()
        .address("ftp://x")
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    let e = HyperClient::builder()
        .token_file("/nonexistent/consul-token")
        .build()
        .unwrap_err();
    assert!(all_text(&e).contains("/nonexistent/consul-token"));
}

// ---------------------------------------------------------------------------------------------
// Deadlines
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn headers_delayed_past_the_deadline_time_out() {
    let server = Server::start(|s| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        ok_get(&s)
    })
    .await;
    let deadline = Duration::from_millis(400);
    let c = HyperClient::builder()
        .address(server.url())
        .timeout(deadline)
        .build()
        .unwrap();
    let t = Instant::now();
    let e = c.execute(&Get::new("k")).await.unwrap_err();
    assert_within(t.elapsed(), deadline);
    assert!(
        matches!(e, Error::Timeout { after, .. } if after == deadline),
        "{e:?}"
    );
    assert!(e.is_timeout() && !e.is_outcome_unknown());
    assert_eq!(
        server.stats.requests(),
        1,
        "a timed-out read is not retried"
    );
}

#[tokio::test]
async fn blocking_read_deadline_is_wait_plus_jitter_plus_margin() {
    let server = Server::start(|s| async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        ok_get(&s)
    })
    .await;
    let c = HyperClient::builder()
        .address(server.url())
        .timeout(Duration::from_millis(100))
        .blocking_margin(Duration::from_millis(200))
        .build()
        .unwrap();
    let op = Get::new("k").block(Index::new(5), Duration::from_millis(800));
    let deadline = c.deadline_for(&op);
    assert_eq!(deadline, Duration::from_millis(800 + 50 + 200));
    let t = Instant::now();
    let e = c.execute(&op).await.unwrap_err();
    assert_within(t.elapsed(), deadline);
    assert!(e.is_timeout(), "{e:?}");
    assert!(server.stats.last().uri.contains("index=5&wait=800ms"));
}

#[tokio::test]
async fn a_write_that_times_out_after_sending_has_an_unknown_outcome() {
    let server = Server::start(|_| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        reply(200, 1, "true")
    })
    .await;
    let c = HyperClient::builder()
        .address(server.url())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let e = c.execute(&Set::new("k", "v")).await.unwrap_err();
    assert!(e.is_outcome_unknown() && e.is_timeout(), "{e:?}");
    assert!(!e.is_retryable());
    assert_eq!(server.stats.requests(), 1);
}

#[tokio::test]
async fn a_trickled_body_hits_the_total_deadline() {
    let server = RawServer::start(|mut s, conn, stats| async move {
        if read_request(&mut s, conn, &stats).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nX-Consul-Index: 3\r\nContent-Length: 1000\r\n\r\n")
                .await;
            for _ in 0..1000 {
                if s.write_all(b" ").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    })
    .await;
    let deadline = Duration::from_millis(500);
    let c = HyperClient::builder()
        .address(server.url())
        .timeout(deadline)
        .build()
        .unwrap();
    let t = Instant::now();
    let e = c.execute(&Get::new("k")).await.unwrap_err();
    assert_within(t.elapsed(), deadline);
    assert!(e.is_timeout(), "{e:?}");
    // The connection was dropped: the server sees it close.
    let t = Instant::now();
    while server.stats.open() > 0 && t.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.stats.open(), 0);
}

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_its_connection_dropped() {
    let server = Server::start(|s| async move {
        if s.uri.contains("big") {
            reply(200, 1, vec![b'x'; 4096])
        } else {
            ok_get(&s)
        }
    })
    .await;
    let c = HyperClient::builder()
        .address(server.url())
        .max_body(1024)
        .build()
        .unwrap();
    c.execute(&Get::new("small")).await.unwrap();
    let e = c.execute(&Get::new("big")).await.unwrap_err();
    assert!(
        matches!(e, Error::BodyTooLarge { limit: 1024, .. }),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert_eq!(server.stats.requests(), 2, "not retried");
    c.execute(&Get::new("small")).await.unwrap();
    assert_eq!(
        server.stats.accepted(),
        2,
        "the connection that carried the large body is not reused"
    );
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused() {
    let server = RawServer::start(|mut s, conn, stats| async move {
        if read_request(&mut s, conn, &stats).await.is_some() {
            let _ = s
                .write_all(
                    b"HTTP/1.1 200 OK\r\nX-Consul-Index: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                )
                .await;
            let chunk = format!("400\r\n{}\r\n", "y".repeat(1024));
            for _ in 0..1024 {
                if s.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
        }
    })
    .await;
    let c = HyperClient::builder()
        .address(server.url())
        .max_body(64 * 1024)
        .build()
        .unwrap();
    let e = c.execute(&Get::new("k")).await.unwrap_err();
    assert!(
        matches!(e, Error::BodyTooLarge { limit: 65536, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn error_bodies_have_their_own_smaller_limit() {
    let server = Server::start(|_| async move { reply(500, 1, vec![b'e'; 8192]) }).await;
    let c = HyperClient::builder()
        .address(server.url())
        .max_error_body(1024)
        .build()
        .unwrap();
    let e = c.execute(&Get::new("k")).await.unwrap_err();
    assert!(
        matches!(e, Error::BodyTooLarge { limit: 1024, .. }),
        "{e:?}"
    );
}

async fn truncating_server() -> RawServer {
    RawServer::start(|mut s, conn, stats| async move {
        if read_request(&mut s, conn, &stats).await.is_some() {
            // Then close with 92 bytes missing.
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nX-Consul-Index: 3\r\nContent-Length: 100\r\n\r\n[{\"Key\":")
                .await;
        }
    })
    .await
}

#[tokio::test]
async fn a_truncated_body_is_a_typed_transport_error() {
    let server = truncating_server().await;
    let c = HyperClient::builder()
        .address(server.url())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let e = c.execute(&Get::new("k")).await.unwrap_err();
    match &e {
        Error::Transport { error: t, .. } => assert!(t.is_truncated_body() && !t.is_connect()),
        other => panic!("{other:?}"),
    }
    assert!(e.is_retryable());

    // Reads are retried on it; the final error is still typed.
    let server = truncating_server().await;
    let c = client(&server.url());
    let e = c.execute(&Get::new("k")).await.unwrap_err();
    assert!(
        matches!(&e, Error::Transport { error: t, .. } if t.is_truncated_body()),
        "{e:?}"
    );
    assert_eq!(server.stats.requests(), 4);

    // A write whose answer was cut has an unknown outcome, and is not repeated.
    let server = truncating_server().await;
    let c = client(&server.url());
    let e = c.execute(&Set::new("k", "v")).await.unwrap_err();
    assert!(e.is_outcome_unknown(), "{e:?}");
    assert_eq!(server.stats.requests(), 1);
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn reads_ride_out_a_429_burst() {
    let server = Server::start(|s| async move {
        if s.n < 3 {
            reply(429, 1, "rate limit exceeded")
        } else {
            ok_get(&s)
        }
    })
    .await;
    let got = client(&server.url()).execute(&Get::new("k")).await.unwrap();
    assert!(got.value.is_some());
    assert_eq!(server.stats.requests(), 4);
}

#[tokio::test]
async fn endless_429_gives_a_typed_error_after_bounded_attempts() {
    let server = Server::start(|_| async move { reply(429, 1, "") }).await;
    let e = client(&server.url())
        .execute(&Get::new("k"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(http::StatusCode::TOO_MANY_REQUESTS));
    assert!(matches!(
        e.as_response(),
        Some(consul_kv_hyper::proto::ResponseError::RateLimited { .. })
    ));
    assert_eq!(server.stats.requests(), 4, "max_attempts");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = Server::start(|s| async move {
        if s.n == 0 {
            let mut r = reply(429, 1, "");
            r.headers_mut()
                .insert("retry-after", http::HeaderValue::from_static("1"));
            r
        } else {
            ok_get(&s)
        }
    })
    .await;
    let t = Instant::now();
    client(&server.url()).execute(&Get::new("k")).await.unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(server.stats.requests(), 2);

    // A Retry-After beyond the budget ends the call at once.
    let server = Server::start(|_| async move {
        let mut r = reply(503, 1, "rate limit exceeded, try again later");
        r.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("60"));
        r
    })
    .await;
    let t = Instant::now();
    let e = client(&server.url())
        .execute(&Get::new("k"))
        .await
        .unwrap_err();
    // At once, not after the 60 s the server asked for.
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(e.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(server.stats.requests(), 1);
}

#[tokio::test]
async fn the_budget_bounds_the_retries() {
    let server = Server::start(|_| async move { reply(429, 1, "") }).await;
    let budget = Duration::from_millis(400);
    let c = HyperClient::builder()
        .address(server.url())
        .retry(
            RetryPolicy::default()
                .max_attempts(1000)
                .base(Duration::from_millis(40))
                .cap(Duration::from_millis(40))
                .budget(budget),
        )
        .build()
        .unwrap();
    let t = Instant::now();
    let e = c.execute(&Get::new("k")).await.unwrap_err();
    assert!(t.elapsed() <= budget + TOLERANCE, "{:?}", t.elapsed());
    assert_eq!(e.status(), Some(http::StatusCode::TOO_MANY_REQUESTS));
    let n = server.stats.requests();
    // Bounded by the budget, far below the attempt limit (under load the first attempt may
    // use up the whole budget, so one attempt is allowed).
    assert!((1..1000).contains(&n), "{n}");
}

#[tokio::test]
async fn no_cluster_leader_bursts_are_retried_for_reads_and_writes() {
    let server = Server::start(|s| async move {
        if s.n % 10 < 3 {
            reply(500, 1, "No cluster leader")
        } else if s.method == "PUT" {
            reply(200, 2, "true")
        } else {
            ok_get(&s)
        }
    })
    .await;
    let c = client(&server.url());
    c.execute(&Get::new("k")).await.unwrap();
    assert_eq!(server.stats.requests(), 4);
    // Requests 4..9 answer; make the next burst start at 10.
    for _ in 4..10 {
        c.execute(&Get::new("k")).await.unwrap();
    }
    let out = c.execute(&Set::new("k", "v")).await.unwrap();
    assert!(out.is_applied());
    assert_eq!(server.stats.requests(), 14);
}

#[tokio::test]
async fn other_500s_are_not_retried() {
    let server = Server::start(|_| async move { reply(500, 1, "rpc error: boom") }).await;
    let e = client(&server.url())
        .execute(&Get::new("k"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(http::StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(server.stats.requests(), 1);
}

#[tokio::test]
async fn a_write_is_retried_on_consuls_own_503() {
    let server = Server::start(|s| async move {
        if s.n == 0 {
            reply(503, 1, "rate limit exceeded, try again later")
        } else {
            reply(200, 2, "true")
        }
    })
    .await;
    let out = client(&server.url())
        .execute(&Set::new("k", "v"))
        .await
        .unwrap();
    assert!(out.is_applied());
    assert_eq!(server.stats.requests(), 2);
}

/// A proxy's 503 (HTML or empty), 502 or 504 proves nothing: the write may have been applied
/// upstream, so it is sent once and reported as `OutcomeUnknown`. A read is retried.
#[tokio::test]
async fn a_write_answered_by_a_proxy_503_is_sent_once() {
    for (status, body) in [
        (
            503,
            "<html><body><h1>503 Service Unavailable</h1></body></html>",
        ),
        (503, ""),
        (502, "<html>Bad Gateway</html>"),
        (504, ""),
    ] {
        let server = Server::start(move |_| async move { reply(status, 1, body) }).await;
        let c = client(&server.url());
        let e = c.execute(&Set::new("k", "v")).await.unwrap_err();
        assert!(e.is_outcome_unknown(), "{status} {body:?}: {e:?}");
        assert_eq!(server.stats.requests(), 1, "{status} {body:?}");
        let e = c.execute(&Get::new("k")).await.unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(status));
        assert!(server.stats.requests() > 2, "a read is retried");
    }
}

#[tokio::test]
async fn a_write_reset_after_sending_is_not_retried() {
    let server = RawServer::start(|mut s, conn, stats| async move {
        if read_request(&mut s, conn, &stats).await.is_some() {
            reset(s);
        }
    })
    .await;
    let c = client(&server.url());
    let e = c.execute(&Set::new("k", "v")).await.unwrap_err();
    assert!(e.is_outcome_unknown(), "{e:?}");
    assert!(!e.is_retryable());
    assert!(
        matches!(&e, Error::OutcomeUnknown { source, .. } if matches!(**source, Error::Transport { .. }))
    );
    assert_eq!(
        server.stats.requests(),
        1,
        "the server saw exactly one request"
    );

    // The same failure on a read is retried.
    let e = c.execute(&Get::new("k")).await.unwrap_err();
    assert!(
        matches!(&e, Error::Transport { error: t, .. } if !t.is_connect()),
        "{e:?}"
    );
    assert_eq!(server.stats.requests(), 1 + 4);
}

#[tokio::test]
async fn a_gateway_error_on_a_write_has_an_unknown_outcome() {
    let server = Server::start(|s| async move {
        if s.n == 0 || s.method == "PUT" {
            reply(502, 1, "<html>Bad gateway</html>")
        } else {
            ok_get(&s)
        }
    })
    .await;
    let c = client(&server.url());
    c.execute(&Get::new("k")).await.unwrap();
    assert_eq!(server.stats.requests(), 2, "a read is retried on 502");
    let e = c.execute(&Set::new("k", "v")).await.unwrap_err();
    assert!(e.is_outcome_unknown(), "{e:?}");
    assert_eq!(server.stats.requests(), 3);
}

#[tokio::test]
async fn connect_errors_are_typed_and_retried_for_writes() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = HyperClient::builder()
        .address(format!("127.0.0.1:{port}"))
        .retry(fast_retry())
        .build()
        .unwrap();
    let e = c.execute(&Set::new("k", "v")).await.unwrap_err();
    assert!(
        e.is_connect() && e.is_retryable() && !e.is_outcome_unknown(),
        "{e:?}"
    );
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect hangs.
fn full_backlog_listener() -> (socket2::Socket, Vec<std::net::TcpStream>) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    (sock, fillers)
}

#[tokio::test]
async fn the_connect_timeout_is_enforced_and_is_a_connect_error() {
    let (listener, _fillers) = full_backlog_listener();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let connect_timeout = Duration::from_millis(300);
    let c = HyperClient::builder()
        .address(addr.to_string())
        .connect_timeout(connect_timeout)
        .timeout(Duration::from_secs(5))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let t = Instant::now();
    let e = c.execute(&Set::new("k", "v")).await.unwrap_err();
    assert_within(t.elapsed(), connect_timeout);
    assert!(e.is_connect() && !e.is_outcome_unknown(), "{e:?}");
}

#[tokio::test]
async fn per_call_options_override_the_client() {
    let server = Server::start(|s| async move {
        if s.n == 0 {
            reply(429, 1, "")
        } else {
            tokio::time::sleep(Duration::from_secs(3)).await;
            ok_get(&s)
        }
    })
    .await;
    let c = client(&server.url());
    let once = consul_kv_hyper::CallOptions::default().retry(RetryPolicy::none());
    let e = c.execute_with(&Get::new("k"), &once).await.unwrap_err();
    assert_eq!(e.status(), Some(http::StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(server.stats.requests(), 1);
    let short = consul_kv_hyper::CallOptions::default().timeout(Duration::from_millis(200));
    let t = Instant::now();
    let e = c.execute_with(&Get::new("k"), &short).await.unwrap_err();
    assert_within(t.elapsed(), Duration::from_millis(200));
    assert!(e.is_timeout());
}

// ---------------------------------------------------------------------------------------------
// Pool
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connections_are_reused() {
    let server = Server::start(|s| async move { ok_get(&s) }).await;
    let c = client(&server.url());
    for _ in 0..20 {
        c.execute(&Get::new("k")).await.unwrap();
    }
    assert_eq!(server.stats.accepted(), 1);
}

#[tokio::test]
async fn a_server_closing_an_idle_connection_is_transparent() {
    let server = RawServer::start(|mut s, conn, stats| async move {
        if read_request(&mut s, conn, &stats).await.is_some() {
            write_response(&mut s, 200, 2, b"true").await;
            // Keep-alive was not refused, but the server closes the idle connection soon.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let c = HyperClient::builder()
        .address(server.url())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    for _ in 0..3 {
        assert!(c.execute(&Set::new("k", "v")).await.unwrap().is_applied());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.stats.requests(), 3);
    assert_eq!(server.stats.accepted(), 3);
}

/// The server closes its side after the first answer, and the FIN has arrived before the next
/// request is sent, but the client's connection task has not run yet: the pool still holds the
/// connection as idle. Even a write must go through on a new connection, exactly once.
#[tokio::test(flavor = "current_thread")]
async fn a_pooled_connection_found_closed_before_sending_is_replaced_for_any_method() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let stats = Arc::new(Stats::default());
    let st = Arc::clone(&stats);
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let answer = |s: &mut std::net::TcpStream, conn: usize| {
            let mut buf = Vec::new();
            let mut b = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") || !buf.ends_with(b"v") {
                let n = s.read(&mut b).unwrap();
                assert!(n > 0);
                buf.extend_from_slice(&b[..n]);
            }
            st.seen.lock().unwrap().push(Seen {
                n: 0,
                conn,
                method: "PUT".into(),
                uri: String::new(),
                headers: http::HeaderMap::new(),
                body: Bytes::new(),
            });
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntrue")
                .unwrap();
        };
        let (mut s, _) = listener.accept().unwrap();
        answer(&mut s, 0);
        go_rx.recv().unwrap();
        drop(s);
        closed_tx.send(()).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        answer(&mut s, 1);
    });
    let c = HyperClient::builder()
        .address(addr.to_string())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    assert!(c.execute(&Set::new("k", "v")).await.unwrap().is_applied());
    // Let the connection go back to the pool, idle and open.
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Block this (only) runtime thread until the server has closed, then let the FIN land.
    go_tx.send(()).unwrap();
    closed_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(c.execute(&Set::new("k", "v")).await.unwrap().is_applied());
    drop(c);
    server.join().unwrap();
    let seen = stats.seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "each write reached the server exactly once");
    assert_eq!((seen[0].conn, seen[1].conn), (0, 1));
}

/// The server reads a request on a kept-alive connection and closes it without answering
/// (the classic keep-alive race). A read is repeated at once on a new connection, even with
/// retries disabled; a write cannot know whether it was applied.
#[tokio::test]
async fn a_pooled_connection_closed_after_sending_repeats_reads_only() {
    async fn racing_server() -> RawServer {
        RawServer::start(|mut s, conn, stats| async move {
            if read_request(&mut s, conn, &stats).await.is_none() {
                return;
            }
            if conn == 0 {
                write_response(&mut s, 200, 10, kv_json("k", "YmFy", 10).as_bytes()).await;
                // Read the next request, then close without answering.
                let _ = read_request(&mut s, conn, &stats).await;
                return;
            }
            write_response(&mut s, 200, 10, kv_json("k", "YmFy", 10).as_bytes()).await;
        })
        .await
    }
    let server = racing_server().await;
    let c = HyperClient::builder()
        .address(server.url())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    c.execute(&Get::new("k")).await.unwrap();
    c.execute(&Get::new("k")).await.unwrap();
    assert_eq!(server.stats.requests(), 3);
    assert_eq!(server.stats.accepted(), 2);

    let server = racing_server().await;
    let c = HyperClient::builder()
        .address(server.url())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    c.execute(&Get::new("k")).await.unwrap();
    let e = c.execute(&Set::new("k", "v")).await.unwrap_err();
    assert!(e.is_outcome_unknown(), "{e:?}");
    assert_eq!(server.stats.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_is_never_exceeded() {
    let server = Server::start(|s| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ok_get(&s)
    })
    .await;
    let c = HyperClient::builder()
        .address(server.url())
        .max_connections_per_host(4)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.execute(&Get::new("k")).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(server.stats.requests(), 24);
    assert!(server.stats.max_open() <= 4, "{}", server.stats.max_open());
    assert!(server.stats.accepted() <= 4, "{}", server.stats.accepted());
}

#[tokio::test]
async fn waiting_for_a_connection_counts_against_the_deadline_and_sends_nothing() {
    let server = Server::start(|s| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ok_get(&s)
    })
    .await;
    let c = HyperClient::builder()
        .address(server.url())
        .max_connections_per_host(1)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    // A blocking read holds the only connection for a second (its deadline is much longer).
    let slow = {
        let c = c.clone();
        tokio::spawn(async move {
            c.execute(&Get::new("slow").block(Index::new(1), Duration::from_secs(2)))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = Instant::now();
    let e = c.execute(&Set::new("fast", "v")).await.unwrap_err();
    assert_within(t.elapsed(), Duration::from_millis(300));
    // Nothing was sent, so this is a plain timeout, not an unknown outcome.
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    slow.await.unwrap().unwrap();
    assert_eq!(server.stats.requests(), 1);
}

// ---------------------------------------------------------------------------------------------
// Unix sockets
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unix_socket() {
    let server = UnixServer::start(|s| async move { ok_get(&s) }).await;
    let addr = format!("unix://{}", server.path.display());
    let c = client(&addr);
    assert_eq!(c.address(), addr);
    for _ in 0..3 {
        let got = c.execute(&Get::new("k")).await.unwrap();
        assert_eq!(got.value.unwrap().key, "k");
    }
    assert_eq!(server.stats.last().uri, "/v1/kv/k");
    assert_eq!(server.stats.accepted(), 1, "pooled over the socket too");
}

// ---------------------------------------------------------------------------------------------
// HyperWatch
// ---------------------------------------------------------------------------------------------

fn watch_opts() -> WatchOptions {
    WatchOptions::default()
        .wait(Duration::from_secs(2))
        .min_interval(Duration::ZERO)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
}

#[tokio::test]
async fn the_watcher_yields_only_changes_and_rides_out_errors() {
    let server = Server::start(|s| async move {
        match s.n {
            0 => reply(200, 5, kv_json("k", "YQ==", 5)),
            1 => reply(200, 5, kv_json("k", "YQ==", 5)), // the wait ran out: no change
            2 => reply(500, 5, "No cluster leader"),
            3 => reply(429, 5, ""),
            4 => reply(200, 7, kv_json("k", "Yg==", 7)),
            _ => reply(403, 7, "Permission denied"),
        }
    })
    .await;
    let c = client(&server.url());
    let mut w = c.watch(Get::new("k"), watch_opts());
    let a = w.next().await.unwrap();
    assert_eq!(a.value.unwrap().value.unwrap(), "a");
    let b = w.next().await.unwrap();
    assert_eq!(b.value.unwrap().value.unwrap(), "b");
    assert_eq!(b.meta.last_index.get(), 7);
    let e = w.next().await.unwrap_err();
    assert_eq!(e.status(), Some(http::StatusCode::FORBIDDEN));
    let uris: Vec<_> = server
        .stats
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.uri.clone())
        .collect();
    assert_eq!(uris[0], "/v1/kv/k");
    assert_eq!(uris[1], "/v1/kv/k?index=5&wait=2s");
    assert!(format!("{w:?}").contains("HyperWatch"));
}

#[tokio::test]
async fn dropping_a_watch_mid_request_drops_its_connection() {
    let server = RawServer::start(|mut s, conn, stats| async move {
        while let Some(seen) = read_request(&mut s, conn, &stats).await {
            match seen.n {
                0 => write_response(&mut s, 200, 5, kv_json("k", "YQ==", 5).as_bytes()).await,
                // Hold the blocking query until the client goes away.
                1 => {
                    let _ = tokio::io::AsyncReadExt::read(&mut s, &mut [0u8; 64]).await;
                    return;
                }
                _ => write_response(&mut s, 200, 6, kv_json("k", "Yg==", 6).as_bytes()).await,
            }
        }
    })
    .await;
    let c = client(&server.url());
    let mut w = c.watch(Get::new("k"), watch_opts());
    w.next().await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(200), w.next())
        .await
        .is_err());
    // The held request's connection is closed.
    let t = Instant::now();
    while server.stats.open() > 0 && t.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.stats.open(), 0);
    // The watcher goes on.
    let b = tokio::time::timeout(Duration::from_secs(3), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.value.unwrap().value.unwrap(), "b");
    assert_eq!(server.stats.requests(), 3);
}

// ---------------------------------------------------------------------------------------------
// HTTPS
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "rustls")]
mod https {
    use super::*;

    async fn server(require_client_cert: bool) -> TlsServer {
        TlsServer::start(tls_server_config(require_client_cert), |s| async move {
            ok_get(&s)
        })
        .await
    }

    fn url(s: &TlsServer, host: &str) -> String {
        format!("https://{host}:{}", s.addr.port())
    }

    #[tokio::test]
    async fn https_with_a_ca_file_and_connection_reuse() {
        let s = server(false).await;
        let c = HyperClient::builder()
            .address(url(&s, "localhost"))
            .tls_ca_file(data("ca.pem"))
            .build()
            .unwrap();
        for _ in 0..3 {
            c.execute(&Get::new("k")).await.unwrap();
        }
        assert_eq!(s.stats.requests(), 3);
        assert_eq!(s.stats.accepted(), 1);
        // By IP address too: the certificate names 127.0.0.1.
        let c = HyperClient::builder()
            .address(url(&s, "127.0.0.1"))
            .tls_ca_file(data("ca.pem"))
            .build()
            .unwrap();
        c.execute(&Get::new("k")).await.unwrap();
    }

    #[tokio::test]
    async fn https_with_a_ca_directory() {
        let s = server(false).await;
        let c = HyperClient::builder()
            .address(url(&s, "localhost"))
            .tls_ca_path(data(""))
            .build()
            .unwrap();
        c.execute(&Get::new("k")).await.unwrap();
    }

    #[tokio::test]
    async fn an_unknown_ca_is_a_connect_error() {
        let s = server(false).await;
        // The platform's roots do not include the test CA.
        let c = HyperClient::builder()
            .address(url(&s, "localhost"))
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        let e = c.execute(&Set::new("k", "v")).await.unwrap_err();
        assert!(e.is_connect() && !e.is_outcome_unknown(), "{e:?}");
        assert_eq!(s.stats.requests(), 0);
    }

    #[tokio::test]
    async fn verification_can_be_disabled_like_consul_http_ssl_verify_false() {
        let s = server(false).await;
        let port = s.addr.port();
        let c = HyperClient::builder()
            .from_env_lookup(move |n| match n {
                "CONSUL_HTTP_ADDR" => Some(format!("127.0.0.1:{port}")),
                "CONSUL_HTTP_SSL" => Some("true".into()),
                "CONSUL_HTTP_SSL_VERIFY" => Some("false".into()),
                _ => None,
            })
            .build()
            .unwrap();
        assert_eq!(c.address(), format!("https://127.0.0.1:{port}"));
        c.execute(&Get::new("k")).await.unwrap();
    }

    #[tokio::test]
    async fn the_server_name_can_be_overridden() {
        let s = server(false).await;
        let ok = HyperClient::builder()
            .from_env_lookup(|n| match n {
                "CONSUL_TLS_SERVER_NAME" => Some("server.dc1.consul".into()),
                "CONSUL_CACERT" => Some(data("ca.pem").display().to_string()),
                _ => None,
            })
            .address(url(&s, "127.0.0.1"))
            .build()
            .unwrap();
        ok.execute(&Get::new("k")).await.unwrap();
        let wrong = HyperClient::builder()
            .address(url(&s, "127.0.0.1"))
            .tls_ca_file(data("ca.pem"))
            .tls_server_name("other.example")
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        let e = wrong.execute(&Get::new("k")).await.unwrap_err();
        assert!(e.is_connect(), "{e:?}");
    }

    #[tokio::test]
    async fn mutual_tls() {
        let s = server(true).await;
        let without = HyperClient::builder()
            .address(url(&s, "localhost"))
            .tls_ca_file(data("ca.pem"))
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        assert!(without.execute(&Get::new("k")).await.is_err());
        assert_eq!(s.stats.requests(), 0);
        let with = HyperClient::builder()
            .address(url(&s, "localhost"))
            .tls_ca_file(data("ca.pem"))
            .tls_client_cert(data("client.pem"), data("client.key"))
            .build()
            .unwrap();
        with.execute(&Get::new("k")).await.unwrap();
        assert_eq!(s.stats.requests(), 1);
    }

    #[test]
    fn bad_tls_files_fail_at_build() {
        let e = HyperClient::builder()
            .address("https://localhost:8501")
            .tls_ca_file(data("missing.pem"))
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        let e = HyperClient::builder()
            .address("https://localhost:8501")
            .tls_ca_file(data("README.md"))
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        let e = HyperClient::builder()
            .address("https://localhost:8501")
            .tls_client_cert(data("client.pem"), data("ca.pem"))
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
    }
}
