//! `watch_prefix(..).changes()`: per-key events in key order, nothing for identical writes.

use std::time::Duration;

use consul_kv::{Change, Changes};
use consul_kv_tests::server;

use crate::{client, prefix, within};

async fn next(c: &mut Changes) -> Change {
    within(Duration::from_secs(10), "a change", c.next())
        .await
        .expect("the stream goes on")
}

use consul_kv_tests::workloads::describe_change as describe;

#[tokio::test]
async fn one_update_yields_its_changes_in_key_order_and_identical_writes_yield_nothing() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("changes");
    kv.set(format!("{p}b"), "1").await.unwrap();
    let mut changes = kv
        .watch_prefix(&p)
        .min_interval(Duration::from_millis(20))
        .changes();
    assert_eq!(describe(&next(&mut changes).await), format!("+{p}b=1"));

    // One transaction: one index, one update; events come in key order.
    let outcome = kv
        .txn()
        .set(format!("{p}c"), "3")
        .set(format!("{p}a"), "1")
        .set(format!("{p}b"), "2")
        .await
        .unwrap();
    assert!(outcome.is_committed());
    let got: Vec<String> = [
        next(&mut changes).await,
        next(&mut changes).await,
        next(&mut changes).await,
    ]
    .iter()
    .map(describe)
    .collect();
    assert_eq!(
        got,
        [format!("+{p}a=1"), format!("~{p}b=1>2"), format!("+{p}c=3")]
    );

    // An identical write moves the modify index but is no change; the next event is the
    // marker written after it.
    assert!(kv.set(format!("{p}a"), "1").await.unwrap());
    assert!(kv.set(format!("{p}marker"), "m").await.unwrap());
    assert_eq!(describe(&next(&mut changes).await), format!("+{p}marker=m"));

    // Flags and sessions are changes too; deletes yield the entry as last seen.
    assert!(kv.set(format!("{p}a"), "1").flags(7).await.unwrap());
    match next(&mut changes).await {
        Change::Modified { old, new } => assert_eq!((old.flags, new.flags), (0, 7)),
        other => panic!("expected a flags change, got {other:?}"),
    }
    assert!(kv.delete_tree(format!("{p}b")).await.unwrap());
    match next(&mut changes).await {
        Change::Deleted(pair) => {
            assert_eq!(pair.key, format!("{p}b"));
            assert_eq!(pair.value_bytes(), b"2");
        }
        other => panic!("expected a delete, got {other:?}"),
    }
    let view: Vec<String> = changes.view().map(|p| p.key.clone()).collect();
    assert_eq!(
        view,
        [format!("{p}a"), format!("{p}c"), format!("{p}marker")]
    );
}
