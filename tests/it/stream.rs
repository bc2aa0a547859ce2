//! `Kv::items_stream`: the same entries as `items()`, for trees of any size, under its own
//! byte limit.

use std::pin::Pin;

use consul_kv::{Client, Error, KvPair};
use consul_kv_tests::server::{self, TestServer};
use futures_core::Stream;

use crate::{client, prefix, within};

/// Writes `n` keys `<p>NNNNN` with 100-byte values, 64 per transaction.
async fn fill(client: &Client, p: &str, n: usize) {
    let kv = client.kv();
    for start in (0..n).step_by(64) {
        let mut txn = kv.txn();
        for i in start..(start + 64).min(n) {
            txn = txn.set(format!("{p}{i:05}"), format!("{i:05}").repeat(20));
        }
        assert!(txn.await.unwrap().is_committed());
    }
}

async fn collect(client: &Client, p: &str) -> Result<Vec<KvPair>, Error> {
    let mut s = client.kv().items_stream(p);
    let mut out = Vec::new();
    while let Some(pair) = s.next().await {
        out.push(pair?);
    }
    assert!(
        s.consul().is_some(),
        "the meta is known once the answer started"
    );
    Ok(out)
}

#[tokio::test]
async fn a_stream_yields_what_items_returns() {
    let server = server::start().await;
    let c = client(&server);
    let p = prefix("stream-small");
    for (k, v) in [("b", "2"), ("a", "1"), ("c/d", "")] {
        assert!(c.kv().set(format!("{p}{k}"), v).await.unwrap());
    }
    let items = c.kv().items(&p).await.unwrap().into_vec();
    assert_eq!(items.len(), 3);
    assert_eq!(collect(&c, &p).await.unwrap(), items);

    // Nothing under the prefix: no entries (Consul's 404), not an error.
    assert_eq!(collect(&c, &format!("{p}none/")).await.unwrap(), vec![]);

    // Through the Stream trait too.
    let mut s = c.kv().items_stream(&p);
    let first = std::future::poll_fn(|cx| Pin::new(&mut s).poll_next(cx)).await;
    assert_eq!(first.unwrap().unwrap().key, format!("{p}a"));
}

/// Large enough that the devserver streams its answer (over 1,024 entries) and that it is
/// over the client's whole-body limit.
#[tokio::test]
async fn a_tree_over_the_body_limit_streams_in_order() {
    let server: TestServer = server::start().await;
    let n = 1500;
    let big = Client::builder()
        .from_env()
        .address(server.base_url())
        .max_body(64 << 10)
        .build()
        .unwrap();
    let p = prefix("stream-large");
    within(
        std::time::Duration::from_secs(120),
        "filling the tree",
        fill(&big, &p, n),
    )
    .await;

    let err = big.kv().items(&p).await.unwrap_err();
    assert!(matches!(err, Error::BodyTooLarge { .. }), "{err:?}");

    let got = within(
        std::time::Duration::from_secs(60),
        "the stream",
        collect(&big, &p),
    )
    .await
    .unwrap();
    assert_eq!(got.len(), n);
    for (i, pair) in got.iter().enumerate() {
        assert_eq!(pair.key, format!("{p}{i:05}"));
        assert_eq!(pair.value_bytes(), format!("{i:05}").repeat(20).as_bytes());
    }

    // The stream's own limit: far below the tree, so the stream ends with an error.
    let small = Client::builder()
        .from_env()
        .address(server.base_url())
        .max_stream_body(16 << 10)
        .build()
        .unwrap();
    let err = collect(&small, &p).await.unwrap_err();
    assert!(matches!(err, Error::BodyTooLarge { .. }), "{err:?}");
    // The client is still usable afterwards.
    assert_eq!(small.kv().keys(&p).await.unwrap().len(), n);
}
