//! `put_all`: transactions within Consul's limits (128 operations, 512 KiB of body), reports,
//! progress and errors that say what was committed.

use std::sync::{Arc, Mutex};

use consul_kv::{BatchFailure, Client, TxnLimits};
use consul_kv_devserver::{DevServer, Fault};
use consul_kv_tests::server;

use crate::{client, prefix};

#[tokio::test]
async fn put_all_splits_129_operations_into_two_transactions() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("put-all-129");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let report = kv
        .put_all((0..129).map(|i| (format!("{p}k{i:03}"), format!("v{i}"))))
        .progress(move |pr| {
            log.lock()
                .unwrap()
                .push((pr.chunk, pr.chunks, pr.committed.entries))
        })
        .await
        .unwrap();
    assert_eq!(report.entries, 129);
    assert_eq!(report.transactions, 2);
    assert_eq!(report.single_writes, 0);
    assert_eq!(
        report.bytes,
        (0..129).map(|i| format!("v{i}").len() as u64).sum::<u64>()
    );
    // Both chunks may be in flight at once: they report in the order they commit.
    let mut seen = seen.lock().unwrap().clone();
    assert_eq!(seen.last().map(|s| s.2), Some(129));
    seen.sort_unstable();
    assert_eq!(
        seen.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        [(0, 2), (1, 2)]
    );
    let items = kv.items(&p).await.unwrap();
    assert_eq!(items.len(), 129);
    for (i, pair) in items.iter().enumerate() {
        assert_eq!(pair.key, format!("{p}k{i:03}"));
        assert_eq!(pair.value_bytes(), format!("v{i}").as_bytes());
    }
    // The same on a server older than 1.14: 64 per transaction.
    let q = format!("{p}old/");
    let report = kv
        .put_all((0..129).map(|i| (format!("{q}{i}"), "x")))
        .limits(TxnLimits::before_1_14())
        .await
        .unwrap();
    assert_eq!((report.entries, report.transactions), (129, 3));
}

#[tokio::test]
async fn put_all_splits_600_kib_by_body_size_and_keeps_bytes_and_flags() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("put-all-600k");
    // Six 100 KiB binary values: 600 KiB raw, about 800 KiB once base64-encoded.
    let values: Vec<Vec<u8>> = (0..6u8)
        .map(|i| {
            (0..100 * 1024)
                .map(|j| (j as u8).wrapping_mul(31) ^ i)
                .collect()
        })
        .collect();
    let entries: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("{p}blob {i}?#%"), v.clone(), i as u64 + 1))
        .collect();
    let report = kv.put_all_with_flags(entries).await.unwrap();
    assert_eq!(report.entries, 6);
    assert!(report.transactions >= 2, "{report:?}");
    assert_eq!(report.bytes, 600 * 1024);
    assert!(report.request_bytes > 600 * 1024);
    for (i, v) in values.iter().enumerate() {
        let got = kv.get(format!("{p}blob {i}?#%")).await.unwrap().unwrap();
        assert_eq!(got.bytes(), &v[..], "value {i} byte for byte");
        assert_eq!(got.flags, i as u64 + 1);
    }
    // A value that fits a KV write (≤ 512 KiB) but not a transaction body once encoded
    // goes alone, as a plain PUT.
    let big = vec![7u8; 450 * 1024];
    let report = kv
        .put_all([
            (format!("{p}a"), vec![1u8]),
            (format!("{p}big"), big.clone()),
            (format!("{p}z"), vec![2u8]),
        ])
        .await
        .unwrap();
    assert_eq!(
        (report.entries, report.transactions, report.single_writes),
        (3, 2, 1)
    );
    assert_eq!(
        kv.get(format!("{p}big")).await.unwrap().unwrap().bytes(),
        &big[..]
    );
}

#[tokio::test]
async fn put_all_refuses_bad_input_before_writing_anything() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("put-all-bad");
    let err = kv
        .put_all([(format!("{p}ok"), "1"), (format!("{p}bad//key"), "2")])
        .await
        .unwrap_err();
    assert_eq!(err.committed.entries, 0);
    assert_eq!(err.keys, [format!("{p}bad//key")]);
    assert!(matches!(err.cause, BatchFailure::Consul(_)), "{err:?}");
    let err = kv
        .put_all([(format!("{p}ok"), vec![0u8; 512 * 1024 + 1])])
        .await
        .unwrap_err();
    assert!(matches!(err.cause, BatchFailure::TooLarge(_)), "{err:?}");
    let err = kv
        .import([(format!("{p}ok"), "1"), ("elsewhere/x".to_owned(), "2")])
        .rewrite_prefix(&p, format!("{p}copy/"))
        .await
        .unwrap_err();
    assert!(
        matches!(err.cause, BatchFailure::OutsidePrefix { ref key, .. } if key == "elsewhere/x")
    );
    assert!(
        kv.items(&p).await.unwrap().is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn put_all_failure_names_the_chunk_and_what_was_committed() {
    // Devserver only: its fault hook makes every request after the first chunk fail.
    if consul_kv_tests::server::external_base().is_some() {
        eprintln!("note: put_all_failure_names_the_chunk_and_what_was_committed: skipped, needs the devserver");
        return;
    }
    let handle = Arc::new(DevServer::builder().start().await.unwrap());
    let kv = Client::builder()
        .address(handle.http_addr())
        .build()
        .unwrap()
        .kv();
    let p = prefix("put-all-fail");
    let hook = handle.clone();
    let err = kv
        .put_all((0..300).map(|i| (format!("{p}{i:03}"), "v")))
        .concurrency(1)
        .progress(move |pr| {
            if pr.chunk == 0 {
                hook.set_fault(Some(Fault::Respond {
                    status: 403,
                    body: "Permission denied".to_owned(),
                }));
            }
        })
        .await
        .unwrap_err();
    handle.set_fault(None);
    assert_eq!(err.chunk, 1, "{err}");
    assert_eq!(err.chunks, 3);
    assert_eq!(err.committed.entries, 128);
    assert_eq!(err.committed.transactions, 1);
    assert_eq!(err.committed_chunks, [0]);
    assert_eq!(err.keys.len(), 128);
    assert_eq!(err.keys[0], format!("{p}128"));
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403));
    assert!(!err.is_retryable());
    assert!(!err.is_outcome_unknown());
    let items = kv.items(&p).await.unwrap();
    assert_eq!(items.len(), 128, "exactly the first chunk is stored");
    assert_eq!(items.last().unwrap().key, format!("{p}127"));
}

#[tokio::test]
async fn put_all_in_flight_chunks_end_as_a_sequential_write() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("put-all-dupes");
    // 1,000 writes to 100 keys: each key's last value wins, whatever the chunks' timing.
    let entries: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("{p}{:03}", i % 100), format!("round {}", i / 100)))
        .collect();
    let report = kv.put_all(entries).concurrency(8).await.unwrap();
    assert_eq!(report.entries, 100, "a key given twice is written once");
    let items = kv.items(&p).await.unwrap();
    assert_eq!(items.len(), 100);
    assert!(items.iter().all(|i| i.value_bytes() == b"round 9"));
    // Many chunks in flight: every key lands.
    let q = format!("{p}many/");
    let report = kv
        .put_all((0..2000).map(|i| (format!("{q}{i:04}"), i.to_string())))
        .concurrency(16)
        .await
        .unwrap();
    assert_eq!((report.entries, report.transactions), (2000, 16));
    let items = kv.items(&q).await.unwrap();
    assert_eq!(items.len(), 2000);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item.value_bytes(), i.to_string().as_bytes());
    }
}
