//! Watching at scale, against the devserver (or the agent at `CONSUL_HTTP_ADDR` /
//! `CONSUL_KV_TEST_TARGET=consul`): shared blocking queries, change events, typed watches,
//! elections and fenced writes, and a watch's health through an outage.
//!
//! Cases that count the server's blocking queries or stop the server need the devserver and
//! print a note and skip against an external agent.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod changes;
mod election;
mod health;
mod shared;
mod typed;

use std::time::Duration;

use consul_kv::Client;
use consul_kv_tests::server::TestServer;

pub(crate) use consul_kv_tests::server::within;

/// A key prefix no other case (or earlier run against the same agent) uses.
pub(crate) fn prefix(case: &str) -> String {
    consul_kv_tests::server::unique_prefix("watching", case)
}

/// A client for `base`.
pub(crate) fn client_for(base: &str) -> Client {
    consul_kv_tests::server::client_for(base)
}

/// A client for `server`.
pub(crate) fn client(server: &TestServer) -> Client {
    client_for(&server.base_url())
}

/// Polls `cond` every 20 ms until it holds, failing with `what` after `d`.
pub(crate) async fn until(d: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    within(d, what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Waits until the server can create sessions: a freshly started real agent answers
/// `500 Missing node registration` until its node is registered in the catalog.
pub(crate) async fn sessions_ready(c: &Client) {
    within(
        Duration::from_secs(30),
        "the agent accepts sessions",
        async {
            loop {
                match c.session().create().ttl(Duration::from_secs(10)).await {
                    Ok(s) => {
                        let _ = c.session().destroy(&s).await;
                        return;
                    }
                    Err(e) if e.to_string().contains("node registration") || e.is_retryable() => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => {
                        let source = std::error::Error::source(&e).map(ToString::to_string);
                        if source.is_some_and(|s| s.contains("node registration")) {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        } else {
                            panic!("session create: {e}");
                        }
                    }
                }
            }
        },
    )
    .await;
}
