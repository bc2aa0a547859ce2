//! The helpers built on KV, against the devserver or a real agent
//! (`CONSUL_KV_TEST_TARGET=consul`): `update`, `put_all` / `import` / `export`, `sync`, and
//! typed values (`get_json`, `set_json`, `items_json`, `tree`).
//!
//! Every case writes under its own key prefix, so cases can share one external agent. The
//! export case also starts its own real agent to get a file written by the real `consul kv
//! export`; without the Consul binary it prints a loud `SKIPPED` line and returns.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod batch;
mod export;
mod sync;
mod typed;
mod update;

use std::sync::atomic::{AtomicU64, Ordering};

use consul_kv::Client;
use consul_kv_tests::server::TestServer;

/// A key prefix no other case (or earlier run against the same agent) uses.
pub(crate) fn prefix(case: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("helpers/{case}/{}-{nanos}-{n}/", std::process::id())
}

/// A client for `server`, honouring `CONSUL_HTTP_TOKEN` for an external agent with ACLs.
pub(crate) fn client(server: &TestServer) -> Client {
    Client::builder()
        .from_env()
        .address(server.base_url())
        .build()
        .expect("client")
}
