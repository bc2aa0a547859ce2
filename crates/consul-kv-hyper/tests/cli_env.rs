//! The `consul` CLI's environment, as the CLI reads it: `CONSUL_HTTP_SSL=true` upgrades an
//! explicit `http://` address to TLS (the token never goes out in cleartext), and
//! `CONSUL_HTTP_AUTH=user:pass` sends HTTP basic auth, which is never printed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::time::Duration;

use consul_kv_hyper::proto::kv::Get;
use consul_kv_hyper::{HyperClient, RetryPolicy};
use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

fn lookup(vars: &'static [(&'static str, String)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

#[tokio::test]
async fn consul_http_ssl_true_upgrades_an_explicit_http_address_to_tls() {
    // A plain TCP listener: whatever the client sends first is what it would send to Consul.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let first = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 6];
        s.read_exact(&mut buf).await.unwrap();
        buf
    });
    let vars: &'static [(&'static str, String)] = Box::leak(Box::new([
        ("CONSUL_HTTP_ADDR", format!("http://{addr}")),
        ("CONSUL_HTTP_SSL", "true".to_owned()),
        ("CONSUL_HTTP_TOKEN", "secret-token-0003".to_owned()),
    ]));
    let c = HyperClient::builder()
        .from_env_lookup(lookup(vars))
        .timeout(Duration::from_secs(5))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    assert_eq!(c.address(), format!("https://{addr}"));
    // The listener never answers the handshake: the call fails, typed, without a panic.
    let call = tokio::spawn(async move { c.execute(&Get::new("k")).await });
    let bytes = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the client connected")
        .unwrap();
    // A TLS record of type handshake (0x16), version 3.x, whose first message is a
    // ClientHello (0x01): not `GET /v1/…` in cleartext.
    assert_eq!(bytes[0], 0x16, "{bytes:?}");
    assert_eq!(bytes[1], 0x03, "{bytes:?}");
    assert_eq!(bytes[5], 0x01, "{bytes:?}");
    assert!(call.await.unwrap().is_err());
}

#[tokio::test]
async fn consul_http_auth_sends_basic_auth_and_never_prints_it() {
    let server = Server::start(|s| async move {
        let key = s.uri.trim_start_matches("/v1/kv/");
        let key = key.split('?').next().unwrap_or("").to_owned();
        let mut r = reply(200, 3, kv_json(&key, "YmFy", 3));
        let auth = s
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        r.headers_mut()
            .insert("x-seen-auth", http::HeaderValue::from_str(&auth).unwrap());
        r
    })
    .await;
    let vars: &'static [(&'static str, String)] = Box::leak(Box::new([
        ("CONSUL_HTTP_ADDR", server.url()),
        ("CONSUL_HTTP_AUTH", "alice:pa55:word".to_owned()),
    ]));
    let c = HyperClient::builder()
        .from_env_lookup(lookup(vars))
        .build()
        .unwrap();
    let found = c.execute(&Get::new("k")).await.unwrap();
    assert!(found.value.is_some());
    let seen = server.stats.last();
    // base64("alice:pa55:word"): split at the first ':' like Go's client, sent whole.
    assert_eq!(
        seen.headers.get("authorization").unwrap(),
        "Basic YWxpY2U6cGE1NTp3b3Jk"
    );
    // Redacted like the token.
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("pa55") && !shown.contains("YWxpY2U6"),
        "{shown}"
    );
    // An explicit setting wins over the environment.
    let c = HyperClient::builder()
        .basic_auth("bob", "other")
        .from_env_lookup(lookup(vars))
        .build()
        .unwrap();
    c.execute(&Get::new("k")).await.unwrap();
    assert_eq!(
        server.stats.last().headers.get("authorization").unwrap(),
        "Basic Ym9iOm90aGVy"
    );
}
