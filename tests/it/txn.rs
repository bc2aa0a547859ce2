//! Transactions: every verb, typed results, and the per-operation errors of a rollback.

use std::time::Duration;

use consul_kv::{Cas, Index, TxnOp, TxnOutcome};
use consul_kv_tests::server;

use crate::{client, prefix};

#[tokio::test]
async fn every_verb_commits_with_typed_results() {
    let server = server::start().await;
    let client = client(&server);
    let kv = client.kv();
    let p = prefix("txn");
    let a = format!("{p}a");
    let b = format!("{p}b");
    let c = format!("{p}c");
    let l = format!("{p}lock");
    let session = client
        .session()
        .create()
        .lock_delay(Duration::ZERO)
        .await
        .unwrap();

    let outcome = kv
        .txn()
        .check_not_exists(&a)
        .set(&a, "1")
        .set_with_flags(&b, "2", 9)
        .cas(&c, "3", Cas::Absent)
        .lock(&l, "held", &session)
        .await
        .unwrap();
    assert!(outcome.is_committed(), "{outcome:?}");
    let results = outcome.results().unwrap();
    assert_eq!(results.len(), 4, "writes return entries: {results:?}");
    assert_eq!(results[0].key, a);
    assert_eq!(results[1].flags, 9);
    assert!(outcome.errors().is_none());

    let a_entry = kv.get(&a).await.unwrap().unwrap();
    let c_entry = kv.get(&c).await.unwrap().unwrap();
    let outcome = kv
        .txn()
        .get(&a)
        .get_or_empty(format!("{p}missing"))
        .get_tree(&p)
        .check_index(&a, &a_entry)
        .check_session(&l, &session)
        .consistency(consul_kv::Consistency::Consistent)
        .await
        .unwrap();
    let TxnOutcome::Committed(r) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(r.results[0].value_bytes(), b"1");
    assert_eq!(r.results[1].key, format!("{p}missing"));
    assert_eq!(r.results[1].modify_index, 0, "get-or-empty echo");
    let tree: Vec<&str> = r.results[2..6].iter().map(|e| e.key.as_str()).collect();
    assert_eq!(tree, [a.as_str(), b.as_str(), c.as_str(), l.as_str()]);
    assert_eq!(r.results[5].session.as_ref(), Some(session.id()));

    let outcome = kv
        .txn()
        .cas(&c, "33", &c_entry)
        .unlock(&l, "free", &session)
        .delete(&b)
        .delete_cas(&a, Index::new(a_entry.modify_index))
        .op(TxnOp::set(format!("{p}d/1"), "x"))
        .await
        .unwrap();
    assert!(outcome.is_committed(), "{outcome:?}");
    assert!(kv.get(&a).await.unwrap().is_none());
    assert!(kv.get(&b).await.unwrap().is_none());
    assert_eq!(kv.get(&c).await.unwrap().unwrap().bytes(), b"33");
    let lock = kv.get(&l).await.unwrap().unwrap();
    assert!(lock.session.is_none());
    assert_eq!(lock.bytes(), b"free");

    let outcome = kv.txn().delete_tree(format!("{p}d/")).await.unwrap();
    assert!(outcome.is_committed());
    assert!(kv.keys(format!("{p}d/")).await.unwrap().is_empty());
    // Per-call settings: the transaction is sent to the named datacenter.
    let txn = kv.txn().get(&c).dc("dc1");
    assert_eq!(txn.ops().len(), 1);
    let TxnOutcome::Committed(r) = txn.await.unwrap() else {
        panic!("a get of an existing key commits")
    };
    assert_eq!(r.results.len(), 1);
    assert_eq!(r.results[0].key, c);
    assert_eq!(r.results[0].value_bytes(), b"33");
    // A datacenter that does not exist fails the call instead of being ignored.
    let e = kv.txn().get(&c).dc("no-such-dc").await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(500), "{e:?}");
    assert!(session.destroy().await.unwrap());
}

#[tokio::test]
async fn rollback_reports_every_failing_operation() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("txn-rollback");
    let a = format!("{p}a");
    assert!(kv.set(&a, "1").await.unwrap());
    let stale = kv.get(&a).await.unwrap().unwrap();
    assert!(kv.set(&a, "2").await.unwrap());

    let outcome = kv
        .txn()
        .set(format!("{p}new"), "x")
        .check_not_exists(&a)
        .cas(&a, "3", &stale)
        .await
        .unwrap();
    let TxnOutcome::RolledBack(errors) = &outcome else {
        panic!("{outcome:?}")
    };
    // Both failing operations are reported, in order, and nothing else: the
    // check-not-exists of an existing key (1) and the CAS with a stale index (2).
    let failing: Vec<usize> = errors.iter().map(|e| e.op_index).collect();
    assert_eq!(failing, [1, 2], "{errors:?}");
    assert!(errors[0].what.contains("exists"), "{errors:?}");
    assert!(errors[1].what.contains("stale"), "{errors:?}");
    assert!(outcome.results().is_none());
    assert!(outcome.errors().is_some());
    // Nothing was applied.
    assert!(kv.get(format!("{p}new")).await.unwrap().is_none());
    assert_eq!(kv.get(&a).await.unwrap().unwrap().bytes(), b"2");
    // A `get` of a missing key fails the transaction too.
    let outcome = kv.txn().get(format!("{p}missing")).await.unwrap();
    assert!(!outcome.is_committed());
}

#[tokio::test]
async fn outcome_is_committed_or_rolled_back_and_converts_to_a_result() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let a = format!("{}a", prefix("txn-outcome"));

    let committed = kv.txn().set(&a, "1").get(&a).await.unwrap();
    assert!(committed.is_committed());
    // Two variants and no more: a match needs no catch-all arm.
    let results = match &committed {
        TxnOutcome::Committed(r) => r.results.len(),
        TxnOutcome::RolledBack(errors) => panic!("{errors:?}"),
    };
    assert_eq!(results, 2);
    let response = committed.into_result().unwrap();
    assert_eq!(response.results[1].as_str(), Some("1"));

    let rolled_back = kv.txn().check_not_exists(&a).set(&a, "2").await.unwrap();
    assert!(!rolled_back.is_committed());
    let e = rolled_back.into_result().unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(409), "{e:?}");
    assert!(
        matches!(
            e.as_response(),
            Some(consul_kv::ResponseError::TxnRolledBack { .. })
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "PUT /v1/txn: transaction rolled back");
    let detail = std::error::Error::source(&e).unwrap().to_string();
    assert!(detail.starts_with("operation 0:"), "{detail}");
    assert_eq!(kv.get(&a).await.unwrap().unwrap().as_str(), Some("1"));
}
