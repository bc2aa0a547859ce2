//! `/v1/kv`: reads, writes, CAS, deletes, indexes, tombstones and bad input.

use bytes::Bytes;
use serde_json::Value;

use crate::client::{b64, skip, unb64};
use crate::setup;

#[tokio::test]
async fn put_then_get_returns_consul_entry_shape() {
    let (_s, c, p) = setup("entry-shape").await;
    let r = c.put(&format!("/v1/kv/{p}k?flags=42"), "hello").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "true");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let g = c.get(&format!("/v1/kv/{p}k")).await;
    assert_eq!(g.status, 200);
    assert_eq!(
        g.header("content-type").as_deref(),
        Some("application/json")
    );
    // Field order on the wire is Consul's.
    let body = g.text();
    let order: Vec<usize> = [
        "LockIndex",
        "Key",
        "Flags",
        "Value",
        "CreateIndex",
        "ModifyIndex",
    ]
    .iter()
    .map(|f| body.find(&format!("\"{f}\"")).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "field order: {body}");
    assert!(
        !body.contains("Session"),
        "no Session when unlocked: {body}"
    );
    let e = &g.json()[0];
    assert_eq!(e["Key"], format!("{p}k"));
    assert_eq!(e["Flags"], 42);
    assert_eq!(e["LockIndex"], 0);
    assert_eq!(unb64(e["Value"].as_str().unwrap()), b"hello");
    assert_eq!(e["CreateIndex"], e["ModifyIndex"]);
    // Single-key read: X-Consul-Index is the key's ModifyIndex.
    assert_eq!(g.index(), e["ModifyIndex"].as_u64().unwrap());
    assert_eq!(g.header("x-consul-knownleader").as_deref(), Some("true"));
    assert_eq!(g.header("x-consul-lastcontact").as_deref(), Some("0"));
}

#[tokio::test]
async fn writes_carry_no_index_headers() {
    let (_s, c, p) = setup("write-headers").await;
    for r in [
        c.put(&format!("/v1/kv/{p}a"), "1").await,
        c.delete(&format!("/v1/kv/{p}a")).await,
        c.delete(&format!("/v1/kv/{p}?recurse")).await,
    ] {
        assert_eq!(r.status, 200);
        assert!(r.header("x-consul-index").is_none());
        assert!(r.header("x-consul-knownleader").is_none());
        assert!(r.header("x-consul-lastcontact").is_none());
    }
}

#[tokio::test]
async fn missing_key_is_404_with_empty_body_and_index() {
    let (_s, c, p) = setup("missing").await;
    let r = c.get(&format!("/v1/kv/{p}nope")).await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    r.index();
    assert_eq!(r.header("x-consul-knownleader").as_deref(), Some("true"));
    let raw = c.get(&format!("/v1/kv/{p}nope?raw")).await;
    assert_eq!(raw.status, 404);
}

#[tokio::test]
async fn raw_get_returns_exact_bytes_and_safe_headers() {
    let (_s, c, p) = setup("raw").await;
    let value: Vec<u8> = (0..=255u8).collect();
    c.put_ok(&format!("/v1/kv/{p}bin"), value.clone()).await;
    let r = c.get(&format!("/v1/kv/{p}bin?raw")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_ref(), &value[..]);
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        r.header("content-security-policy").as_deref(),
        Some("sandbox")
    );
    assert_eq!(r.header("content-length").as_deref(), Some("256"));
    r.index();
}

#[tokio::test]
async fn empty_body_stores_null_value() {
    let (_s, c, p) = setup("null").await;
    c.put_ok(&format!("/v1/kv/{p}empty"), Bytes::new()).await;
    let e = c.entry(&format!("{p}empty")).await;
    assert_eq!(e["Value"], Value::Null);
    let r = c.get(&format!("/v1/kv/{p}empty?raw")).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn put_without_flags_resets_flags_to_zero() {
    let (_s, c, p) = setup("flags-reset").await;
    c.put_ok(&format!("/v1/kv/{p}f?flags=18446744073709551615"), "v")
        .await;
    assert_eq!(
        c.entry(&format!("{p}f")).await["Flags"].as_u64(),
        Some(u64::MAX)
    );
    c.put_ok(&format!("/v1/kv/{p}f"), "v").await;
    assert_eq!(c.entry(&format!("{p}f")).await["Flags"], 0);
}

#[tokio::test]
async fn unchanged_write_keeps_modify_index() {
    let (_s, c, p) = setup("unchanged").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "same").await;
    let first = c.entry(&format!("{p}k")).await;
    c.put_ok(&format!("/v1/kv/{p}other"), "x").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "same").await;
    let second = c.entry(&format!("{p}k")).await;
    assert_eq!(first["ModifyIndex"], second["ModifyIndex"]);
}

#[tokio::test]
async fn changed_write_bumps_modify_index_and_keeps_create_index() {
    let (_s, c, p) = setup("changed").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "1").await;
    let a = c.entry(&format!("{p}k")).await;
    c.put_ok(&format!("/v1/kv/{p}k"), "2").await;
    let b = c.entry(&format!("{p}k")).await;
    assert!(b["ModifyIndex"].as_u64() > a["ModifyIndex"].as_u64());
    assert_eq!(a["CreateIndex"], b["CreateIndex"]);
    // A flags-only change is a change too.
    c.put_ok(&format!("/v1/kv/{p}k?flags=1"), "2").await;
    let d = c.entry(&format!("{p}k")).await;
    assert!(d["ModifyIndex"].as_u64() > b["ModifyIndex"].as_u64());
}

#[tokio::test]
async fn one_index_rises_across_keys() {
    let (_s, c, p) = setup("global-index").await;
    let mut last = 0;
    for i in 0..5 {
        c.put_ok(&format!("/v1/kv/{p}k{i}"), "v").await;
        let m = c.entry(&format!("{p}k{i}")).await["ModifyIndex"]
            .as_u64()
            .unwrap();
        assert!(m > last, "index must rise across keys");
        last = m;
    }
}

#[tokio::test]
async fn recurse_lists_prefix_in_key_order_with_max_index() {
    let (_s, c, p) = setup("recurse").await;
    for k in ["b", "a/", "a/x", "c"] {
        c.put_ok(&format!("/v1/kv/{p}{k}"), "v").await;
    }
    let newest = c.entry(&format!("{p}c")).await["ModifyIndex"]
        .as_u64()
        .unwrap();
    // `raw` is ignored in recurse mode.
    let r = c.get(&format!("/v1/kv/{p}?recurse&raw")).await;
    assert_eq!(r.status, 200);
    let keys: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        [
            format!("{p}a/"),
            format!("{p}a/x"),
            format!("{p}b"),
            format!("{p}c")
        ]
    );
    assert_eq!(r.index(), newest);
}

#[tokio::test]
async fn recurse_of_empty_prefix_is_404_with_index() {
    let (_s, c, p) = setup("recurse-404").await;
    let r = c.get(&format!("/v1/kv/{p}?recurse")).await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    r.index();
}

#[tokio::test]
async fn keys_lists_every_key_under_prefix() {
    let (_s, c, p) = setup("keys").await;
    for k in ["x/1", "x/2/deep", "y"] {
        c.put_ok(&format!("/v1/kv/{p}{k}"), "v").await;
    }
    let r = c.get(&format!("/v1/kv/{p}?keys")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!([format!("{p}x/1"), format!("{p}x/2/deep"), format!("{p}y")])
    );
    r.index();
    // `keys` wins over `recurse`.
    let both = c.get(&format!("/v1/kv/{p}?keys&recurse")).await;
    assert_eq!(both.json(), r.json());
}

#[tokio::test]
async fn keys_with_separator_fold_like_consul() {
    let (_s, c, p) = setup("separator").await;
    for k in [
        "one/nested/something",
        "one/nested/another",
        "two",
        "three/key",
        "",
    ] {
        c.put_ok(&format!("/v1/kv/{p}{k}"), "v").await;
    }
    let r = c.get(&format!("/v1/kv/{p}?keys&separator=%2F")).await;
    assert_eq!(
        r.json(),
        serde_json::json!([
            p.clone(),
            format!("{p}one/"),
            format!("{p}three/"),
            format!("{p}two")
        ])
    );
    // Legacy spelling, and an empty separator means none.
    let legacy = c.get(&format!("/v1/kv/{p}?keys&seperator=/")).await;
    assert_eq!(legacy.json(), r.json());
    let none = c.get(&format!("/v1/kv/{p}?keys&separator")).await;
    assert_eq!(none.json().as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn keys_of_empty_prefix_is_404_but_root_is_a_list() {
    let (s, c, p) = setup("keys-404").await;
    let r = c.get(&format!("/v1/kv/{p}?keys")).await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    r.index();
    let root = c.get("/v1/kv/?keys").await;
    assert_eq!(root.status, 200);
    assert!(root.json().is_array());
    if s.is_devserver() {
        // A fresh store: "use empty list instead of null".
        assert_eq!(root.text(), "[]");
    }
}

#[tokio::test]
async fn folder_keys_are_distinct_and_not_implied() {
    let (_s, c, p) = setup("folders").await;
    c.put_ok(&format!("/v1/kv/{p}a/b"), "v").await;
    assert_eq!(c.get(&format!("/v1/kv/{p}a/")).await.status, 404);
    c.put_ok(&format!("/v1/kv/{p}a/"), Bytes::new()).await;
    assert_eq!(c.entry(&format!("{p}a/")).await["Key"], format!("{p}a/"));
    assert_eq!(c.entry(&format!("{p}a/b")).await["Key"], format!("{p}a/b"));
}

#[tokio::test]
async fn delete_answers_true_even_for_missing_keys() {
    let (_s, c, p) = setup("delete").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "v").await;
    for _ in 0..2 {
        let r = c.delete(&format!("/v1/kv/{p}k")).await;
        assert_eq!((r.status, r.text().as_str()), (200, "true"));
    }
    assert_eq!(c.get(&format!("/v1/kv/{p}k")).await.status, 404);
}

#[tokio::test]
async fn delete_recurse_is_a_greedy_byte_prefix_and_presence_only() {
    let (_s, c, p) = setup("delete-tree").await;
    for k in ["foo", "food", "foo-x/y", "fo", "bar"] {
        c.put_ok(&format!("/v1/kv/{p}{k}"), "v").await;
    }
    // `recurse=false` is still recursive: only presence counts.
    let r = c.delete(&format!("/v1/kv/{p}foo?recurse=false")).await;
    assert_eq!(r.text(), "true");
    let left = c.get(&format!("/v1/kv/{p}?keys")).await.json();
    assert_eq!(
        left,
        serde_json::json!([format!("{p}bar"), format!("{p}fo")])
    );
}

#[tokio::test]
async fn delete_cas_rules() {
    let (_s, c, p) = setup("delete-cas").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "v").await;
    let idx = c.entry(&format!("{p}k")).await["ModifyIndex"]
        .as_u64()
        .unwrap();
    assert_eq!(
        c.delete(&format!("/v1/kv/{p}k?cas=0")).await.text(),
        "false"
    );
    assert_eq!(
        c.delete(&format!("/v1/kv/{p}k?cas={}", idx + 1000))
            .await
            .text(),
        "false"
    );
    assert_eq!(c.get(&format!("/v1/kv/{p}k")).await.status, 200);
    assert_eq!(
        c.delete(&format!("/v1/kv/{p}k?cas={idx}")).await.text(),
        "true"
    );
    assert_eq!(c.get(&format!("/v1/kv/{p}k")).await.status, 404);
    // A missing key "passes" a CAS delete.
    assert_eq!(c.delete(&format!("/v1/kv/{p}k?cas=5")).await.text(), "true");
}

#[tokio::test]
async fn put_cas_rules() {
    let (_s, c, p) = setup("put-cas").await;
    assert_eq!(
        c.put(&format!("/v1/kv/{p}k?cas=0"), "a").await.text(),
        "true"
    );
    assert_eq!(
        c.put(&format!("/v1/kv/{p}k?cas=0"), "b").await.text(),
        "false"
    );
    let idx = c.entry(&format!("{p}k")).await["ModifyIndex"]
        .as_u64()
        .unwrap();
    assert_eq!(
        c.put(&format!("/v1/kv/{p}k?cas={}", idx + 1000), "c")
            .await
            .text(),
        "false"
    );
    assert_eq!(
        c.put(&format!("/v1/kv/{p}k?cas={idx}"), "d").await.text(),
        "true"
    );
    assert_eq!(
        unb64(c.entry(&format!("{p}k")).await["Value"].as_str().unwrap()),
        b"d"
    );
    // A stale CAS after the successful one fails.
    assert_eq!(
        c.put(&format!("/v1/kv/{p}k?cas={idx}"), "e").await.text(),
        "false"
    );
    // CAS with N > 0 on a missing key fails.
    assert_eq!(
        c.put(&format!("/v1/kv/{p}none?cas=7"), "x").await.text(),
        "false"
    );
    assert_eq!(c.get(&format!("/v1/kv/{p}none")).await.status, 404);
}

#[tokio::test]
async fn tombstones_keep_list_index_from_going_backwards() {
    let (_s, c, p) = setup("tombstone").await;
    c.put_ok(&format!("/v1/kv/{p}a"), "1").await;
    c.put_ok(&format!("/v1/kv/{p}b"), "2").await;
    let before = c.get(&format!("/v1/kv/{p}?recurse")).await.index();
    c.delete(&format!("/v1/kv/{p}b")).await;
    let after = c.get(&format!("/v1/kv/{p}?recurse")).await;
    assert_eq!(after.json().as_array().unwrap().len(), 1);
    assert!(after.index() > before, "the tombstone's index counts");
    let keys = c.get(&format!("/v1/kv/{p}?keys")).await;
    assert_eq!(keys.index(), after.index());
}

/// Devserver-only: needs the tombstone-reaping hook.
#[tokio::test]
async fn reaping_tombstones_lets_a_list_index_go_backwards() {
    let (s, c, p) = setup("reap").await;
    let Some(h) = s.handle() else {
        return skip("reap", "needs the devserver's reap_tombstones hook");
    };
    c.put_ok(&format!("/v1/kv/{p}a"), "1").await;
    let a_index = c.entry(&format!("{p}a")).await["ModifyIndex"]
        .as_u64()
        .unwrap();
    c.put_ok(&format!("/v1/kv/{p}b"), "2").await;
    c.delete(&format!("/v1/kv/{p}b")).await;
    let with_tomb = c.get(&format!("/v1/kv/{p}?recurse")).await.index();
    assert!(h.reap_tombstones() >= 1);
    let reaped = c.get(&format!("/v1/kv/{p}?recurse")).await.index();
    assert!(reaped < with_tomb);
    assert_eq!(reaped, a_index);
}

#[tokio::test]
async fn missing_key_reports_the_kv_table_index() {
    let (_s, c, p) = setup("missing-index").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "v").await;
    let put_index = c.entry(&format!("{p}k")).await["ModifyIndex"]
        .as_u64()
        .unwrap();
    c.delete(&format!("/v1/kv/{p}k")).await;
    let r = c.get(&format!("/v1/kv/{p}k")).await;
    assert_eq!(r.status, 404);
    assert!(r.index() > put_index, "the delete's index is the table max");
}

#[tokio::test]
async fn empty_key_is_missing_key_name() {
    let (_s, c, _p) = setup("missing-key-name").await;
    for r in [
        c.get("/v1/kv/").await,
        c.put("/v1/kv/", "v").await,
        c.delete("/v1/kv/").await,
    ] {
        assert_eq!((r.status, r.text().as_str()), (400, "Missing key name"));
    }
}

#[tokio::test]
async fn bad_flags_are_500_with_go_parse_errors() {
    let (_s, c, p) = setup("bad-flags").await;
    for (v, why) in [
        ("abc", "invalid syntax"),
        ("-1", "invalid syntax"),
        ("1.5", "invalid syntax"),
        ("", "invalid syntax"),
        ("18446744073709551616", "value out of range"),
    ] {
        let r = c.put(&format!("/v1/kv/{p}k?flags={v}"), "x").await;
        assert_eq!(r.status, 500, "flags={v}");
        assert_eq!(
            r.text(),
            format!("strconv.ParseUint: parsing \"{v}\": {why}"),
            "flags={v}"
        );
    }
    assert_eq!(c.get(&format!("/v1/kv/{p}k")).await.status, 404);
}

#[tokio::test]
async fn bad_cas_is_500_on_put_and_delete() {
    let (_s, c, p) = setup("bad-cas").await;
    let want = "strconv.ParseUint: parsing \"abc\": invalid syntax";
    let r = c.put(&format!("/v1/kv/{p}k?cas=abc"), "x").await;
    assert_eq!((r.status, r.text().as_str()), (500, want));
    let r = c.delete(&format!("/v1/kv/{p}k?cas=abc")).await;
    assert_eq!((r.status, r.text().as_str()), (500, want));
}

#[tokio::test]
async fn conflicting_flags_are_400_with_encoded_params() {
    let (_s, c, p) = setup("conflict").await;
    let r = c
        .put(&format!("/v1/kv/{p}k?cas=822&acquire=abc"), "x")
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text().trim_end(),
        "Conflicting flags: acquire=abc&cas=822"
    );
    let r = c
        .put(&format!("/v1/kv/{p}k?release=a&acquire=b"), "x")
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text().trim_end(),
        "Conflicting flags: acquire=b&release=a"
    );
    let r = c.delete(&format!("/v1/kv/{p}k?recurse&cas=1")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text().trim_end(), "Conflicting flags: cas=1&recurse=");
}

#[tokio::test]
async fn value_limit_is_512_kib() {
    let (_s, c, p) = setup("value-limit").await;
    let max = 512 * 1024;
    c.put_ok(&format!("/v1/kv/{p}max"), vec![b'x'; max]).await;
    let e = c.entry(&format!("{p}max")).await;
    assert_eq!(unb64(e["Value"].as_str().unwrap()).len(), max);
    let r = c.put(&format!("/v1/kv/{p}over"), vec![b'x'; max + 1]).await;
    assert_eq!(r.status, 413);
    assert!(
        r.text().starts_with(&format!(
            "Request body({} bytes) too large, max size: {max} bytes. See ",
            max + 1
        )),
        "{}",
        r.text()
    );
    assert_eq!(c.get(&format!("/v1/kv/{p}over")).await.status, 404);
}

#[tokio::test]
async fn percent_encoded_keys_round_trip() {
    let (_s, c, p) = setup("encoding").await;
    // (path form, decoded key)
    let cases = [
        ("a%20b", "a b"),
        ("q%3Fx", "q?x"),
        ("h%23x", "h#x"),
        ("p%25x", "p%x"),
        ("lit%252F", "lit%2F"),
        ("sub$&+,;=:@", "sub$&+,;=:@"),
        ("%C3%A7%F0%9F%98%80", "ç😀"),
        ("enc%2Fslash", "enc/slash"),
    ];
    for (enc, key) in cases {
        c.put_ok(&format!("/v1/kv/{p}{enc}"), key.to_owned()).await;
        let e = c.entry(&format!("{p}{enc}")).await;
        assert_eq!(e["Key"], format!("{p}{key}"), "{enc}");
        assert_eq!(unb64(e["Value"].as_str().unwrap()), key.as_bytes());
    }
    let keys = c.get(&format!("/v1/kv/{p}?keys")).await.json();
    assert_eq!(keys.as_array().unwrap().len(), cases.len());
    assert!(keys
        .as_array()
        .unwrap()
        .contains(&Value::String(format!("{p}enc/slash"))));
}

#[tokio::test]
async fn pretty_indents_with_four_spaces() {
    let (s, c, p) = setup("pretty").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "v").await;
    let r = c.get(&format!("/v1/kv/{p}k?pretty")).await;
    let t = String::from_utf8_lossy(&r.body).into_owned();
    assert!(t.starts_with("[\n    {\n        \"LockIndex\": 0,"), "{t}");
    assert!(t.ends_with("}\n]\n"), "{t:?}");
    // A `-dev` agent pretty-prints every answer; production agents and the devserver only on
    // `?pretty`.
    if s.is_devserver() {
        let compact = c.get(&format!("/v1/kv/{p}k")).await.text();
        assert!(!compact.contains('\n'));
    }
}

#[tokio::test]
async fn consistency_modes_are_accepted() {
    let (_s, c, p) = setup("consistency").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "v").await;
    for (q, mode) in [
        ("", "leader"),
        ("?stale", "stale"),
        ("?consistent", "consistent"),
        ("?max_stale=5s", "stale"),
    ] {
        let r = c.get(&format!("/v1/kv/{p}k{q}")).await;
        assert_eq!(r.status, 200, "{q}");
        r.index();
        // Recorded from Consul 1.14.11: KV reads carry no X-Consul-Effective-Consistency,
        // whatever the mode, and name their backend.
        assert_eq!(r.header("x-consul-effective-consistency"), None, "{mode}");
        assert_eq!(
            r.header("x-consul-query-backend").as_deref(),
            Some("blocking-query")
        );
        assert_eq!(
            r.header("x-consul-default-acl-policy").as_deref(),
            Some("allow")
        );
    }
}

#[tokio::test]
async fn stale_with_consistent_is_400() {
    let (_s, c, p) = setup("stale-consistent").await;
    let r = c.get(&format!("/v1/kv/{p}k?stale&consistent")).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "Cannot specify ?stale with ?consistent, conflicting semantics."
    );
    // max_stale > 0 implies stale.
    let r = c.get(&format!("/v1/kv/{p}k?max_stale=1s&consistent")).await;
    assert_eq!(r.status, 400);
    let r = c.get(&format!("/v1/kv/{p}k?max_stale=abc")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "Invalid max_stale value \"abc\"")
    );
}

#[tokio::test]
async fn bad_wait_and_index_are_400() {
    let (_s, c, p) = setup("bad-wait").await;
    for q in ["wait=10", "wait=abc", "wait=5x"] {
        let r = c.get(&format!("/v1/kv/{p}k?index=1&{q}")).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (400, "Invalid wait time"),
            "{q}"
        );
    }
    for q in ["index=-1", "index=abc", "index=1.5"] {
        let r = c.get(&format!("/v1/kv/{p}k?{q}")).await;
        assert_eq!((r.status, r.text().as_str()), (400, "Invalid index"), "{q}");
    }
    // The same parse() runs for writes.
    let r = c.put(&format!("/v1/kv/{p}k?wait=10"), "v").await;
    assert_eq!(r.status, 400);
}

/// Consul CE (version-dependent wording for partitions, UNCONFIRMED).
#[tokio::test]
async fn namespaces_are_an_enterprise_feature() {
    let (_s, c, p) = setup("namespace").await;
    let r = c.get(&format!("/v1/kv/{p}k?ns=team")).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "Invalid query parameter: \"ns\" - Namespaces are a Consul Enterprise feature"
    );
    let r = c
        .req(
            "PUT",
            &format!("/v1/kv/{p}k"),
            "v",
            &[("X-Consul-Namespace", "team")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(c.get(&format!("/v1/kv/{p}k")).await.status, 404);
}

#[tokio::test]
async fn base64_value_matches_raw() {
    let (_s, c, p) = setup("b64").await;
    let v = b"\x00\xffbinary\n".to_vec();
    c.put_ok(&format!("/v1/kv/{p}k"), v.clone()).await;
    assert_eq!(c.entry(&format!("{p}k")).await["Value"], b64(&v));
}
