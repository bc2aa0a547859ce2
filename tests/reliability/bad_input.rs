//! Bad input (R14–R16, R18): an awkward-key corpus, awkward values, a 1 GiB response, and
//! token hygiene across every error path.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consul_kv::{Client, Error, RetryPolicy};
use consul_kv_devserver::DevServer;
use consul_kv_tests::proxy::{Fault, FaultProxy};
use tokio::io::AsyncWriteExt;

use crate::{client, devserver, figure, EXCLUSIVE};

/// At least 200 awkward keys: every URL-significant character, spaces, percent signs,
/// unicode and emoji, in every position, plus the classes Consul refuses.
fn corpus() -> (Vec<String>, Vec<String>) {
    let pieces = [
        " ", "?", "#", "%", "%2F", "%25", "+", "&", "=", ";", ":", "@", "$", ",", "!", "'", "(",
        ")", "*", "[", "]", "\"", "<", ">", "\\", "^", "`", "{", "|", "}", "~", "ç", "日本", "😀",
        "𝄞", "a b", "..x", "x..", "-", "_",
    ];
    let mut good = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        good.push(format!("c{i}{p}"));
        good.push(format!("c{i}/{p}x"));
        good.push(format!("c{i}/x{p}/y"));
        good.push(format!("c{i}/{p}{p}{p}"));
        good.push(format!("c{i}/end{p}"));
    }
    good.extend(
        [
            "trailing/",
            "deep/a/b/c/d/e/f/",
            " leading-space",
            "trailing-space ",
            "dot.dot",
            ".hidden",
            "a/.b",
            "%",
            "%%",
            "%zz",
            "100%",
            "?",
            "#",
            "?a=b&c=d",
            "#frag",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    // The longest key a request can carry: the `http` crate caps a URI at 65 534 bytes, so a
    // key of a full 64 KiB cannot be sent (it gets a typed error before any I/O, checked
    // below); 64 KiB − 64 B round-trips, `?recurse` and `?keys` included.
    good.push("k".repeat(LONGEST_KEY));
    let bad: Vec<String> = [
        "/leading",
        "a//b",
        "a/./b",
        "a/../b",
        "..",
        "tab\there",
        "nl\nhere",
        "nul\0",
        "del\u{7f}",
        "nbsp\u{a0}",
        "zw\u{200b}",
        "ltr\u{200e}",
        "rtl\u{200f}",
        "bom\u{feff}",
        "c1\u{85}",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    (good, bad)
}

/// 64 KiB − 64 B: the longest key that fits the `http` crate's URI cap with the path and query.
const LONGEST_KEY: usize = 64 * 1024 - 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_awkward_keys_round_trip_byte_for_byte() {
    let _x = crate::EXCLUSIVE.read().await;
    let server = crate::devserver().await;
    let proxy = FaultProxy::start(server.addr()).await;
    let c = client(&proxy.base_url());
    let kv = c.kv();
    let (good, bad) = corpus();
    let prefix = "r14/";
    let mut ok = 0;
    for k in &good {
        let key = format!("{prefix}{k}");
        let value = format!("value of {k}");
        assert!(kv.set(&key, value.clone()).await.unwrap(), "{key:?}");
        let got = kv
            .get(&key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{key:?} not found"));
        assert_eq!(got.key, key);
        assert_eq!(got.bytes(), value.as_bytes());
        let items = kv.items(&key).await.unwrap();
        assert!(
            items.entries().iter().any(|p| p.key == key),
            "{key:?} not listed"
        );
        let keys = kv.keys(&key).await.unwrap();
        assert!(keys.contains(&key), "{key:?} not in keys");
        assert!(kv.delete(&key).await.unwrap());
        assert!(kv.get(&key).await.unwrap().is_none(), "{key:?} not deleted");
        ok += 1;
    }
    let before = proxy.stats().requests.load(Ordering::Relaxed);
    let mut refused = 0;
    for k in &bad {
        let key = format!("{prefix}{k}");
        let e = kv.set(&key, "v").await.unwrap_err();
        if matches!(
            e,
            Error::Build(consul_kv::proto::BuildError::InvalidKey { .. })
        ) {
            refused += 1;
        }
    }
    // A full 64 KiB key: over the URI cap, so a typed build error, nothing sent.
    let full = format!("{prefix}{}", "k".repeat(64 * 1024));
    let too_long = matches!(kv.set(&full, "v").await, Err(Error::Build(_)));
    let sent = proxy.stats().requests.load(Ordering::Relaxed) - before;
    figure(
        &format!("R14 awkward keys ({} accepted, {} refused classes)", good.len(), bad.len()),
        &format!("{ok} round-tripped put→get→list→keys→delete, the longest 64 KiB − 64 B; {refused} refused with no request sent ({sent} sent); a full 64 KiB key: typed error before I/O: {too_long}"),
        "all byte-identical; refused before I/O (note: a URI holds at most 65 534 B, so 64 KiB − 64 B is the longest key any request can carry)",
        ok == good.len() && good.len() + bad.len() >= 200 && refused == bad.len() && sent == 0 && too_long,
    );
}

#[tokio::test]
async fn r15_values_are_bytes_up_to_the_limit() {
    let _x = crate::EXCLUSIVE.read().await;
    let server = devserver().await;
    let c = client(&server.http_addr());
    let kv = c.kv();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("all 256 byte values", all_bytes),
        ("invalid UTF-8", vec![0xff, 0xfe, 0xc3, 0x28, 0x80]),
        ("exactly 512 KiB", vec![0xa5; 512 * 1024]),
    ];
    let mut ok = 0;
    for (name, value) in &cases {
        assert!(kv.set("r15/v", value.clone()).await.unwrap(), "{name}");
        let got = kv.get("r15/v").await.unwrap().unwrap();
        assert_eq!(got.bytes(), &value[..], "{name}");
        let raw = kv.raw("r15/v").await.unwrap().unwrap();
        assert_eq!(raw.bytes().as_ref(), &value[..], "{name} raw");
        ok += 1;
    }
    let e = kv
        .set("r15/v", vec![0u8; 512 * 1024 + 1])
        .await
        .unwrap_err();
    let too_large = matches!(
        e.as_response(),
        Some(consul_kv::proto::ResponseError::TooLarge { .. })
    );
    figure(
        "R15 values (empty, 256 byte values, invalid UTF-8, 512 KiB, 512 KiB + 1)",
        &format!("{ok}/4 byte-identical; 512 KiB + 1 → {e}"),
        "byte-identical; typed too-large",
        ok == 4 && too_large,
    );
}

/// A server that answers every request with a 1 GiB body of spaces after `[`: announced by
/// `Content-Length`, or streamed in chunks with no length.
async fn gigabyte_server(chunked: bool) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
                let head = if chunked {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 5\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n"
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 5\r\nContent-Length: 1073741824\r\n\r\n["
                };
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let data = vec![b' '; 1 << 16];
                let chunk = if chunked {
                    let mut c = format!("{:x}\r\n", data.len()).into_bytes();
                    c.extend_from_slice(&data);
                    c.extend_from_slice(b"\r\n");
                    c
                } else {
                    data
                };
                let mut sent = 1usize;
                while sent < 1 << 30 {
                    if sock.write_all(&chunk).await.is_err() {
                        return;
                    }
                    sent += 1 << 16;
                }
            });
        }
    });
    addr
}

/// Reads a 1 GiB answer through a client with a 64 MiB limit; returns the error and the peak
/// RSS growth in MiB, sampled every 2 ms while the call runs.
async fn read_gigabyte(chunked: bool) -> (Error, f64) {
    let addr = gigabyte_server(chunked).await;
    let c = Client::builder()
        .address(format!("http://{addr}"))
        .max_body(64 << 20)
        .timeout(Duration::from_secs(60))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let before = crate::proc_status_kib("VmRSS");
    let peak = Arc::new(Mutex::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let rss = crate::proc_status_kib("VmRSS");
                {
                    let mut p = peak.lock().unwrap();
                    *p = (*p).max(rss);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let e = c.kv().items("huge/").await.unwrap_err();
    sampler.abort();
    let growth = (*peak.lock().unwrap()).saturating_sub(before) as f64 / 1024.0;
    (e, growth)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_a_gigabyte_response_stays_within_the_body_limit() {
    // RSS is process-wide: sample it in a process that runs nothing else.
    if !crate::isolated("bad_input::r16_a_gigabyte_response_stays_within_the_body_limit") {
        return;
    }
    let _x = EXCLUSIVE.write().await;
    let (announced, announced_growth) = read_gigabyte(false).await;
    let (streamed, streamed_growth) = read_gigabyte(true).await;
    figure(
        "R16 1 GiB response, 64 MiB limit",
        &format!(
            "Content-Length: {announced} (peak RSS growth {announced_growth:.1} MiB); \
             chunked: {streamed} (peak RSS growth {streamed_growth:.1} MiB)"
        ),
        "BodyTooLarge; growth ≤ limit + 10%",
        matches!(announced, Error::BodyTooLarge { .. })
            && matches!(streamed, Error::BodyTooLarge { .. })
            && announced_growth <= 64.0 * 1.1
            && streamed_growth <= 64.0 * 1.1,
    );
}

/// Captures every span and event field as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut s = self.0.lock().unwrap();
        let _ = write!(s, "\nspan {}", span.metadata().name());
        span.record(&mut Fields(&mut s));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut s = self.0.lock().unwrap();
        let _ = write!(s, "\nevent {}", event.metadata().target());
        event.record(&mut Fields(&mut s));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = format!("{e} | {e:?}");
    let mut cur = e.source();
    while let Some(s) = cur {
        let _ = write!(out, " | {s} | {s:?}");
        cur = s.source();
    }
    out
}

#[tokio::test]
async fn r18_the_token_never_appears_in_logs_errors_or_debug() {
    let _x = crate::EXCLUSIVE.read().await;
    const SECRET: &str = "s3cr3t-SENTINEL-0b1e";
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let server = DevServer::builder()
        .acl_token("the-real-token")
        .start()
        .await
        .unwrap();
    let proxy = FaultProxy::start(server.addr()).await;
    let c = Client::builder()
        .address(proxy.base_url())
        .token(SECRET)
        .timeout(Duration::from_millis(300))
        .retry(
            RetryPolicy::default()
                .max_attempts(2)
                .base(Duration::from_millis(5)),
        )
        .build()
        .unwrap();
    let mut seen = String::new();
    let _ = write!(seen, "{c:?}");
    // Every error path: 403, injected statuses, a timeout, a truncation, a bad key, bad JSON.
    let faults = [
        None,
        Some(Fault::no_leader()),
        Some(Fault::html_bad_gateway()),
        Some(Fault::too_many_requests(Some(0))),
        Some(Fault::DelayHeaders(Duration::from_secs(2))),
        Some(Fault::TruncateAt(10)),
        Some(Fault::malformed_json()),
        Some(Fault::Inject {
            status: 403,
            headers: vec![],
            body: format!("ACL not found for {SECRET}").into_bytes(),
        }),
    ];
    let mut errors = 0;
    for f in faults {
        proxy.clear();
        if let Some(f) = f {
            proxy.set_default(f);
        }
        for res in [
            c.kv().get("r18/k").await.map(|_| ()),
            c.kv().set("r18/k", "v").await.map(|_| ()),
            c.kv().items("r18/").await.map(|_| ()),
            c.session().create().await.map(|_| ()),
        ] {
            if let Err(e) = res {
                errors += 1;
                let _ = write!(seen, "\n{}", chain(&e));
            }
        }
    }
    proxy.clear();
    if let Err(e) = c.kv().set("/bad", "v").await {
        errors += 1;
        let _ = write!(seen, "\n{}", chain(&e));
    }
    let bad_token = Client::builder()
        .address(proxy.base_url())
        .token("a\r\nb")
        .build();
    if let Err(e) = bad_token {
        let _ = write!(seen, "\n{}", chain(&e));
    }
    let logs = capture.0.lock().unwrap().clone();
    let hits = seen.matches(SECRET).count() + logs.matches(SECRET).count();
    figure(
        "R18 token hygiene",
        &format!(
            "{errors} errors, {} bytes of Debug/Display/log text, {hits} occurrences of the token",
            seen.len() + logs.len()
        ),
        "0 occurrences",
        hits == 0 && errors >= 20 && !logs.is_empty(),
    );
}
