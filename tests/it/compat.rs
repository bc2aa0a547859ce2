//! What newer Consul releases changed for clients: gzip answers and key validation.

use consul_kv::proto::KeyRules;
use consul_kv::{Client, Error};
use consul_kv_devserver::{ConsulVersion, DevServer};
use consul_kv_tests::server::{self, TestServer};

use crate::{client, prefix};

fn gzip_client(s: &TestServer, max_body: Option<usize>) -> Client {
    let mut b = Client::builder()
        .from_env()
        .address(s.base_url())
        .gzip(true);
    if let Some(m) = max_body {
        b = b.max_body(m);
    }
    b.build().expect("client")
}

/// A gzip `items()` reads exactly what a plain one reads (against either server).
#[tokio::test]
async fn gzip_items_read_the_same_entries() {
    let s = server::start().await;
    let p = prefix("gzip-items");
    let plain = client(&s);
    let entries: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("{p}k{i:04}"), vec![b'a' + (i % 26) as u8; 128]))
        .collect();
    for chunk in entries.chunks(64) {
        let mut txn = plain.kv().txn();
        for (k, v) in chunk {
            txn = txn.set(k.clone(), v.clone());
        }
        assert!(txn.await.expect("txn").is_committed());
    }
    let want = plain.kv().items(&p).await.expect("plain items");
    let got = gzip_client(&s, None)
        .kv()
        .items(&p)
        .await
        .expect("gzip items");
    assert_eq!(got.len(), 300);
    assert_eq!(got.entries(), want.entries());
    // Small answers (not compressed by the server) read the same too.
    let one = gzip_client(&s, None).kv().get(format!("{p}k0001")).await;
    assert_eq!(
        one.expect("get").expect("present").value_bytes(),
        &[b'b'; 128][..]
    );
}

/// The body limit holds for the decompressed size: a limit the compressed answer fits in but
/// the JSON does not is `BodyTooLarge`, never a larger buffer.
#[tokio::test]
async fn gzip_limit_applies_to_the_decompressed_size() {
    let s = server::start().await;
    let p = prefix("gzip-limit");
    let plain = client(&s);
    let mut txn = plain.kv().txn();
    for i in 0..100 {
        txn = txn.set(format!("{p}k{i:03}"), vec![b'z'; 1000]);
    }
    assert!(txn.await.expect("txn").is_committed());
    // ~140 KB of JSON (base64 values) that compresses to a few KB.
    let e = gzip_client(&s, Some(32 * 1024))
        .kv()
        .items(&p)
        .await
        .expect_err("over the limit once decompressed");
    assert!(matches!(e, Error::BodyTooLarge { .. }), "{e:?}");
}

/// With `KeyRules::Consul122` the client refuses what 1.22 refuses, before any I/O; with the
/// classic rules the 1.22 devserver's `400` is a typed invalid-key error.
#[tokio::test]
async fn consul_1_22_keys_are_refused_before_or_after_io() {
    let Some(s) = server::start_devserver(
        "consul-1.22-keys",
        DevServer::builder().consul_version(ConsulVersion::V1_22),
    )
    .await
    else {
        return;
    };
    let p = prefix("keys-122");
    let strict = Client::builder()
        .address(s.base_url())
        .key_rules(KeyRules::Consul122)
        .build()
        .expect("client");
    let classic = client(&s);
    for key in [
        format!(" {p}edge"),
        format!("{p}edge "),
        format!("{p}a..%2Fb"),
    ] {
        let before = strict
            .kv()
            .set(key.clone(), "v")
            .await
            .expect_err("refused");
        assert!(matches!(before, Error::Build(_)), "{key:?}: {before:?}");
        assert!(before.is_invalid_key());
        let after = classic
            .kv()
            .set(key.clone(), "v")
            .await
            .expect_err("refused");
        assert!(after.is_invalid_key(), "{key:?}: {after:?}");
        assert_eq!(after.status(), Some(http::StatusCode::BAD_REQUEST));
    }
    // `a/../b` is refused before I/O under either rule (Consul's router would redirect it).
    for c in [&strict, &classic] {
        let e = c
            .kv()
            .set(format!("{p}a/../b"), "v")
            .await
            .expect_err("refused");
        assert!(matches!(e, Error::Build(_)) && e.is_invalid_key(), "{e:?}");
    }
    // Keys 1.22 accepts work under the strict rules.
    assert!(strict
        .kv()
        .set(format!("{p}sp ace:ç"), "v")
        .await
        .expect("set"));
}

/// 1.21.5's regex answers `500`; the client types it as an invalid key, not a server error.
#[tokio::test]
async fn consul_1_21_regex_refusal_is_typed() {
    let Some(s) = server::start_devserver(
        "consul-1.21-keys",
        DevServer::builder().consul_version(ConsulVersion::V1_21),
    )
    .await
    else {
        return;
    };
    let c = client(&s);
    let e = c.kv().get("has space").await.expect_err("refused");
    assert!(e.is_invalid_key(), "{e:?}");
    assert!(!e.is_retryable());
    assert_eq!(e.status(), Some(http::StatusCode::INTERNAL_SERVER_ERROR));
}
