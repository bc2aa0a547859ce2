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

use consul_kv::Client;
use consul_kv_tests::server::TestServer;

/// A key prefix no other case (or earlier run against the same agent) uses.
pub(crate) fn prefix(case: &str) -> String {
    consul_kv_tests::server::unique_prefix("helpers", case)
}

/// A client for `server`, honouring `CONSUL_HTTP_TOKEN` for an external agent with ACLs.
pub(crate) fn client(server: &TestServer) -> Client {
    consul_kv_tests::server::client_for(&server.base_url())
}
