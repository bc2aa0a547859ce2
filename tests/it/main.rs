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
mod compat;
mod kv;
mod lock;
mod readme_quickstart;
mod semaphore;
mod session;
mod stream;
mod txn;
mod values;
mod watch;

use std::time::Duration;

use consul_kv::Client;
use consul_kv_tests::server::TestServer;

pub(crate) use consul_kv_tests::server::within;

/// A key prefix no other case (or earlier run against the same agent) uses.
pub(crate) fn prefix(case: &str) -> String {
    consul_kv_tests::server::unique_prefix("it", case)
}

/// A client for `server`. Explicit settings win over the environment, so `CONSUL_HTTP_TOKEN`
/// (for an external agent with ACLs) is still honoured.
pub(crate) fn client(server: &TestServer) -> Client {
    consul_kv_tests::server::client_for(&server.base_url())
}

/// A client for `server` whose executor does not retry, so that every retry a case sees is the
/// one it tests (a lock's or a semaphore's `retry_for`).
pub(crate) fn client_without_retries(server: &TestServer) -> Client {
    Client::builder()
        .address(server.base_url())
        .retry(consul_kv::RetryPolicy::none())
        .build()
        .expect("client")
}

/// For the cases where a client must ride out a server that is down: starts a devserver,
/// stops it, checks that a plain read is refused, runs `start` with a client that does not
/// retry by itself, and once `start`'s task has run for a while without finishing, starts a
/// devserver again on the same port. Returns what the task gave and the new server; `None`
/// (the case is skipped) against an external server.
pub(crate) async fn across_a_restart<T: Send + 'static>(
    case: &str,
    start: impl FnOnce(Client) -> tokio::task::JoinHandle<T>,
) -> Option<(T, TestServer)> {
    use consul_kv_devserver::DevServer;
    use consul_kv_tests::server;

    let first = server::start_devserver(case, DevServer::builder()).await?;
    let addr = first.handle().expect("devserver").addr();
    let client = client_without_retries(&first);
    first.shutdown().await;
    let refused = client.kv().get("k").await.expect_err("nothing listens");
    assert!(refused.is_connect(), "{refused:?}");

    let task = start(client);
    // Let the first attempts hit the closed port, then bring the server back on it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !task.is_finished(),
        "{case}: gave up while the server was down"
    );
    let second = server::start_with(DevServer::builder().listen(addr)).await;
    let out = within(Duration::from_secs(60), case, task)
        .await
        .expect("task");
    Some((out, second))
}
