//! Races: many tasks incrementing one counter by CAS, and many sessions acquiring one key.

use std::time::Duration;

use consul_kv::{Cas, Index};
use consul_kv_tests::server;

use crate::{client, prefix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_counter_has_no_lost_updates() {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 25;
    let server = server::start().await;
    let kv = client(&server).kv();
    let key = format!("{}counter", prefix("cas-race"));
    assert!(kv.set(&key, "0").cas(Cas::Absent).await.unwrap());

    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let kv = kv.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            for _ in 0..INCREMENTS {
                loop {
                    let cur = kv.get(&key).await.unwrap().unwrap();
                    let n: u64 = cur.as_str().unwrap().parse().unwrap();
                    if kv
                        .set(&key, (n + 1).to_string())
                        .cas(cur.consul())
                        .await
                        .unwrap()
                    {
                        break;
                    }
                    conflicts += 1;
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let end = kv.get(&key).await.unwrap().unwrap();
    assert_eq!(
        end.as_str(),
        Some((TASKS * INCREMENTS).to_string().as_str())
    );
    eprintln!("cas race: {conflicts} rejected CAS writes, none lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_contention_has_exactly_one_winner() {
    const CONTENDERS: usize = 8;
    let server = server::start().await;
    let client = client(&server);
    let kv = client.kv();
    let key = format!("{}leader", prefix("acquire-race"));

    let mut sessions = Vec::new();
    for i in 0..CONTENDERS {
        let s = client
            .session()
            .create()
            .name(format!("contender-{i}"))
            .lock_delay(Duration::ZERO)
            .await
            .unwrap();
        sessions.push(s);
    }
    let mut tasks = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let kv = kv.clone();
        let key = key.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            kv.acquire(&key, &s)
                .value(format!("holder {i}"))
                .flags(i as u64)
                .await
                .unwrap()
        }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap() {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let w = winners[0];
    let held = kv.get(&key).await.unwrap().unwrap();
    assert_eq!(held.session.as_ref(), Some(sessions[w].id()));
    assert_eq!(held.as_str(), Some(format!("holder {w}").as_str()));
    assert_eq!(held.flags, w as u64);
    assert_eq!(held.lock_index, 1);

    // Losers cannot release it; the winner can, and acquire/release replace the value.
    let loser = (w + 1) % CONTENDERS;
    assert!(!kv.release(&key, &sessions[loser]).await.unwrap());
    assert!(kv
        .release(&key, &sessions[w])
        .value("released")
        .flags(7)
        .await
        .unwrap());
    let released = kv.get(&key).await.unwrap().unwrap();
    assert!(released.session.is_none());
    assert_eq!(released.as_str(), Some("released"));
    assert_eq!(released.flags, 7);
    // A release without a value empties the key: acquire and release replace the value.
    assert!(kv.acquire(&key, &sessions[loser]).await.unwrap());
    assert_eq!(kv.get(&key).await.unwrap().unwrap().bytes(), b"");
    assert_eq!(kv.get(&key).await.unwrap().unwrap().lock_index, 2);
    assert!(kv.release(&key, &sessions[loser]).await.unwrap());
    for s in &sessions {
        assert!(s.destroy().await.unwrap());
    }
}

#[tokio::test]
async fn cas_accepts_what_a_read_returns() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("cas-forms");
    let key = format!("{p}k");

    // Option<&Key> straight from `get`: None means "create only".
    let current = kv.get(&key).await.unwrap();
    assert!(current.is_none());
    assert!(kv.set(&key, "1").cas(current.as_ref()).await.unwrap());
    assert!(!kv.set(&key, "x").cas(current.as_ref()).await.unwrap());
    let current = kv.get(&key).await.unwrap();
    assert!(kv.set(&key, "2").cas(current.as_ref()).await.unwrap());
    assert!(
        !kv.set(&key, "x").cas(current.as_ref()).await.unwrap(),
        "stale"
    );

    // &Key
    let k = kv.get(&key).await.unwrap().unwrap();
    assert!(kv.set(&key, "3").cas(&k).await.unwrap());
    assert!(!kv.set(&key, "x").cas(&k).await.unwrap(), "stale");
    // &KvPair, as lists and watches yield it
    let items = kv.items(&p).await.unwrap();
    assert!(kv
        .set(&key, "4")
        .cas(items.get(&key).unwrap())
        .await
        .unwrap());
    // &ConsulMeta
    let k = kv.get(&key).await.unwrap().unwrap();
    assert!(kv.set(&key, "5").cas(k.consul()).await.unwrap());
    // Index
    let k = kv.get(&key).await.unwrap().unwrap();
    assert!(kv
        .set(&key, "6")
        .cas(Index::new(k.modify_index))
        .await
        .unwrap());
    // Cas
    let k = kv.get(&key).await.unwrap().unwrap();
    assert!(kv
        .set(&key, "7")
        .cas(Cas::ModifyIndex(Index::new(k.modify_index)))
        .await
        .unwrap());
    assert!(!kv.set(&key, "x").cas(Cas::Absent).await.unwrap());
    assert_eq!(kv.get(&key).await.unwrap().unwrap().as_str(), Some("7"));
}
