//! Test support for the consul-kv workspace: starting a server to test against.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

pub mod server;
