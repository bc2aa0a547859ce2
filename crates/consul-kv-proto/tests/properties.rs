//! Property tests: key encoding round-trips over every byte class, and no parser panics on any
//! status, headers or body. Cases per property: `PROPTEST_CASES`, default 10,000.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use consul_kv_proto::kv::{Delete, Get, GetRaw, ListItems, ListKeys, Set};
use consul_kv_proto::session::{
    CreateSession, DestroySession, ListNodeSessions, ListSessions, ReadSession, RenewSession,
};
use consul_kv_proto::txn::{Txn, TxnOp};
use consul_kv_proto::{
    decode_path, encode_key, validate_key, Operation, RequestContext, SessionId, WatchMachine,
    WatchOptions,
};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// Characters from every class that matters for URLs and for Consul's path filter.
fn key_char() -> impl Strategy<Value = char> {
    prop_oneof![
        // Unreserved.
        prop::sample::select(vec!['a', 'Z', '0', '9', '-', '_', '.', '~']),
        // gen-delims and sub-delims.
        prop::sample::select(vec![
            ':', '/', '?', '#', '[', ']', '@', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';',
            '='
        ]),
        // Space, percent, quotes and the rest of ASCII punctuation.
        prop::sample::select(vec![' ', '%', '"', '<', '>', '\\', '^', '`', '{', '|', '}']),
        // Non-ASCII: BMP and astral.
        prop::sample::select(vec!['ç', 'é', '日', 'ß', '€', '😀', '𝄞']),
        // Controls and format characters (Consul rejects them).
        prop::sample::select(vec![
            '\0', '\t', '\n', '\u{7f}', '\u{85}', '\u{a0}', '\u{200b}', '\u{200e}', '\u{200f}',
            '\u{feff}'
        ]),
        any::<char>(),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop::collection::vec(key_char(), 0..40).prop_map(|v| v.into_iter().collect())
}

/// What Go's `EscapedPath` leaves literal.
fn go_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn key_encoding_round_trips(k in key()) {
        let enc = encode_key(&k);
        let decoded = decode_path(&enc);
        prop_assert_eq!(decoded.as_deref(), Some(k.as_str()));
        // Only Go's literal set and upper-case %XX escapes.
        let bytes = enc.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                prop_assert!(bytes[i + 1].is_ascii_hexdigit() && !bytes[i + 1].is_ascii_lowercase());
                prop_assert!(bytes[i + 2].is_ascii_hexdigit() && !bytes[i + 2].is_ascii_lowercase());
                i += 3;
            } else {
                prop_assert!(go_literal(bytes[i]), "byte {:?} left literal in {}", bytes[i] as char, enc);
                i += 1;
            }
        }
        // `?`, `#` and `%` never alter the request target: the path is the whole key.
        if validate_key(&k, true).is_ok() {
            let req = Get::new(k.clone()).build(&RequestContext::new()).unwrap();
            prop_assert_eq!(req.uri().path(), format!("/v1/kv/{enc}"));
            prop_assert_eq!(req.uri().query(), None);
            let req = Set::new(k.clone(), "v").flags(1).build(&RequestContext::new()).unwrap();
            prop_assert_eq!(req.uri().query(), Some("flags=1"));
        } else {
            prop_assert!(Get::new(k.clone()).build(&RequestContext::new()).is_err());
        }
    }

    #[test]
    fn parsers_never_panic(
        status in prop_oneof![Just(200u16), Just(404), Just(409), Just(500), 100u16..600],
        headers in prop::collection::vec((header_name(), header_value()), 0..6),
        body in body(),
    ) {
        let resp = || {
            let mut b = http::Response::builder().status(status);
            for (k, v) in &headers {
                b = b.header(k.as_str(), v.clone());
            }
            b.body(Bytes::from(body.clone())).unwrap()
        };
        let id = SessionId::new("adf4238a-882b-9ddc-4a9d-5b6758e4159e").unwrap();
        let _ = Get::new("k").parse(resp());
        let _ = GetRaw::new("k").parse(resp());
        let _ = ListItems::new("p/").parse(resp());
        let _ = ListKeys::new("p/").separator("/").parse(resp());
        let _ = Set::new("k", "v").parse(resp());
        let _ = Delete::new("k").parse(resp());
        let _ = Txn::new(vec![TxnOp::get("k")]).parse(resp());
        let _ = CreateSession::new().parse(resp());
        let _ = DestroySession::new(id.clone()).parse(resp());
        let _ = RenewSession::new(id.clone()).parse(resp());
        let _ = ReadSession::new(id).parse(resp());
        let _ = ListSessions::new().parse(resp());
        let _ = ListNodeSessions::new("n").unwrap().parse(resp());
        // The state machine too.
        let mut w = WatchMachine::new(ListItems::new("p/"), WatchOptions::default());
        #[allow(clippy::disallowed_methods)]
        let now = std::time::Instant::now();
        let _ = w.poll_request(now, &RequestContext::new());
        let _ = w.handle_response(now, resp());
        let _ = w.poll_request(now, &RequestContext::new());
        let _ = w.poll_timeout();
    }
}

fn header_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "X-Consul-Index".to_owned(),
        "x-consul-knownleader".to_owned(),
        "X-Consul-LastContact".to_owned(),
        "X-Consul-Effective-Consistency".to_owned(),
        "X-Consul-Results-Filtered-By-Acls".to_owned(),
        "Retry-After".to_owned(),
        "Content-Type".to_owned(),
    ])
}

fn header_value() -> impl Strategy<Value = http::HeaderValue> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "1",
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "abc",
            "true",
            "false",
            "maybe",
            "",
            " 5 ",
        ])
        .prop_map(http::HeaderValue::from_static),
        prop::collection::vec(any::<u8>(), 0..24).prop_filter_map("header bytes", |v| {
            http::HeaderValue::from_bytes(&v).ok()
        }),
    ]
}

/// Bodies: raw bytes, JSON of any shape, and Consul-shaped JSON with wrong types in fields.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (json(), json(), json(), json()).prop_map(|(key, value, flags, index)| {
            let entry = serde_json::json!({
                "Key": key, "Value": value, "Flags": flags, "ModifyIndex": index,
                "LockIndex": 0, "CreateIndex": 1, "Session": index,
            });
            serde_json::to_vec(&serde_json::json!([entry])).unwrap()
        }),
        (json(), json()).prop_map(|(results, errors)| {
            serde_json::to_vec(&serde_json::json!({"Results": results, "Errors": errors})).unwrap()
        }),
        (json(), json(), json()).prop_map(|(id, ttl, behavior)| {
            serde_json::to_vec(&serde_json::json!([{
                "ID": id, "TTL": ttl, "Behavior": behavior, "LockDelay": 15, "NodeChecks": null
            }]))
            .unwrap()
        }),
    ]
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)),
        ".{0,12}".prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "dGVzdA==",
            "not base64!",
            "YQ",
            "=",
            "true",
            "30s",
            "release",
            "delete"
        ])
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = "[".repeat(100_000);
    let resp = http::Response::builder()
        .status(200)
        .header("X-Consul-Index", "5")
        .body(Bytes::from(deep))
        .unwrap();
    assert!(ListItems::new("p/").parse(resp).is_err());
}

#[test]
fn wrong_content_type_does_not_matter() {
    for ct in ["text/plain", "application/json; charset=utf-8", "text/html"] {
        let resp = http::Response::builder()
            .status(200)
            .header("Content-Type", ct)
            .header("X-Consul-Index", "5")
            .body(Bytes::from_static(br#"[{"Key":"k","Value":"YQ=="}]"#))
            .unwrap();
        assert!(Get::new("k").parse(resp).unwrap().value.is_some(), "{ct}");
    }
}

#[test]
fn invalid_base64_is_typed() {
    let resp = http::Response::builder()
        .status(200)
        .header("X-Consul-Index", "5")
        .body(Bytes::from_static(
            br#"[{"Key":"k","Value":"not base64!"}]"#,
        ))
        .unwrap();
    let e = Get::new("k").parse(resp).unwrap_err();
    assert!(matches!(e, consul_kv_proto::ResponseError::Base64 { ref key, .. } if key == "k"));
}

#[test]
fn truncated_json_is_typed() {
    let resp = http::Response::builder()
        .status(200)
        .header("X-Consul-Index", "5")
        .body(Bytes::from_static(br#"[{"Key":"#))
        .unwrap();
    assert!(matches!(
        Get::new("k").parse(resp),
        Err(consul_kv_proto::ResponseError::Json(_))
    ));
}
