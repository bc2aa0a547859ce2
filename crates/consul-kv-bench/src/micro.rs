//! Proto-only micro benchmarks: building requests and parsing responses with
//! `consul-kv-proto`, next to a bare typed serde parse of the same bytes.
//!
//! Each pair (proto, baseline) runs in alternating trials so both see the same machine
//! conditions; the figure kept is the median trial. Only the work under test is timed: the
//! `http::Response` values a proto parse consumes are made before each timed batch.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use consul_kv_proto::http::Response;
use consul_kv_proto::kv::{self, wire::KvEntry};
use consul_kv_proto::{Operation as _, RequestContext};

use crate::fixed::{Canned, Dataset};

/// One micro benchmark figure.
#[derive(Debug, Clone, PartialEq)]
pub struct MicroResult {
    /// What was measured: `build_get`, `parse_items`, ...
    pub name: String,
    /// Which implementation: `consul-kv-proto` or `serde typed`.
    pub implementation: String,
    /// Input bytes per operation (0 for builds).
    pub bytes: usize,
    /// Operations timed in all trials.
    pub iterations: u64,
    /// Median nanoseconds per operation.
    pub ns_per_op: f64,
}

impl MicroResult {
    /// Throughput in MB/s (10^6 bytes), 0 for builds.
    pub fn mb_per_s(&self) -> f64 {
        if self.ns_per_op > 0.0 {
            self.bytes as f64 / self.ns_per_op * 1e3
        } else {
            0.0
        }
    }

    /// The JSON line `consul-kv-bench micro` prints.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "micro": self.name,
            "impl": self.implementation,
            "bytes": self.bytes,
            "iterations": self.iterations,
            "ns_per_op": (self.ns_per_op * 1e3).round() / 1e3,
            "mb_per_s": (self.mb_per_s() * 1e3).round() / 1e3,
        })
        .to_string()
    }
}

/// A timed routine: makes a batch of inputs untimed, then times `op` over the batch.
struct Bench<'a> {
    batch: usize,
    run: Box<dyn FnMut(usize) -> Duration + 'a>,
}

impl<'a> Bench<'a> {
    fn new<I: 'a>(
        batch: usize,
        mut make: impl FnMut() -> I + 'a,
        mut op: impl FnMut(I) + 'a,
    ) -> Self {
        Self {
            batch,
            run: Box::new(move |n| {
                let inputs: Vec<I> = (0..n).map(|_| make()).collect();
                let t = Instant::now();
                for i in inputs {
                    op(black_box(i));
                }
                t.elapsed()
            }),
        }
    }

    /// Runs batches for at least `min`; `(operations, time)`.
    fn trial(&mut self, min: Duration) -> (u64, Duration) {
        let (mut n, mut spent) = (0u64, Duration::ZERO);
        while spent < min {
            spent += (self.run)(self.batch);
            n += self.batch as u64;
        }
        (n, spent)
    }
}

/// Runs `a` and `b` in `trials` alternating trials of `per_trial` each; median ns/op of each.
fn pair<'x>(
    a: &mut Bench<'x>,
    b: &mut Bench<'x>,
    trials: usize,
    per_trial: Duration,
) -> [(u64, f64); 2] {
    let mut rates = [Vec::new(), Vec::new()];
    let mut counts = [0u64; 2];
    // One untimed round to warm caches and the allocator.
    a.trial(per_trial / 4);
    b.trial(per_trial / 4);
    for _ in 0..trials {
        for (i, bench) in [&mut *a, &mut *b].into_iter().enumerate() {
            let (n, t) = bench.trial(per_trial);
            counts[i] += n;
            rates[i].push(t.as_nanos() as f64 / n as f64);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    [
        (counts[0], median(&mut rates[0])),
        (counts[1], median(&mut rates[1])),
    ]
}

fn result(name: &str, implementation: &str, bytes: usize, (n, ns): (u64, f64)) -> MicroResult {
    MicroResult {
        name: name.to_owned(),
        implementation: implementation.to_owned(),
        bytes,
        iterations: n,
        ns_per_op: ns,
    }
}

/// Proto's name in the results.
pub const PROTO: &str = "consul-kv-proto";
/// The baseline's name in the results.
pub const SERDE: &str = "serde typed";

/// Runs the micro benchmarks (all, or those whose name contains `only`, for profiling one);
/// `budget` is the time each benchmark pair gets in all.
pub fn run(data: &Dataset, budget: Duration, only: Option<&str>) -> Vec<MicroResult> {
    let wanted = |name: &str| only.is_none_or(|o| name.contains(o));
    let trials = 7;
    let per_trial = budget / (2 * trials as u32);
    let cx = RequestContext::new();
    let mut out = Vec::new();

    // Build: a get, and a set with its value (the op made from the caller's key each time).
    let value = Bytes::from(data.value());
    let key = data.key.clone();
    let mut get = Bench::new(
        1024,
        || (),
        |()| {
            black_box(kv::Get::new(key.as_str()).build(&cx).ok());
        },
    );
    let mut set = Bench::new(
        1024,
        || (),
        |()| {
            black_box(kv::Set::new(key.as_str(), value.clone()).build(&cx).ok());
        },
    );
    if wanted("build_get") || wanted("build_set") {
        let [g, s] = pair(&mut get, &mut set, trials, per_trial);
        out.push(result("build_get", PROTO, 0, g));
        out.push(result("build_set", PROTO, 0, s));
    }

    // Parses: proto's parse of the whole response against serde of the body alone.
    let get_op = kv::Get::new(data.key.clone());
    let items_op = kv::ListItems::new(data.prefix.clone());
    let keys_op = kv::ListKeys::new(data.prefix.clone());
    for (name, kind, batch) in [
        ("parse_get", Canned::Get, 1024),
        ("parse_items", Canned::Items, 1),
        ("parse_keys", Canned::Keys, 1),
    ] {
        if !wanted(name) {
            continue;
        }
        let response: Response<Bytes> = data.response(kind);
        let body = response.body().clone();
        let make = || response.clone();
        let mut proto = match kind {
            Canned::Get => Bench::new(batch, make, |r| {
                black_box(get_op.parse(r).ok());
            }),
            Canned::Items => Bench::new(batch, make, |r| {
                black_box(items_op.parse(r).ok());
            }),
            _ => Bench::new(batch, make, |r| {
                black_box(keys_op.parse(r).ok());
            }),
        };
        let mut serde = match kind {
            Canned::Keys => Bench::new(
                batch,
                || (),
                |()| {
                    black_box(serde_json::from_slice::<Vec<String>>(black_box(&body)).ok());
                },
            ),
            _ => Bench::new(
                batch,
                || (),
                |()| {
                    black_box(serde_json::from_slice::<Vec<KvEntry>>(black_box(&body)).ok());
                },
            ),
        };
        let [p, s] = pair(&mut proto, &mut serde, trials, per_trial);
        out.push(result(name, PROTO, body.len(), p));
        out.push(result(name, SERDE, body.len(), s));
    }
    out
}
