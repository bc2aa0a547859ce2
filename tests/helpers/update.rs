//! `update`: the CAS read-modify-write loop.

use bytes::Bytes;
use consul_kv::KvPair;
use consul_kv_tests::server;

use crate::{client, prefix};

fn increment(current: Option<&KvPair>) -> Option<Bytes> {
    let n: u64 = current
        .and_then(|p| std::str::from_utf8(p.value_bytes()).ok()?.parse().ok())
        .unwrap_or(0);
    Some(Bytes::from((n + 1).to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_updaters_times_two_hundred_end_at_exactly_6400() {
    let server = server::start().await;
    let c = client(&server);
    let key = format!("{}counter", prefix("update-32x200"));
    let (tasks, each) = (32u64, 200u64);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let kv = c.kv();
        let key = key.clone();
        handles.push(tokio::spawn(async move {
            let mut last = 0u64;
            for _ in 0..each {
                let k = kv.update(&key, increment).await.unwrap().unwrap();
                let n: u64 = k.as_str().unwrap().parse().unwrap();
                assert!(n > last, "a task sees its own increments in order");
                last = n;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let k = c.kv().get(&key).await.unwrap().unwrap();
    assert_eq!(k.as_str(), Some("6400"));
    assert_eq!(tasks * each, 6400);
}

#[tokio::test]
async fn update_creates_changes_keeps_flags_and_can_leave_the_key_alone() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("update-basics");
    let key = format!("{p}k");

    // Absent: f sees None, the key is created (create-only CAS).
    let created = kv
        .update(&key, |cur| {
            assert!(cur.is_none());
            Some(Bytes::from_static(b"1"))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.bytes(), b"1");
    let read = kv.get(&key).await.unwrap().unwrap();
    assert_eq!(
        created.modify_index, read.modify_index,
        "the new modify index comes back"
    );
    assert_eq!(
        created.consul().modify_index().unwrap().get(),
        read.modify_index
    );

    // Flags are kept across an update.
    assert!(kv.set(&key, "5").flags(42).await.unwrap());
    let after = kv.update(&key, increment).await.unwrap().unwrap();
    assert_eq!((after.as_str(), after.flags), (Some("6"), 42));

    // None leaves the key as it is and returns it.
    let before = kv.get(&key).await.unwrap().unwrap();
    let same = kv.update(&key, |_| None).await.unwrap().unwrap();
    assert_eq!(same.modify_index, before.modify_index);
    assert_eq!(same.bytes(), b"6");

    // Absent and left absent.
    let none = kv.update(format!("{p}missing"), |_| None).await.unwrap();
    assert!(none.is_none());
    assert!(kv.get(format!("{p}missing")).await.unwrap().is_none());

    // A value too large for a transaction body goes through PUT ?cas= and is read back.
    let big = Bytes::from(vec![9u8; 450 * 1024]);
    let big2 = big.clone();
    let k = kv
        .update(&key, move |_| Some(big2.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(k.bytes(), &big[..]);
    assert_eq!(k.flags, 42);
}

// Two workers: `f` blocks its worker while the devserver answers on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_gives_up_after_its_attempts_when_it_always_loses() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let key = format!("{}contended", prefix("update-contended"));
    assert!(kv.set(&key, "0").await.unwrap());
    // f itself makes every attempt lose: it writes the key behind the loop's back, with its
    // own client on its own runtime.
    let base = server.base_url();
    let k2 = key.clone();
    let mut n = 0;
    let err = kv
        .update(&key, move |_| {
            let base = base.clone();
            let k2 = k2.clone();
            // A new value each time: Consul does not move the index for an identical write.
            n += 1;
            let theirs = format!("theirs-{n}");
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        let other = consul_kv::Client::builder()
                            .from_env()
                            .address(base)
                            .build()
                            .unwrap();
                        other.kv().set(&k2, theirs).await.unwrap()
                    })
            })
            .join()
            .unwrap();
            Some(Bytes::from_static(b"mine"))
        })
        .max_attempts(3)
        .backoff(std::time::Duration::ZERO, std::time::Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(err, consul_kv::UpdateError::Contended { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(kv.get(&key).await.unwrap().unwrap().bytes(), b"theirs-3");
}
