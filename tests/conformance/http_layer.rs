//! The common HTTP layer: path cleaning, routing, methods, headers, status endpoints.

use crate::setup;

#[tokio::test]
async fn kv_without_trailing_slash_redirects() {
    let (_s, c, _p) = setup("kv-redirect").await;
    let r = c.get("/v1/kv?recurse").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location").as_deref(), Some("/v1/kv/?recurse"));
    assert!(r.text().contains("Moved Permanently"));
    let r = c.get("/v1/session/info").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location").as_deref(), Some("/v1/session/info/"));
}

#[tokio::test]
async fn unclean_paths_redirect_to_the_cleaned_path() {
    let (_s, c, p) = setup("clean").await;
    for (path, want) in [
        (format!("/v1/kv/{p}a//b"), format!("/v1/kv/{p}a/b")),
        (format!("/v1/kv/{p}a/./b/"), format!("/v1/kv/{p}a/b/")),
        (format!("/v1/kv/{p}a/../b?raw"), format!("/v1/kv/{p}b?raw")),
    ] {
        let r = c.get(&path).await;
        assert_eq!(r.status, 301, "{path}");
        assert_eq!(
            r.header("location").as_deref(),
            Some(want.as_str()),
            "{path}"
        );
    }
    // A PUT is redirected too (and nothing is written).
    let r = c.put(&format!("/v1/kv/{p}x//y"), "v").await;
    assert_eq!(r.status, 301);
    assert_eq!(c.get(&format!("/v1/kv/{p}x/y")).await.status, 404);
}

#[tokio::test]
async fn non_printable_path_is_400_with_empty_body() {
    let (_s, c, p) = setup("unprintable").await;
    for bad in ["%09", "%7F", "%C2%A0", "%E2%80%8B", "%E2%80%8F", "%C2%85"] {
        let r = c.put(&format!("/v1/kv/{p}x{bad}y"), "v").await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.body.is_empty(), "{bad}: {:?}", r.text());
    }
    assert_eq!(c.get(&format!("/v1/kv/{p}?keys")).await.status, 404);
}

#[tokio::test]
async fn unknown_paths_are_404_with_consul_text() {
    let (_s, c, _p) = setup("unknown").await;
    let r = c.get("/v1/nope/thing").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text().trim_end(),
        "Invalid URL path: not a recognized HTTP API endpoint"
    );
    let r = c.get("/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text().trim_end(),
        "Invalid URL path: if attempting to use the HTTP API, ensure the path starts with '/v1/'"
    );
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let (_s, c, p) = setup("405").await;
    for (m, path, allow) in [
        ("POST", format!("/v1/kv/{p}k"), "OPTIONS,GET,PUT,DELETE"),
        ("GET", "/v1/txn".to_owned(), "OPTIONS,PUT"),
        ("PUT", "/v1/session/list".to_owned(), "OPTIONS,GET"),
        ("GET", "/v1/session/create".to_owned(), "OPTIONS,PUT"),
        ("DELETE", "/v1/session/destroy/x".to_owned(), "OPTIONS,PUT"),
    ] {
        let r = c.req(m, &path, "", &[]).await;
        assert_eq!(r.status, 405, "{m} {path}");
        assert_eq!(r.header("allow").as_deref(), Some(allow), "{m} {path}");
        assert_eq!(r.text().trim_end(), format!("method {m} not allowed"));
    }
}

#[tokio::test]
async fn options_answers_allow() {
    let (_s, c, p) = setup("options").await;
    let r = c.req("OPTIONS", &format!("/v1/kv/{p}k"), "", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("allow").as_deref(), Some("OPTIONS,GET,PUT,DELETE"));
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn responses_vary_on_accept_encoding() {
    let (_s, c, p) = setup("vary").await;
    let r = c.put(&format!("/v1/kv/{p}k"), "v").await;
    assert_eq!(r.header("vary").as_deref(), Some("Accept-Encoding"));
    let r = c.get(&format!("/v1/kv/{p}k")).await;
    assert_eq!(r.header("vary").as_deref(), Some("Accept-Encoding"));
}

#[tokio::test]
async fn header_names_use_go_canonical_case_on_the_wire() {
    let (_s, c, p) = setup("header-case").await;
    c.put_ok(&format!("/v1/kv/{p}k"), "v").await;
    let raw = c
        .raw(format!("GET /v1/kv/{p}k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await;
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"));
    for h in [
        "X-Consul-Index: ",
        "X-Consul-Knownleader: true",
        "X-Consul-Lastcontact: 0",
        "Content-Type: application/json",
    ] {
        assert!(raw.contains(h), "missing {h:?} in {raw}");
    }
}

#[tokio::test]
async fn status_leader_and_peers() {
    let (s, c, _p) = setup("status").await;
    let r = c.get("/v1/status/leader").await;
    assert_eq!(r.status, 200);
    let leader = r.json();
    assert!(leader.as_str().is_some_and(|l| l.contains(':')), "{leader}");
    if s.is_devserver() {
        assert_eq!(leader, "127.0.0.1:8300");
    }
    let r = c.get("/v1/status/peers").await;
    assert_eq!(r.status, 200);
    assert!(!r.json().as_array().unwrap().is_empty());
}

#[tokio::test]
async fn agent_self_reports_datacenter_and_node() {
    let (_s, c, _p) = setup("agent-self").await;
    let r = c.get("/v1/agent/self").await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert!(j["Config"]["Datacenter"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert!(j["Config"]["NodeName"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert!(j["Config"]["Version"].is_string());
}

#[tokio::test]
async fn bad_percent_escape_is_400() {
    let (_s, c, p) = setup("bad-escape").await;
    let raw = c
        .raw(
            format!("GET /v1/kv/{p}%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
}
