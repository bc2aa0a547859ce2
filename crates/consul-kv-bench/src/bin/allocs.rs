//! `consul-kv-bench-allocs`: allocations per proto parse (and per bare serde parse of the same
//! bytes), one JSON line each. `cargo xtask bench` runs it after the micro benchmarks.
//!
//! ```text
//! consul-kv-bench-allocs [--keys N] [--value-size B]
//! ```

use std::process::ExitCode;

use consul_kv_bench::allocs;
use consul_kv_bench::fixed::Dataset;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn count(f: &mut dyn FnMut()) -> (u64, u64) {
    let region = Region::new(GLOBAL);
    f();
    let c = region.change();
    (
        (c.allocations + c.reallocations) as u64,
        (c.bytes_allocated + c.bytes_reallocated.max(0) as usize) as u64,
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut data = Dataset::default();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse::<usize>().ok());
        match (pair[0].as_str(), value) {
            ("--keys", Some(n)) => data.keys = n,
            ("--value-size", Some(n)) => data.value_size = n,
            _ => {
                eprintln!("usage: consul-kv-bench-allocs [--keys N] [--value-size B]");
                return ExitCode::FAILURE;
            }
        }
    }
    for r in allocs::run(&data, count) {
        println!("{}", r.to_json());
    }
    ExitCode::SUCCESS
}
