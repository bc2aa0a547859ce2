//! `/v1/session/*` and locks (`?acquire`, `?release`, lock-delay, invalidation).

use std::time::{Duration, Instant};

use consul_kv_devserver::DevServer;
use consul_kv_tests::server;
use serde_json::Value;

use crate::client::{unb64, unique, C};
use crate::setup;

async fn info(c: &C, id: &str) -> Value {
    let r = c.get(&format!("/v1/session/info/{id}")).await;
    assert_eq!(r.status, 200);
    r.index();
    r.json()
}

#[tokio::test]
async fn default_session_shape() {
    let (_s, c, _p) = setup("session-default").await;
    let node = c.node_name().await;
    let r = c.put("/v1/session/create", "").await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-consul-index").is_none());
    let id = r.json()["ID"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    // 8-4-4-4-12 hex (Consul's IDs are random hex, not RFC 4122 v4).
    assert!(
        id.split('-').map(str::len).eq([8, 4, 4, 4, 12])
            && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
        "{id}"
    );
    let s = &info(&c, &id).await[0];
    assert_eq!(s["ID"], id.as_str());
    assert_eq!(s["Name"], "");
    assert_eq!(s["Node"], node.as_str());
    assert_eq!(s["LockDelay"].as_u64(), Some(15_000_000_000));
    assert_eq!(s["Behavior"], "release");
    assert_eq!(s["TTL"], "");
    assert_eq!(s["NodeChecks"], serde_json::json!(["serfHealth"]));
    assert_eq!(s["ServiceChecks"], Value::Null);
    assert_eq!(s["CreateIndex"], s["ModifyIndex"]);
    c.put(&format!("/v1/session/destroy/{id}"), "").await;
}

#[tokio::test]
async fn create_accepts_lower_case_fields() {
    let (_s, c, _p) = setup("session-lower").await;
    let id = c
        .session(r#"{"name":"py","behavior":"delete","ttl":"30s","lockdelay":"2s"}"#)
        .await;
    let s = &info(&c, &id).await[0];
    assert_eq!(s["Name"], "py");
    assert_eq!(s["Behavior"], "delete");
    assert_eq!(s["TTL"], "30s");
    assert_eq!(s["LockDelay"].as_u64(), Some(2_000_000_000));
    c.put(&format!("/v1/session/destroy/{id}"), "").await;
}

#[tokio::test]
async fn lock_delay_numbers_below_1000_are_seconds() {
    let (_s, c, _p) = setup("lock-delay-units").await;
    for (body, want) in [
        (r#"{"LockDelay": 5}"#, 5_000_000_000u64),
        (r#"{"LockDelay": "5ns"}"#, 5_000_000_000),
        (r#"{"LockDelay": 0}"#, 0),
        (r#"{"LockDelay": 2500000000}"#, 2_500_000_000),
        (r#"{"LockDelay": "90s"}"#, 90_000_000_000),
    ] {
        let id = c.session(body).await;
        assert_eq!(
            info(&c, &id).await[0]["LockDelay"].as_u64(),
            Some(want),
            "{body}"
        );
        c.put(&format!("/v1/session/destroy/{id}"), "").await;
    }
}

#[tokio::test]
async fn ttl_behavior_and_node_validation_are_500() {
    let (_s, c, _p) = setup("session-invalid").await;
    for (body, want) in [
        (
            r#"{"TTL":"5s"}"#,
            "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]",
        ),
        (
            r#"{"TTL":"48h"}"#,
            "Invalid Session TTL '172800000000000', must be between [10s=24h0m0s]",
        ),
        (
            r#"{"TTL":"abc"}"#,
            "Session TTL 'abc' invalid: time: invalid duration \"abc\"",
        ),
        (
            r#"{"TTL":"10"}"#,
            "Session TTL '10' invalid: time: missing unit in duration \"10\"",
        ),
        (r#"{"Behavior":"foo"}"#, "Invalid Behavior setting 'foo'"),
        (
            r#"{"Node":"no-such-node-xyz"}"#,
            "apply failed: Missing node registration",
        ),
        (
            r#"{"Checks":["serfHealth","nope"]}"#,
            "apply failed: Missing check 'nope' registration",
        ),
    ] {
        let r = c.put("/v1/session/create", body).await;
        assert_eq!(r.status, 500, "{body}");
        assert_eq!(r.text().trim_end(), want, "{body}");
    }
}

#[tokio::test]
async fn ttl_bounds_are_inclusive() {
    let (_s, c, _p) = setup("ttl-bounds").await;
    for ttl in ["10s", "24h", "0s"] {
        let id = c.session(&format!(r#"{{"TTL":"{ttl}"}}"#)).await;
        assert_eq!(info(&c, &id).await[0]["TTL"], ttl);
        c.put(&format!("/v1/session/destroy/{id}"), "").await;
    }
}

#[tokio::test]
async fn malformed_create_body_is_400() {
    let (_s, c, _p) = setup("session-malformed").await;
    for body in ["{", "[1]", r#"{"Name": 5}"#, r#"{"LockDelay": "abc"}"#] {
        let r = c.put("/v1/session/create", body).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(
            r.text().starts_with("Request decode failed: "),
            "{body}: {}",
            r.text()
        );
    }
}

#[tokio::test]
async fn empty_checks_remove_serf_health() {
    let (_s, c, _p) = setup("session-nochecks").await;
    let id = c.session(r#"{"Checks": []}"#).await;
    let s = &info(&c, &id).await[0];
    assert!(
        s["NodeChecks"].is_null() || s["NodeChecks"] == serde_json::json!([]),
        "{s}"
    );
    c.put(&format!("/v1/session/destroy/{id}"), "").await;
}

#[tokio::test]
async fn unknown_sessions() {
    let (_s, c, _p) = setup("session-unknown").await;
    let ghost = "0b6b2fa4-3d8e-4ad1-9b9c-2c5a0b5f1e77";
    assert_eq!(info(&c, ghost).await, serde_json::json!([]));
    let r = c.put(&format!("/v1/session/destroy/{ghost}"), "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "true"));
    let r = c.put(&format!("/v1/session/renew/{ghost}"), "").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text().trim_end(),
        format!("Session id '{ghost}' not found")
    );
}

#[tokio::test]
async fn missing_session_id_is_400() {
    let (_s, c, _p) = setup("session-missing-id").await;
    for r in [
        c.get("/v1/session/info/").await,
        c.put("/v1/session/destroy/", "").await,
        c.put("/v1/session/renew/", "").await,
    ] {
        assert_eq!((r.status, r.text().trim_end()), (400, "Missing session"));
    }
    let r = c.get("/v1/session/node/").await;
    assert_eq!((r.status, r.text().trim_end()), (400, "Missing node name"));
}

#[tokio::test]
async fn list_node_and_renew() {
    let (_s, c, _p) = setup("session-list").await;
    let node = c.node_name().await;
    let id = c.session(r#"{"Name":"lister","TTL":"15s"}"#).await;
    for path in [
        "/v1/session/list".to_owned(),
        format!("/v1/session/node/{node}"),
    ] {
        let r = c.get(&path).await;
        assert_eq!(r.status, 200);
        r.index();
        assert!(
            r.json()
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["ID"] == id.as_str()),
            "{path}"
        );
    }
    let r = c.get("/v1/session/node/no-such-node-xyz").await;
    assert_eq!(r.json(), serde_json::json!([]));
    let r = c.put(&format!("/v1/session/renew/{id}"), "").await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-consul-index").is_none());
    let renewed = r.json();
    assert_eq!(renewed[0]["ID"], id.as_str());
    assert_eq!(renewed[0]["TTL"], "15s");
    c.put(&format!("/v1/session/destroy/{id}"), "").await;
    assert_eq!(info(&c, &id).await, serde_json::json!([]));
}

#[tokio::test]
async fn acquire_and_release_rules() {
    let (_s, c, p) = setup("acquire").await;
    let s1 = c.session(r#"{"LockDelay":"0s"}"#).await;
    let s2 = c.session(r#"{"LockDelay":"0s"}"#).await;
    let k = format!("/v1/kv/{p}lock");
    assert_eq!(
        c.put(&format!("{k}?acquire={s1}&flags=3"), "leader-1")
            .await
            .text(),
        "true"
    );
    let e = c.entry(&format!("{p}lock")).await;
    assert_eq!(e["Session"], s1.as_str());
    assert_eq!(e["LockIndex"], 1);
    assert_eq!(e["Flags"], 3);
    assert_eq!(unb64(e["Value"].as_str().unwrap()), b"leader-1");
    // Re-acquire by the holder: true, value replaced, LockIndex unchanged.
    assert_eq!(
        c.put(&format!("{k}?acquire={s1}"), "leader-1b")
            .await
            .text(),
        "true"
    );
    let e = c.entry(&format!("{p}lock")).await;
    assert_eq!(e["LockIndex"], 1);
    assert_eq!(e["Flags"], 0);
    // Another session: false, nothing written.
    assert_eq!(
        c.put(&format!("{k}?acquire={s2}"), "x").await.text(),
        "false"
    );
    assert_eq!(
        c.put(&format!("{k}?release={s2}"), "x").await.text(),
        "false"
    );
    assert_eq!(c.entry(&format!("{p}lock")).await["Session"], s1.as_str());
    // Release by the holder clears the session and keeps LockIndex.
    assert_eq!(
        c.put(&format!("{k}?release={s1}"), "released").await.text(),
        "true"
    );
    let e = c.entry(&format!("{p}lock")).await;
    assert!(e.get("Session").is_none());
    assert_eq!(e["LockIndex"], 1);
    assert_eq!(unb64(e["Value"].as_str().unwrap()), b"released");
    // No lock-delay after an explicit release; a new holder bumps LockIndex.
    assert_eq!(
        c.put(&format!("{k}?acquire={s2}"), "leader-2").await.text(),
        "true"
    );
    assert_eq!(c.entry(&format!("{p}lock")).await["LockIndex"], 2);
    // Releasing a missing key is false.
    assert_eq!(
        c.put(&format!("/v1/kv/{p}none?release={s1}"), "")
            .await
            .text(),
        "false"
    );
    for s in [s1, s2] {
        c.put(&format!("/v1/session/destroy/{s}"), "").await;
    }
}

#[tokio::test]
async fn acquire_with_bad_sessions_is_500() {
    let (_s, c, p) = setup("acquire-bad").await;
    let ghost = "0b6b2fa4-3d8e-4ad1-9b9c-2c5a0b5f1e77";
    let r = c.put(&format!("/v1/kv/{p}k?acquire={ghost}"), "v").await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text().trim_end(),
        format!("raft apply failed: invalid session \"{ghost}\"")
    );
    let r = c.put(&format!("/v1/kv/{p}k?acquire="), "v").await;
    assert_eq!(
        (r.status, r.text().trim_end()),
        (500, "raft apply failed: missing session")
    );
    let r = c.put(&format!("/v1/kv/{p}k?release="), "v").await;
    assert_eq!(
        (r.status, r.text().trim_end()),
        (500, "raft apply failed: missing session")
    );
    assert_eq!(c.get(&format!("/v1/kv/{p}k")).await.status, 404);
}

#[tokio::test]
async fn plain_put_keeps_the_lock_session() {
    let (_s, c, p) = setup("put-keeps-session").await;
    let s = c.session(r#"{"LockDelay":"0s"}"#).await;
    c.put_ok(&format!("/v1/kv/{p}k?acquire={s}"), "a").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "b").await;
    let e = c.entry(&format!("{p}k")).await;
    assert_eq!(e["Session"], s.as_str());
    assert_eq!(unb64(e["Value"].as_str().unwrap()), b"b");
    // The plain PUT writes its own LockIndex (0) but keeps the session, as `kvsSetTxn` does
    // (checked against Consul 1.14.11).
    assert_eq!(e["LockIndex"], 0);
    // CAS writes keep it too.
    let idx = e["ModifyIndex"].as_u64().unwrap();
    assert_eq!(
        c.put(&format!("/v1/kv/{p}k?cas={idx}"), "c").await.text(),
        "true"
    );
    assert_eq!(c.entry(&format!("{p}k")).await["Session"], s.as_str());
    c.put(&format!("/v1/session/destroy/{s}"), "").await;
}

#[tokio::test]
async fn destroy_releases_locks_and_applies_lock_delay() {
    let (_s, c, p) = setup("lock-delay").await;
    let s1 = c.session(r#"{"LockDelay":"1s"}"#).await;
    let s2 = c.session(r#"{"LockDelay":"0s"}"#).await;
    let k = format!("/v1/kv/{p}k");
    c.put_ok(&format!("{k}?acquire={s1}"), "held").await;
    let before = c.entry(&format!("{p}k")).await;
    let destroyed = Instant::now();
    c.put_ok(&format!("/v1/session/destroy/{s1}"), "").await;
    let e = c.entry(&format!("{p}k")).await;
    assert!(e.get("Session").is_none(), "released: {e}");
    assert_eq!(e["LockIndex"], 1);
    assert_eq!(unb64(e["Value"].as_str().unwrap()), b"held", "value kept");
    assert!(e["ModifyIndex"].as_u64() > before["ModifyIndex"].as_u64());
    // During the lock-delay any acquire is false; plain writes are not blocked.
    assert_eq!(
        c.put(&format!("{k}?acquire={s2}"), "x").await.text(),
        "false"
    );
    c.put_ok(&format!("/v1/kv/{p}k"), "plain").await;
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(destroyed.elapsed())).await;
    assert_eq!(
        c.put(&format!("{k}?acquire={s2}"), "x").await.text(),
        "true"
    );
    c.put(&format!("/v1/session/destroy/{s2}"), "").await;
}

#[tokio::test]
async fn delete_behavior_deletes_held_keys() {
    let (_s, c, p) = setup("behavior-delete").await;
    let s = c.session(r#"{"Behavior":"delete","LockDelay":"0s"}"#).await;
    c.put_ok(&format!("/v1/kv/{p}eph"), "x").await;
    c.put_ok(&format!("/v1/kv/{p}eph?acquire={s}"), "mine")
        .await;
    c.put_ok(&format!("/v1/kv/{p}other"), "stays").await;
    c.put_ok(&format!("/v1/session/destroy/{s}"), "").await;
    assert_eq!(c.get(&format!("/v1/kv/{p}eph")).await.status, 404);
    assert_eq!(c.get(&format!("/v1/kv/{p}other")).await.status, 200);
}

#[tokio::test]
async fn deleting_a_locked_key_drops_the_lock() {
    let (_s, c, p) = setup("delete-locked").await;
    let s = c.session(r#"{"LockDelay":"0s"}"#).await;
    c.put_ok(&format!("/v1/kv/{p}k?acquire={s}"), "a").await;
    c.put_ok(&format!("/v1/kv/{p}k?acquire={s}"), "a").await;
    c.delete(&format!("/v1/kv/{p}k")).await;
    c.put_ok(&format!("/v1/kv/{p}k?acquire={s}"), "b").await;
    assert_eq!(c.entry(&format!("{p}k")).await["LockIndex"], 1);
    c.put(&format!("/v1/session/destroy/{s}"), "").await;
}

/// Devserver-only: TTL expiry needs `session_ttl_scale` (a real agent needs ≥ 20 s).
#[tokio::test]
async fn ttl_expiry_invalidates_the_session() {
    let Some(s) =
        server::start_devserver("ttl-expiry", DevServer::builder().session_ttl_scale(0.05)).await
    else {
        return;
    };
    let c = C::new(&s.base_url());
    let p = unique("ttl-expiry");
    let id = c.session(r#"{"TTL":"10s","LockDelay":"0s"}"#).await;
    c.put_ok(&format!("/v1/kv/{p}k?acquire={id}"), "v").await;
    // 2 × 10 s × 0.05 = 1 s.
    let created = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alive = info(&c, &id).await;
    if created.elapsed() < Duration::from_millis(900) {
        assert_eq!(alive.as_array().unwrap().len(), 1);
    }
    tokio::time::sleep(Duration::from_millis(1300).saturating_sub(created.elapsed())).await;
    assert_eq!(info(&c, &id).await, serde_json::json!([]));
    assert!(c.entry(&format!("{p}k")).await.get("Session").is_none());
    let r = c.put(&format!("/v1/session/renew/{id}"), "").await;
    assert_eq!(r.status, 404);
}

/// Devserver-only: renewals reset the (scaled) 2 × TTL timer.
#[tokio::test]
async fn renew_resets_the_ttl_timer() {
    let Some(s) =
        server::start_devserver("ttl-renew", DevServer::builder().session_ttl_scale(0.05)).await
    else {
        return;
    };
    let c = C::new(&s.base_url());
    let id = c.session(r#"{"TTL":"10s"}"#).await;
    // Timer: 1 s. Renew every 250 ms for 2 s: the session outlives its first timer.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            c.put(&format!("/v1/session/renew/{id}"), "").await.status,
            200
        );
    }
    assert_eq!(info(&c, &id).await.as_array().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(info(&c, &id).await, serde_json::json!([]));
}
