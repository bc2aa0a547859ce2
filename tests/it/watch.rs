//! Watches as streams: real changes only, prefix watches, an index reset (tombstone reaping)
//! and a server restart on the same port.

use std::time::Duration;

use consul_kv::{KeyWatch, PrefixWatch};
use consul_kv_devserver::DevServer;
use consul_kv_tests::server;

use crate::{client, prefix, within};

async fn next_key(w: &mut KeyWatch) -> Option<consul_kv::Key> {
    within(Duration::from_secs(10), "key watch item", w.next())
        .await
        .expect("never ends")
        .expect("no error")
}

async fn next_items(w: &mut PrefixWatch) -> Vec<(String, Vec<u8>)> {
    within(Duration::from_secs(10), "prefix watch item", w.next())
        .await
        .expect("never ends")
        .expect("no error")
        .into_iter()
        .map(|p| (p.key.clone(), p.value_bytes().to_vec()))
        .collect()
}

/// Asserts that nothing is yielded for `d`.
async fn quiet<S: futures_core::Stream + Unpin>(w: &mut S, d: Duration)
where
    S::Item: std::fmt::Debug,
{
    let got = tokio::time::timeout(
        d,
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut *w).poll_next(cx)),
    )
    .await;
    assert!(got.is_err(), "unexpected item: {got:?}");
}

#[tokio::test]
async fn key_watch_yields_only_real_changes() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("watch-key");
    let key = format!("{p}config");
    let mut w = kv.watch(&key).wait(Duration::from_secs(5));

    assert!(next_key(&mut w).await.is_none(), "absent first");
    assert!(kv.set(&key, "v1").await.unwrap());
    let v1 = next_key(&mut w).await.unwrap();
    assert_eq!(v1.bytes(), b"v1");
    assert_eq!(
        v1.consul().modify_index(),
        Some(consul_kv::Index::new(v1.modify_index))
    );

    // Writes elsewhere, and a rewrite of the same value, are not changes.
    assert!(kv.set(format!("{p}other"), "x").await.unwrap());
    quiet(&mut w, Duration::from_millis(600)).await;

    assert!(kv.set(&key, "v2").await.unwrap());
    assert_eq!(next_key(&mut w).await.unwrap().bytes(), b"v2");
    assert!(kv.set(&key, "v2").flags(3).await.unwrap());
    assert_eq!(next_key(&mut w).await.unwrap().flags, 3);
    assert!(kv.delete(&key).await.unwrap());
    assert!(next_key(&mut w).await.is_none(), "deleted");
}

#[tokio::test]
async fn prefix_watch_is_a_stream_of_lists() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("watch-prefix");
    let mut w = kv
        .watch_prefix(&p)
        .consistency(consul_kv::Consistency::Consistent)
        .min_interval(Duration::from_millis(50));
    assert!(next_items(&mut w).await.is_empty());
    assert!(kv.set(format!("{p}a"), "1").await.unwrap());
    assert_eq!(next_items(&mut w).await, [(format!("{p}a"), b"1".to_vec())]);
    assert!(kv.set(format!("{p}b"), "2").await.unwrap());
    assert_eq!(next_items(&mut w).await.len(), 2);
    assert!(kv.delete_tree(&p).await.unwrap());
    assert!(next_items(&mut w).await.is_empty());
}

#[tokio::test]
async fn prefix_watch_survives_an_index_reset() {
    let Some(server) = server::start_devserver("watch-reset", DevServer::builder()).await else {
        return;
    };
    let handle = server.handle().unwrap();
    let kv = client(&server).kv();
    let p = prefix("watch-reset");
    assert!(kv.set(format!("{p}a"), "1").await.unwrap());
    assert!(kv.set(format!("{p}b"), "2").await.unwrap());
    let mut w = kv.watch_prefix(&p).wait(Duration::from_secs(2));
    assert_eq!(next_items(&mut w).await.len(), 2);

    // Delete the entry with the highest index, then reap its tombstone: the prefix's index
    // goes backwards.
    assert!(kv.delete(format!("{p}b")).await.unwrap());
    assert_eq!(next_items(&mut w).await, [(format!("{p}a"), b"1".to_vec())]);
    let before = kv.items(&p).await.unwrap().consul().last_index();
    assert!(handle.reap_tombstones() > 0);
    let after = kv.items(&p).await.unwrap().consul().last_index();
    assert!(after < before, "index went backwards: {before} -> {after}");

    // No false change from the reset, and the watch keeps working.
    quiet(&mut w, Duration::from_millis(2500)).await;
    assert!(kv.set(format!("{p}c"), "3").await.unwrap());
    assert_eq!(
        next_items(&mut w).await,
        [
            (format!("{p}a"), b"1".to_vec()),
            (format!("{p}c"), b"3".to_vec())
        ]
    );
}

#[tokio::test]
async fn key_watch_survives_a_server_restart() {
    let Some(first) = server::start_devserver("watch-restart", DevServer::builder()).await else {
        return;
    };
    let addr = first.handle().unwrap().addr();
    let kv = client(&first).kv();
    let key = format!("{}k", prefix("watch-restart"));
    for i in 0..20 {
        assert!(kv.set(&key, format!("old {i}")).await.unwrap());
    }
    let mut w = kv.watch(&key).wait(Duration::from_secs(2));
    assert_eq!(next_key(&mut w).await.unwrap().bytes(), b"old 19");

    // Restart on the same port with a fresh state: indexes start over, lower than before.
    first.shutdown().await;
    let second = server::start_with(DevServer::builder().listen(addr)).await;
    let kv2 = client(&second).kv();
    assert!(kv2.set(&key, "new").await.unwrap());
    let got = within(Duration::from_secs(40), "change after restart", async {
        loop {
            match w.next().await.expect("never ends") {
                Ok(Some(k)) if k.bytes() == b"new" => return k,
                Ok(other) => panic!("unexpected {other:?}"),
                // Errors during the restart window are yielded; the watch goes on.
                Err(e) => eprintln!("watch error during restart: {e}"),
            }
        }
    })
    .await;
    assert!(got.modify_index < 20, "fresh index {}", got.modify_index);
}
