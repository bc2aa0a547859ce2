//! Typed watches: `watch_json` and `watch_tree` yield a value only when the decoded value
//! changes, and decode errors as items naming the key.

use std::time::Duration;

use consul_kv::{JsonWatch, TreeWatch};
use consul_kv_tests::server;
use serde::Deserialize;

use crate::{client, prefix, within};

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Limits {
    rps: u32,
    #[serde(default)]
    burst: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Db {
    host: String,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Settings {
    greeting: String,
    db: Db,
    #[serde(default)]
    features: Vec<String>,
}

async fn next_json(w: &mut JsonWatch<Limits>) -> Result<Option<Limits>, consul_kv::WatchError> {
    within(Duration::from_secs(10), "a json item", w.next())
        .await
        .expect("the stream goes on")
}

async fn next_tree(w: &mut TreeWatch<Settings>) -> Result<Settings, consul_kv::WatchError> {
    within(Duration::from_secs(10), "a tree item", w.next())
        .await
        .expect("the stream goes on")
}

#[tokio::test]
async fn watch_json_yields_decoded_changes_and_names_the_key_of_a_bad_value() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let key = format!("{}limits", prefix("json"));
    let mut w = kv
        .watch_json::<Limits>(&key)
        .min_interval(Duration::from_millis(20));
    assert_eq!(next_json(&mut w).await.unwrap(), None, "absent first");

    kv.set(&key, r#"{"rps": 10}"#).await.unwrap();
    assert_eq!(
        next_json(&mut w).await.unwrap(),
        Some(Limits { rps: 10, burst: 0 })
    );
    // The same bytes again, then bytes that decode to the same value: no item. The next
    // item is the real change after them.
    kv.set(&key, r#"{"rps": 10}"#).await.unwrap();
    kv.set(&key, r#"{ "burst": 0, "rps": 10, "unknown": true }"#)
        .await
        .unwrap();
    kv.set(&key, r#"{"rps": 20, "burst": 5}"#).await.unwrap();
    assert_eq!(
        next_json(&mut w).await.unwrap(),
        Some(Limits { rps: 20, burst: 5 })
    );

    // A bad value is an error item naming the key; the stream goes on, and the good value
    // after it is yielded even though it equals the one before the error.
    kv.set(&key, "not json").await.unwrap();
    let err = next_json(&mut w).await.unwrap_err();
    assert_eq!(err.key(), Some(key.as_str()));
    assert!(err.to_string().contains(&key), "{err}");
    kv.set(&key, r#"{"rps": 20, "burst": 5}"#).await.unwrap();
    assert_eq!(
        next_json(&mut w).await.unwrap(),
        Some(Limits { rps: 20, burst: 5 })
    );
    kv.delete(&key).await.unwrap();
    assert_eq!(next_json(&mut w).await.unwrap(), None, "deleted");
}

#[tokio::test]
async fn watch_tree_maps_nested_keys_and_reloads_on_change() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("tree");
    kv.set(format!("{p}greeting"), "hello world").await.unwrap();
    kv.set(format!("{p}db/host"), "db.internal").await.unwrap();
    kv.set(format!("{p}db/port"), "5432").await.unwrap();
    let mut w = kv
        .watch_tree::<Settings>(&p)
        .min_interval(Duration::from_millis(20));
    let s = next_tree(&mut w).await.unwrap();
    assert_eq!(
        s,
        Settings {
            greeting: "hello world".into(),
            db: Db {
                host: "db.internal".into(),
                port: 5432
            },
            features: vec![],
        }
    );

    // A rewrite of the same value, and a key the type does not read: no reload.
    kv.set(format!("{p}db/port"), "5432").await.unwrap();
    kv.set(format!("{p}unused"), "x").await.unwrap();
    kv.set(format!("{p}features"), r#"["a","b"]"#)
        .await
        .unwrap();
    let s = next_tree(&mut w).await.unwrap();
    assert_eq!(s.features, ["a", "b"]);

    // A port that is not a number, and a key that is both a value and a folder: errors
    // naming the key at fault. The stream goes on.
    kv.set(format!("{p}db/port"), "many").await.unwrap();
    let err = next_tree(&mut w).await.unwrap_err();
    assert_eq!(err.key(), Some(format!("{p}db/port").as_str()));
    kv.set(format!("{p}db/port"), "6432").await.unwrap();
    assert_eq!(next_tree(&mut w).await.unwrap().db.port, 6432);
    kv.set(format!("{p}greeting/extra"), "x").await.unwrap();
    let err = next_tree(&mut w).await.unwrap_err();
    assert_eq!(err.key(), Some(format!("{p}greeting").as_str()), "{err:?}");
    kv.delete(format!("{p}greeting/extra")).await.unwrap();
    assert_eq!(next_tree(&mut w).await.unwrap().db.port, 6432);
}
