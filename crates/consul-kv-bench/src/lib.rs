//! Benchmarks for consul-kv, run by `cargo xtask bench` (see `xtask/src/bench/`).
//!
//! - [`harness`]: the measurement loop and command-line contract every contender shares
//!   (the `consul-kv-bench-harness` crate, which the Rust peers depend on too).
//! - [`contenders`]: consul-kv (the facade) and the floor (raw hyper + typed serde).
//! - [`fixed`]: the fixed-response server that isolates client overhead.
//! - [`serve`]: the devserver plus the fixed-response server, and key seeding.
//! - [`micro`]: proto-only build/parse micro benchmarks.
//! - [`pair`]: consul-kv against the floor in one process, alternating short slices (the
//!   figures the targets are judged by).
//! - [`gzip`]: `items()` with and without gzip against one server.
//! - [`fanout`]: watch fan-out, shared and unshared blocking queries (`cargo xtask bench watch`).
//! - [`bulk`]: `put_all` and `import` beside one `PUT` per key (`cargo xtask bench bulk`).
//! - [`allocs`]: allocations per parse (the counting allocator is in `consul-kv-bench-allocs`).
//! - [`tree`]: the streamed read of a huge tree (`consul-kv-bench tree`).
//!
//! Not published; not in the workspace's default members.

pub mod allocs;
pub mod bulk;
pub mod contenders;
pub mod fanout;
pub mod fixed;
pub mod gzip;
pub use consul_kv_bench_harness as harness;
pub mod micro;
pub mod pair;
pub mod serve;
pub mod tree;
