//! Typed values: `get_json`, `set_json` (with CAS), `items_json`, `Key::json`, `tree`.

use consul_kv::JsonError;
use consul_kv_tests::server;
use serde::{Deserialize, Serialize};

use crate::{client, prefix};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Limits {
    rps: u32,
    burst: u32,
    note: Option<String>,
}

#[tokio::test]
async fn json_values_round_trip_with_cas_and_errors_name_the_key() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("json");
    let key = format!("{p}limits");
    let limits = Limits {
        rps: 100,
        burst: 20,
        note: Some("ünï <&>".into()),
    };

    assert_eq!(kv.get_json::<Limits>(&key).await.unwrap(), None);
    assert!(kv.set_json(&key, &limits).await.unwrap());
    assert_eq!(
        kv.get_json::<Limits>(&key).await.unwrap(),
        Some(limits.clone())
    );
    assert_eq!(
        kv.get(&key).await.unwrap().unwrap().bytes(),
        serde_json::to_vec(&limits).unwrap().as_slice(),
        "stored as compact JSON"
    );

    // CAS like `set`: a stale meta is refused, create-only refuses an existing key.
    let read = kv.get(&key).await.unwrap().unwrap();
    let mut next: Limits = read.json().unwrap();
    next.burst += 1;
    assert!(kv.set_json(&key, &next).cas(read.consul()).await.unwrap());
    assert!(
        !kv.set_json(&key, &limits).cas(read.consul()).await.unwrap(),
        "stale CAS"
    );
    assert!(!kv
        .set_json(&key, &limits)
        .cas(consul_kv::Cas::Absent)
        .await
        .unwrap());
    assert!(kv.set_json(&key, &next).flags(9).await.unwrap());
    assert_eq!(kv.get(&key).await.unwrap().unwrap().flags, 9);
    assert_eq!(
        kv.get_json::<Limits>(&key).await.unwrap().unwrap().burst,
        21
    );

    // Decode errors name the key.
    kv.set(format!("{p}bad"), "{not json").await.unwrap();
    let err = kv.get_json::<Limits>(format!("{p}bad")).await.unwrap_err();
    assert!(matches!(err, JsonError::Decode { .. }), "{err:?}");
    assert_eq!(err.key(), Some(format!("{p}bad").as_str()));
    assert!(err.to_string().contains(&format!("{p}bad")));

    // An empty value is JSON null.
    kv.set(format!("{p}empty"), "").await.unwrap();
    assert_eq!(
        kv.get_json::<Option<u32>>(format!("{p}empty"))
            .await
            .unwrap(),
        Some(None)
    );
}

#[tokio::test]
async fn items_json_decodes_a_prefix_and_skips_folders() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("items-json");
    kv.put_all([
        (p.clone(), ""),
        (format!("{p}a"), "1"),
        (format!("{p}b"), "2"),
        (format!("{p}sub/"), ""),
        (format!("{p}sub/c"), "3"),
    ])
    .await
    .unwrap();
    let items = kv.items_json::<u32>(&p).await.unwrap();
    let got: Vec<(String, u32)> = items.iter().map(|i| (i.key.clone(), i.value)).collect();
    assert_eq!(
        got,
        [
            (format!("{p}a"), 1),
            (format!("{p}b"), 2),
            (format!("{p}sub/c"), 3)
        ]
    );
    let a = &items[0];
    assert!(!kv
        .set_json(&a.key, &5)
        .cas(consul_kv::Index::new(a.modify_index + 1_000_000))
        .await
        .unwrap());
    assert!(kv.set_json(&a.key, &5).cas(a.cas()).await.unwrap());
    kv.set(format!("{p}c"), "three").await.unwrap();
    let err = kv.items_json::<u32>(&p).await.unwrap_err();
    assert_eq!(err.key(), Some(format!("{p}c").as_str()));
}

#[derive(Debug, PartialEq, Deserialize)]
struct App {
    name: String,
    db: Db,
    replicas: Vec<String>,
    #[serde(default)]
    debug: bool,
    limits: Limits,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Db {
    host: String,
    port: u16,
    tls: bool,
    timeout_ms: Option<u64>,
}

#[tokio::test]
async fn tree_maps_nested_keys_to_nested_fields() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("tree");
    let app = format!("{p}config/app/");
    kv.put_all([
        (app.clone(), ""),
        (format!("{app}name"), "web"),
        (format!("{app}db/"), ""),
        (format!("{app}db/host"), "db.internal"),
        (format!("{app}db/port"), "5432"),
        (format!("{app}db/tls"), "true"),
        (format!("{app}replicas/0"), "r0"),
        (format!("{app}replicas/1"), "r1"),
        (format!("{app}limits"), r#"{"rps":5,"burst":1,"note":null}"#),
        (format!("{p}config/apple"), "not part of the tree"),
    ])
    .await
    .unwrap();
    let got: App = kv.tree(format!("{p}config/app")).await.unwrap();
    assert_eq!(
        got,
        App {
            name: "web".into(),
            db: Db {
                host: "db.internal".into(),
                port: 5432,
                tls: true,
                timeout_ms: None
            },
            replicas: vec!["r0".into(), "r1".into()],
            debug: false,
            limits: Limits {
                rps: 5,
                burst: 1,
                note: None
            },
        }
    );
    // The same from a list read, e.g. one a prefix watch yields.
    let items = kv.items(&app).await.unwrap();
    assert_eq!(items.tree::<App>(&app).unwrap(), got);

    // A key that does not fit is named.
    kv.set(format!("{app}db/port"), "fifty").await.unwrap();
    let err = kv.tree::<App>(&app).await.unwrap_err();
    assert_eq!(err.key(), Some(format!("{app}db/port").as_str()), "{err:?}");
    kv.delete(format!("{app}db/port")).await.unwrap();
    let err = kv.tree::<App>(&app).await.unwrap_err();
    assert_eq!(err.key(), Some(format!("{app}db/").as_str()), "{err:?}");
    assert!(std::error::Error::source(&err)
        .unwrap()
        .to_string()
        .contains("port"));
}
