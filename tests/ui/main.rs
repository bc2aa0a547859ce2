//! The devserver's KV browser (`/ui/`), driven in a real headless Chromium through WebDriver:
//! browse, read, edit with check-and-set, live updates, awkward keys, escaping, folders,
//! sessions, datacenters and ACL tokens. Every write the page makes is checked through the
//! HTTP API with the facade client, and every API write is looked for on the page.
//!
//! Needs `chromium` and `chromedriver` (Debian's `chromium` and `chromium-driver`; `cargo xtask
//! ci` installs them when it can). Without them the test says so loudly and records a skip.
//! With `CONSUL_KV_UI_SCREENSHOTS=DIR` it writes `ui-tree.png` and `ui-value.png` there (the
//! README's pictures come from `CONSUL_KV_UI_SCREENSHOTS=docs cargo test -p consul-kv-tests
//! --test ui`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use consul_kv::{Bytes, Client};
use consul_kv_devserver::{DevServer, DevServerHandle};
use consul_kv_tests::webdriver::{find_browser, Browser};
use serde_json::json;

/// Generous: a loaded 2-core machine runs a browser slowly.
const WAIT: Duration = Duration::from_secs(30);

/// Keys a UI gets wrong when it builds URLs or markup from strings.
const AWKWARD: &[&str] = &[
    "odd/what?",
    "odd/hash#tag",
    "odd/100%",
    "odd/with space",
    "odd/ünïcödé ключ 🔑",
    "odd/a+b&c=d",
];

/// A key that would run script if a page put it into markup.
const XSS_KEY: &str = "<img src=x onerror=alert(1)>";

fn client(server: &DevServerHandle, token: Option<&str>) -> Client {
    let mut b = Client::builder().address(server.http_addr());
    if let Some(t) = token {
        b = b.token(t);
    }
    b.build().expect("client")
}

async fn value_of(c: &Client, key: &str) -> Option<Bytes> {
    c.kv()
        .get(key)
        .await
        .expect("read")
        .map(|k| Bytes::copy_from_slice(k.value_bytes()))
}

/// Clicks the tree entry whose `data-key` is `key`.
async fn open_entry(b: &Browser, key: &str) {
    let found = b
        .eval(
            "const k = arguments[0];
             const a = Array.from(document.querySelectorAll('#tree a')).find(x => x.dataset.key === k);
             if (!a) return false;
             a.setAttribute('data-test-target', '1');
             return true;",
            json!([key]),
        )
        .await;
    if found != json!(true) {
        b.wait_until(
            &format!("tree entry {key:?}"),
            "return Array.from(document.querySelectorAll('#tree a')).some(x => x.dataset.key === arguments[0]);",
            json!([key]),
            WAIT,
        )
        .await;
        return Box::pin(open_entry(b, key)).await;
    }
    let e = b.find("#tree a[data-test-target]", WAIT).await;
    b.click(&e).await;
}

async fn wait_text(b: &Browser, css: &str, expected: &str) {
    b.wait_until(
        &format!("{css} to read {expected:?}"),
        "const e = document.querySelector(arguments[0]); return !!e && e.textContent === arguments[1];",
        json!([css, expected]),
        WAIT,
    )
    .await;
}

async fn wait_contains(b: &Browser, css: &str, part: &str) {
    b.wait_until(
        &format!("{css} to contain {part:?}"),
        "const e = document.querySelector(arguments[0]); return !!e && e.textContent.includes(arguments[1]);",
        json!([css, part]),
        WAIT,
    )
    .await;
}

fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("CONSUL_KV_UI_SCREENSHOTS").map(|d| {
        let d = PathBuf::from(d);
        // Relative to the workspace root, where the README's pictures live.
        if d.is_relative() {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(d)
        } else {
            d
        }
    })
}

async fn save_screenshot(b: &Browser, name: &str) {
    let png = b.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let dir = screenshot_dir()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-test"));
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join(name), png).expect("write screenshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_browser_in_headless_chromium() {
    let Some((chrome, driver)) = find_browser() else {
        eprintln!(
            "\n!!!!! UI BROWSER TEST SKIPPED: chromium and chromedriver not found \
             (apt-get install chromium chromium-driver, or set CHROME / CHROMEDRIVER) !!!!!\n"
        );
        consul_kv_tests::skips::record(
            "ui::kv_browser_in_headless_chromium",
            "no chromium/chromedriver",
        );
        return;
    };

    let server = DevServer::builder()
        .datacenter("dc1")
        .datacenter("dc2")
        .start()
        .await
        .expect("devserver");
    let api = client(&server, None);
    let kv = api.kv();
    kv.set("app/config.json", r#"{"port":8080,"debug":false}"#)
        .await
        .expect("seed");
    kv.set("app/name", "demo").await.expect("seed");
    kv.set("app/bin", Bytes::from_static(&[0, 159, 255, 10]))
        .await
        .expect("seed");
    for k in AWKWARD {
        kv.set(*k, format!("value of {k}")).await.expect("seed");
    }
    kv.set(XSS_KEY, "<script>alert(2)</script>")
        .await
        .expect("seed");
    let session = api.session().create().await.expect("session");
    assert!(kv
        .acquire("app/leader", &session)
        .value("node-a")
        .await
        .expect("acquire"));

    let browser = Browser::start(&chrome, &driver).await;
    let base = server.http_addr();

    // The root redirects to the UI, which lists the top folder.
    browser.goto(&format!("{base}/")).await;
    browser
        .wait_until(
            "the top folder",
            "return document.querySelectorAll('#tree a').length >= 3;",
            json!([]),
            WAIT,
        )
        .await;
    assert!(browser.url().await.contains("/ui/"), "/ redirects to /ui/");
    let names = browser
        .eval(
            "return Array.from(document.querySelectorAll('#tree a')).map(a => a.textContent);",
            json!([]),
        )
        .await;
    assert_eq!(
        names,
        json!(["<img src=x onerror=alert(1)>", "app/", "odd/"])
    );
    // The hostile key is text: no <img> element, no alert.
    let imgs = browser
        .eval("return document.querySelectorAll('img').length;", json!([]))
        .await;
    assert_eq!(imgs, json!(0), "a key was rendered as markup");
    assert_eq!(browser.alert_text().await, None, "a key ran script");

    // Into a folder: breadcrumbs and entries.
    open_entry(&browser, "app/").await;
    wait_contains(&browser, "#crumbs", "app").await;
    browser
        .wait_until(
            "the app/ folder",
            "return Array.from(document.querySelectorAll('#tree a')).map(a => a.textContent).join(',') === 'bin,config.json,leader,name';",
            json!([]),
            WAIT,
        )
        .await;

    // A JSON value is pretty-printed, with its meta.
    open_entry(&browser, "app/config.json").await;
    wait_text(&browser, "#format", "JSON").await;
    wait_text(
        &browser,
        "#value",
        "{\n  \"port\": 8080,\n  \"debug\": false\n}",
    )
    .await;
    let modify = kv
        .get("app/config.json")
        .await
        .expect("read")
        .expect("present")
        .modify_index;
    wait_text(&browser, "#modify-index", &modify.to_string()).await;
    save_screenshot(&browser, "ui-value.png").await;

    // Binary values are shown as hex.
    browser
        .goto(&format!("{base}/ui/#/dc1/key/app%2Fbin"))
        .await;
    wait_text(&browser, "#format", "binary, 4 bytes (hex)").await;
    wait_contains(&browser, "#value", "00 9f ff 0a").await;

    // The holder's session is shown and leads to the sessions list.
    browser
        .goto(&format!("{base}/ui/#/dc1/key/app%2Fleader"))
        .await;
    wait_text(&browser, "#session", session.id().as_str()).await;
    let link = browser.find("#session-link", WAIT).await;
    browser.click(&link).await;
    browser
        .wait_until(
            "the session row",
            "const r = document.querySelector('tr.highlight'); return !!r && r.dataset.session === arguments[0];",
            json!([session.id().as_str()]),
            WAIT,
        )
        .await;

    // Edit a value: the write reaches the API.
    browser
        .goto(&format!("{base}/ui/#/dc1/key/app%2Fname"))
        .await;
    wait_text(&browser, "#value", "demo").await;
    let edit = browser.find("#edit", WAIT).await;
    browser.click(&edit).await;
    let area = browser.find("#editor", WAIT).await;
    browser.clear(&area).await;
    browser.type_text(&area, "renamed by the UI").await;
    let save = browser.find("#save", WAIT).await;
    browser.click(&save).await;
    wait_contains(&browser, "#status", "Saved app/name").await;
    assert_eq!(
        value_of(&api, "app/name").await.as_deref(),
        Some(&b"renamed by the UI"[..])
    );

    // A value written through the API appears without a reload.
    wait_text(&browser, "#value", "renamed by the UI").await;
    kv.set("app/name", "written by the API")
        .await
        .expect("write");
    wait_text(&browser, "#value", "written by the API").await;

    // A concurrent write turns the UI's save into a reported conflict; nothing is overwritten.
    let edit = browser.find("#edit", WAIT).await;
    browser.click(&edit).await;
    let area = browser.find("#editor", WAIT).await;
    kv.set("app/name", "concurrent").await.expect("write");
    browser.clear(&area).await;
    browser.type_text(&area, "stale edit").await;
    let save = browser.find("#save", WAIT).await;
    browser.click(&save).await;
    wait_contains(&browser, "#status", "Not saved").await;
    assert_eq!(
        value_of(&api, "app/name").await.as_deref(),
        Some(&b"concurrent"[..]),
        "the conflicting edit overwrote the key"
    );

    // Awkward keys: listed, opened and edited byte for byte.
    browser.goto(&format!("{base}/ui/#/dc1/kv/odd%2F")).await;
    for key in AWKWARD {
        browser.goto(&format!("{base}/ui/#/dc1/kv/odd%2F")).await;
        open_entry(&browser, key).await;
        wait_text(&browser, "#key-name", key).await;
        wait_text(&browser, "#value", &format!("value of {key}")).await;
        let edit = browser.find("#edit", WAIT).await;
        browser.click(&edit).await;
        let area = browser.find("#editor", WAIT).await;
        browser.clear(&area).await;
        browser.type_text(&area, &format!("edited {key}")).await;
        let save = browser.find("#save", WAIT).await;
        browser.click(&save).await;
        wait_text(&browser, "#value", &format!("edited {key}")).await;
        assert_eq!(
            value_of(&api, key).await,
            Some(Bytes::from(format!("edited {key}"))),
            "{key:?} after a UI edit"
        );
    }

    // Create a key with an awkward name from the folder view.
    browser.goto(&format!("{base}/ui/#/dc1/kv/odd%2F")).await;
    wait_contains(&browser, "#tree", "with space").await;
    save_screenshot(&browser, "ui-tree.png").await;
    let new = browser.find("#new-key", WAIT).await;
    browser.click(&new).await;
    let name = browser.find("#new-key-name", WAIT).await;
    browser.type_text(&name, "new key #1?").await;
    let value = browser.find("#new-key-value", WAIT).await;
    browser.type_text(&value, "fresh").await;
    let create = browser.find("#create", WAIT).await;
    browser.click(&create).await;
    wait_text(&browser, "#key-name", "odd/new key #1?").await;
    assert_eq!(
        value_of(&api, "odd/new key #1?").await.as_deref(),
        Some(&b"fresh"[..])
    );

    // Delete a folder, after a confirmation.
    kv.set("tmp/a", "1").await.expect("seed");
    kv.set("tmp/b/c", "2").await.expect("seed");
    browser.goto(&format!("{base}/ui/#/dc1/kv/tmp%2F")).await;
    let del = browser.find("#delete-folder", WAIT).await;
    browser.click(&del).await;
    let confirm = browser.find("#confirm-delete", WAIT).await;
    assert!(
        kv.items("tmp/").await.expect("list").len() == 2,
        "nothing deleted before the confirmation"
    );
    browser.click(&confirm).await;
    wait_contains(&browser, "#status", "Deleted tmp/").await;
    assert!(kv.items("tmp/").await.expect("list").is_empty());

    // The datacenter switcher lists both and shows dc2's (empty) store.
    let dcs = browser
        .eval(
            "return Array.from(document.querySelectorAll('#dc option')).map(o => o.value);",
            json!([]),
        )
        .await;
    assert_eq!(dcs, json!(["dc1", "dc2"]));
    browser.goto(&format!("{base}/ui/#/dc2/kv/")).await;
    wait_text(&browser, "#tree li", "No keys yet.").await;
    api.kv()
        .dc("dc2")
        .set("only/in/dc2", "x")
        .await
        .expect("dc2 write");
    wait_text(&browser, "#tree a", "only/").await;

    browser.quit().await;
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_browser_asks_for_a_token_and_sends_it_only_as_a_header() {
    let Some((chrome, driver)) = find_browser() else {
        eprintln!("\n!!!!! UI BROWSER TEST SKIPPED: chromium and chromedriver not found !!!!!\n");
        consul_kv_tests::skips::record(
            "ui::kv_browser_asks_for_a_token",
            "no chromium/chromedriver",
        );
        return;
    };
    const TOKEN: &str = "ui-test-management-token";
    let server = DevServer::builder()
        .acl_token(TOKEN)
        .start()
        .await
        .expect("devserver");
    let api = client(&server, Some(TOKEN));
    api.kv().set("secret/area", "hidden").await.expect("seed");

    let browser = Browser::start(&chrome, &driver).await;
    browser.goto(&format!("{}/ui/", server.http_addr())).await;
    browser
        .wait_until(
            "the token form",
            "return !document.getElementById('token-form').hidden;",
            json!([]),
            WAIT,
        )
        .await;
    let input = browser.find("#token-input", WAIT).await;
    browser.type_text(&input, TOKEN).await;
    let save = browser.find("#token-save", WAIT).await;
    browser.click(&save).await;
    wait_text(&browser, "#tree a", "secret/").await;
    // The token is in no address the page uses, and not in the page's text.
    let url = browser.url().await;
    assert!(!url.contains(TOKEN));
    let text = browser
        .eval("return document.documentElement.outerHTML;", json!([]))
        .await;
    assert!(!text.as_str().unwrap_or_default().contains(TOKEN));
    browser.quit().await;
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn ui_can_be_turned_off() {
    let server = DevServer::builder()
        .ui(false)
        .start()
        .await
        .expect("devserver");
    let base = server.http_addr();
    let get = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Empty<Bytes>>();
            client
                .get(url.parse().expect("uri"))
                .await
                .expect("answer")
                .status()
        }
    };
    assert_eq!(get("/ui/").await, http::StatusCode::NOT_FOUND);
    assert_eq!(get("/").await, http::StatusCode::OK); // Consul's "UI disabled" text
    server.shutdown().await.expect("shutdown");

    let server = DevServer::builder().start().await.expect("devserver");
    let base = server.http_addr();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let r = client
        .get(format!("{base}/").parse().expect("uri"))
        .await
        .expect("answer");
    assert_eq!(r.status(), http::StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.headers()["location"], "/ui/");
    let r = client
        .get(format!("{base}/ui/").parse().expect("uri"))
        .await
        .expect("answer");
    assert_eq!(r.status(), http::StatusCode::OK);
    assert!(r.headers().contains_key("content-security-policy"));
    server.shutdown().await.expect("shutdown");
}
