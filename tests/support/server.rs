//! Starts the server the tests run against, chosen by the environment:
//!
//! - `CONSUL_HTTP_ADDR` set (e.g. `127.0.0.1:8500` or `http://127.0.0.1:8500`): that server.
//! - `CONSUL_KV_TEST_TARGET=consul`: one real `consul agent -dev` for the whole test process,
//!   started on free loopback ports from the binary `cargo xtask consul` builds (or
//!   `CONSUL_KV_CONSUL_BIN`), and killed when the process ends, even when a test fails.
//! - otherwise (`CONSUL_KV_TEST_TARGET=devserver`, the default): a fresh devserver per case.
//!
//! `cargo xtask ci` runs the suites once per target (`both`).
//!
//! Cases that need the devserver's test hooks check [`TestServer::is_devserver`] (or use
//! [`start_devserver`], which returns `None` against an external server) and skip with a
//! printed note otherwise. Every case uses its own key prefix, so cases can share one
//! external agent.

use consul_kv_devserver::{DevServer, DevServerBuilder, DevServerHandle};

/// The server a test talks to. A devserver stays alive until this is dropped.
#[derive(Debug)]
pub struct TestServer {
    base: String,
    handle: Option<DevServerHandle>,
}

impl TestServer {
    /// The base URL, without a trailing slash (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    /// Whether this is the in-process devserver (test hooks available).
    pub fn is_devserver(&self) -> bool {
        self.handle.is_some()
    }

    /// The devserver's handle, when this is the devserver.
    pub fn handle(&self) -> Option<&DevServerHandle> {
        self.handle.as_ref()
    }

    /// Stops the devserver and waits (no-op for an external server).
    pub async fn shutdown(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.expect("devserver shutdown");
        }
    }
}

/// The shared real Consul agent of this test process (`CONSUL_KV_TEST_TARGET=consul`).
static AGENT: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();

fn shared_agent() -> Result<String, String> {
    AGENT
        .get_or_init(|| {
            let bin = crate::consul::binary().ok_or_else(|| {
                "CONSUL_KV_TEST_TARGET=consul but no Consul binary: run `cargo xtask consul`"
                    .to_owned()
            })?;
            let mut agent = crate::consul::ConsulAgent::dev(&bin).map_err(|e| e.to_string())?;
            agent.kill_with_this_process();
            agent.wait_ready(std::time::Duration::from_secs(30))?;
            let base = agent.base_url();
            // The agent lives as long as the process; the watchdog reaps it afterwards.
            std::mem::forget(agent);
            Ok(base)
        })
        .clone()
}

/// The external server's base URL: `CONSUL_HTTP_ADDR`, or the shared real agent when
/// `CONSUL_KV_TEST_TARGET=consul`.
///
/// # Panics
/// When `CONSUL_KV_TEST_TARGET=consul` and no agent can be started: that run must fail loudly.
pub fn external_base() -> Option<String> {
    if std::env::var_os("CONSUL_HTTP_ADDR").is_none()
        && std::env::var("CONSUL_KV_TEST_TARGET").is_ok_and(|t| t == "consul")
    {
        return Some(shared_agent().unwrap_or_else(|e| panic!("{e}")));
    }
    let addr = std::env::var("CONSUL_HTTP_ADDR").ok()?;
    let addr = addr.trim().trim_end_matches('/');
    if addr.is_empty() {
        return None;
    }
    Some(if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    })
}

/// The server for a conformance case: `CONSUL_HTTP_ADDR`, else a fresh devserver.
pub async fn start() -> TestServer {
    match external_base() {
        Some(base) => TestServer { base, handle: None },
        None => start_with(DevServer::builder()).await,
    }
}

/// A devserver from `builder`, ignoring `CONSUL_HTTP_ADDR`.
pub async fn start_with(builder: DevServerBuilder) -> TestServer {
    let handle = builder.start().await.expect("devserver start");
    TestServer {
        base: handle.http_addr(),
        handle: Some(handle),
    }
}

/// A devserver configured by `builder`, or `None` (with a printed note) when the suite runs
/// against an external server: for cases that need devserver-only settings.
pub async fn start_devserver(case: &str, builder: DevServerBuilder) -> Option<TestServer> {
    if external_base().is_some() {
        crate::skips::record(case, "needs the devserver");
        return None;
    }
    Some(start_with(builder).await)
}

/// A key prefix no other case (or earlier run against the same agent) uses:
/// `<suite>/<case>/<pid>-<nanos>-<n>/`, so cases can share one external agent.
pub fn unique_prefix(suite: &str, case: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{suite}/{case}/{}-{nanos}-{n}/", std::process::id())
}

/// A facade client for `base`. Explicit settings win over the environment, so
/// `CONSUL_HTTP_TOKEN` (for an external agent with ACLs) is still honoured.
pub fn client_for(base: &str) -> consul_kv::Client {
    consul_kv::Client::builder()
        .from_env()
        .address(base)
        .build()
        .expect("client")
}

/// Runs `f` with a deadline, failing the test with `what` when it passes.
pub async fn within<T>(
    d: std::time::Duration,
    what: &str,
    f: impl std::future::Future<Output = T>,
) -> T {
    match tokio::time::timeout(d, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {d:?}: {what}"),
    }
}
