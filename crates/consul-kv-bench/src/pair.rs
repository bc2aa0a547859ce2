//! A paired comparison of consul-kv with the floor in one process (`consul-kv-bench pair`):
//! short slices of the same workload against the same server, alternating which contender
//! goes first, and the median of the per-pair ratios.
//!
//! Why: on a small shared machine the scheduler places a client's threads beside the
//! server's differently from one process to the next, and a loopback round trip then takes
//! about 20 µs or about 40 µs. One process per run (what `run` does, and what every peer
//! contender must do) therefore moves a figure by more than the 10 % the targets resolve,
//! whichever client it is. In one process both contenders share that placement, the same
//! runtime and the same server, and alternating short slices spreads any drift over both.

use std::sync::Arc;

use consul_kv_bench_harness::{run_shared, Outcome, Params};

use crate::contenders::{ConsulKv, Floor};

/// One slice's figures.
#[derive(Debug, Clone, Copy)]
pub struct Slice {
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
}

/// The slices of both contenders and their ratios.
#[derive(Debug, Clone)]
pub struct Paired {
    /// The workload's name.
    pub workload: &'static str,
    /// Concurrent workers.
    pub inflight: usize,
    /// The floor's slices, in order.
    pub floor: Vec<Slice>,
    /// consul-kv's slices, in order.
    pub ours: Vec<Slice>,
}

/// Median, smallest and largest of some ratios.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when empty.
    pub fn of(mut values: Vec<f64>) -> Option<Self> {
        values.retain(|v| v.is_finite());
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = match n {
            0 => return None,
            n if n % 2 == 1 => values[n / 2],
            n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
        };
        Some(Self {
            median,
            min: values[0],
            max: values[n - 1],
        })
    }

    fn to_json(self) -> String {
        format!(
            "{{\"median\":{:.4},\"min\":{:.4},\"max\":{:.4}}}",
            self.median, self.min, self.max
        )
    }
}

impl Paired {
    /// consul-kv's throughput over the floor's, per pair of slices (higher is faster).
    pub fn ops_ratio(&self) -> Option<Spread> {
        self.ratio(|s| s.ops_per_sec)
    }

    /// consul-kv's median latency over the floor's, per pair of slices (lower is faster).
    pub fn p50_ratio(&self) -> Option<Spread> {
        self.ratio(|s| s.p50_us)
    }

    /// consul-kv's `figure` over the floor's, per pair of slices.
    fn ratio(&self, figure: fn(&Slice) -> f64) -> Option<Spread> {
        Spread::of(
            self.ours
                .iter()
                .zip(&self.floor)
                .map(|(o, f)| figure(o) / figure(f))
                .collect(),
        )
    }

    /// One JSON line: the slices and both ratios.
    pub fn to_json(&self) -> String {
        let list = |s: &[Slice], f: fn(&Slice) -> f64| {
            s.iter()
                .map(|x| format!("{:.1}", f(x)))
                .collect::<Vec<_>>()
                .join(",")
        };
        let spread = |s: Option<Spread>| s.map_or_else(|| "null".to_owned(), Spread::to_json);
        format!(
            "{{\"workload\":\"{}\",\"inflight\":{},\"slices\":{},\
             \"floor\":{{\"ops_per_sec\":[{}],\"p50_us\":[{}]}},\
             \"consul_kv\":{{\"ops_per_sec\":[{}],\"p50_us\":[{}]}},\
             \"ops_ratio\":{},\"p50_ratio\":{}}}",
            self.workload,
            self.inflight,
            self.ours.len(),
            list(&self.floor, |x| x.ops_per_sec),
            list(&self.floor, |x| x.p50_us),
            list(&self.ours, |x| x.ops_per_sec),
            list(&self.ours, |x| x.p50_us),
            spread(self.ops_ratio()),
            spread(self.p50_ratio()),
        )
    }
}

/// Runs `slices` pairs of slices of `p`'s workload (each bounded by `p.seconds`, or by
/// `p.iterations` when that is zero), the floor first in even pairs and consul-kv first in
/// odd ones.
///
/// # Errors
/// A contender cannot be built, or a slice has a failed operation (a comparison with
/// failures in it would not be a fair one).
pub async fn run(p: &Params, slices: usize) -> Result<Paired, String> {
    let floor = Arc::new(Floor::new(p)?);
    let ours = Arc::new(ConsulKv::new(p)?);
    let mut out = Paired {
        workload: p.workload.name(),
        inflight: p.inflight,
        floor: Vec::with_capacity(slices),
        ours: Vec::with_capacity(slices),
    };
    for i in 0..slices.max(1) {
        let (f, o) = if i % 2 == 0 {
            let f = slice("floor", run_shared(Arc::clone(&floor), p).await)?;
            (
                f,
                slice("consul-kv", run_shared(Arc::clone(&ours), p).await)?,
            )
        } else {
            let o = slice("consul-kv", run_shared(Arc::clone(&ours), p).await)?;
            (slice("floor", run_shared(Arc::clone(&floor), p).await)?, o)
        };
        out.floor.push(f);
        out.ours.push(o);
    }
    Ok(out)
}

fn slice(name: &str, o: Outcome) -> Result<Slice, String> {
    if o.unsupported || o.errors > 0 || o.count == 0 {
        return Err(format!(
            "{name}: {} ({} errors)",
            if o.note.is_empty() {
                "no operation succeeded"
            } else {
                &o.note
            },
            o.errors
        ));
    }
    Ok(Slice {
        ops_per_sec: o.ops_per_sec,
        p50_us: o.p50_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_median_and_the_range() {
        let s = Spread::of(vec![1.2, 0.8, 1.0]).unwrap();
        assert_eq!(
            s,
            Spread {
                median: 1.0,
                min: 0.8,
                max: 1.2
            }
        );
        let even = Spread::of(vec![4.0, 1.0, 2.0, 3.0]).unwrap();
        assert!((even.median - 2.5).abs() < 1e-12);
        assert_eq!(Spread::of(vec![f64::NAN]), None);
        assert_eq!(Spread::of(Vec::new()), None);
    }

    #[test]
    fn ratios_pair_slices_in_order() {
        let s = |ops: f64, p50: f64| Slice {
            ops_per_sec: ops,
            p50_us: p50,
        };
        let p = Paired {
            workload: "get",
            inflight: 4,
            floor: vec![s(100.0, 10.0), s(200.0, 20.0), s(100.0, 10.0)],
            ours: vec![s(90.0, 11.0), s(200.0, 20.0), s(50.0, 30.0)],
        };
        let ops = p.ops_ratio().unwrap();
        assert!((ops.median - 0.9).abs() < 1e-12 && ops.min == 0.5 && ops.max == 1.0);
        let lat = p.p50_ratio().unwrap();
        assert!((lat.median - 1.1).abs() < 1e-12 && lat.max == 3.0);
        let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(json["slices"], 3);
        assert_eq!(json["ops_ratio"]["min"], 0.5);
    }
}
