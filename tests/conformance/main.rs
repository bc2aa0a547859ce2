//! HTTP-level conformance suite for Consul's KV, session and transaction API.
//!
//! Every case speaks raw HTTP (see [`client`]) to the server from
//! `consul_kv_tests::server::start()`: a fresh in-process devserver, or the external agent at
//! `CONSUL_HTTP_ADDR`, so the same cases can be checked against a real Consul. Each case uses
//! its own key prefix. Cases that need devserver test hooks (tombstone reaping, waiter count,
//! scaled session TTLs, fault and leader switches, several datacenters, ACL mode) print a
//! note and skip against an external server; they are marked "devserver-only" in their docs.
//! Cases whose expectation depends on the Consul version say so; `profiles` holds the cases
//! tagged by release (`v1_14_*` run against both servers, `v1_21_*` / `v1_22_*` against the
//! devserver's `--consul-version` profiles, as those releases cannot be run here).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod blocking;
mod client;
mod dc_acl;
mod http_layer;
mod kv;
mod profiles;
mod session;
mod txn;

use client::{unique, C};
use consul_kv_tests::server::{self, TestServer};

/// A server, a client for it, and a key prefix unique to the case.
pub(crate) async fn setup(case: &str) -> (TestServer, C, String) {
    let s = server::start().await;
    let c = C::new(&s.base_url());
    (s, c, unique(case))
}
