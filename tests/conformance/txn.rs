//! `PUT /v1/txn`.

use serde_json::{json, Value};

use crate::client::{b64, unb64, C, R};
use crate::setup;

async fn txn(c: &C, ops: &Value) -> R {
    c.put("/v1/txn", ops.to_string()).await
}

fn errors(r: &R) -> Vec<(u64, String)> {
    assert_eq!(r.status, 409, "{}", r.text());
    let j = r.json();
    assert_eq!(j["Results"], Value::Null);
    j["Errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["OpIndex"].as_u64().unwrap(),
                e["What"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn set_and_get_results() {
    let (_s, c, p) = setup("txn-basic").await;
    let r = txn(
        &c,
        &json!([
            {"KV": {"Verb": "set", "Key": format!("{p}a"), "Value": b64(b"1"), "Flags": 7}},
            {"KV": {"Verb": "get", "Key": format!("{p}a")}},
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(r.header("x-consul-index").is_none());
    let j = r.json();
    assert_eq!(j["Errors"], Value::Null);
    let res = j["Results"].as_array().unwrap();
    assert_eq!(res.len(), 2);
    assert_eq!(res[0]["KV"]["Value"], Value::Null, "writes return no value");
    assert_eq!(res[0]["KV"]["Flags"], 7);
    assert_eq!(unb64(res[1]["KV"]["Value"].as_str().unwrap()), b"1");
    assert_eq!(res[0]["KV"]["ModifyIndex"], res[1]["KV"]["ModifyIndex"]);
}

#[tokio::test]
async fn all_writes_share_one_index() {
    let (_s, c, p) = setup("txn-one-index").await;
    let r = txn(
        &c,
        &json!([
            {"KV": {"Verb": "set", "Key": format!("{p}a"), "Value": b64(b"1")}},
            {"KV": {"Verb": "set", "Key": format!("{p}b"), "Value": b64(b"2")}},
            {"KV": {"Verb": "cas", "Key": format!("{p}c"), "Value": b64(b"3"), "Index": 0}},
        ]),
    )
    .await;
    assert_eq!(r.status, 200);
    let idx: Vec<Value> = r.json()["Results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["KV"]["ModifyIndex"].clone())
        .collect();
    assert!(idx.windows(2).all(|w| w[0] == w[1]), "{idx:?}");
    assert_eq!(c.entry(&format!("{p}c")).await["ModifyIndex"], idx[0]);
}

#[tokio::test]
async fn failed_op_rolls_back_everything() {
    let (_s, c, p) = setup("txn-rollback").await;
    c.put_ok(&format!("/v1/kv/{p}x"), "old").await;
    let r = txn(
        &c,
        &json!([
            {"KV": {"Verb": "set", "Key": format!("{p}x"), "Value": b64(b"new")}},
            {"KV": {"Verb": "set", "Key": format!("{p}y"), "Value": b64(b"new")}},
            {"KV": {"Verb": "cas", "Key": format!("{p}x"), "Value": b64(b"z"), "Index": 1}},
        ]),
    )
    .await;
    assert_eq!(
        errors(&r),
        [(2, format!("failed to set key \"{p}x\", index is stale"))]
    );
    assert_eq!(
        unb64(c.entry(&format!("{p}x")).await["Value"].as_str().unwrap()),
        b"old"
    );
    assert_eq!(c.get(&format!("/v1/kv/{p}y")).await.status, 404);
}

#[tokio::test]
async fn every_error_is_reported_with_its_op_index() {
    let (_s, c, p) = setup("txn-errors").await;
    c.put_ok(&format!("/v1/kv/{p}exists"), "v").await;
    let idx = c.entry(&format!("{p}exists")).await["ModifyIndex"]
        .as_u64()
        .unwrap();
    let r = txn(
        &c,
        &json!([
            {"KV": {"Verb": "get", "Key": format!("{p}missing")}},
            {"KV": {"Verb": "check-not-exists", "Key": format!("{p}exists")}},
            {"KV": {"Verb": "check-index", "Key": format!("{p}exists"), "Index": idx + 1}},
            {"KV": {"Verb": "check-index", "Key": format!("{p}missing")}},
            {"KV": {"Verb": "check-session", "Key": format!("{p}missing"), "Session": "s"}},
            {"KV": {"Verb": "check-session", "Key": format!("{p}exists"), "Session": "s"}},
            {"KV": {"Verb": "delete-cas", "Key": format!("{p}exists"), "Index": idx + 1}},
            {"KV": {"Verb": "nope", "Key": format!("{p}exists")}},
            {"KV": {"Verb": "check-index", "Key": format!("{p}exists"), "Index": idx}},
        ]),
    )
    .await;
    let q = |k: &str| format!("\"{p}{k}\"");
    assert_eq!(
        errors(&r),
        [
            (0, format!("key {} doesn't exist", q("missing"))),
            (1, format!("key {} exists", q("exists"))),
            (
                2,
                format!(
                    "failed index check for key {}, current modify index {idx} != {}",
                    q("exists"),
                    idx + 1
                )
            ),
            (
                3,
                format!("failed to check index, key {} doesn't exist", q("missing"))
            ),
            (
                4,
                format!(
                    "failed to check session, key {} doesn't exist",
                    q("missing")
                )
            ),
            (
                5,
                format!(
                    "failed session check for key {}, current session \"\" != \"s\"",
                    q("exists")
                )
            ),
            (
                6,
                format!("failed to delete key {}, index is stale", q("exists"))
            ),
            (7, "unknown KV verb \"nope\"".to_owned()),
        ]
    );
}

#[tokio::test]
async fn lock_and_unlock_verbs() {
    let (_s, c, p) = setup("txn-lock").await;
    let s1 = c.session(r#"{"LockDelay":"0s"}"#).await;
    let s2 = c.session(r#"{"LockDelay":"0s"}"#).await;
    let k = format!("{p}l");
    let r = txn(
        &c,
        &json!([{"KV": {"Verb": "lock", "Key": k, "Value": b64(b"me"), "Session": s1}}]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let e = &r.json()["Results"][0]["KV"];
    assert_eq!(e["Session"], s1.as_str());
    assert_eq!(e["LockIndex"], 1);
    let r = txn(
        &c,
        &json!([
            {"KV": {"Verb": "lock", "Key": k, "Session": s2}},
            {"KV": {"Verb": "unlock", "Key": k, "Session": s2}},
            {"KV": {"Verb": "lock", "Key": k}},
            {"KV": {"Verb": "lock", "Key": k, "Session": "0b6b2fa4-3d8e-4ad1-9b9c-2c5a0b5f1e77"}},
        ]),
    )
    .await;
    assert_eq!(
        errors(&r),
        [
            (
                0,
                format!("failed to lock key \"{k}\", lock is already held")
            ),
            (
                1,
                format!(
                    "failed to unlock key \"{k}\", lock isn't held, or is held by another session"
                )
            ),
            (2, "missing session".to_owned()),
            (
                3,
                "invalid session \"0b6b2fa4-3d8e-4ad1-9b9c-2c5a0b5f1e77\"".to_owned()
            ),
        ]
    );
    let r = txn(
        &c,
        &json!([
            {"KV": {"Verb": "check-session", "Key": k, "Session": s1}},
            {"KV": {"Verb": "unlock", "Key": k, "Session": s1}},
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(c.entry(&k).await.get("Session").is_none());
    for s in [s1, s2] {
        c.put(&format!("/v1/session/destroy/{s}"), "").await;
    }
}

#[tokio::test]
async fn lock_during_lock_delay_fails_in_precheck() {
    let (_s, c, p) = setup("txn-lock-delay").await;
    let s1 = c.session(r#"{"LockDelay":"10s"}"#).await;
    let s2 = c.session(r#"{"LockDelay":"0s"}"#).await;
    let k = format!("{p}l");
    c.put_ok(&format!("/v1/kv/{k}?acquire={s1}"), "x").await;
    c.put_ok(&format!("/v1/session/destroy/{s1}"), "").await;
    let r = txn(
        &c,
        &json!([
            {"KV": {"Verb": "set", "Key": format!("{p}other"), "Value": b64(b"1")}},
            {"KV": {"Verb": "lock", "Key": k, "Session": s2}},
        ]),
    )
    .await;
    assert_eq!(
        errors(&r),
        [(1, format!("failed to lock key \"{k}\" due to lock delay"))]
    );
    assert_eq!(c.get(&format!("/v1/kv/{p}other")).await.status, 404);
    c.put(&format!("/v1/session/destroy/{s2}"), "").await;
}

#[tokio::test]
async fn empty_key_must_be_provided() {
    let (_s, c, _p) = setup("txn-empty-key").await;
    let r = txn(
        &c,
        &json!([
            {"KV": {"Verb": "set", "Key": "", "Value": b64(b"1")}},
            {"KV": {"Verb": "get-tree", "Key": ""}},
        ]),
    )
    .await;
    assert_eq!(
        errors(&r),
        [
            (0, "Must provide key".to_owned()),
            (1, "Must provide key".to_owned())
        ]
    );
}

#[tokio::test]
async fn too_many_operations_is_413() {
    let (_s, c, p) = setup("txn-too-many").await;
    let ops: Vec<Value> = (0..129)
        .map(|i| json!({"KV": {"Verb": "set", "Key": format!("{p}{i}"), "Value": b64(b"v")}}))
        .collect();
    let r = txn(&c, &Value::Array(ops.clone())).await;
    assert_eq!(r.status, 413);
    assert_eq!(
        r.text().trim_end(),
        "Transaction contains too many operations (129 > 128)"
    );
    // Version-dependent: 128 is the limit since Consul 1.14 (64 before).
    let r = txn(&c, &Value::Array(ops[..128].to_vec())).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn oversized_value_is_413() {
    let (_s, c, p) = setup("txn-big-value").await;
    let big = vec![b'x'; 512 * 1024 + 1];
    let r = txn(
        &c,
        &json!([{"KV": {"Verb": "set", "Key": format!("{p}k"), "Value": b64(&big)}}]),
    )
    .await;
    assert_eq!(r.status, 413, "{}", &r.text()[..r.text().len().min(200)]);
    // Base64 inflates 512 KiB + 1 past the request limit, so either 413 text is valid.
    assert!(r.text().contains("too large"), "{}", r.text());
    let ok = vec![b'x'; 300 * 1024];
    let r = txn(
        &c,
        &json!([{"KV": {"Verb": "set", "Key": format!("{p}k"), "Value": b64(&ok)}}]),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn undecodable_bodies_are_400() {
    let (_s, c, p) = setup("txn-bad-json").await;
    for body in [
        "[".to_owned(),
        "{}".to_owned(),
        json!([{"KV": {"Verb": "set", "Key": format!("{p}k"), "Value": "%%%"}}]).to_string(),
        json!([{"KV": {"Verb": "set", "Key": format!("{p}k"), "Flags": -1}}]).to_string(),
    ] {
        let r = c.put("/v1/txn", body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(
            r.text().starts_with("Failed to parse body: "),
            "{body}: {}",
            r.text()
        );
    }
}

#[tokio::test]
async fn read_only_transactions_carry_leader_meta() {
    let (_s, c, p) = setup("txn-read").await;
    c.put_ok(&format!("/v1/kv/{p}a"), "1").await;
    c.put_ok(&format!("/v1/kv/{p}b"), "2").await;
    let r = txn(
        &c,
        &json!([
            {"KV": {"Verb": "get-tree", "Key": p}},
            {"KV": {"Verb": "check-not-exists", "Key": format!("{p}zzz")}},
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-consul-knownleader").as_deref(), Some("true"));
    assert!(r.header("x-consul-lastcontact").is_some());
    assert!(r.header("x-consul-index").is_none());
    let j = r.json();
    assert_eq!(j["KnownLeader"], true);
    let res = j["Results"].as_array().unwrap();
    assert_eq!(res.len(), 2);
    assert_eq!(unb64(res[1]["KV"]["Value"].as_str().unwrap()), b"2");
    // Consistency parameters apply to the read path.
    let r = c
        .put(
            "/v1/txn?stale&consistent",
            json!([{"KV": {"Verb": "get-tree", "Key": p}}]).to_string(),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn delete_verbs() {
    let (_s, c, p) = setup("txn-delete").await;
    for k in ["t/1", "t/2", "d", "dc"] {
        c.put_ok(&format!("/v1/kv/{p}{k}"), "v").await;
    }
    let idx = c.entry(&format!("{p}dc")).await["ModifyIndex"]
        .as_u64()
        .unwrap();
    let r = txn(
        &c,
        &json!([
            {"KV": {"Verb": "delete-tree", "Key": format!("{p}t/")}},
            {"KV": {"Verb": "delete", "Key": format!("{p}d")}},
            {"KV": {"Verb": "delete-cas", "Key": format!("{p}dc"), "Index": idx}},
            {"KV": {"Verb": "delete", "Key": format!("{p}never")}},
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Results"], json!([]));
    assert_eq!(c.get(&format!("/v1/kv/{p}?recurse")).await.status, 404);
}

#[tokio::test]
async fn field_names_are_case_insensitive() {
    let (_s, c, p) = setup("txn-case").await;
    let r = txn(
        &c,
        &json!([{"kv": {"verb": "set", "key": format!("{p}k"), "value": b64(b"v"), "flags": 2}}]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(c.entry(&format!("{p}k")).await["Flags"], 2);
}

/// Version-dependent: `get-or-empty` exists since Consul 1.14.
#[tokio::test]
async fn get_or_empty() {
    let (_s, c, p) = setup("txn-get-or-empty").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "v").await;
    let r = txn(
        &c,
        &json!([
            {"KV": {"Verb": "get-or-empty", "Key": format!("{p}k")}},
            {"KV": {"Verb": "get-or-empty", "Key": format!("{p}none")}},
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let res = r.json()["Results"].clone();
    assert_eq!(unb64(res[0]["KV"]["Value"].as_str().unwrap()), b"v");
    assert_eq!(res[1]["KV"]["Key"], format!("{p}none"));
    assert_eq!(res[1]["KV"]["Value"], Value::Null);
    assert_eq!(res[1]["KV"]["ModifyIndex"], 0);
}

#[tokio::test]
async fn unchanged_set_in_txn_reports_the_old_modify_index() {
    let (_s, c, p) = setup("txn-unchanged").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "v").await;
    let before = c.entry(&format!("{p}k")).await["ModifyIndex"].clone();
    let r = txn(
        &c,
        &json!([{"KV": {"Verb": "set", "Key": format!("{p}k"), "Value": b64(b"v")}}]),
    )
    .await;
    assert_eq!(r.json()["Results"][0]["KV"]["ModifyIndex"], before);
}

/// The Go client's exact shape: every op carries all four members, the unused ones `null`.
/// A null `KV` is an absent one; the catalog op behind it is then applied (Consul) or refused
/// with 409 (the devserver, which has no catalog): never dropped with a 200.
#[tokio::test]
async fn go_client_shape_with_null_members_is_never_skipped() {
    let (s, c, p) = setup("txn-go-shape").await;
    let r = txn(
        &c,
        &json!([
            {"KV": {"Verb": "set", "Key": format!("{p}k"), "Value": b64(b"v"), "Flags": 0,
                    "Index": 0, "Session": ""},
             "Node": null, "Service": null, "Check": null},
            {"KV": null,
             "Node": {"Verb": "get", "Node": {"Node": "no-such-node-for-txn-test"}},
             "Service": null, "Check": null},
        ]),
    )
    .await;
    if s.is_devserver() {
        let errs = errors(&r);
        assert_eq!(
            errs,
            vec![(
                1,
                "Node operations are not supported by the devserver".to_owned()
            )]
        );
        // Rolled back: the KV op of the same transaction was not applied.
        let g = c.get(&format!("/v1/kv/{p}k")).await;
        assert_eq!(g.status, 404);
    } else {
        // Consul applies the KV op and reports the missing node as the node op's error.
        assert_eq!(r.status, 409, "{}", r.text());
        let errs = errors(&r);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, 1);
    }
    // A member that is null on its own (no other member) is skipped, as Consul does.
    let r = txn(
        &c,
        &json!([{"KV": null, "Node": null, "Service": null, "Check": null}]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}
