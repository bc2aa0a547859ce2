//! Datacenters, ACL mode, leader loss, injected faults, the data file and restarts.

use std::time::{Duration, Instant};

use consul_kv_devserver::{DevServer, Fault};
use consul_kv_tests::server;

use crate::client::{unique, C};
use crate::setup;

#[tokio::test]
async fn unknown_datacenter_is_500_no_path() {
    let (_s, c, p) = setup("unknown-dc").await;
    for r in [
        c.get(&format!("/v1/kv/{p}k?dc=nowhere-dc")).await,
        c.put(&format!("/v1/kv/{p}k?dc=nowhere-dc"), "v").await,
        c.delete(&format!("/v1/kv/{p}k?dc=nowhere-dc")).await,
        c.put("/v1/session/create?dc=nowhere-dc", "").await,
        c.put(
            "/v1/txn?dc=nowhere-dc",
            format!(r#"[{{"KV":{{"Verb":"get","Key":"{p}k"}}}}]"#),
        )
        .await,
    ] {
        assert_eq!(r.status, 500);
        assert!(r.text().contains("No path to datacenter"), "{}", r.text());
    }
}

/// Devserver-only: two datacenters in one process.
#[tokio::test]
async fn each_datacenter_has_its_own_store_and_index() {
    let Some(s) = server::start_devserver(
        "two-dcs",
        DevServer::builder().datacenter("dc1").datacenter("dc2"),
    )
    .await
    else {
        return;
    };
    let c = C::new(&s.base_url());
    c.put_ok("/v1/kv/shared?dc=dc2", "two").await;
    assert_eq!(c.get("/v1/kv/shared").await.status, 404);
    assert_eq!(c.get("/v1/kv/shared?dc=dc1").await.status, 404);
    assert_eq!(c.get("/v1/kv/shared?dc=dc2").await.status, 200);
    c.put_ok("/v1/kv/shared", "one").await;
    let one = c.entry("shared").await;
    let two = c.get("/v1/kv/shared?dc=dc2").await.json()[0].clone();
    assert_ne!(one["Value"], two["Value"]);
    // Separate Raft indexes: both stores' first write got the same index.
    assert_eq!(one["ModifyIndex"], two["ModifyIndex"]);
    let h = s.handle().unwrap();
    assert_eq!(h.datacenters(), ["dc1", "dc2"]);
    let r = c.get("/v1/agent/self").await.json();
    assert_eq!(r["Config"]["Datacenter"], "dc1");
}

async fn acl_server(case: &str) -> Option<(server::TestServer, C)> {
    let s = server::start_devserver(case, DevServer::builder().acl_token("root-token")).await?;
    let c = C::new(&s.base_url());
    Some((s, c))
}

/// Devserver-only: ACL mode.
#[tokio::test]
async fn acl_mode_denies_requests_without_the_token() {
    let Some((_s, c)) = acl_server("acl-deny").await else {
        return;
    };
    for r in [
        c.put("/v1/kv/k", "v").await,
        c.get("/v1/kv/k").await,
        c.delete("/v1/kv/k").await,
        c.put("/v1/session/create", "").await,
        c.get("/v1/agent/self").await,
    ] {
        assert_eq!((r.status, r.text().as_str()), (403, "Permission denied"));
    }
    // Lists are filtered, not refused.
    c.req("PUT", "/v1/kv/k", "v", &[("X-Consul-Token", "root-token")])
        .await;
    let r = c.get("/v1/kv/?recurse").await;
    assert_eq!(r.status, 404);
    r.index();
    assert_eq!(c.get("/v1/kv/?keys").await.text(), "[]");
    assert_eq!(c.get("/v1/session/list").await.text(), "[]");
    let r = c
        .put(
            "/v1/txn",
            r#"[{"KV":{"Verb":"set","Key":"k","Value":"eA=="}}]"#,
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["Errors"][0]["What"], "Permission denied");
    // Status endpoints stay open.
    assert_eq!(c.get("/v1/status/leader").await.status, 200);
}

/// Devserver-only: the token travels as `?token=`, `X-Consul-Token` or a Bearer token.
#[tokio::test]
async fn acl_token_is_read_from_query_header_and_bearer() {
    let Some((_s, c)) = acl_server("acl-token").await else {
        return;
    };
    let r = c.put("/v1/kv/a?token=root-token", "1").await;
    assert_eq!(r.status, 200);
    let r = c
        .req("GET", "/v1/kv/a", "", &[("X-Consul-Token", "root-token")])
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .req(
            "GET",
            "/v1/kv/a",
            "",
            &[("Authorization", "bearer root-token")],
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .req("GET", "/v1/kv/a", "", &[("X-Consul-Token", "wrong")])
        .await;
    assert_eq!((r.status, r.text().as_str()), (403, "ACL not found"));
    let r = c.get("/v1/kv/?recurse&token=wrong").await;
    assert_eq!(r.status, 403);
}

/// Devserver-only: the "no leader" drill.
#[tokio::test]
async fn without_a_leader_writes_fail_and_stale_reads_answer() {
    let Some(s) = server::start_devserver(
        "no-leader",
        DevServer::builder().leader_hold(Duration::from_millis(300)),
    )
    .await
    else {
        return;
    };
    let c = C::new(&s.base_url());
    let h = s.handle().unwrap();
    c.put_ok("/v1/kv/k", "v").await;
    h.set_leader(false);
    let t = Instant::now();
    let r = c.put("/v1/kv/k", "w").await;
    assert_eq!((r.status, r.text().as_str()), (500, "No cluster leader"));
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(c.get("/v1/kv/k").await.status, 500);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = c.get("/v1/kv/k?stale").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-consul-knownleader").as_deref(), Some("false"));
    assert!(
        r.header("x-consul-lastcontact")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 20
    );
    assert_eq!(c.get("/v1/status/leader").await.text(), "\"\"");
    // A leader elected during the hold lets the request through.
    let c2 = c.clone();
    let pending = tokio::spawn(async move { c2.put("/v1/kv/k", "late").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.set_leader(true);
    let r = pending.await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "true"));
}

/// Devserver-only: injected rate-limit answers.
#[tokio::test]
async fn injected_faults_are_answered_then_cleared() {
    let Some(s) = server::start_devserver("faults", DevServer::builder()).await else {
        return;
    };
    let c = C::new(&s.base_url());
    let h = s.handle().unwrap();
    h.set_fault(Some(Fault::rate_limited()));
    let r = c.get("/v1/kv/k").await;
    assert_eq!(r.status, 429);
    assert!(r.body.is_empty());
    h.set_fault(Some(Fault::TooManyConnections));
    let raw = c.raw(b"GET /v1/kv/k HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(raw.starts_with("HTTP/1.1 429"), "{raw}");
    assert!(raw.to_ascii_lowercase().contains("connection: close"));
    assert!(raw.contains("Your IP is issuing too many concurrent connections"));
    h.set_fault(None);
    assert_eq!(c.get("/v1/kv/k").await.status, 404);
}

/// Devserver-only: `--data` keeps the store across a restart, index included; a former
/// `consul kv export` file is imported.
#[tokio::test]
async fn data_file_round_trips_through_a_restart() {
    let dir = std::env::temp_dir().join(unique("data").replace('/', "_"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("kv.json");
    std::fs::write(
        &file,
        "[\n\t{\n\t\t\"key\": \"imported\",\n\t\t\"flags\": 3,\n\t\t\"value\": \"aGk=\"\n\t}\n]\n",
    )
    .unwrap();
    let Some(s) = server::start_devserver("data-file", DevServer::builder().data_file(&file)).await
    else {
        return;
    };
    let c = C::new(&s.base_url());
    assert_eq!(c.entry("imported").await["Value"], "aGk=");
    c.put_ok("/v1/kv/app/one?flags=5", "1").await;
    c.put_ok("/v1/kv/app/empty", "").await;
    let before = c.get("/v1/kv/?recurse").await.index();
    s.shutdown().await;
    let s = server::start_with(DevServer::builder().data_file(&file)).await;
    let c = C::new(&s.base_url());
    let e = c.entry("app/one").await;
    assert_eq!(e["Flags"], 5);
    assert_eq!(e["Value"], "MQ==");
    assert_eq!(c.entry("imported").await["Flags"], 3);
    assert_eq!(c.get("/v1/kv/?recurse").await.index(), before);
    s.shutdown().await;
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Devserver-only: a server restarted on the same port starts with a fresh state, so the
/// index goes backwards (what a client watch must survive).
#[tokio::test]
async fn restart_on_the_same_port_resets_the_index() {
    let Some(s) = server::start_devserver("restart", DevServer::builder()).await else {
        return;
    };
    let addr = s.handle().unwrap().addr();
    let c = C::new(&s.base_url());
    for i in 0..5 {
        c.put_ok(&format!("/v1/kv/k{i}"), "v").await;
    }
    let before = c.get("/v1/kv/?recurse").await.index();
    s.shutdown().await;
    let s2 = server::start_with(DevServer::builder().listen(addr)).await;
    assert_eq!(s2.base_url(), format!("http://{addr}"));
    let c = C::new(&s2.base_url());
    let r = c.get("/v1/kv/?recurse").await;
    assert_eq!(r.status, 404);
    assert!(r.index() < before);
}
