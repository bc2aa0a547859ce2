//! `Kv` reads and writes: get, raw, items, keys, set, CAS, flags, delete, delete_tree,
//! per-call consistency, blocking, datacenter, namespace, partition and token.

use std::time::{Duration, Instant};

use consul_kv::{Cas, Consistency, Index, Token, WriteOutcome};
use consul_kv_devserver::DevServer;
use consul_kv_tests::server;

use crate::{client, prefix};

#[tokio::test]
async fn get_set_delete() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("kv-basics");
    let key = format!("{p}greeting");

    assert!(kv.get(&key).await.unwrap().is_none(), "missing is None");
    assert!(kv.set(&key, "hello").await.unwrap());
    let got = kv.get(&key).await.unwrap().expect("exists");
    assert_eq!(got.key, key);
    assert_eq!(got.bytes(), b"hello");
    assert_eq!(got.as_str(), Some("hello"));
    assert_eq!(got.value.as_deref(), Some(&b"hello"[..]));
    assert_eq!(got.flags, 0);
    assert!(got.session.is_none());
    assert!(got.create_index > 0);
    assert_eq!(got.create_index, got.modify_index);
    let meta = got.consul();
    assert_eq!(meta.modify_index(), Some(Index::new(got.modify_index)));
    assert_eq!(meta.last_index().get(), got.modify_index);
    assert!(meta.known_leader());
    assert_eq!(
        Cas::from(meta),
        Cas::ModifyIndex(Index::new(got.modify_index))
    );

    assert!(kv.set(&key, "again").await.unwrap());
    let again = kv.get(&key).await.unwrap().unwrap();
    assert!(again.modify_index > got.modify_index);
    assert_eq!(again.create_index, got.create_index);

    assert!(kv.delete(&key).await.unwrap());
    assert!(kv.get(&key).await.unwrap().is_none());
    assert!(
        kv.delete(&key).await.unwrap(),
        "deleting a missing key is true"
    );
    assert_eq!(
        kv.delete(&key).outcome().await.unwrap(),
        WriteOutcome::Applied
    );
}

#[tokio::test]
async fn flags_are_stored_and_reset_by_a_plain_write() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let key = format!("{}f", prefix("kv-flags"));
    assert!(kv.set(&key, "v").flags(42).await.unwrap());
    assert_eq!(kv.get(&key).await.unwrap().unwrap().flags, 42);
    assert!(kv.set(&key, "v").flags(u64::MAX).await.unwrap());
    assert_eq!(kv.get(&key).await.unwrap().unwrap().flags, u64::MAX);
    assert!(kv.set(&key, "v").await.unwrap());
    assert_eq!(kv.get(&key).await.unwrap().unwrap().flags, 0);
}

#[tokio::test]
async fn cas_on_set_and_delete() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let key = format!("{}counter", prefix("kv-cas"));

    // Create-only.
    assert!(kv.set(&key, "1").cas(Cas::Absent).await.unwrap());
    assert!(!kv.set(&key, "x").cas(Cas::Absent).await.unwrap());
    let v1 = kv.get(&key).await.unwrap().unwrap();

    // CAS from the meta, from the key, from the pair, from an index.
    assert!(kv.set(&key, "2").cas(v1.consul()).await.unwrap());
    assert!(
        !kv.set(&key, "x").cas(v1.consul()).await.unwrap(),
        "stale meta"
    );
    assert!(!kv.set(&key, "x").cas(&v1).await.unwrap(), "stale key");
    assert_eq!(
        kv.set(&key, "x").cas(v1.pair()).outcome().await.unwrap(),
        WriteOutcome::Rejected
    );
    let v2 = kv.get(&key).await.unwrap().unwrap();
    assert_eq!(v2.bytes(), b"2");
    assert!(kv
        .set(&key, "3")
        .cas(Index::new(v2.modify_index))
        .await
        .unwrap());
    // `Option<&KvPair>` (via `as_deref`) is a CAS too: `None` means create-only.
    let v3 = kv.get(&key).await.unwrap();
    assert!(kv.set(&key, "4").cas(v3.as_deref()).await.unwrap());

    // Delete with CAS.
    assert!(!kv.delete(&key).cas(&v2).await.unwrap(), "stale delete");
    assert!(kv.get(&key).await.unwrap().is_some());
    let v4 = kv.get(&key).await.unwrap().unwrap();
    assert!(kv.delete(&key).cas(v4.consul()).await.unwrap());
    assert!(kv.get(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn raw_reads_the_bytes() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let key = format!("{}raw", prefix("kv-raw"));
    assert!(kv.raw(&key).await.unwrap().is_none());
    assert!(kv.set(&key, &b"{\"a\":1}"[..]).await.unwrap());
    let raw = kv.raw(&key).await.unwrap().unwrap();
    assert_eq!(&*raw, b"{\"a\":1}");
    assert_eq!(raw.bytes().as_ref(), b"{\"a\":1}");
    // A raw read's index is the key's ModifyIndex.
    let stored = kv.get(&key).await.unwrap().unwrap();
    assert_eq!(raw.consul().last_index().get(), stored.modify_index);
    assert_eq!(raw.into_bytes().len(), 7);
}

#[tokio::test]
async fn items_and_keys_with_separator() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("kv-list");
    for (k, v) in [("e", "5"), ("a", "1"), ("b/c", "3"), ("b/d", "4")] {
        assert!(kv.set(format!("{p}{k}"), v).await.unwrap());
    }

    let items = kv.items(&p).await.unwrap();
    let names: Vec<&str> = items.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{p}a"),
            format!("{p}b/c"),
            format!("{p}b/d"),
            format!("{p}e")
        ]
    );
    assert_eq!(items.get(&format!("{p}b/d")).unwrap().value_bytes(), b"4");
    assert!(items.consul().modify_index().is_none());
    assert!(items.consul().last_index().get() >= items[3].modify_index);
    assert_eq!((&items).into_iter().count(), 4);
    assert_eq!(items.clone().into_vec().len(), 4);

    let keys = kv.keys(&p).await.unwrap();
    assert_eq!(keys.len(), 4);
    assert!(keys.contains(&format!("{p}b/c")));
    let folders = kv.keys(&p).separator("/").await.unwrap();
    assert_eq!(
        folders.into_vec(),
        [format!("{p}a"), format!("{p}b/"), format!("{p}e")]
    );

    // No match: empty, with meta.
    let none = kv.items(format!("{p}zzz")).await.unwrap();
    assert!(none.is_empty());
    // An empty list carries the KV table's index: at least that of the writes above.
    assert!(
        none.consul().last_index().get() >= items.consul().last_index().get(),
        "{:?} vs {:?}",
        none.consul(),
        items.consul()
    );
    assert!(kv.keys(format!("{p}zzz")).await.unwrap().is_empty());

    // The prefix is a byte prefix.
    let b = kv.items(format!("{p}b")).await.unwrap();
    assert_eq!(b.len(), 2);
}

#[tokio::test]
async fn delete_tree_removes_the_byte_prefix_only() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("kv-tree");
    for k in ["app/a", "app/b/c", "apple", "other"] {
        assert!(kv.set(format!("{p}{k}"), "v").await.unwrap());
    }
    assert!(kv.delete_tree(format!("{p}app/")).await.unwrap());
    let left = kv.keys(&p).await.unwrap();
    assert_eq!(left.into_vec(), [format!("{p}apple"), format!("{p}other")]);
    // Without the slash, `app` also matches `apple`.
    assert!(kv.delete_tree(format!("{p}app")).await.unwrap());
    assert_eq!(kv.keys(&p).await.unwrap().into_vec(), [format!("{p}other")]);
}

#[tokio::test]
async fn blocking_reads_wait_and_wake() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let key = format!("{}b", prefix("kv-block"));
    assert!(kv.set(&key, "1").await.unwrap());
    let first = kv.get(&key).await.unwrap().unwrap();

    // Nothing changes: returns after the wait with the same value.
    let t = Instant::now();
    let same = kv
        .get(&key)
        .index(first.consul())
        .wait(Duration::from_millis(400))
        .await
        .unwrap()
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(same.modify_index, first.modify_index);

    // A write wakes it early.
    let writer = {
        let kv = kv.clone();
        let key = key.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            kv.set(&key, "2").await.unwrap()
        })
    };
    let t = Instant::now();
    let changed = kv
        .get(&key)
        .block(&first, Duration::from_secs(20))
        .await
        .unwrap()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(changed.bytes(), b"2");
    assert!(writer.await.unwrap());

    // Lists and key names block too; `index` alone gets a default wait.
    let items = kv.items(&key).await.unwrap();
    let writer = {
        let kv = kv.clone();
        let key = format!("{key}/child");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            kv.set(&key, "c").await.unwrap()
        })
    };
    let more = kv.items(&key).index(items.consul()).await.unwrap();
    assert_eq!(more.len(), 2);
    writer.await.unwrap();
    let keys = kv.keys(&key).await.unwrap();
    let same = kv
        .keys(&key)
        .block(keys.consul(), Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(same.len(), 2);
    let raw = kv
        .raw(&key)
        .block(Index::ONE, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(&*raw.unwrap(), b"2");
}

#[tokio::test]
async fn consistency_modes_are_sent() {
    let server = server::start().await;
    // Consul does not echo the mode of a KV read (no X-Consul-Effective-Consistency in 1.14),
    // so the proxy checks what was sent.
    let proxy = consul_kv_tests::proxy::FaultProxy::start(
        server
            .base_url()
            .trim_start_matches("http://")
            .parse()
            .unwrap(),
    )
    .await;
    let kv = consul_kv::Client::builder()
        .address(proxy.base_url())
        .build()
        .unwrap()
        .kv();
    let key = format!("{}c", prefix("kv-consistency"));
    assert!(kv.set(&key, "v").await.unwrap());
    for (mode, flag) in [
        (Consistency::Consistent, Some("consistent")),
        (Consistency::Stale, Some("stale")),
        (Consistency::Default, None),
    ] {
        let got = kv.get(&key).consistency(mode).await.unwrap().unwrap();
        assert_eq!(got.bytes(), b"v");
        let line = proxy.stats().request_lines().pop().unwrap();
        let query = line
            .split(' ')
            .nth(1)
            .unwrap()
            .split_once('?')
            .map(|(_, q)| q.to_owned());
        assert_eq!(query.as_deref(), flag, "{line}");
        let items = kv.items(&key).consistency(mode).await.unwrap();
        assert_eq!(items.len(), 1);
        assert!(kv
            .keys(&key)
            .consistency(mode)
            .await
            .unwrap()
            .contains(&key));
        assert!(kv.raw(&key).consistency(mode).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn datacenters_from_the_endpoint_and_per_call() {
    let Some(server) = server::start_devserver(
        "datacenters",
        DevServer::builder().datacenter("dc1").datacenter("dc2"),
    )
    .await
    else {
        return;
    };
    let client = client(&server);
    let kv = client.kv();
    let dc2 = client.kv().dc("dc2");
    assert_eq!(dc2.datacenter(), Some("dc2"));
    assert_eq!(kv.datacenter(), None);
    let key = format!("{}k", prefix("kv-dc"));

    assert!(dc2.set(&key, "two").await.unwrap());
    assert!(kv.get(&key).await.unwrap().is_none(), "not in dc1");
    assert_eq!(dc2.get(&key).await.unwrap().unwrap().bytes(), b"two");
    assert_eq!(
        kv.get(&key).dc("dc2").await.unwrap().unwrap().bytes(),
        b"two"
    );
    assert!(kv.set(&key, "one").dc("dc1").await.unwrap());
    assert_eq!(kv.get(&key).await.unwrap().unwrap().bytes(), b"one");
    assert_eq!(dc2.items(&key).await.unwrap().len(), 1);
    assert_eq!(dc2.keys(&key).await.unwrap().len(), 1);
    assert!(dc2.raw(&key).await.unwrap().is_some());
    assert!(dc2.delete(&key).await.unwrap());
    assert!(dc2.get(&key).await.unwrap().is_none());
    assert_eq!(kv.get(&key).await.unwrap().unwrap().bytes(), b"one");
    assert!(dc2.delete_tree(&key).await.unwrap());

    let err = kv.get(&key).dc("nowhere").await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(500));
    // The client's default datacenter.
    let dc2_client = consul_kv::Client::builder()
        .address(server.base_url())
        .datacenter("dc2")
        .build()
        .unwrap();
    assert!(dc2_client.kv().set(&key, "x").await.unwrap());
    assert_eq!(
        dc2.get(&key).await.unwrap().unwrap().bytes(),
        b"x",
        "client default dc"
    );
}

#[tokio::test]
async fn namespace_and_partition_are_sent() {
    // Consul CE (and the devserver) reject them with 400, which shows they were sent.
    let Some(server) = server::start_devserver("ns", DevServer::builder()).await else {
        return;
    };
    let kv = client(&server).kv();
    let key = format!("{}k", prefix("kv-ns"));
    for e in [
        kv.get(&key).ns("team-a").await.unwrap_err(),
        kv.ns("team-a").get(&key).await.unwrap_err(),
        kv.get(&key).partition("p1").await.unwrap_err(),
        kv.partition("p1").items(&key).await.unwrap_err(),
        kv.set(&key, "v").ns("team-a").await.unwrap_err(),
        kv.delete(&key).partition("p1").await.unwrap_err(),
    ] {
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e:?}");
    }
    assert!(kv.set(&key, "v").await.unwrap());
}

#[tokio::test]
async fn tokens_per_client_endpoint_and_call() {
    const SECRET: &str = "s3cr3t-management-token";
    let Some(server) =
        server::start_devserver("tokens", DevServer::builder().acl_token(SECRET)).await
    else {
        return;
    };
    let anonymous = consul_kv::Client::builder()
        .address(server.base_url())
        .build()
        .unwrap();
    let key = format!("{}k", prefix("kv-token"));
    let err = anonymous.kv().set(&key, "v").await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403));
    assert!(!format!("{err} {err:?}").contains(SECRET));

    let token = Token::new(SECRET).unwrap();
    assert!(anonymous
        .kv()
        .set(&key, "v")
        .token(token.clone())
        .await
        .unwrap());
    let scoped = anonymous.kv().token(token.clone());
    assert_eq!(scoped.get(&key).await.unwrap().unwrap().bytes(), b"v");
    assert!(format!("{scoped:?}").contains("***") && !format!("{scoped:?}").contains(SECRET));
    assert!(anonymous
        .kv()
        .get(&key)
        .token(token.clone())
        .await
        .unwrap()
        .is_some());
    let s = anonymous
        .session()
        .token(token.clone())
        .create()
        .await
        .unwrap();
    assert!(anonymous.session().destroy(&s).token(token).await.unwrap());

    let authed = consul_kv::Client::builder()
        .address(server.base_url())
        .token(SECRET)
        .build()
        .unwrap();
    assert!(!format!("{authed:?}").contains(SECRET));
    assert!(authed.kv().delete(&key).await.unwrap());
}

#[tokio::test]
async fn invalid_keys_fail_before_any_io() {
    // An address nothing listens on: a request would fail with a transport error.
    let client = consul_kv::Client::builder()
        .address("http://127.0.0.1:9")
        .build()
        .unwrap();
    let kv = client.kv();
    for key in ["", "/leading", "a//b", "a/../b", "bell\u{7}"] {
        let e = kv.get(key).await.unwrap_err();
        assert!(matches!(e, consul_kv::Error::Build(_)), "{key:?}: {e:?}");
        let e = kv.set(key, "v").await.unwrap_err();
        assert!(matches!(e, consul_kv::Error::Build(_)), "{key:?}: {e:?}");
    }
    let e = client.session().node("").await.unwrap_err();
    assert!(matches!(e, consul_kv::Error::Build(_)), "{e:?}");
}

#[tokio::test]
async fn values_up_to_the_limit() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let key = format!("{}big", prefix("kv-big"));
    let max = vec![7u8; 512 * 1024];
    assert!(kv.set(&key, max.clone()).await.unwrap());
    assert_eq!(kv.get(&key).await.unwrap().unwrap().bytes(), &max[..]);
    let over = vec![7u8; 512 * 1024 + 1];
    let e = kv.set(&key, over).await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(413), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_owned_so_they_can_be_spawned_kept_and_cloned() {
    use std::future::IntoFuture;

    let server = server::start().await;
    let kv = client(&server).kv();
    let key = format!("{}k", prefix("kv-owned"));
    let write = kv.set(&key, "spawned");
    let read_later = kv.get(&key);
    // The requests hold their own handle: the endpoint they came from can go.
    drop(kv);
    assert!(tokio::spawn(write.clone().into_future())
        .await
        .unwrap()
        .unwrap());
    let got = tokio::spawn(read_later.clone().into_future())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.as_str(), Some("spawned"));
    // A kept request is sent again as it was built.
    assert!(write.await.unwrap());
    assert_eq!(read_later.await.unwrap().unwrap().as_str(), Some("spawned"));
}

#[tokio::test]
async fn a_wrong_datacenter_is_a_typed_error_that_names_the_request() {
    let server = server::start().await;
    let kv = client(&server).kv().dc("no-such-dc");
    let key = format!("{}k", prefix("kv-unknown-dc"));

    let e = kv.get(&key).await.unwrap_err();
    assert!(e.is_unknown_datacenter(), "{e:?}");
    assert!(
        matches!(
            e.as_response(),
            Some(consul_kv::ResponseError::UnknownDatacenter { .. })
        ),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert_eq!(e.status().map(|s| s.as_u16()), Some(500));
    // One line says what failed: method and path, no query (so no `dc=`).
    assert_eq!(
        e.to_string(),
        format!("GET /v1/kv/{key}: unknown datacenter")
    );
    let cause = std::error::Error::source(&e).unwrap().to_string();
    assert!(cause.contains("No path to datacenter"), "{cause}");

    let e = kv.set(&key, "v").await.unwrap_err();
    assert!(e.is_unknown_datacenter(), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("PUT /v1/kv/{key}: unknown datacenter")
    );
}

#[tokio::test]
async fn transport_errors_name_the_request_but_never_the_token_or_query() {
    const SECRET: &str = "tok-3f1d9a0c-never-shown";
    // Nothing listens on port 9 on loopback: the connection is refused.
    let client = consul_kv::Client::builder()
        .address("http://127.0.0.1:9")
        .token(SECRET)
        .retry(consul_kv::RetryPolicy::none())
        .build()
        .unwrap();
    let e = client
        .kv()
        .get("app/config db")
        .consistency(Consistency::Stale)
        .await
        .unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    assert_eq!(
        e.to_string(),
        "GET /v1/kv/app/config%20db: could not connect"
    );
    let mut chain = format!("{e} {e:?}");
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        chain.push_str(&format!(" {c}"));
        cause = c.source();
    }
    assert!(
        !chain.contains(SECRET) && !chain.contains("stale"),
        "{chain}"
    );
}
