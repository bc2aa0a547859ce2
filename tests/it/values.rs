//! Binary values and awkward keys round-trip byte for byte through every read.

use bytes::Bytes;
use consul_kv::TxnOutcome;
use consul_kv_tests::server;

use crate::{client, prefix};

#[tokio::test]
async fn binary_values_round_trip() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("values");
    let all: Vec<u8> = (0..=255u8).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("all-bytes", all.clone()),
        ("all-bytes-reversed", all.iter().rev().copied().collect()),
        ("invalid-utf8", vec![0xff, 0xfe, 0x80, b'a', 0xc3, 0x28]),
        ("nul", vec![0, 0, 0]),
        ("crlf", b"line\r\nline\n".to_vec()),
        ("json-ish", br#""quoted" {"a":1}"#.to_vec()),
        ("utf8", "héllo 🦀".as_bytes().to_vec()),
    ];
    for (name, value) in &cases {
        let key = format!("{p}{name}");
        assert!(kv.set(&key, value.clone()).await.unwrap(), "{name}");
        let got = kv.get(&key).await.unwrap().unwrap();
        assert_eq!(got.bytes(), &value[..], "get {name}");
        let raw = kv.raw(&key).await.unwrap().unwrap();
        assert_eq!(&*raw, &value[..], "raw {name}");
    }
    let items = kv.items(&p).await.unwrap();
    for (name, value) in &cases {
        let e = items.get(&format!("{p}{name}")).unwrap();
        assert_eq!(e.value_bytes(), &value[..], "items {name}");
    }
    assert_eq!(
        kv.get(format!("{p}invalid-utf8"))
            .await
            .unwrap()
            .unwrap()
            .as_str(),
        None
    );

    // Through a transaction (base64 on the wire).
    let key = format!("{p}txn");
    let outcome = kv.txn().set(&key, all.clone()).get(&key).await.unwrap();
    let TxnOutcome::Committed(r) = outcome else {
        panic!("rolled back: {outcome:?}")
    };
    assert_eq!(r.results[1].value_bytes(), &all[..]);

    // Empty: stored as Consul's null, read back as empty.
    let key = format!("{p}empty");
    assert!(kv.set(&key, Bytes::new()).await.unwrap());
    let got = kv.get(&key).await.unwrap().unwrap();
    assert_eq!(got.bytes(), b"");
    assert!(got.value.as_ref().is_none_or(|v| v.is_empty()));
    assert_eq!(kv.raw(&key).await.unwrap().unwrap().len(), 0);
}

#[tokio::test]
async fn awkward_keys_round_trip() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("keys");
    let names = [
        "with space",
        "question?mark=1&x",
        "hash#fragment",
        "percent%sign",
        "literal%2Fslash",
        "plus+sign",
        "é/中文/ключ",
        "emoji 🦀🚀",
        "trailing/",
        "sub-delims!$&'()*,;=",
        "gen-delims:@[]",
        "quote\"back\\slash",
        "tilde~dot.dash-under_score",
        "a/b/c/d/e/f",
        " leading and trailing ",
        "%",
        "%%41",
        "+",
        "?",
        "#",
    ];
    for (i, name) in names.iter().enumerate() {
        let key = format!("{p}{name}");
        let value = format!("value {i}");
        assert!(kv.set(&key, value.clone()).await.unwrap(), "set {key:?}");
        let got = kv
            .get(&key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("get {key:?}"));
        assert_eq!(got.key, key);
        assert_eq!(got.bytes(), value.as_bytes(), "{key:?}");
        assert_eq!(
            &*kv.raw(&key).await.unwrap().unwrap(),
            value.as_bytes(),
            "raw {key:?}"
        );
    }
    let keys = kv.keys(&p).await.unwrap();
    let items = kv.items(&p).await.unwrap();
    assert_eq!(keys.len(), names.len());
    for name in names {
        let key = format!("{p}{name}");
        assert!(keys.contains(&key), "keys lists {key:?}: {keys:?}");
        assert!(items.get(&key).is_some(), "items lists {key:?}");
    }
    // Each key is its own: "%2F" is not "/", "+" is not " ".
    assert!(kv.get(format!("{p}literal/slash")).await.unwrap().is_none());
    assert!(kv.get(format!("{p}plus sign")).await.unwrap().is_none());
    assert!(kv.get(format!("{p}trailing")).await.unwrap().is_none());

    for name in names {
        let key = format!("{p}{name}");
        let got = kv.get(&key).await.unwrap().unwrap();
        assert!(kv.delete(&key).cas(&got).await.unwrap(), "delete {key:?}");
    }
    assert!(kv.keys(&p).await.unwrap().is_empty());
}

#[tokio::test]
async fn every_value_form_is_accepted_and_read_back() {
    let server = server::start().await;
    let client = client(&server);
    let kv = client.kv();
    let p = prefix("value-forms");
    let text = String::from("héllo");
    let binary: &[u8] = b"\xffbin";
    assert!(kv.set(format!("{p}string"), text.clone()).await.unwrap());
    assert!(kv.set(format!("{p}ref-string"), &text).await.unwrap());
    assert!(kv.set(format!("{p}str"), text.as_str()).await.unwrap());
    assert!(kv.set(format!("{p}vec"), binary.to_vec()).await.unwrap());
    assert!(kv.set(format!("{p}slice"), binary).await.unwrap());
    assert!(kv
        .set(format!("{p}bytes"), Bytes::from_static(b"\xffbin"))
        .await
        .unwrap());
    // Acquire, release and transactions take the same forms.
    let session = client.session().create().await.unwrap();
    let lock_key = format!("{p}lock");
    assert!(kv.acquire(&lock_key, &session).value(&text).await.unwrap());
    assert!(kv
        .txn()
        .set(format!("{p}txn"), &text)
        .await
        .unwrap()
        .is_committed());

    // What lists yield (KvPair) reads as text too; bytes that are not UTF-8 read as None.
    let items = kv.items(&p).await.unwrap();
    for name in ["string", "ref-string", "str", "lock", "txn"] {
        let pair = items.get(&format!("{p}{name}")).unwrap();
        assert_eq!(pair.as_str(), Some("héllo"), "{name}");
    }
    for name in ["vec", "slice", "bytes"] {
        let pair = items.get(&format!("{p}{name}")).unwrap();
        assert_eq!(pair.value_bytes(), binary, "{name}");
        assert_eq!(pair.as_str(), None, "{name}");
    }
    assert!(kv.release(&lock_key, &session).await.unwrap());
    assert!(session.destroy().await.unwrap());
}
