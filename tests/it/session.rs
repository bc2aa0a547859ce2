//! Sessions: create (every option), info, node, list, renew, destroy, expiry, keep-alive.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use consul_kv::{Behavior, SessionLost};
use consul_kv_devserver::{DevServer, Fault};
use consul_kv_tests::proxy::{Fault as ProxyFault, FaultProxy};
use consul_kv_tests::server;

use crate::{client, prefix, within};

#[tokio::test]
async fn create_with_every_option_then_info_list_node() {
    let server = server::start().await;
    let client = client(&server);
    let sessions = client.session();

    // Consul's defaults.
    let plain = sessions.create().await.unwrap();
    assert!(plain.ttl().is_none());
    let info = plain.info().await.unwrap().expect("known");
    assert_eq!(&info.id, plain.id());
    assert_eq!(info.behavior, Behavior::Release);
    assert_eq!(info.lock_delay, Duration::from_secs(15));
    assert!(info.ttl.is_none());
    let node = info.node.clone();
    assert!(!node.is_empty());

    let name = prefix("session-name");
    let full = sessions
        .create()
        .name(&name)
        .ttl(Duration::from_secs(30))
        .behavior(Behavior::Delete)
        .lock_delay(Duration::from_secs(3))
        .node(&node)
        .checks(["serfHealth"])
        .await
        .unwrap();
    assert_eq!(full.ttl(), Some(Duration::from_secs(30)));
    let info = sessions.info(&full).await.unwrap().unwrap();
    assert_eq!(info.name, name);
    assert_eq!(info.node, node);
    assert_eq!(info.behavior, Behavior::Delete);
    assert_eq!(info.lock_delay, Duration::from_secs(3));
    assert_eq!(info.ttl, Some(Duration::from_secs(30)));
    assert!(info.node_checks.iter().any(|c| c == "serfHealth"));

    let no_checks = sessions
        .create()
        .node_checks(Vec::<String>::new())
        .checks(Vec::<String>::new())
        .await
        .unwrap();
    let info = no_checks.info().await.unwrap().unwrap();
    assert!(info.node_checks.is_empty(), "{info:?}");

    let list = sessions.list().await.unwrap();
    assert!(list.contains(&plain) && list.contains(&full) && list.contains(&no_checks));
    // The list's index is the sessions table's: at least the last session created here.
    let last = no_checks.info().await.unwrap().unwrap();
    assert!(
        list.consul().last_index().get() >= last.create_index,
        "{:?} vs {}",
        list.consul(),
        last.create_index
    );
    let on_node = sessions.node(&node).await.unwrap();
    assert!(on_node.contains(&full));
    // Blocking list: returns after the wait when nothing changes.
    let t = Instant::now();
    let again = sessions
        .list()
        .block(list.consul(), Duration::from_millis(300))
        .await
        .unwrap();
    // It waited, unless another client changed the sessions meanwhile (a shared agent).
    assert!(
        t.elapsed() >= Duration::from_millis(250)
            || again.consul().last_index() > list.consul().last_index()
    );
    assert!(sessions
        .info(&full)
        .consistency(consul_kv::Consistency::Consistent)
        .await
        .unwrap()
        .is_some());

    for s in [&plain, &full, &no_checks] {
        assert!(s.destroy().await.unwrap());
        assert!(s.info().await.unwrap().is_none());
    }
    assert!(!sessions.list().await.unwrap().contains(&full));
    assert!(sessions.node("no-such-node").await.unwrap().is_empty());
}

#[tokio::test]
async fn renew_and_destroy() {
    let server = server::start().await;
    let client = client(&server);
    let s = client
        .session()
        .create()
        .ttl(Duration::from_secs(15))
        .await
        .unwrap();
    let renewed = s.renew().await.unwrap().expect("known");
    assert_eq!(&renewed.id, s.id());
    assert!(renewed.ttl.unwrap() >= Duration::from_secs(15));
    assert!(client.session().destroy(&s).await.unwrap());
    assert!(
        client.session().renew(&s).await.unwrap().is_none(),
        "404 → None"
    );
    assert!(
        client.session().destroy(&s).await.unwrap(),
        "destroying twice is true"
    );
}

#[tokio::test]
async fn ttl_expiry_releases_or_deletes_locks() {
    // TTL 10 s is Consul's minimum; the devserver's time scale makes it expire in 200 ms.
    let Some(server) =
        server::start_devserver("expiry", DevServer::builder().session_ttl_scale(0.01)).await
    else {
        return;
    };
    let client = client(&server);
    let kv = client.kv();
    let p = prefix("session-expiry");
    let release = client
        .session()
        .create()
        .ttl(Duration::from_secs(10))
        .lock_delay(Duration::ZERO)
        .await
        .unwrap();
    let delete = client
        .session()
        .create()
        .ttl(Duration::from_secs(10))
        .behavior(Behavior::Delete)
        .await
        .unwrap();
    assert!(kv
        .acquire(format!("{p}kept"), &release)
        .value("v")
        .await
        .unwrap());
    assert!(kv.acquire(format!("{p}gone"), &delete).await.unwrap());

    within(Duration::from_secs(5), "sessions expire", async {
        while release.info().await.unwrap().is_some() || delete.info().await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let kept = kv.get(format!("{p}kept")).await.unwrap().unwrap();
    assert!(kept.session.is_none());
    assert_eq!(kept.bytes(), b"v");
    assert!(kv.get(format!("{p}gone")).await.unwrap().is_none());
    assert!(release.renew().await.unwrap().is_none());
}

#[tokio::test]
async fn keep_alive_keeps_a_session_past_its_ttl() {
    // Scale 0.3: a 10 s session is invalidated 6 s after its last renewal; the keeper renews
    // every 5 s.
    let Some(server) =
        server::start_devserver("keep-alive", DevServer::builder().session_ttl_scale(0.3)).await
    else {
        return;
    };
    let client = client(&server);
    let sessions = client.session();
    let create = || {
        sessions
            .create()
            .ttl(Duration::from_secs(10))
            .lock_delay(Duration::ZERO)
    };
    let kept = create().await.unwrap();
    let unkept = create().await.unwrap();
    let keeper = kept.keep_alive();
    assert!(keeper.is_alive());
    assert_eq!(keeper.id(), kept.id());
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(unkept.info().await.unwrap().is_none(), "control expired");
    assert!(kept.info().await.unwrap().is_some(), "kept alive");
    assert!(keeper.is_alive());
    assert!(keeper.lost_reason().is_none());

    // stop() stops renewing and destroys the session.
    assert!(keeper.stop().await.unwrap());
    assert!(kept.info().await.unwrap().is_none());
}

#[tokio::test]
async fn keep_alive_reports_expiry_as_session_expired() {
    let server = server::start().await;
    let client = client(&server);
    let s = client
        .session()
        .create()
        .ttl(Duration::from_secs(10))
        .await
        .unwrap();
    let keeper = client.session().keep_alive(&s, Duration::from_secs(10));
    // Someone destroys it; the next renewal (at TTL/2) gets 404.
    assert!(s.destroy().await.unwrap());
    let lost = within(Duration::from_secs(8), "expiry reported", keeper.lost()).await;
    match &lost {
        SessionLost::Expired(e) => assert_eq!(&e.id, s.id()),
        other => panic!("expected Expired, got {other:?}"),
    }
    assert!(lost.to_string().contains("expired"));
    assert!(!keeper.is_alive());
    assert!(matches!(
        keeper.lost_reason(),
        Some(SessionLost::Expired(_))
    ));
}

#[tokio::test]
async fn keep_alive_rides_out_an_outage_shorter_than_the_ttl() {
    let Some(server) = server::start_devserver("outage", DevServer::builder()).await else {
        return;
    };
    let handle = server.handle().unwrap();
    let client = client(&server);
    let s = client
        .session()
        .create()
        .ttl(Duration::from_secs(10))
        .await
        .unwrap();
    let keeper = s.keep_alive();
    // Every request fails from 1 s to 8 s: the renewal due at 5 s is retried every second
    // until the outage ends.
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.set_fault(Some(Fault::Respond {
        status: 500,
        body: "injected".into(),
    }));
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        keeper.is_alive(),
        "still renewing: {:?}",
        keeper.lost_reason()
    );
    handle.set_fault(None);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(keeper.is_alive(), "{:?}", keeper.lost_reason());
    let info = s.info().await.unwrap().expect("the session survived");
    assert_eq!(&info.id, s.id());
    assert!(keeper.stop().await.unwrap());
}

#[tokio::test]
async fn keep_alive_gives_up_after_one_and_a_half_ttl_of_failures() {
    let Some(server) = server::start_devserver("give-up", DevServer::builder()).await else {
        return;
    };
    let handle = server.handle().unwrap();
    let client = client(&server);
    let s = client
        .session()
        .create()
        .ttl(Duration::from_secs(10))
        .await
        .unwrap();
    let keeper = s.keep_alive();
    handle.set_fault(Some(Fault::Respond {
        status: 500,
        body: "injected".into(),
    }));
    let t = Instant::now();
    // 1.5 × TTL = 15 s after the last success (the keeper started with one at t = 0).
    let lost = within(Duration::from_secs(25), "gave up", keeper.lost()).await;
    handle.set_fault(None);
    assert!(matches!(lost, SessionLost::RenewFailed(_)), "{lost:?}");
    assert!(t.elapsed() >= Duration::from_secs(14), "{:?}", t.elapsed());
    assert!(!keeper.is_alive());
}

#[tokio::test]
async fn keep_alive_without_ttl_just_waits_and_drop_does_no_io() {
    let server = server::start().await;
    let client = client(&server);
    let s = client.session().create().await.unwrap();
    let keeper = s.keep_alive();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(keeper.is_alive());
    // Dropping only aborts the task: the session is still there.
    drop(keeper);
    assert!(s.info().await.unwrap().is_some());
    let keeper = s.keep_alive();
    assert!(keeper.stop().await.unwrap());
    assert!(s.info().await.unwrap().is_none());
}

#[tokio::test]
async fn keep_alive_adopts_a_longer_ttl_from_the_server() {
    let Some(server) = server::start_devserver("adopt-ttl", DevServer::builder()).await else {
        return;
    };
    let direct = client(&server);
    let proxy = FaultProxy::start(server.handle().unwrap().addr()).await;
    let via_proxy = consul_kv::Client::builder()
        .address(proxy.base_url())
        .build()
        .unwrap();
    let s = direct
        .session()
        .create()
        .ttl(Duration::from_secs(10))
        .await
        .unwrap();
    // The first renewal (due at 5 s) is answered with a TTL of 40 s, as a loaded Consul may.
    let body = format!(
        r#"[{{"ID":"{}","Name":"","Node":"n","LockDelay":15000000000,"Behavior":"release","TTL":"40s","NodeChecks":["serfHealth"],"ServiceChecks":null,"CreateIndex":11,"ModifyIndex":11}}]"#,
        s.id()
    );
    proxy.push([ProxyFault::Inject {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.into_bytes(),
    }]);
    let keeper = via_proxy.session().keep_alive(&s, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(11)).await;
    // With the 10 s TTL it would have renewed at 5 s and 10 s; with 40 s adopted, the next
    // renewal is due at 25 s.
    assert_eq!(proxy.stats().requests.load(Ordering::Relaxed), 1);
    assert!(keeper.is_alive());
    assert!(keeper.stop().await.unwrap());
}
