//! One test per response fixture in `tests/fixtures/`: real Consul bodies and headers, parsed
//! by the operation that would have received them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use consul_kv_proto::kv::{Delete, Get, GetRaw, ListItems, ListKeys, Set};
use consul_kv_proto::session::{CreateSession, ListSessions, ReadSession, RenewSession};
use consul_kv_proto::txn::{Txn, TxnOp};
use consul_kv_proto::{Behavior, Operation, ResponseError, SessionId, WriteOutcome};

/// Loads `tests/fixtures/<name>.json` as an `http::Response`.
fn fixture(name: &str) -> http::Response<Bytes> {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut b = http::Response::builder().status(v["status"].as_u64().unwrap() as u16);
    for (k, val) in v["headers"].as_object().unwrap() {
        b = b.header(k.as_str(), val.as_str().unwrap());
    }
    b.body(Bytes::from(v["body"].as_str().unwrap().to_owned()))
        .unwrap()
}

fn sid(s: &str) -> SessionId {
    SessionId::new(s).unwrap()
}

#[test]
fn get_doc_sample() {
    let out = Get::new("zip").parse(fixture("get_doc_sample")).unwrap();
    let p = out.value.unwrap();
    assert_eq!(p.key, "zip");
    assert_eq!(p.value.as_deref(), Some(&b"test"[..]));
    assert_eq!(
        (p.create_index, p.modify_index, p.lock_index),
        (100, 200, 200)
    );
    assert_eq!(p.session, Some(sid("adf4238a-882b-9ddc-4a9d-5b6758e4159e")));
    assert_eq!(out.meta.last_index.get(), 200);
}

#[test]
fn get_after_acquire() {
    let out = Get::new("foo").parse(fixture("get_after_acquire")).unwrap();
    let p = out.value.unwrap();
    assert_eq!(p.value.as_deref(), Some(&b"bar"[..]));
    assert_eq!(p.lock_index, 1);
    assert_eq!(
        p.session.as_ref().unwrap().as_str(),
        "04596b06-e1e6-b639-e7aa-4ddf94255b37"
    );
    assert_eq!(
        p.cas(),
        consul_kv_proto::Cas::ModifyIndex(consul_kv_proto::Index::new(18))
    );
    assert!(out.meta.known_leader);
}

#[test]
fn get_null_value_old_agent() {
    let out = Get::new("match/disable/1.2.3.4")
        .parse(fixture("get_null_value_old_agent"))
        .unwrap();
    let p = out.value.unwrap();
    assert_eq!(p.value, None);
    assert_eq!(p.value_bytes(), b"");
    // The index of a single key is its modify index.
    assert_eq!(out.meta.last_index.get(), p.modify_index);
}

#[test]
fn items_recurse_null_folder() {
    let out = ListItems::new("redacted/config/")
        .parse(fixture("items_recurse_null_folder"))
        .unwrap();
    assert_eq!(out.value.len(), 2);
    assert_eq!(out.value[0].key, "redacted/config/");
    assert_eq!(out.value[0].value, None);
    assert_eq!(out.value[1].value.as_deref(), Some(&b"6"[..]));
    assert_eq!(out.meta.last_index.get(), 1282900);
    assert_eq!(out.meta.last_contact, Duration::ZERO);
}

#[test]
fn keys_separator() {
    let out = ListKeys::new("root/")
        .separator("/")
        .parse(fixture("keys_separator"))
        .unwrap();
    assert_eq!(out.value, ["root/", "root/one/", "root/three/", "root/two"]);
}

#[test]
fn keys_no_separator() {
    let out = ListKeys::new("test")
        .parse(fixture("keys_no_separator"))
        .unwrap();
    assert_eq!(out.value, ["test2", "test3", "test3/test4"]);
    assert_eq!(out.meta.last_index.get(), 18);
}

#[test]
fn keys_404() {
    let out = ListKeys::new("non-existing-prefix")
        .parse(fixture("keys_404"))
        .unwrap();
    assert!(out.value.is_empty());
    assert_eq!(out.meta.last_index.get(), 21);
    let items = ListItems::new("non-existing-prefix")
        .parse(fixture("keys_404"))
        .unwrap();
    assert!(items.value.is_empty());
}

#[test]
fn get_404_old_content_type() {
    let out = Get::new("missing")
        .parse(fixture("get_404_old_content_type"))
        .unwrap();
    assert_eq!(out.value, None);
    assert_eq!(out.meta.last_index.get(), 21);
    let raw = GetRaw::new("missing")
        .parse(fixture("get_404_old_content_type"))
        .unwrap();
    assert_eq!(raw.value, None);
}

#[test]
fn get_raw() {
    let out = GetRaw::new("k").parse(fixture("get_raw")).unwrap();
    assert_eq!(out.value.as_deref(), Some(&b"test"[..]));
    assert_eq!(out.meta.last_index.get(), 18);
}

#[test]
fn put_true() {
    assert_eq!(
        Set::new("k", "v").parse(fixture("put_true")).unwrap(),
        WriteOutcome::Applied
    );
    assert_eq!(
        Delete::new("k").parse(fixture("put_true")).unwrap(),
        WriteOutcome::Applied
    );
}

#[test]
fn put_false() {
    assert_eq!(
        Set::new("k", "v").parse(fixture("put_false")).unwrap(),
        WriteOutcome::Rejected
    );
    assert_eq!(
        Delete::new("k").parse(fixture("put_false")).unwrap(),
        WriteOutcome::Rejected
    );
}

#[test]
fn txn_success() {
    let out = Txn::new(vec![TxnOp::set("foo", "")])
        .parse(fixture("txn_success"))
        .unwrap();
    assert_eq!(out.results.len(), 1);
    assert_eq!(out.results[0].key, "foo");
    assert_eq!(out.results[0].modify_index, 30);
    assert_eq!(out.known_leader, None);
}

#[test]
fn txn_409_permission() {
    let e = Txn::new(vec![TxnOp::set("k", "v")])
        .parse(fixture("txn_409_permission"))
        .unwrap_err();
    match e {
        ResponseError::TxnRolledBack { errors } => {
            assert_eq!(errors.0.len(), 1);
            assert_eq!(errors.0[0].op_index, 0);
            assert_eq!(errors.0[0].what, "Permission denied");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn txn_409_stale() {
    let e = Txn::new(vec![TxnOp::set("key1", "v")])
        .parse(fixture("txn_409_stale"))
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(409));
    assert!(!e.is_retryable());
    let detail = std::error::Error::source(&e).unwrap().to_string();
    assert_eq!(
        detail,
        "operation 0: failed to set key \"key1\", index is stale"
    );
}

#[test]
fn txn_read_only_old() {
    let out = Txn::new(vec![TxnOp::get("scn_exists")])
        .parse(fixture("txn_read_only_old"))
        .unwrap();
    assert_eq!(
        out.results[0].value.as_deref(),
        Some(&br#"{"foo3" : "bar3"}"#[..])
    );
    assert_eq!(out.known_leader, Some(true));
    assert_eq!(out.last_contact, Some(Duration::ZERO));
}

#[test]
fn session_create() {
    let id = CreateSession::new()
        .parse(fixture("session_create"))
        .unwrap();
    assert_eq!(id.as_str(), "adf4238a-882b-9ddc-4a9d-5b6758e4159e");
}

#[test]
fn session_info_doc() {
    let id = sid("adf4238a-882b-9ddc-4a9d-5b6758e4159e");
    let out = ReadSession::new(id.clone())
        .parse(fixture("session_info_doc"))
        .unwrap();
    let s = out.value.unwrap();
    assert_eq!(s.id, id);
    assert_eq!(s.name, "test-session");
    assert_eq!(s.lock_delay, Duration::from_secs(15));
    assert_eq!(s.behavior, Behavior::Release);
    assert_eq!(s.ttl, Some(Duration::from_secs(30)));
    assert_eq!(s.node_checks, ["serfHealth"]);
    assert!(s.service_checks.is_empty());
}

#[test]
fn session_info_no_ttl() {
    let out = ReadSession::new(sid("d21d60ad-c2d2-b32a-7432-ca4048a4a7d6"))
        .parse(fixture("session_info_no_ttl"))
        .unwrap();
    assert_eq!(out.value.unwrap().ttl, None);
}

#[test]
fn session_list_real() {
    let out = ListSessions::new()
        .parse(fixture("session_list_real"))
        .unwrap();
    assert_eq!(out.value.len(), 1);
    assert_eq!(out.value[0].behavior, Behavior::Delete);
    assert_eq!(out.value[0].ttl, Some(Duration::from_secs(900)));
    assert_eq!(out.meta.last_index.get(), 87311077);
}

#[test]
fn session_info_unknown() {
    let out = ReadSession::new(sid("nope"))
        .parse(fixture("session_info_unknown"))
        .unwrap();
    assert_eq!(out.value, None);
}

#[test]
fn session_renew() {
    let out = RenewSession::new(sid("adf4238a-882b-9ddc-4a9d-5b6758e4159e"))
        .parse(fixture("session_renew"))
        .unwrap();
    assert_eq!(out.unwrap().ttl, Some(Duration::from_secs(30)));
}

#[test]
fn session_renew_404() {
    let out = RenewSession::new(sid("adf4238a-882b-9ddc-4a9d-5b6758e4159e"))
        .parse(fixture("session_renew_404"))
        .unwrap();
    assert_eq!(out, None);
}

fn get_err(name: &str) -> ResponseError {
    Get::new("k").parse(fixture(name)).unwrap_err()
}

#[test]
fn error_403() {
    let e = get_err("error_403");
    assert!(matches!(e, ResponseError::PermissionDenied { .. }));
    assert_eq!(e.to_string(), "permission denied");
}

#[test]
fn error_413() {
    let e = Set::new("k", "v").parse(fixture("error_413")).unwrap_err();
    assert!(matches!(e, ResponseError::TooLarge { .. }));
    assert!(!e.is_retryable());
}

#[test]
fn error_500_no_leader() {
    let e = get_err("error_500_no_leader");
    assert!(matches!(e, ResponseError::NoLeader { .. }));
    assert!(e.is_retryable() && e.is_rejected_before_apply());
}

#[test]
fn error_500_rpc_no_leader() {
    assert!(matches!(
        get_err("error_500_rpc_no_leader"),
        ResponseError::NoLeader { .. }
    ));
}

#[test]
fn error_500_invalid_session() {
    let e = Set::new("k", "v")
        .parse(fixture("error_500_invalid_session"))
        .unwrap_err();
    assert!(matches!(e, ResponseError::InvalidSession { .. }));
    assert!(!e.is_retryable());
}

#[test]
fn error_500_rpc_eof() {
    let e = Txn::new(vec![TxnOp::set("k", "v")])
        .parse(fixture("error_500_rpc_eof"))
        .unwrap_err();
    assert!(matches!(e, ResponseError::ServerUnavailable { .. }));
    // A read may be repeated; a write may have been applied by the old leader.
    assert!(e.is_retryable() && e.is_ambiguous() && !e.is_rejected_before_apply());
}

#[test]
fn error_500_parse_uint() {
    let e = Set::new("k", "v")
        .parse(fixture("error_500_parse_uint"))
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(500));
    assert!(!e.is_retryable());
}

#[test]
fn error_500_no_path_dc() {
    let e = get_err("error_500_no_path_dc");
    assert!(
        matches!(e, ResponseError::UnknownDatacenter { .. }),
        "{e:?}"
    );
    assert!(e.is_unknown_datacenter() && !e.is_retryable());
    let detail = std::error::Error::source(&e).unwrap().to_string();
    assert_eq!(detail, "No path to datacenter");
}

#[test]
fn error_400_conflicting() {
    let e = Set::new("k", "v")
        .parse(fixture("error_400_conflicting"))
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400));
}

#[test]
fn error_429_per_ip() {
    let e = get_err("error_429_per_ip");
    assert!(matches!(e, ResponseError::RateLimited { .. }));
    assert_eq!(e.retry_after(), None);
}

#[test]
fn error_429_retry_after() {
    assert_eq!(
        get_err("error_429_retry_after").retry_after(),
        Some(Duration::from_secs(2))
    );
}

#[test]
fn error_503_html_proxy() {
    let e = get_err("error_503_html_proxy");
    assert!(e.is_retryable());
    // Not Consul's text: a proxy may have forwarded the write before its upstream failed.
    assert!(!e.is_rejected_before_apply());
    assert!(e.is_ambiguous());
    assert!(matches!(e, ResponseError::Status { .. }));
    let detail = std::error::Error::source(&e).unwrap().to_string();
    assert!(detail.starts_with("<html>"));
}

#[test]
fn error_503_empty_proxy() {
    let e = get_err("error_503_empty_proxy");
    assert!(e.is_retryable());
    assert!(!e.is_rejected_before_apply());
    assert!(e.is_ambiguous());
}

#[test]
fn error_504_html_proxy() {
    let e = get_err("error_504_html_proxy");
    assert!(e.is_retryable());
    assert!(!e.is_rejected_before_apply());
    assert!(e.is_ambiguous());
}

/// Consul's own rejections: nothing was applied, so even a write may be repeated.
#[test]
fn consuls_own_rejections_prove_nothing_was_applied() {
    for name in [
        "error_429_per_ip",
        "error_429_retry_after",
        "error_429_rpc_rate_empty",
        "error_429_retry_elsewhere",
        "error_503_retry_later",
        "error_503_retry_later_short",
        "error_500_no_leader",
        "error_500_rpc_no_leader",
    ] {
        let e = Set::new("k", "v").parse(fixture(name)).unwrap_err();
        assert!(e.is_retryable(), "{name}");
        assert!(e.is_rejected_before_apply(), "{name}: {e:?}");
        assert!(!e.is_ambiguous(), "{name}");
    }
}

#[test]
fn error_502_html_proxy() {
    let e = get_err("error_502_html_proxy");
    assert!(e.is_retryable());
    assert!(!e.is_rejected_before_apply());
}

// ---- Recorded from a real Consul agent by `cargo xtask fixtures` (indexes and session IDs
// differ between recordings, so these assert what is stable and that indexes agree).

fn recorded_session_id(name: &str) -> SessionId {
    let body = fixture(name).into_body();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = v.get("ID").or_else(|| v[0].get("ID")).unwrap();
    sid(id.as_str().unwrap())
}

#[test]
fn recorded_put_true() {
    assert!(Set::new("fixture/a", "hello")
        .parse(fixture("recorded_put_true"))
        .unwrap()
        .is_applied());
}

#[test]
fn recorded_put_cas_false() {
    let op = Set::new("fixture/a", "other").cas(consul_kv_proto::Index::new(1));
    assert_eq!(
        op.parse(fixture("recorded_put_cas_false")).unwrap(),
        WriteOutcome::Rejected
    );
}

#[test]
fn recorded_delete_cas_false() {
    let op = Delete::new("fixture/a").cas(consul_kv_proto::Index::new(1));
    assert_eq!(
        op.parse(fixture("recorded_delete_cas_false")).unwrap(),
        WriteOutcome::Rejected
    );
}

#[test]
fn recorded_get() {
    let out = Get::new("fixture/a")
        .parse(fixture("recorded_get"))
        .unwrap();
    let p = out.value.unwrap();
    assert_eq!(p.key, "fixture/a");
    assert_eq!(p.value.as_deref(), Some(&b"hello"[..]));
    assert_eq!(p.session, None);
    assert_eq!(out.meta.last_index.get(), p.modify_index);
    assert_eq!(out.meta.default_acl_policy.as_deref(), Some("allow"));
    assert!(out.meta.known_leader);
}

#[test]
fn recorded_get_stale() {
    let out = Get::new("fixture/a")
        .parse(fixture("recorded_get_stale"))
        .unwrap();
    assert_eq!(out.value.unwrap().value.as_deref(), Some(&b"hello"[..]));
    // Consul 1.14 sends no X-Consul-Effective-Consistency on KV reads.
    assert_eq!(out.meta.effective_consistency, None);
}

#[test]
fn recorded_get_raw() {
    let out = GetRaw::new("fixture/a")
        .parse(fixture("recorded_get_raw"))
        .unwrap();
    assert_eq!(out.value.as_deref(), Some(&b"hello"[..]));
}

#[test]
fn recorded_get_404() {
    let out = Get::new("fixture/missing")
        .parse(fixture("recorded_get_404"))
        .unwrap();
    assert_eq!(out.value, None);
    // The recorded agent's index at the time (X-Consul-Index: 18), not merely "some index".
    assert_eq!(out.meta.last_index.get(), 18);
    assert!(out.meta.known_leader);
}

#[test]
fn recorded_items() {
    let out = ListItems::new("fixture/")
        .parse(fixture("recorded_items"))
        .unwrap();
    let keys: Vec<&str> = out.value.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "fixture/a",
            "fixture/dir/",
            "fixture/dir/sub/y",
            "fixture/dir/x"
        ]
    );
    assert_eq!(out.value[1].value, None);
    let max = out.value.iter().map(|p| p.modify_index).max().unwrap();
    assert_eq!(out.meta.last_index.get(), max);
}

#[test]
fn recorded_keys_separator() {
    let out = ListKeys::new("fixture/")
        .separator("/")
        .parse(fixture("recorded_keys_separator"))
        .unwrap();
    assert_eq!(out.value, ["fixture/a", "fixture/dir/"]);
}

#[test]
fn recorded_keys_404() {
    let out = ListKeys::new("nothing-here/")
        .parse(fixture("recorded_keys_404"))
        .unwrap();
    assert!(out.value.is_empty());
}

#[test]
fn recorded_txn_ok() {
    let out = Txn::new(vec![TxnOp::set("fixture/t", "t"), TxnOp::get("fixture/t")])
        .parse(fixture("recorded_txn_ok"))
        .unwrap();
    assert_eq!(out.results.len(), 2);
    // A write result carries no value; a get result does.
    assert_eq!(out.results[0].value, None);
    assert_eq!(out.results[1].value.as_deref(), Some(&b"t"[..]));
    assert_eq!(out.results[0].modify_index, out.results[1].modify_index);
}

#[test]
fn recorded_txn_409() {
    let e = Txn::new(vec![TxnOp::get("x")])
        .parse(fixture("recorded_txn_409"))
        .unwrap_err();
    let ResponseError::TxnRolledBack { errors } = e else {
        panic!("{e:?}")
    };
    let whats: Vec<(usize, &str)> = errors
        .0
        .iter()
        .map(|e| (e.op_index, e.what.as_str()))
        .collect();
    assert_eq!(
        whats,
        [
            (0, "failed to set key \"fixture/t\", index is stale"),
            (1, "key \"fixture/none\" doesn't exist"),
        ]
    );
}

#[test]
fn recorded_txn_read_only() {
    // Newer servers embed QueryMeta fields (Index, ConsistencyLevel, NotModified, Backend, …)
    // in the body: they must be ignored, not fail the parse.
    let out = Txn::new(vec![TxnOp::get("fixture/t")])
        .parse(fixture("recorded_txn_read_only"))
        .unwrap();
    assert_eq!(out.results[0].value.as_deref(), Some(&b"t"[..]));
    assert_eq!(out.known_leader, Some(true));
}

#[test]
fn recorded_session_create() {
    let id = CreateSession::new()
        .parse(fixture("recorded_session_create"))
        .unwrap();
    assert_eq!(id, recorded_session_id("recorded_session_create"));
    assert_eq!(id.as_str().len(), 36);
}

#[test]
fn recorded_session_info() {
    let id = recorded_session_id("recorded_session_info");
    let out = ReadSession::new(id.clone())
        .parse(fixture("recorded_session_info"))
        .unwrap();
    let s = out.value.unwrap();
    assert_eq!((s.id, s.name.as_str()), (id, "fixture"));
    assert_eq!(s.behavior, Behavior::Delete);
    assert_eq!(s.ttl, Some(Duration::from_secs(30)));
    assert_eq!(s.lock_delay, Duration::from_secs(15));
    assert_eq!(s.node_checks, ["serfHealth"]);
    assert_eq!(out.meta.last_index.get(), s.modify_index);
}

#[test]
fn recorded_session_renew() {
    let id = recorded_session_id("recorded_session_renew");
    let s = RenewSession::new(id.clone())
        .parse(fixture("recorded_session_renew"))
        .unwrap()
        .unwrap();
    assert_eq!(s.id, id);
}

#[test]
fn recorded_session_list() {
    let out = ListSessions::new()
        .parse(fixture("recorded_session_list"))
        .unwrap();
    assert_eq!(out.value.len(), 1);
}

#[test]
fn recorded_session_renew_404() {
    let out = RenewSession::new(sid("00000000-0000-0000-0000-000000000000"))
        .parse(fixture("recorded_session_renew_404"))
        .unwrap();
    assert_eq!(out, None);
}

#[test]
fn recorded_error_conflicting_flags() {
    let e = Set::new("k", "")
        .parse(fixture("recorded_error_conflicting_flags"))
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400));
    assert!(std::error::Error::source(&e)
        .unwrap()
        .to_string()
        .starts_with("Conflicting flags: acquire="));
}

#[test]
fn recorded_error_invalid_session() {
    let e = Set::new("k", "")
        .parse(fixture("recorded_error_invalid_session"))
        .unwrap_err();
    assert!(matches!(e, ResponseError::InvalidSession { .. }), "{e:?}");
}

#[test]
fn recorded_error_parse_uint() {
    let e = Set::new("k", "")
        .parse(fixture("recorded_error_parse_uint"))
        .unwrap_err();
    assert_eq!(
        std::error::Error::source(&e).unwrap().to_string(),
        "strconv.ParseUint: parsing \"abc\": invalid syntax"
    );
}

#[test]
fn recorded_error_no_path_dc() {
    let e = Get::new("k")
        .parse(fixture("recorded_error_no_path_dc"))
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(500));
    assert!(!e.is_retryable());
}

#[test]
fn recorded_error_413() {
    let e = Set::new("k", "")
        .parse(fixture("recorded_error_413"))
        .unwrap_err();
    assert!(matches!(e, ResponseError::TooLarge { .. }));
}

#[test]
fn recorded_error_405() {
    let e = Get::new("k")
        .parse(fixture("recorded_error_405"))
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(405));
}

/// Every fixture file has a test above: a new fixture cannot be added silently.
#[test]
fn every_fixture_is_tested() {
    let src = include_str!("fixtures.rs");
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let stem = name.trim_end_matches(".json");
        assert!(
            src.contains(&format!("fn {stem}()")),
            "fixture {name} has no test named {stem}"
        );
    }
}

/// A `Set` (non-idempotent) parsed against `name`: Consul's own rejection, safe to repeat.
fn assert_consul_rejection(name: &str) {
    let e = Set::new("k", "v").parse(fixture(name)).unwrap_err();
    assert!(
        matches!(e, ResponseError::RateLimited { .. }),
        "{name}: {e:?}"
    );
    assert!(e.is_rejected_before_apply(), "{name}");
    assert!(!e.is_ambiguous(), "{name}");
}

#[test]
fn error_429_rpc_rate_empty() {
    assert_consul_rejection("error_429_rpc_rate_empty");
}

#[test]
fn error_429_retry_elsewhere() {
    assert_consul_rejection("error_429_retry_elsewhere");
}

#[test]
fn error_503_retry_later() {
    assert_consul_rejection("error_503_retry_later");
    let e = get_err("error_503_retry_later");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(503));
}

#[test]
fn error_503_retry_later_short() {
    assert_consul_rejection("error_503_retry_later_short");
}
