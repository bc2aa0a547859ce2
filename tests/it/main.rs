//! Integration tests of the `consul-kv` facade against the devserver (or the agent at
//! `CONSUL_HTTP_ADDR`): one test binary, one module per area.
//!
//! Every case writes under its own key prefix ([`prefix`]), so cases can share one external
//! agent. Cases that need the devserver's hooks (time scale, faults, tombstone reaping, restart)
//! start their own devserver through `server::start_devserver` and are skipped, with a note,
//! against an external agent.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod cas;
mod client;
mod kv;
mod lock;
mod readme_quickstart;
mod semaphore;
mod session;
mod stream;
mod txn;
mod values;
mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use consul_kv::Client;
use consul_kv_tests::server::TestServer;

/// A key prefix no other case (or earlier run against the same agent) uses:
/// `it/<case>/<pid>-<n>/`.
pub(crate) fn prefix(case: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("it/{case}/{}-{nanos}-{n}/", std::process::id())
}

/// A client for `server`. Explicit settings win over the environment, so `CONSUL_HTTP_TOKEN`
/// (for an external agent with ACLs) is still honoured.
pub(crate) fn client(server: &TestServer) -> Client {
    Client::builder()
        .from_env()
        .address(server.base_url())
        .build()
        .expect("client")
}

/// Runs `f` with a deadline, failing the test with `what` when it passes.
pub(crate) async fn within<T>(
    d: Duration,
    what: &str,
    f: impl std::future::Future<Output = T>,
) -> T {
    match tokio::time::timeout(d, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {d:?}: {what}"),
    }
}
