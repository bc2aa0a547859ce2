//! `Semaphore`: the limit, the Go layout, handover, loss and conflicts.

use std::time::Duration;

use consul_kv::{LockError, LockLost, SEMAPHORE_FLAG};
use consul_kv_tests::server;

use crate::{across_a_restart, client, prefix, within};

#[tokio::test]
async fn limit_is_enforced_in_the_go_layout() {
    let server = server::start().await;
    let client = client(&server);
    let p = prefix("sem");
    let prefix = p.trim_end_matches('/').to_owned();

    let a = client.semaphore(&prefix, 2).value("a").await.unwrap();
    let b = client.semaphore(&p, 2).value("b").await.unwrap();
    assert!(a.is_held() && b.is_held());
    assert_eq!(a.limit(), 2);
    assert_eq!(a.prefix(), prefix);
    assert!(client
        .semaphore(&prefix, 2)
        .try_acquire()
        .await
        .unwrap()
        .is_none());

    // The layout: `.lock` JSON with both holders, and one contender key per session.
    let kv = client.kv();
    let lock = kv.get(format!("{prefix}/.lock")).await.unwrap().unwrap();
    assert_eq!(lock.flags, SEMAPHORE_FLAG);
    let json: serde_json::Value = serde_json::from_slice(lock.bytes()).unwrap();
    assert_eq!(json["Limit"], 2);
    let holders = json["Holders"].as_object().unwrap();
    assert_eq!(holders.len(), 2);
    assert_eq!(holders[a.session().as_str()], true);
    assert_eq!(holders[b.session().as_str()], true);
    let contender = kv
        .get(format!("{prefix}/{}", a.session()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contender.flags, SEMAPHORE_FLAG);
    assert_eq!(contender.session.as_ref(), Some(a.session()));
    assert_eq!(contender.as_str(), Some("a"));

    // A third contender waits, and gets the slot a release frees.
    let c = tokio::spawn({
        let client = client.clone();
        let prefix = prefix.clone();
        async move { client.semaphore(&prefix, 2).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!c.is_finished());
    let a_session = a.session().clone();
    a.release().await.unwrap();
    let c = within(Duration::from_secs(3), "handover", c).await.unwrap();
    assert!(c.is_held());
    let json: serde_json::Value = serde_json::from_slice(
        kv.get(format!("{prefix}/.lock"))
            .await
            .unwrap()
            .unwrap()
            .bytes(),
    )
    .unwrap();
    let holders = json["Holders"].as_object().unwrap();
    assert!(!holders.contains_key(a_session.as_str()));
    assert!(holders.contains_key(c.session().as_str()));
    assert!(kv
        .get(format!("{prefix}/{a_session}"))
        .await
        .unwrap()
        .is_none());

    // A different limit is a conflict.
    let err = client.semaphore(&prefix, 3).await.unwrap_err();
    assert!(
        matches!(
            err,
            LockError::LimitConflict {
                existing: 2,
                requested: 3
            }
        ),
        "{err:?}"
    );
    assert!(matches!(
        client.semaphore(&prefix, 0).await.unwrap_err(),
        LockError::InvalidLimit
    ));
    b.release().await.unwrap();
    c.release().await.unwrap();
}

#[tokio::test]
async fn a_destroyed_holder_loses_its_slot_and_is_pruned() {
    let server = server::start().await;
    let client = client(&server);
    let prefix = prefix("sem-loss").trim_end_matches('/').to_owned();
    let a = client.semaphore(&prefix, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(client.session().destroy(a.session()).await.unwrap());
    let lost = within(Duration::from_secs(1), "loss", a.lost()).await;
    assert!(matches!(lost, LockLost::Taken), "{lost:?}");
    assert!(!a.is_held());
    // The dead holder is still listed in `.lock`, but pruned by the next contender.
    let b = within(
        Duration::from_secs(3),
        "next holder",
        client.semaphore(&prefix, 1).acquire(),
    )
    .await
    .unwrap();
    assert!(b.is_held());
    b.release().await.unwrap();
    drop(a);
}

#[tokio::test]
async fn foreign_flags_on_the_lock_key_are_a_conflict() {
    let server = server::start().await;
    let client = client(&server);
    let prefix = prefix("sem-conflict").trim_end_matches('/').to_owned();
    assert!(client
        .kv()
        .set(format!("{prefix}/.lock"), "not json")
        .await
        .unwrap());
    let err = client.semaphore(&prefix, 1).await.unwrap_err();
    assert!(matches!(err, LockError::Conflict { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_retries_while_the_server_is_down() {
    let p = prefix("semaphore-retry");
    let Some((acquired, _server)) = across_a_restart("semaphore-retry", |client| {
        tokio::spawn(
            client
                .semaphore(&p, 2)
                .retry_for(Duration::from_secs(60))
                .acquire(),
        )
    })
    .await
    else {
        return;
    };
    let slot = acquired.unwrap();
    assert!(slot.is_held());
    slot.release().await.unwrap();
}
