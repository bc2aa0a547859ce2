//! Benchmarks for consul-kv, run by `cargo xtask bench` (see `xtask/src/bench/`).
//!
//! - [`harness`]: the measurement loop and command-line contract every contender shares
//!   (the `consul-kv-bench-harness` crate, which the Rust peers depend on too).
//! - [`contenders`]: consul-kv (the facade) and the floor (raw hyper + typed serde).
//! - [`fixed`]: the fixed-response server that isolates client overhead.
//! - [`serve`]: the devserver plus the fixed-response server, and key seeding.
//! - [`micro`]: proto-only build/parse micro benchmarks.
//!
//! Not published; not in the workspace's default members.

pub mod contenders;
pub mod fixed;
pub use consul_kv_bench_harness as harness;
pub mod micro;
pub mod serve;
