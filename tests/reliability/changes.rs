//! The watcher scenario for change events (R4c): `watch_prefix(..).changes()` through real
//! changes, identical writes, deletes, a tombstone reap (index reset), a restart that keeps
//! the data (every index changes, no content does) and a restart with an empty store, with
//! the exact number of events checked batch by batch.
//!
//! Each batch changes every key it touches at most once (plus identical rewrites, which are
//! no change), then writes a marker key. Whatever answers the watch gets in between, the
//! events before the marker's must be exactly the batch's real changes: one per changed key,
//! none twice, none missing.

use std::collections::BTreeMap;
use std::time::Duration;

use consul_kv::{Changes, WatchOptions};
use consul_kv_devserver::DevServer;

use crate::{client, figure, size, EXCLUSIVE};

use consul_kv_tests::workloads::describe_change as describe;

/// The events a move from `old` to `new` must yield, as `describe` writes them, sorted.
fn expected(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in new {
        match old.get(k) {
            None => out.push(format!("+{k}={v}")),
            Some(o) if o != v => out.push(format!("~{k}={o}>{v}")),
            Some(_) => {}
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            out.push(format!("-{k}"));
        }
    }
    out.sort();
    out
}

/// Reads events until the one that reports `marker` as `value`; returns them all, sorted.
async fn until_marker(changes: &mut Changes, marker: &str, value: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let c = tokio::time::timeout(Duration::from_secs(30), changes.next())
            .await
            .expect("an event within 30 s")
            .expect("the stream goes on");
        let done = c.key() == marker
            && c.new_pair()
                .is_some_and(|p| p.value_bytes() == value.as_bytes());
        got.push(describe(&c));
        if done {
            got.sort();
            return got;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4c_change_events_are_exact_across_identical_writes_reaps_and_restarts() {
    let _x = EXCLUSIVE.read().await;
    let data = std::env::temp_dir().join(format!("consul-kv-r4c-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&data);
    let first = DevServer::builder().data_file(&data).start().await.unwrap();
    let addr = first.addr();
    let base = first.http_addr();
    let c = client(&base);
    let kv = c.kv();
    let keys = size(16, 256);
    let p = "r4c/";
    let marker = format!("{p}~marker");
    let key = |i: usize| format!("{p}k{i:04}");

    let mut changes = kv
        .watch_prefix(p)
        .options(
            WatchOptions::default()
                .wait(Duration::from_secs(5))
                .min_interval(Duration::from_millis(10))
                .backoff(Duration::from_millis(50), Duration::from_millis(500)),
        )
        .changes();
    let mut model: BTreeMap<String, String> = BTreeMap::new();
    let mut batch = 0usize;
    let mut total = 0usize;
    let mut counts = [0usize; 3];
    let mut identical = 0usize;

    // One batch: `apply` changes the server, `next` is the model afterwards (without the
    // marker); the marker is then written and the events checked.
    macro_rules! check_batch {
        ($what:expr, $next:expr) => {{
            batch += 1;
            let mut next: BTreeMap<String, String> = $next;
            let value = format!("b{batch}");
            assert!(kv.set(&marker, value.clone()).await.unwrap());
            next.insert(marker.clone(), value.clone());
            let want = expected(&model, &next);
            let got = until_marker(&mut changes, &marker, &value).await;
            assert_eq!(got, want, "batch {batch} ({}): events", $what);
            for e in &got {
                counts[match e.as_bytes()[0] {
                    b'+' => 0,
                    b'~' => 1,
                    _ => 2,
                }] += 1;
            }
            total += got.len();
            model = next;
        }};
    }

    // 1. Create every key.
    let mut next = model.clone();
    for i in 0..keys {
        assert!(kv.set(key(i), "v0").await.unwrap());
        next.insert(key(i), "v0".into());
    }
    check_batch!("create", next);

    // 2. Change the even keys; rewrite the odd ones with the same value (no change).
    let mut next = model.clone();
    for i in 0..keys {
        if i % 2 == 0 {
            assert!(kv.set(key(i), "v1").await.unwrap());
            next.insert(key(i), "v1".into());
        } else {
            assert!(kv.set(key(i), "v0").await.unwrap());
            identical += 1;
        }
    }
    check_batch!("modify + identical writes", next);

    // 3. Delete every fourth key, including the highest one, and rewrite others identically.
    let mut next = model.clone();
    for i in 0..keys {
        if i % 4 == 3 || i == keys - 1 {
            assert!(kv.delete(key(i)).await.unwrap());
            next.remove(&key(i));
        } else if i % 4 == 0 {
            assert!(kv.set(key(i), "v1").await.unwrap());
            identical += 1;
        }
    }
    check_batch!("deletes", next);

    // 4. Reap the tombstones: the prefix's index goes back; nothing changed.
    assert!(first.reap_tombstones() > 0);
    check_batch!("tombstone reap", model.clone());

    // 5. Restart keeping the data: every index is new, no content is.
    first.shutdown().await.unwrap();
    let second = DevServer::builder()
        .listen(addr)
        .data_file(&data)
        .start()
        .await
        .unwrap();
    check_batch!("restart with the same data", model.clone());

    // 6. Restart with an empty store: every key is gone, the marker too. Nothing is written
    // until the watch has reported it, so the events are exactly one delete per key.
    second.shutdown().await.unwrap();
    let _ = std::fs::remove_file(&data);
    let third = DevServer::builder().listen(addr).start().await.unwrap();
    let want = expected(&model, &BTreeMap::new());
    let mut got = Vec::new();
    while got.len() < want.len() {
        let c = tokio::time::timeout(Duration::from_secs(30), changes.next())
            .await
            .expect("an event within 30 s")
            .expect("the stream goes on");
        got.push(describe(&c));
    }
    got.sort();
    assert_eq!(got, want, "restart empty: events");
    counts[2] += got.len();
    total += got.len();
    model.clear();

    // 7. Everything back.
    let mut next = model.clone();
    for i in 0..keys {
        assert!(kv.set(key(i), "v2").await.unwrap());
        next.insert(key(i), "v2".into());
    }
    check_batch!("recreate", next);

    assert_eq!(model.len(), keys + 1, "every key and the marker");
    third.shutdown().await.unwrap();
    let _ = std::fs::remove_file(&data);
    figure(
        &format!("R4c change events, {keys} keys, 7 batches"),
        &format!(
            "{total} events ({} added, {} modified, {} deleted) exactly as expected; {identical} identical writes, 1 reap, 2 restarts yielded none",
            counts[0], counts[1], counts[2]
        ),
        "one event per real change",
        true,
    );
}
