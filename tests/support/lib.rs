//! Test support for the consul-kv workspace: starting a server to test against, and a fault
//! proxy to put between a client and that server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

pub mod consul;
pub mod history;
pub mod proxy;
pub mod server;
pub mod skips;
pub mod webdriver;
pub mod workloads;
