//! Shared blocking queries: many watches, one query per question, fan-out to all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consul_kv::Consistency;
use consul_kv_tests::server;

use crate::{client, prefix, until, within};

/// 1,000 watch streams over 10 prefixes hold 10 blocking queries at the server, all 1,000
/// see the final values after 1,000 writes, and dropping the last watch of a prefix ends its
/// query. The server's count of waiting queries is checked on the devserver; against a real
/// agent the client's count of queries is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watches_over_ten_prefixes_hold_ten_blocking_queries() {
    let server = server::start().await;
    let waiters = || {
        server
            .handle()
            .map(consul_kv_devserver::DevServerHandle::waiters)
    };
    let c = client(&server);
    let base = prefix("shared");
    let (prefixes, per_prefix, writes) = (10, 100, 1000);
    // What each watch last saw of its prefix's key `k`.
    let seen: Arc<Vec<Mutex<Vec<u8>>>> = Arc::new(
        (0..prefixes * per_prefix)
            .map(|_| Mutex::new(Vec::new()))
            .collect(),
    );
    let first_answers = Arc::new(AtomicUsize::new(0));
    let mut tasks: Vec<Vec<tokio::task::JoinHandle<()>>> =
        (0..prefixes).map(|_| Vec::new()).collect();
    for w in 0..prefixes * per_prefix {
        let p = w % prefixes;
        let mut watch = c
            .kv()
            .watch_prefix(format!("{base}p{p}/"))
            .wait(Duration::from_secs(30))
            .min_interval(Duration::from_millis(50));
        let seen = seen.clone();
        let first = first_answers.clone();
        tasks[p].push(tokio::spawn(async move {
            let mut counted = false;
            while let Some(item) = watch.next().await {
                let items = item.expect("no error");
                if !counted {
                    counted = true;
                    first.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(pair) = items.entries().last() {
                    *seen[w].lock().unwrap() = pair.value_bytes().to_vec();
                }
            }
        }));
    }
    until(
        Duration::from_secs(60),
        "every watch has its first answer",
        || first_answers.load(Ordering::SeqCst) == prefixes * per_prefix,
    )
    .await;
    until(
        Duration::from_secs(30),
        "10 blocking queries at the server",
        || waiters().is_none_or(|w| w == prefixes),
    )
    .await;
    assert_eq!(c.shared_watch_queries(), prefixes);

    let writer = client(&server);
    let mut max_waiters = 0;
    for i in 0..writes {
        let p = i % prefixes;
        assert!(writer
            .kv()
            .set(format!("{base}p{p}/k"), format!("v{i}"))
            .await
            .unwrap());
        max_waiters = max_waiters.max(waiters().unwrap_or(0));
    }
    assert!(
        max_waiters <= prefixes,
        "at most one blocking query per prefix, saw {max_waiters}"
    );
    let expected = |w: usize| {
        let p = w % prefixes;
        let last = (0..writes).rev().find(|i| i % prefixes == p).unwrap();
        format!("v{last}").into_bytes()
    };
    until(
        Duration::from_secs(60),
        "all 1,000 watches see the final value",
        || (0..prefixes * per_prefix).all(|w| *seen[w].lock().unwrap() == expected(w)),
    )
    .await;
    until(
        Duration::from_secs(30),
        "back to 10 blocking queries",
        || waiters().is_none_or(|w| w == prefixes),
    )
    .await;

    // Dropping every watch of prefix 0 ends its query; the others keep theirs.
    for t in tasks[0].drain(..) {
        t.abort();
        let _ = t.await;
    }
    until(Duration::from_secs(30), "prefix 0's query ended", || {
        waiters().is_none_or(|w| w == prefixes - 1)
    })
    .await;
    assert_eq!(c.shared_watch_queries(), prefixes - 1);
    for list in tasks {
        for t in list {
            t.abort();
        }
    }
}

/// Watches that differ in what they ask (consistency, token, key) do not share; clones of a
/// client do; `shared(false)` opts out.
#[tokio::test]
async fn only_identical_questions_share() {
    let server = server::start().await;
    let c = client(&server);
    let p = prefix("sharing-key");
    let key = format!("{p}k");
    let mut a = c.kv().watch(&key);
    let mut b = c.clone().kv().watch(&key);
    let mut consistent = c.kv().watch(&key).consistency(Consistency::Consistent);
    let mut private = c.kv().watch(&key).shared(false);
    for w in [&mut a, &mut b, &mut consistent, &mut private] {
        let first = within(Duration::from_secs(10), "first answer", w.next())
            .await
            .unwrap()
            .unwrap();
        assert!(first.is_none());
    }
    // a and b share; `consistent` has its own; `private` is not registered.
    assert_eq!(c.shared_watch_queries(), 2);
    assert!(c.kv().set(&key, "v1").await.unwrap());
    for w in [&mut a, &mut b, &mut consistent, &mut private] {
        let got = within(Duration::from_secs(10), "the write", w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got.bytes(), b"v1");
    }
    drop(a);
    assert_eq!(
        c.shared_watch_queries(),
        2,
        "b still holds the shared query"
    );
    drop(b);
    assert_eq!(c.shared_watch_queries(), 1);
}

/// A consumer that never polls does not hold the others back, and when it polls again it
/// gets the newest state (latest-state fan-out), not a backlog.
#[tokio::test]
async fn a_slow_subscriber_skips_to_the_latest_state() {
    let server = server::start().await;
    let c = client(&server);
    let key = format!("{}k", prefix("slow"));
    let mut fast = c.kv().watch(&key).min_interval(Duration::ZERO);
    let mut slow = c.kv().watch(&key).min_interval(Duration::ZERO);
    assert!(within(Duration::from_secs(10), "first", slow.next())
        .await
        .unwrap()
        .unwrap()
        .is_none());
    assert!(within(Duration::from_secs(10), "first", fast.next())
        .await
        .unwrap()
        .unwrap()
        .is_none());
    for i in 0..20 {
        assert!(c.kv().set(&key, format!("v{i}")).await.unwrap());
        // The fast one keeps up with every write while the slow one is not polled.
        let got = within(Duration::from_secs(10), "fast keeps up", fast.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got.bytes(), format!("v{i}").as_bytes());
    }
    let got = within(Duration::from_secs(10), "slow catches up", slow.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        got.bytes(),
        b"v19",
        "the newest value, not the first missed one"
    );
}

/// A client used from two runtimes: a watch left over from a runtime that shut down (its
/// query task is gone) is not joined by a watch on the next runtime, which gets a live query.
#[test]
fn a_query_whose_runtime_is_gone_is_replaced() {
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = server_rt.block_on(server::start());
    let c = client(&server);
    let key = format!("{}k", prefix("runtimes"));
    let first = rt();
    let mut old = first.block_on(async {
        assert!(c.kv().set(&key, "v1").await.unwrap());
        let mut w = c.kv().watch(&key);
        let v = within(Duration::from_secs(10), "first runtime", w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(v.bytes(), b"v1");
        w
    });
    drop(first);
    rt().block_on(async {
        // The old watch's query died with its runtime: the stream ends instead of hanging.
        let ended = within(Duration::from_secs(10), "the old watch ends", old.next()).await;
        assert!(ended.is_none(), "{ended:?}");
        let mut w = c.kv().watch(&key);
        let v = within(Duration::from_secs(10), "second runtime", w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(v.bytes(), b"v1");
        assert!(c.kv().set(&key, "v2").await.unwrap());
        let v = within(Duration::from_secs(10), "a change", w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(v.bytes(), b"v2");
    });
    drop(server);
}
