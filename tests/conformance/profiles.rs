//! Cases tagged by Consul release. `v1_14_*` hold for Consul 1.14.11 and run against both
//! servers (the devserver's default profile is 1.14). `v1_21_*` and `v1_22_*` start a
//! devserver with that release's profile (`DevServerBuilder::consul_version`): those releases
//! are licensed so that this project cannot build or run them, so their cases are checked
//! against the devserver only, and their sources are named in the devserver's docs.

use consul_kv_devserver::{ConsulVersion, DevServer};
use consul_kv_tests::server::{self, TestServer};

use crate::client::{unique, C};
use crate::setup;

const MAX: usize = 512 * 1024;

async fn profile(case: &str, v: ConsulVersion) -> Option<(TestServer, C, String)> {
    let s = server::start_devserver(case, DevServer::builder().consul_version(v)).await?;
    let c = C::new(&s.base_url());
    Some((s, c, unique(case)))
}

/// A chunked `PUT` of `n` bytes of `y` to `/v1/kv/{key}`.
fn chunked_put(key: &str, n: usize) -> Vec<u8> {
    let mut req = format!(
        "PUT /v1/kv/{key} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b'y'; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let len = left.min(chunk.len());
        req.extend_from_slice(format!("{len:x}\r\n").as_bytes());
        req.extend_from_slice(&chunk[..len]);
        req.extend_from_slice(b"\r\n");
        left -= len;
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

/// 1.14 checks only `Content-Length`: a chunked value over the limit is stored (recorded from a
/// real 1.14.11 agent).
#[tokio::test]
async fn v1_14_chunked_body_over_the_limit_is_stored() {
    let (_s, c, p) = setup("v114-chunked").await;
    let resp = c
        .raw(&chunked_put(&format!("{p}big"), MAX + 64 * 1024))
        .await;
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "{}",
        &resp[..resp.len().min(200)]
    );
    let r = c.get(&format!("/v1/kv/{p}big?raw")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), MAX + 64 * 1024);
}

/// 1.14's 413 text links the old documentation host.
#[tokio::test]
async fn v1_14_too_large_text() {
    let (_s, c, p) = setup("v114-413").await;
    let r = c.put(&format!("/v1/kv/{p}over"), vec![b'x'; 600_000]).await;
    assert_eq!(r.status, 413);
    assert_eq!(
        r.text(),
        "Request body(600000 bytes) too large, max size: 524288 bytes. See \
         https://www.consul.io/docs/agent/config/config-files#kv_max_value_size."
    );
}

/// 1.14 takes any printable key the path can carry: spaces, `%`, `:`, non-ASCII.
#[tokio::test]
async fn v1_14_accepts_keys_later_releases_refuse() {
    let (_s, c, p) = setup("v114-keys").await;
    for (wire, key) in [
        (format!("%20{p}edge"), format!(" {p}edge")),
        (format!("{p}edge%20"), format!("{p}edge ")),
        (format!("{p}sp%20ace"), format!("{p}sp ace")),
        (format!("{p}%C3%A7"), format!("{p}ç")),
        (format!("{p}a..%252Fb"), format!("{p}a..%2Fb")),
        (format!("{p}x:y"), format!("{p}x:y")),
    ] {
        let path = format!("/v1/kv/{wire}");
        let r = c.put(&path, "v").await;
        assert_eq!(r.status, 200, "{key:?}: {}", r.text());
        let r = c.get(&path).await;
        assert_eq!(r.status, 200, "{key:?}");
        assert_eq!(r.json()[0]["Key"], key);
        assert_eq!(c.delete(&path).await.status, 200);
    }
}

/// 1.21.5's regex: everything outside `[a-zA-Z0-9,_./\-?&=]` is a 500, on reads, writes and
/// deletes alike (existing keys could no longer be deleted, Consul issue #22835).
#[tokio::test]
async fn v1_21_strict_key_regex() {
    let Some((_s, c, p)) = profile("v121-regex", ConsulVersion::V1_21).await else {
        return;
    };
    c.put_ok(&format!("/v1/kv/{p}ok,_./-?&="), "v").await;
    let text = r#"invalid key name, keys should respect the "^[a-zA-Z0-9,_./\\-?&=]+$" format"#;
    for wire in ["sp%20ace", "%C3%A7", "x:y", "a+b", "pct%25"] {
        let path = format!("/v1/kv/{p}{wire}");
        for r in [
            c.put(&path, "v").await,
            c.get(&path).await,
            c.delete(&path).await,
        ] {
            assert_eq!(r.status, 500, "{wire}");
            assert_eq!(r.text(), text);
        }
    }
}

/// 1.22: traversal, encoded traversal and edge spaces are refused with 400; everything
/// else 1.21.5 refused works again.
#[tokio::test]
async fn v1_22_traversal_and_edge_spaces() {
    let Some((_s, c, p)) = profile("v122-keys", ConsulVersion::V1_22).await else {
        return;
    };
    for wire in [
        "sp%20ace",
        "%C3%A7",
        "x:y",
        "a+b",
        "pct%25",
        "con..fig",
        "foo%252Fbar",
    ] {
        c.put_ok(&format!("/v1/kv/{p}{wire}"), "v").await;
    }
    for (path, text) in [
        (
            format!("/v1/kv/%20{p}edge"),
            "key must not begin or end with a space",
        ),
        (
            format!("/v1/kv/{p}edge%20"),
            "key must not begin or end with a space",
        ),
        (
            format!("/v1/kv/{p}a..%252Fb"),
            "key contains encoded path traversal sequence",
        ),
        (
            format!("/v1/kv/{p}x%252e%252e/y"),
            "key contains encoded path traversal sequence",
        ),
        (
            format!("/v1/kv/{p}a%5C..%5Cb"),
            "key contains path traversal sequence",
        ),
    ] {
        let wire = path.as_str();
        for r in [c.put(wire, "v").await, c.get(wire).await] {
            assert_eq!(r.status, 400, "{wire}");
            assert_eq!(r.text(), text, "{wire}");
        }
    }
    // A `..` path segment never reaches the handler: the path is cleaned first (301), in
    // every release.
    let r = c.put(&format!("/v1/kv/{p}a/../b"), "v").await;
    assert_eq!(r.status, 301);
}

/// 1.22 limits the bytes received as well as `Content-Length`; chunked bodies within the
/// limit are accepted.
#[tokio::test]
async fn v1_22_limits_chunked_bodies() {
    let Some((_s, c, p)) = profile("v122-chunked", ConsulVersion::V1_22).await else {
        return;
    };
    let resp = c.raw(&chunked_put(&format!("{p}ok"), MAX)).await;
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "{}",
        &resp[..resp.len().min(200)]
    );
    let resp = c.raw(&chunked_put(&format!("{p}big"), MAX + 1)).await;
    assert!(
        resp.starts_with("HTTP/1.1 413"),
        "{}",
        &resp[..resp.len().min(200)]
    );
    assert!(resp.contains(
        "too large, max size: 524288 bytes. See \
         https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size."
    ));
    assert_eq!(c.get(&format!("/v1/kv/{p}big")).await.status, 404);
}

/// `/v1/agent/self` reports the profile's release.
#[tokio::test]
async fn agent_self_reports_the_profile() {
    for v in ConsulVersion::ALL {
        let Some((_s, c, _p)) = profile("agent-self-version", v).await else {
            return;
        };
        let r = c.get("/v1/agent/self").await;
        assert_eq!(r.json()["Config"]["Version"], v.version());
    }
    let (_s, c, _p) = setup("agent-self-version-default").await;
    let r = c.get("/v1/agent/self").await;
    assert_eq!(r.json()["Config"]["Version"], "1.14.11");
}

/// Every release compresses answers of about 1.4 KB and more when the request accepts gzip,
/// and leaves small ones (and requests that do not ask) plain; `Vary` is on all of them.
#[tokio::test]
async fn gzip_large_answers_when_asked() {
    let (_s, c, p) = setup("gzip").await;
    for i in 0..60 {
        c.put_ok(&format!("/v1/kv/{p}k{i:03}"), vec![b'g'; 64])
            .await;
    }
    let head_of = |resp: &str| {
        resp.split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let ask = |path: String, gzip: bool| {
        let enc = if gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        };
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{enc}Connection: close\r\n\r\n").into_bytes()
    };
    let big = head_of(&c.raw(&ask(format!("/v1/kv/{p}?recurse"), true)).await);
    assert!(big.starts_with("http/1.1 200"), "{big}");
    assert!(big.contains("content-encoding: gzip"), "{big}");
    assert!(big.contains("vary: accept-encoding"), "{big}");
    let plain = head_of(&c.raw(&ask(format!("/v1/kv/{p}?recurse"), false)).await);
    assert!(!plain.contains("content-encoding"), "{plain}");
    let small = head_of(&c.raw(&ask(format!("/v1/kv/{p}k001"), true)).await);
    assert!(small.starts_with("http/1.1 200"), "{small}");
    assert!(!small.contains("content-encoding"), "{small}");
}
