//! A small W3C WebDriver client for the browser test of the devserver's UI: it starts
//! `chromedriver` on a free loopback port, opens a headless Chromium session and speaks the
//! WebDriver JSON protocol over HTTP/1.1 with the workspace's own hyper client.
//!
//! Only the commands the test needs: navigate, find elements, click, type, run a script, take a
//! screenshot, read an alert. Every command has a deadline.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long one WebDriver command may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// Where the browser and its driver are, from `CHROME` / `CHROMEDRIVER` or the usual Debian
/// paths; `None` when either is missing.
pub fn find_browser() -> Option<(PathBuf, PathBuf)> {
    let pick = |var: &str, candidates: &[&str]| -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(var) {
            let p = PathBuf::from(p);
            return p.is_file().then_some(p);
        }
        candidates.iter().map(PathBuf::from).find(|p| p.is_file())
    };
    let chrome = pick(
        "CHROME",
        &[
            "/usr/bin/chromium",
            "/usr/bin/chromium-browser",
            "/usr/bin/google-chrome",
        ],
    )?;
    let driver = pick(
        "CHROMEDRIVER",
        &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
    )?;
    Some((chrome, driver))
}

/// A running `chromedriver` with one headless browser session. Dropping it ends both.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    profile: PathBuf,
}

/// A WebDriver element reference.
#[derive(Debug, Clone)]
pub struct Element(String);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session with a fresh profile.
    pub async fn start(chrome: &Path, driver: &Path) -> Self {
        let port = free_port();
        let profile =
            std::env::temp_dir().join(format!("consul-kv-ui-test-{}-{}", std::process::id(), port));
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let client = Client::builder(TokioExecutor::new()).build_http();
        let mut browser = Self {
            driver: child,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            client,
            profile,
        };
        // Wait for the driver to listen (it takes a moment on a loaded machine).
        let started = Instant::now();
        loop {
            if let Ok(v) = browser.raw("GET", "/status", None).await {
                if v["value"]["ready"].as_bool() == Some(true) {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chrome.to_string_lossy(),
                    // The flags this machine's closed network needs: no sandbox (root), no
                    // GPU, and nothing that phones home.
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--disable-dev-shm-usage", "--window-size=1280,860",
                        format!("--user-data-dir={}", browser.profile.display()),
                    ]
                }
            }}
        });
        let v = browser
            .raw("POST", "/session", Some(caps))
            .await
            .expect("a WebDriver session");
        browser.session = v["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser
    }

    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let call = async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(v)
            } else {
                Err(format!(
                    "{} {}",
                    v["value"]["error"].as_str().unwrap_or("error"),
                    v["value"]["message"].as_str().unwrap_or("")
                ))
            }
        };
        tokio::time::timeout(COMMAND_DEADLINE, call)
            .await
            .map_err(|_| format!("WebDriver {method} {path} timed out"))?
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{}", self.session, path);
        match self.raw(method, &full, body).await {
            Ok(v) => v["value"].clone(),
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// The page's current address.
    pub async fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// The first element matching a CSS selector, waiting up to `wait` for it to appear.
    pub async fn find(&self, css: &str, wait: Duration) -> Element {
        let started = Instant::now();
        loop {
            let full = format!("/session/{}/element", self.session);
            let body = json!({ "using": "css selector", "value": css });
            if let Ok(v) = self.raw("POST", &full, Some(body)).await {
                if let Some(id) = v["value"][ELEMENT_KEY].as_str() {
                    return Element(id.to_owned());
                }
            }
            assert!(
                started.elapsed() < wait,
                "no element matches {css:?} after {wait:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks an element.
    pub async fn click(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(json!({})))
            .await;
    }

    /// Empties an input or text area.
    pub async fn clear(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/clear", e.0), Some(json!({})))
            .await;
    }

    /// Types `text` into an element, as a user's key presses.
    pub async fn type_text(&self, e: &Element, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The text of an open alert, if one is open.
    pub async fn alert_text(&self) -> Option<String> {
        let full = format!("/session/{}/alert/text", self.session);
        self.raw("GET", &full, None)
            .await
            .ok()
            .and_then(|v| v["value"].as_str().map(str::to_owned))
    }

    /// A PNG screenshot of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.cmd("GET", "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("a base64 PNG")
    }

    /// Waits until `script` (a function body) returns `true`, for up to `wait`; panics with
    /// `what` and the page's text otherwise.
    pub async fn wait_until(&self, what: &str, script: &str, args: Value, wait: Duration) {
        let started = Instant::now();
        loop {
            if self.eval(script, args.clone()).await == Value::Bool(true) {
                return;
            }
            if started.elapsed() > wait {
                let text = self.eval("return document.body.innerText", json!([])).await;
                panic!("timed out waiting for {what}; the page says:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the session and the driver.
    pub async fn quit(mut self) {
        let path = format!("/session/{}", self.session);
        let _ = self.raw("DELETE", &path, None).await;
        self.session.clear();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // A killed driver can leave its browser behind (a test that panicked never said
        // `quit`): end every process started with this session's profile.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.profile.as_os_str())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
