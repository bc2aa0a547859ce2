//! Elections: campaign, observe, proclaim, resign, a Go-style lock holder seen as leader, and
//! fenced writes that tell "no longer leader" from a CAS conflict.

use std::time::Duration;

use consul_kv::{Bytes, Election, FenceError, Observe, LOCK_FLAG};
use consul_kv_tests::server;

use crate::{client, prefix, sessions_ready, within};

async fn observed(o: &mut Observe) -> Option<Bytes> {
    within(Duration::from_secs(20), "an observed leader", o.next())
        .await
        .expect("the stream goes on")
}

/// Reads until the observer reports `want` (intermediate states may be skipped by a slow
/// observer, never reordered).
async fn observe_until(o: &mut Observe, want: Option<&str>) {
    loop {
        let got = observed(o).await;
        if got.as_deref() == want.map(str::as_bytes) {
            return;
        }
    }
}

fn election(c: &consul_kv::Client, key: &str) -> Election {
    c.election(key)
        .session_ttl(Duration::from_secs(10))
        .lock_delay(Duration::from_secs(1))
        .wait_time(Duration::from_secs(2))
}

#[tokio::test]
async fn campaign_observe_proclaim_resign() {
    let server = server::start().await;
    let c = client(&server);
    sessions_ready(&c).await;
    let key = format!("{}leader", prefix("election"));
    let e = election(&c, &key);
    let mut o = e.observe();
    assert_eq!(observed(&mut o).await, None, "nobody leads yet");

    let a = e.campaign("node-a").await.unwrap();
    assert!(a.is_leader());
    assert_eq!(observed(&mut o).await.as_deref(), Some(&b"node-a"[..]));
    assert_eq!(e.leader().await.unwrap().as_deref(), Some(&b"node-a"[..]));

    // A second candidate waits while a leads.
    let e2 = election(&c, &key);
    let b_campaign = tokio::spawn(async move { e2.campaign("node-b").await });

    a.proclaim("node-a v2").await.unwrap();
    assert_eq!(observed(&mut o).await.as_deref(), Some(&b"node-a v2"[..]));
    assert!(a.is_leader(), "proclaiming keeps the leadership");
    assert!(!b_campaign.is_finished());

    assert!(a.resign().await.unwrap());
    let b = within(Duration::from_secs(20), "b elected", b_campaign)
        .await
        .unwrap()
        .unwrap();
    observe_until(&mut o, Some("node-b")).await;

    // Destroying the leader's session: the observer sees nobody lead (Consul releases the
    // key at once; the lock-delay only keeps candidates out), and b learns it lost.
    c.session().destroy(b.session()).await.unwrap();
    observe_until(&mut o, None).await;
    within(Duration::from_secs(20), "b sees the loss", b.lost()).await;
    let late = b.proclaim("too late").await;
    assert!(matches!(late, Err(FenceError::NotLeader)), "{late:?}");
}

#[tokio::test]
async fn fenced_writes_tell_a_lost_leadership_from_a_cas_conflict() {
    let server = server::start().await;
    let c = client(&server);
    sessions_ready(&c).await;
    let p = prefix("fence");
    let key = format!("{p}leader");
    let data = format!("{p}data");
    let kv = c.kv();
    let leader = election(&c, &key).campaign("me").await.unwrap();

    let r = leader.fenced().set(&data, "1").get(&data).await.unwrap();
    assert_eq!(r.results.len(), 2, "the fence's own result is not returned");
    let stored = kv.get(&data).await.unwrap().unwrap();
    assert_eq!(stored.bytes(), b"1");

    // A CAS on stale data while still leading: a conflict, not a lost leadership.
    kv.set(&data, "2").await.unwrap();
    match leader.fenced().cas(&data, "3", &stored).await {
        Err(FenceError::Conflict(errors)) => {
            assert_eq!(errors.len(), 1);
            assert_eq!(
                errors[0].op_index, 0,
                "indexes count the caller's operations"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(kv.get(&data).await.unwrap().unwrap().bytes(), b"2");

    // Once the session is gone, the same write is refused as "no longer leader".
    c.session().destroy(leader.session()).await.unwrap();
    let current = kv.get(&data).await.unwrap().unwrap();
    match leader.fenced().cas(&data, "4", &current).await {
        Err(e @ FenceError::NotLeader) => assert_eq!(e.to_string(), "no longer leader"),
        other => panic!("expected NotLeader, got {other:?}"),
    }
    assert_eq!(kv.get(&data).await.unwrap().unwrap().bytes(), b"2");
}

/// A holder that locks the key the way Go's `api.Lock` does (acquire with its flag and a
/// value) is the leader to observers, and blocks candidates.
#[tokio::test]
async fn a_go_style_lock_holder_is_seen_as_the_leader() {
    let server = server::start().await;
    let c = client(&server);
    sessions_ready(&c).await;
    let key = format!("{}leader", prefix("go-lock"));
    let kv = c.kv();
    let session = c
        .session()
        .create()
        .name("Consul API Lock")
        .ttl(Duration::from_secs(10))
        .lock_delay(Duration::ZERO)
        .await
        .unwrap();
    assert!(kv
        .acquire(&key, &session)
        .value("go-process")
        .flags(LOCK_FLAG)
        .await
        .unwrap());
    let e = election(&c, &key);
    let mut o = e.observe();
    assert_eq!(observed(&mut o).await.as_deref(), Some(&b"go-process"[..]));

    let e2 = e.clone();
    let rust = tokio::spawn(async move { e2.campaign("rust-process").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!rust.is_finished(), "the Go holder leads");
    assert!(kv
        .release(&key, &session)
        .value("go-process")
        .flags(LOCK_FLAG)
        .await
        .unwrap());
    let leader = within(
        Duration::from_secs(20),
        "elected after the Go release",
        rust,
    )
    .await
    .unwrap()
    .unwrap();
    observe_until(&mut o, Some("rust-process")).await;
    assert!(leader.resign().await.unwrap());
    observe_until(&mut o, None).await;
}
