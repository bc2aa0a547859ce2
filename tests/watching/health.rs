//! A watch says when it is blind: its health through a 10 s outage (the devserver stopped and
//! restarted on the same port).

use std::time::{Duration, Instant};

use consul_kv_devserver::DevServer;
use consul_kv_tests::server;

use crate::{client_for, prefix, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_a_ten_second_outage_and_the_recovery() {
    let Some(server) = server::start_devserver("health outage", DevServer::builder()).await else {
        return;
    };
    let addr = server.handle().unwrap().addr();
    let c = client_for(&server.base_url());
    let key = format!("{}config", prefix("health"));
    c.kv().set(&key, "v1").await.unwrap();

    let mut w = c.kv().watch(&key).options(
        consul_kv::WatchOptions::default()
            .wait(Duration::from_secs(5))
            .backoff(Duration::from_millis(100), Duration::from_secs(2)),
    );
    assert!(w.health().is_blind() && !w.health().started, "not started");
    let mut health = w.health_receiver();
    let first = within(Duration::from_secs(10), "first value", w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.bytes(), b"v1");
    let h = w.health();
    assert!(!h.is_blind(), "{h:?}");
    assert_eq!(h.known_leader, Some(true));
    assert!(h.is_fresh(Duration::from_secs(1)));
    let before_outage = h.last_success.unwrap();

    // Outage: the stream yields nothing, the health says why.
    server.shutdown().await;
    let outage = Instant::now();
    let blind = within(
        Duration::from_secs(30),
        "the health reports the outage",
        async {
            health
                .wait_for(|h| h.error.is_some())
                .await
                .unwrap()
                .clone()
        },
    )
    .await;
    assert!(blind.is_blind());
    assert!(blind.error.as_ref().unwrap().is_retryable());
    assert_eq!(blind.last_success, Some(before_outage));
    assert!(blind.failing_since.is_some());
    let quiet = tokio::time::timeout(
        Duration::from_secs(10).saturating_sub(outage.elapsed()),
        w.next(),
    )
    .await;
    assert!(quiet.is_err(), "no item during the outage: {quiet:?}");
    let during = w.health();
    assert!(during.is_blind() && during.failures >= 1, "{during:?}");

    // Restart on the same port with a fresh state: the key is gone, then written again.
    let restarted = DevServer::builder().listen(addr).start().await.unwrap();
    let after = within(
        Duration::from_secs(30),
        "the re-read after the restart",
        w.next(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(after.is_none(), "the fresh server has no key");
    let h = w.health();
    assert!(!h.is_blind(), "{h:?}");
    assert_eq!(h.failures, 0);
    assert!(h.last_success.unwrap() > before_outage);
    c.kv().set(&key, "v2").await.unwrap();
    let v2 = within(
        Duration::from_secs(10),
        "the write after the restart",
        w.next(),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(v2.bytes(), b"v2");
    restarted.shutdown().await.unwrap();
}
