//! `Lock`: mutual exclusion, loss signalling, lock-delay, conflicts, release and drop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consul_kv::{LockError, LockLost, LockStatus, LOCK_FLAG};
use consul_kv_devserver::DevServer;
use consul_kv_tests::proxy::{Fault as ProxyFault, FaultProxy};
use consul_kv_tests::server;

use crate::{across_a_restart, client, client_without_retries, prefix, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_gives_mutual_exclusion() {
    const CONTENDERS: usize = 4;
    const ROUNDS: usize = 5;
    let server = server::start().await;
    let client = client(&server);
    let p = prefix("lock-mutex");
    let key = format!("{p}leader");
    let counter = format!("{p}counter");
    assert!(client.kv().set(&counter, "0").await.unwrap());
    let inside = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for i in 0..CONTENDERS {
        let client = client.clone();
        let key = key.clone();
        let counter = counter.clone();
        let inside = Arc::clone(&inside);
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let lock = client
                    .lock(&key)
                    .value(format!("contender {i}"))
                    .await
                    .unwrap();
                assert!(lock.is_held());
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                // A non-atomic read-modify-write, safe only under the lock.
                let kv = client.kv();
                let n: u64 = kv
                    .get(&counter)
                    .await
                    .unwrap()
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                assert!(kv.set(&counter, (n + 1).to_string()).await.unwrap());
                let held = kv.get(&key).await.unwrap().unwrap();
                assert_eq!(held.session.as_ref(), Some(lock.session()));
                assert_eq!(held.flags, LOCK_FLAG);
                assert_eq!(held.as_str(), Some(format!("contender {i}").as_str()));
                inside.fetch_sub(1, Ordering::SeqCst);
                assert!(lock.release().await.unwrap());
            }
        }));
    }
    within(Duration::from_secs(60), "all rounds", async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    let total = client.kv().get(&counter).await.unwrap().unwrap();
    assert_eq!(
        total.as_str(),
        Some((CONTENDERS * ROUNDS).to_string().as_str())
    );
    // Released: no session, the lock's value written back, the Go flag kept.
    let k = client.kv().get(&key).await.unwrap().unwrap();
    assert!(k.session.is_none());
    assert_eq!(k.flags, LOCK_FLAG);
}

#[tokio::test]
async fn loss_is_signalled_by_the_monitor_wake_not_its_timeout() {
    let server = server::start().await;
    let client = client(&server);
    let key = format!("{}leader", prefix("lock-loss"));
    let lock = client.lock(&key).lock_delay(Duration::ZERO).await.unwrap();
    let mut status = lock.subscribe();
    assert!(status.borrow().is_held());
    // Let the monitor settle into its blocking read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(lock.is_held());

    let t = Instant::now();
    assert!(client.session().destroy(lock.session()).await.unwrap());
    // The monitor's blocking read wakes on the change; without that, loss would only be seen
    // when its 60 s wait ends. 10 s is far below that and holds on a loaded machine.
    let lost = within(Duration::from_secs(10), "loss by the wake", lock.lost()).await;
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(matches!(lost, LockLost::Taken), "{lost:?}");
    assert!(!lock.is_held());
    within(Duration::from_secs(10), "status channel", status.changed())
        .await
        .unwrap();
    assert!(matches!(*status.borrow(), LockStatus::Lost(_)));
    // Releasing a lost lock is not an error; it was not held any more.
    assert!(!lock.release().await.unwrap());
}

#[tokio::test]
async fn loss_when_the_key_is_deleted_stops_renewal() {
    let server = server::start().await;
    let client = client(&server);
    let key = format!("{}leader", prefix("lock-deleted"));
    let lock = client.lock(&key).await.unwrap();
    let session = lock.session().clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(client.kv().delete(&key).await.unwrap());
    let lost = within(Duration::from_secs(1), "loss", lock.lost()).await;
    assert!(matches!(lost, LockLost::Taken), "{lost:?}");
    // Renewal stopped and the session was destroyed at once (not left to its TTL).
    within(Duration::from_secs(1), "session destroyed", async {
        while client.session().info(&session).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    drop(lock);
}

#[tokio::test]
async fn lock_delay_is_waited_out_without_a_hot_loop() {
    let Some(server) = server::start_devserver("lock-delay", DevServer::builder()).await else {
        return;
    };
    let client = client(&server);
    // The second contender talks through a counting proxy.
    let proxy = FaultProxy::start(server.handle().unwrap().addr()).await;
    let counted = consul_kv::Client::builder()
        .address(proxy.base_url())
        .build()
        .unwrap();
    let key = format!("{}leader", prefix("lock-delay"));
    let delay = Duration::from_secs(3);
    let first = client.lock(&key).lock_delay(delay).await.unwrap();
    // Invalidate the holder's session: Consul now refuses the key for `delay`.
    assert!(client.session().destroy(first.session()).await.unwrap());
    let invalidated = Instant::now();
    within(Duration::from_secs(1), "first lost", first.lost()).await;

    // While the delay runs the key shows no session, yet acquire answers false.
    let s = client.session().create().await.unwrap();
    assert!(!client.kv().acquire(&key, &s).await.unwrap());
    assert!(client
        .kv()
        .get(&key)
        .await
        .unwrap()
        .unwrap()
        .session
        .is_none());
    assert!(client.lock(&key).try_acquire().await.unwrap().is_none());

    let before = proxy.stats().requests.load(Ordering::Relaxed);
    let started = Instant::now();
    let second = within(
        Duration::from_secs(10),
        "acquired after the delay",
        counted.lock(&key).acquire(),
    )
    .await
    .unwrap();
    let waited = invalidated.elapsed();
    let spent = started.elapsed();
    let requests = proxy.stats().requests.load(Ordering::Relaxed) - before;
    assert!(waited >= delay - Duration::from_millis(100), "{waited:?}");
    assert!(waited < delay + Duration::from_secs(4), "{waited:?}");
    // Session create, the first read, then about one request per second: no hot loop.
    let budget = 3.0 + spent.as_secs_f64() * 1.5;
    assert!(
        (requests as f64) <= budget,
        "{requests} requests in {spent:?} during the lock-delay"
    );
    eprintln!("lock-delay: {requests} requests in {spent:?}");
    assert!(second.is_held());
    assert!(second.release().await.unwrap());
    assert!(s.destroy().await.unwrap());
    drop(first);
}

#[tokio::test]
async fn monitor_errors_are_not_a_false_loss() {
    let Some(server) = server::start_devserver("lock-outage", DevServer::builder()).await else {
        return;
    };
    let direct = client(&server);
    let proxy = FaultProxy::start(server.handle().unwrap().addr()).await;
    let via_proxy = consul_kv::Client::builder()
        .address(proxy.base_url())
        .build()
        .unwrap();
    let key = format!("{}leader", prefix("lock-outage"));
    let lock = via_proxy.lock(&key).value("v").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Every new request through the proxy gets `500 No cluster leader` for 3 s; a plain
    // write (which keeps the lock's session) wakes the monitor so that it must retry.
    proxy.set_default(ProxyFault::no_leader());
    assert!(direct.kv().set(&key, "touched").await.unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        lock.is_held(),
        "false loss: {:?}",
        lock.subscribe().borrow()
    );
    proxy.clear();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(lock.is_held());

    // A real loss is still seen.
    assert!(direct.session().destroy(lock.session()).await.unwrap());
    within(Duration::from_secs(5), "real loss", lock.lost()).await;
}

#[tokio::test]
async fn try_acquire_and_waiting_contenders() {
    let server = server::start().await;
    let client = client(&server);
    let key = format!("{}leader", prefix("lock-try"));
    let first = client
        .lock(&key)
        .try_acquire()
        .await
        .unwrap()
        .expect("free");
    assert!(client.lock(&key).try_acquire().await.unwrap().is_none());

    // A waiting contender gets it as soon as the holder releases.
    let waiter = tokio::spawn({
        let client = client.clone();
        let key = key.clone();
        async move { client.lock(&key).value("second").await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished());
    let t = Instant::now();
    assert!(first.release().await.unwrap());
    // The waiter wakes on the release, not after its blocking read's wait.
    let second = within(Duration::from_secs(10), "handover", waiter)
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(
        client.kv().get(&key).await.unwrap().unwrap().as_str(),
        Some("second")
    );
    assert!(format!("{second:?}").contains("Held"));
    assert!(second.release().await.unwrap());
}

#[tokio::test]
async fn a_key_holding_data_is_a_conflict_and_left_alone() {
    let server = server::start().await;
    let client = client(&server);
    let key = format!("{}data", prefix("lock-conflict"));
    assert!(client.kv().set(&key, "precious").await.unwrap());
    let err = client.lock(&key).await.unwrap_err();
    assert!(
        matches!(&err, LockError::Conflict { flags: 0, .. }),
        "{err:?}"
    );
    assert_eq!(
        client.kv().get(&key).await.unwrap().unwrap().as_str(),
        Some("precious")
    );
}

#[tokio::test]
async fn drop_does_no_io_and_the_ttl_cleans_up() {
    let Some(server) =
        server::start_devserver("lock-drop", DevServer::builder().session_ttl_scale(0.02)).await
    else {
        return;
    };
    let client = client(&server);
    let key = format!("{}leader", prefix("lock-drop"));
    let lock = client
        .lock(&key)
        .session_ttl(Duration::from_secs(10))
        .lock_delay(Duration::ZERO)
        .await
        .unwrap();
    let session = lock.session().clone();
    drop(lock);
    // Still held right after the drop: nothing was sent.
    let held = client.kv().get(&key).await.unwrap().unwrap();
    assert_eq!(held.session.as_ref(), Some(&session));
    // Renewal stopped, so the session expires (after 2 × 10 s × 0.02 = 400 ms here).
    within(Duration::from_secs(5), "expired", async {
        while client
            .kv()
            .get(&key)
            .await
            .unwrap()
            .unwrap()
            .session
            .is_some()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let next = client.lock(&key).await.unwrap();
    assert!(next.release().await.unwrap());
}

#[tokio::test]
async fn session_expiry_while_held_is_a_loss() {
    // The renewal cadence is TTL/2 = 5 s; the scaled server expires the session after 200 ms.
    let Some(server) =
        server::start_devserver("lock-expiry", DevServer::builder().session_ttl_scale(0.01)).await
    else {
        return;
    };
    let client = client(&server);
    let key = format!("{}leader", prefix("lock-expiry"));
    let lock = client
        .lock(&key)
        .session_ttl(Duration::from_secs(10))
        .lock_delay(Duration::ZERO)
        .await
        .unwrap();
    let lost = within(Duration::from_secs(3), "loss on expiry", lock.lost()).await;
    assert!(
        matches!(lost, LockLost::Taken | LockLost::Session(_)),
        "{lost:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_retries_while_the_server_is_down() {
    let key = format!("{}leader", prefix("lock-retry"));
    let Some((acquired, server)) = across_a_restart("lock-retry", |client| {
        tokio::spawn(
            client
                .lock(&key)
                .value("node-a")
                .retry_for(Duration::from_secs(60))
                .acquire(),
        )
    })
    .await
    else {
        return;
    };
    let lock = acquired.unwrap();
    assert!(lock.is_held());
    let held = client(&server).kv().get(&key).await.unwrap().unwrap();
    assert_eq!(held.session.as_ref(), Some(lock.session()));
    assert_eq!(held.as_str(), Some("node-a"));
    assert!(lock.release().await.unwrap());
}

#[tokio::test]
async fn acquire_without_a_retry_bound_returns_the_first_transient_error() {
    let Some(server) = server::start_devserver("lock-no-retry", DevServer::builder()).await else {
        return;
    };
    let client = client_without_retries(&server);
    let key = format!("{}leader", prefix("lock-no-retry"));
    server.shutdown().await;
    let err = within(
        Duration::from_secs(30),
        "acquire with retry_for(0)",
        client.lock(&key).retry_for(Duration::ZERO).acquire(),
    )
    .await
    .unwrap_err();
    match &err {
        LockError::Consul(e) => assert!(e.is_connect(), "{e:?}"),
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
    // try_acquire never retries.
    let err = client.lock(&key).try_acquire().await.unwrap_err();
    assert!(matches!(err, LockError::Consul(_)), "{err:?}");
}

#[tokio::test]
async fn fenced_writes_stop_the_moment_the_session_loses_the_key() {
    let server = server::start().await;
    let client = client(&server);
    let p = prefix("lock-fence");
    let key = format!("{p}leader");
    let data = format!("{p}data");
    let lock = client.lock(&key).lock_delay(Duration::ZERO).await.unwrap();

    // Held: the fenced transaction commits, through the lock's client or any other.
    assert!(lock
        .fenced()
        .set(&data, "one")
        .await
        .unwrap()
        .is_committed());
    let other = crate::client(&server);
    let outcome = other
        .kv()
        .txn()
        .op(lock.fence())
        .set(&data, "two")
        .await
        .unwrap();
    assert!(outcome.is_committed());
    assert_eq!(
        client.kv().get(&data).await.unwrap().unwrap().as_str(),
        Some("two")
    );

    // The session is destroyed behind the holder's back and a new holder takes the key:
    // whatever the old holder believes, its fenced writes are refused and change nothing.
    assert!(other.session().destroy(lock.session()).await.unwrap());
    let newer = other.lock(&key).await.unwrap();
    let refused = lock.fenced().set(&data, "stale").await.unwrap();
    assert!(!refused.is_committed(), "{refused:?}");
    let refused = other
        .kv()
        .txn()
        .op(lock.fence())
        .set(&data, "stale")
        .await
        .unwrap();
    assert!(!refused.is_committed(), "{refused:?}");
    assert_eq!(
        client.kv().get(&data).await.unwrap().unwrap().as_str(),
        Some("two")
    );
    assert!(newer
        .fenced()
        .set(&data, "three")
        .await
        .unwrap()
        .is_committed());
    assert!(newer.release().await.unwrap());
}
