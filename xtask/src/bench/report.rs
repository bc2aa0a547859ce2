//! The report (`target/bench/report.md`): targets and verdicts, the summary tables, the
//! per-case tables, the proto micro benchmarks and where the time goes.

use std::fmt::Write as _;
use std::time::Duration;

use super::build::{Contender, Kind};
use super::cases::{Case, Metric, Sizes};
use super::machine::Machine;
use super::run::{Alloc, Micro, Record, Status};
use super::{SUMMARY_END, SUMMARY_START};

pub(super) struct Report {
    pub(super) command: String,
    pub(super) sizes: Sizes,
    pub(super) cases: Vec<Case>,
    pub(super) contenders: Vec<Contender>,
    pub(super) records: Vec<Record>,
    /// `consul-kv-bench pair` results of the target cases, by case id.
    pub(super) paired: Vec<(&'static str, serde_json::Value)>,
    pub(super) micro: Vec<Micro>,
    /// Allocations per parse (`consul-kv-bench-allocs`).
    pub(super) allocs: Vec<Alloc>,
    /// The huge-tree read (`consul-kv-bench tree`), when it ran.
    pub(super) tree: Option<serde_json::Value>,
    pub(super) skipped: Vec<String>,
    pub(super) machine: Machine,
    pub(super) elapsed: Duration,
}

/// A target's verdict.
pub(super) struct Verdict {
    pub(super) target: String,
    pub(super) measured: String,
    pub(super) pass: Option<bool>,
}

impl Report {
    pub(super) fn record(&self, contender: &str, case: &str) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.contender == contender && r.case == case)
    }

    /// The figure a case is judged by: p50 µs (latency) or ops/s (throughput).
    pub(super) fn figure(&self, contender: &str, case: &Case) -> Option<f64> {
        let r = self.record(contender, case.id).filter(|r| r.ok())?;
        match case.metric {
            Metric::Latency => r.num("p50_us"),
            Metric::Throughput => r.num("ops_per_sec"),
        }
        .filter(|v| *v > 0.0)
    }

    /// Speed relative to `base` (higher is better): ops/ops or base latency / latency.
    pub(super) fn speed(&self, contender: &str, base: &str, case: &Case) -> Option<f64> {
        let (a, b) = (self.figure(contender, case)?, self.figure(base, case)?);
        Some(match case.metric {
            Metric::Latency => b / a,
            Metric::Throughput => a / b,
        })
    }

    /// The best peer of a case (by its figure), optionally Rust peers only.
    pub(super) fn best_peer(&self, case: &Case, rust_only: bool) -> Option<&'static str> {
        self.contenders
            .iter()
            .filter(|c| c.is_peer() && (!rust_only || c.kind == Kind::RustPeer))
            .filter_map(|c| self.figure(c.name, case).map(|f| (c.name, f)))
            .max_by(|a, b| match case.metric {
                Metric::Latency => b.1.total_cmp(&a.1),
                Metric::Throughput => a.1.total_cmp(&b.1),
            })
            .map(|(n, _)| n)
    }

    pub(super) fn case(&self, id: &str) -> Option<&Case> {
        self.cases.iter().find(|c| c.id == id)
    }

    pub(super) fn micro(&self, name: &str, implementation: &str) -> Option<&Micro> {
        self.micro
            .iter()
            .find(|m| m.name == name && m.implementation == implementation)
    }

    /// The ratio of consul-kv to the floor on `case` as a latency factor (≥ 1 is slower) or a
    /// throughput factor (≤ 1 is slower): the median runs' and the best runs' (min over
    /// rounds), so that noise on a shared machine shows.
    fn vs_floor(&self, case: &Case) -> (Option<f64>, Option<f64>) {
        let median = self.speed("consul-kv", "floor", case);
        let best = |name: &str| {
            let (lo, hi) = self.record(name, case.id)?.range?;
            Some(match case.metric {
                Metric::Latency => lo,
                Metric::Throughput => hi,
            })
        };
        let best = best("consul-kv")
            .zip(best("floor"))
            .map(|(a, b)| match case.metric {
                Metric::Latency => b / a,
                Metric::Throughput => a / b,
            });
        match case.metric {
            Metric::Latency => (median.map(|s| 1.0 / s), best.map(|s| 1.0 / s)),
            Metric::Throughput => (median, best),
        }
    }

    /// The paired run of a case (`consul-kv-bench pair`): the median, smallest and largest
    /// per-pair ratio of consul-kv to the floor, as a latency factor (≥ 1 is slower) or a
    /// throughput factor (≤ 1 is slower), and the number of pairs.
    fn paired(&self, case: &Case) -> Option<(f64, f64, f64, u64)> {
        let j = &self.paired.iter().find(|(id, _)| *id == case.id)?.1;
        let r = match case.metric {
            Metric::Latency => &j["p50_ratio"],
            Metric::Throughput => &j["ops_ratio"],
        };
        Some((
            r["median"].as_f64()?,
            r["min"].as_f64()?,
            r["max"].as_f64()?,
            j["slices"].as_u64()?,
        ))
    }

    /// A floor-relative target: judged by the paired run when there is one, else by the
    /// separate runs' medians; both shown.
    fn vs_floor_verdict(&self, case: &Case, target: String, ok: impl Fn(f64) -> bool) -> Verdict {
        let (median, best) = self.vs_floor(case);
        let separate = match (median, best) {
            (Some(m), Some(b)) => format!("{m:.2}× (best round {b:.2}×)"),
            (Some(m), None) => format!("{m:.2}×"),
            _ => "n/a".to_owned(),
        };
        match self.paired(case) {
            Some((m, lo, hi, n)) => Verdict {
                target,
                measured: format!(
                    "{m:.2}× paired ({lo:.2}–{hi:.2}× over {n} pairs); separate runs {separate}"
                ),
                pass: Some(ok(m)),
            },
            None => Verdict {
                target,
                measured: separate,
                pass: median.map(ok),
            },
        }
    }

    pub(super) fn verdicts(&self) -> Vec<Verdict> {
        let mut v = Vec::new();
        let latency = |id: &str, target: String, limit: f64, v: &mut Vec<Verdict>| {
            let Some(case) = self.case(id) else { return };
            v.push(self.vs_floor_verdict(case, target, |r| r <= limit));
        };
        latency(
            "get-seq-fixed",
            "sequential get p50 ≤ 1.10× the floor (fixed)".into(),
            1.10,
            &mut v,
        );
        latency(
            "get-seq-dev",
            "sequential get p50 ≤ 1.10× the floor (devserver)".into(),
            1.10,
            &mut v,
        );
        for id in ["get-tput-1", "get-tput-16", "get-tput-64"] {
            let Some(case) = self.case(id) else { continue };
            let n = case.inflight;
            v.push(self.vs_floor_verdict(
                case,
                format!("throughput ≥ 0.9× the floor, {n} in flight"),
                |r| r >= 0.9,
            ));
        }
        latency(
            "cas",
            "CAS read-modify-write loop p50 ≤ 1.10× the floor".into(),
            1.10,
            &mut v,
        );
        if let Some(case) = self.case("items") {
            let ours = self.figure("consul-kv", case);
            let peer = self.best_peer(case, false);
            let theirs = peer.and_then(|p| self.figure(p, case));
            let ms = |us: f64| format!("{:.1} ms", us / 1000.0);
            v.push(Verdict {
                target: format!("items() over {} keys: ahead of every peer", self.sizes.keys),
                measured: match (ours, peer, theirs) {
                    (Some(a), Some(p), Some(b)) => format!("{} vs {p} {}", ms(a), ms(b)),
                    (Some(a), _, _) => format!("{} (no peer measured)", ms(a)),
                    _ => "n/a".into(),
                },
                pass: ours.zip(theirs).map(|(a, b)| a < b),
            });
        }
        let r = self
            .micro("parse_items", crate_proto())
            .zip(self.micro("parse_items", SERDE))
            .map(|(p, s)| p.ns_per_op / s.ns_per_op);
        v.push(Verdict {
            target: "items() parse ≤ 1.0× a bare typed serde parse".into(),
            measured: r.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}×")),
            pass: r.map(|r| r <= 1.0),
        });
        latency(
            "watch",
            format!("{}-watcher wake p50 ≤ 1.2× the floor", self.sizes.watchers),
            1.2,
            &mut v,
        );
        let alloc = |imp: &str| {
            self.allocs
                .iter()
                .find(|a| a.name == "parse_items" && a.implementation == imp)
        };
        if let Some(a) = alloc(crate_proto()) {
            let serde = alloc(SERDE).map_or(String::new(), |s| {
                format!(" (bare serde parse: {})", s.allocs)
            });
            v.push(Verdict {
                target: format!(
                    "allocations per items() parse of {} keys: at most one per entry (its key)",
                    a.entries
                ),
                measured: format!("{}{serde}", a.allocs),
                // The key strings, plus a few vectors that grow by doubling.
                pass: Some(a.allocs <= a.entries + 64),
            });
        }
        let tree = self.tree.as_ref();
        let keys = tree.and_then(|t| t["tree"]["keys"].as_u64());
        let peak = tree.and_then(|t| t["stream_all"]["peak_rss_growth_kib_median"].as_u64());
        let secs = tree.and_then(|t| t["stream_all"]["seconds_median"].as_f64());
        v.push(Verdict {
            target: format!(
                "items_stream() over {} keys × 100 B: peak RSS growth under 32 MiB",
                keys.unwrap_or(self.sizes.tree_keys as u64)
            ),
            measured: match (peak, secs) {
                (Some(p), Some(s)) => format!("{:.1} MiB in {s:.1} s (median)", p as f64 / 1024.0),
                _ => "not measured".into(),
            },
            pass: peak.map(|p| p < 32 * 1024),
        });
        v
    }

    /// Allocations per parse and the huge-tree read.
    fn memory_tables(&self) -> String {
        let mut md = String::new();
        if !self.allocs.is_empty() {
            let _ = writeln!(
                md,
                "\n### Allocations per parse (`consul-kv-bench-allocs`)\n\n\
                 | parse | entries | consul-kv-proto | bare serde parse |\n|---|---:|---:|---:|"
            );
            let mut names: Vec<&str> = self.allocs.iter().map(|a| a.name.as_str()).collect();
            names.dedup();
            for name in names {
                let find = |imp: &str| {
                    self.allocs
                        .iter()
                        .find(|a| a.name == name && a.implementation == imp)
                };
                let cell = |a: Option<&Alloc>| {
                    a.map_or("n/a".to_owned(), |a| {
                        format!("{} ({:.1} MB)", a.allocs, a.bytes as f64 / 1e6)
                    })
                };
                let entries = find(crate_proto()).map_or(0, |a| a.entries);
                let _ = writeln!(
                    md,
                    "| {name} | {entries} | {} | {} |",
                    cell(find(crate_proto())),
                    cell(find(SERDE))
                );
            }
        }
        if let Some(t) = &self.tree {
            let row = |label: &str, j: &serde_json::Value| {
                let f = |k: &str| j[k].as_f64();
                format!(
                    "| {label} | {} | {} / {} s | {} / {} MiB |\n",
                    j["entries"]
                        .as_u64()
                        .map_or("n/a".into(), |n| n.to_string()),
                    f("seconds_min").map_or("n/a".into(), |x| format!("{x:.2}")),
                    f("seconds_median").map_or("n/a".into(), |x| format!("{x:.2}")),
                    f("peak_rss_growth_kib_min")
                        .map_or("n/a".into(), |x| format!("{:.1}", x / 1024.0)),
                    f("peak_rss_growth_kib_median")
                        .map_or("n/a".into(), |x| format!("{:.1}", x / 1024.0)),
                )
            };
            let _ = writeln!(
                md,
                "\n### A huge tree (`consul-kv-bench tree`)\n\n\
                 {} keys × {} B written to a devserver in its own process (fill {:.0} s); \
                 each read runs in a fresh client process: its time and the growth of that \
                 process's peak RSS over its RSS before the read, min / median of {} \
                 round(s). `items()` over the whole tree: {}.\n\n\
                 | read | entries | time (min / median) | peak RSS growth (min / median) |\n|---|---:|---:|---:|",
                t["tree"]["keys"],
                t["tree"]["value_size"],
                t["tree"]["fill_seconds"].as_f64().unwrap_or(0.0),
                t["stream_all"]["rounds"],
                if t["items_all"]["refused"].as_bool() == Some(true) {
                    format!(
                        "refused, over the {} B body limit",
                        t["items_all"]["limit"]
                    )
                } else {
                    "read whole".to_owned()
                }
            );
            md.push_str(&row("items_stream(), the whole tree", &t["stream_all"]));
            md.push_str(&row(
                "items(), one bucket (the largest it can hold)",
                &t["items_bucket"],
            ));
            md.push_str(&row("items_stream(), the same bucket", &t["stream_bucket"]));
        }
        md
    }

    pub(super) fn markdown(&self) -> String {
        let mut md = String::new();
        let s = &self.sizes;
        let _ = writeln!(md, "# consul-kv benchmarks\n");
        let _ = writeln!(
            md,
            "`{}` on {}, {}. Every contender ran against the same two servers in this one run, \
             one process at a time: the devserver and a fixed-response hyper server that \
             answers every request with one canned Consul response (client overhead only). \
             Total {:.0} s.\n",
            self.command,
            self.machine.date,
            self.machine.line(),
            self.elapsed.as_secs_f64()
        );
        if s.quick {
            let _ = writeln!(
                md,
                "**Quick mode: tiny sizes, the figures are not meaningful.**\n"
            );
        }
        let _ = writeln!(md, "Contenders:\n");
        for (name, version) in &self.machine.versions {
            let _ = writeln!(md, "- `{name}`: {version}");
        }
        for line in &self.skipped {
            let _ = writeln!(md, "- {line}");
        }
        let _ = writeln!(md);
        let _ = writeln!(
            md,
            "Method: std `Instant` around every operation; p50/p99 are nearest-rank over all \
             samples of the measured phase (warm-up operations are not recorded: 100, or 1 \
             list call). Sequential runs: {} operations; throughput runs: {} s each; list \
             runs: {} calls over {} keys × {} B; watch: {} watchers × {} writes, each write \
             once every watcher waits. The whole matrix ran {} time(s), interleaved; each \
             figure is the run with the median p50 (latency) or ops/s (throughput). Peak \
             memory is the growth of the contender process's `VmHWM` over the list workload. \
             `× floor` is speed relative to the floor (1.00 = the floor; higher is faster).\n",
            s.seq_iterations,
            s.seconds,
            s.list_iterations,
            s.keys,
            s.value_size,
            s.watchers,
            s.rounds,
            s.repeat
        );

        md.push_str(SUMMARY_START);
        md.push('\n');
        md.push_str(&self.summary_tables());
        md.push_str(SUMMARY_END);
        md.push_str("\n\n");

        let _ = writeln!(md, "## Per workload\n");
        for case in &self.cases {
            md.push_str(&self.case_table(case));
        }
        md.push_str(&self.micro_table());
        md.push_str(&self.memory_tables());
        md.push_str(&self.where_time_goes());
        let _ = writeln!(
            md,
            "\nChart: `target/bench/report.svg`; raw results: `target/bench/results.jsonl`."
        );
        md
    }

    /// The targets and the one-table overview (also what the README shows).
    pub(super) fn summary_tables(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "\n### Targets\n");
        let _ = writeln!(md, "| target | measured | result |\n|---|---:|---|");
        for v in self.verdicts() {
            let result = match v.pass {
                Some(true) => "pass",
                Some(false) => "**miss**",
                None => "not measured",
            };
            let _ = writeln!(md, "| {} | {} | {} |", v.target, v.measured, result);
        }
        if !self.paired.is_empty() {
            let s = &self.sizes;
            let _ = writeln!(
                md,
                "\nThe floor-relative rows are judged \"paired\": `consul-kv-bench pair` runs \
                 consul-kv and the floor in one process against the same server, {} pairs of \
                 {} s slices, alternating which goes first, and takes the median of the \
                 per-pair ratios. On this kind of machine the scheduler places each new \
                 process's threads differently beside the server's, which moves a separate \
                 run by 10 % and more; the separate runs (one process per run, the median of \
                 {} rounds and the best round) are shown beside. consul-kv's connection cap \
                 is set 16 above the workers in flight when its default (64) is not (the floor \
                 has no cap).",
                s.pair_slices, s.pair_seconds, s.repeat
            );
        }
        let _ = writeln!(md, "\n### Overview\n");
        let _ = write!(md, "| workload |");
        for c in &self.contenders {
            let _ = write!(md, " {} |", c.name);
        }
        let _ = write!(md, "\n|---|");
        for _ in &self.contenders {
            md.push_str("---:|");
        }
        md.push('\n');
        for case in &self.cases {
            let what = match case.metric {
                Metric::Latency => "p50",
                Metric::Throughput => "ops/s",
            };
            let _ = write!(md, "| {} ({}, {what}) |", case.title, case.server);
            for c in &self.contenders {
                let cell = match self.record(c.name, case.id).map(|r| &r.status) {
                    Some(Status::Ok) => {
                        let fig = self.figure(c.name, case).unwrap_or(0.0);
                        let fig = match case.metric {
                            Metric::Latency => fmt_us(fig),
                            Metric::Throughput => fmt_ops(fig),
                        };
                        match self.speed(c.name, "floor", case) {
                            Some(r) if c.kind != Kind::Floor => format!("{fig} ({r:.2}×)"),
                            _ => fig,
                        }
                    }
                    Some(Status::Unsupported(_)) => "unsupported".into(),
                    Some(Status::Failed(_)) => "failed".into(),
                    None => "—".into(),
                };
                let _ = write!(md, " {cell} |");
            }
            md.push('\n');
        }
        let _ = writeln!(
            md,
            "\nIn brackets: speed relative to the floor (raw hyper + typed serde), higher is faster."
        );
        md
    }

    pub(super) fn case_table(&self, case: &Case) -> String {
        let mut md = String::new();
        let list = matches!(case.id, "items" | "keys");
        let _ = writeln!(md, "### {} ({})\n", case.title, case.server);
        let _ = write!(
            md,
            "| contender | ops/s | p50 | p99 | mean | {} over {} runs | × floor | consul-kv vs this |",
            match case.metric {
                Metric::Latency => "p50",
                Metric::Throughput => "ops/s",
            },
            self.sizes.repeat
        );
        if list {
            md.push_str(" entries | peak RSS Δ |");
        }
        md.push_str("\n|---|---:|---:|---:|---:|---:|---:|---:|");
        if list {
            md.push_str("---:|---:|");
        }
        md.push('\n');
        for c in &self.contenders {
            let Some(r) = self.record(c.name, case.id) else {
                continue;
            };
            match &r.status {
                Status::Ok => {
                    let n = |f: &str| r.num(f).unwrap_or(0.0);
                    let vs_floor = self
                        .speed(c.name, "floor", case)
                        .map_or_else(|| "—".into(), |x| format!("{x:.2}×"));
                    let vs_us = if c.is_peer() {
                        self.speed("consul-kv", c.name, case)
                            .map_or_else(|| "—".into(), |x| format!("{x:.2}×"))
                    } else {
                        "—".into()
                    };
                    let range = r.range.map_or_else(
                        || "—".into(),
                        |(lo, hi)| match case.metric {
                            Metric::Latency => format!("{} – {}", fmt_us(lo), fmt_us(hi)),
                            Metric::Throughput => format!("{} – {}", fmt_ops(lo), fmt_ops(hi)),
                        },
                    );
                    let _ = write!(
                        md,
                        "| {} | {} | {} | {} | {} | {} | {} | {} |",
                        c.name,
                        fmt_ops(n("ops_per_sec")),
                        fmt_us(n("p50_us")),
                        fmt_us(n("p99_us")),
                        fmt_us(n("mean_us")),
                        range,
                        vs_floor,
                        vs_us
                    );
                    if list {
                        let _ = write!(
                            md,
                            " {} | {} |",
                            r.num("entries")
                                .map_or_else(|| "—".into(), |e| format!("{e:.0}")),
                            r.num("rss_delta_kb")
                                .map_or_else(|| "—".into(), |k| format!("{:.1} MiB", k / 1024.0))
                        );
                    }
                    md.push('\n');
                    let errors = n("errors");
                    if errors > 0.0 {
                        let _ = writeln!(
                            md,
                            "| ↳ {} errors: {} | | | | | | | |{}",
                            errors,
                            md_escape(
                                r.json
                                    .get("note")
                                    .and_then(serde_json::Value::as_str)
                                    .unwrap_or("")
                            ),
                            if list { " | |" } else { "" }
                        );
                    }
                }
                Status::Unsupported(note) => {
                    let _ = writeln!(
                        md,
                        "| {} | unsupported: {} | | | | | | |{}",
                        c.name,
                        md_escape(note),
                        if list { " | |" } else { "" }
                    );
                }
                Status::Failed(note) => {
                    let _ = writeln!(
                        md,
                        "| {} | failed: {} | | | | | | |{}",
                        c.name,
                        md_escape(note),
                        if list { " | |" } else { "" }
                    );
                }
            }
        }
        if let Some(peer) = self.best_peer(case, false) {
            if let Some(x) = self.speed("consul-kv", peer, case) {
                let _ = writeln!(md, "\nconsul-kv vs the best peer here ({peer}): {x:.2}× (higher: consul-kv is faster).");
            }
        }
        md.push('\n');
        md
    }

    pub(super) fn micro_table(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "### Proto micro benchmarks (no I/O)\n");
        let _ = writeln!(
            md,
            "Median of 7 alternating trials. The baseline is a bare typed serde parse of the same \
             bytes (`Vec<KvEntry>` with owned strings, values left base64; `Vec<String>` for \
             keys); proto also decodes every value and parses the `X-Consul-*` headers.\n"
        );
        let _ = writeln!(md, "| benchmark | bytes | consul-kv-proto | serde typed | proto / serde |\n|---|---:|---:|---:|---:|");
        let mut names: Vec<&str> = Vec::new();
        for m in &self.micro {
            if !names.contains(&m.name.as_str()) {
                names.push(&m.name);
            }
        }
        for name in names {
            let p = self.micro(name, crate_proto());
            let s = self.micro(name, SERDE);
            let cell = |m: Option<&Micro>| match m {
                Some(m) if m.bytes > 0.0 => {
                    format!("{} ({:.0} MB/s)", fmt_ns(m.ns_per_op), m.mb_per_s)
                }
                Some(m) => fmt_ns(m.ns_per_op),
                None => "—".into(),
            };
            let ratio = p.zip(s).map_or_else(
                || "—".into(),
                |(p, s)| format!("{:.2}×", p.ns_per_op / s.ns_per_op),
            );
            let bytes = p.map_or(0.0, |m| m.bytes);
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {ratio} |",
                if bytes > 0.0 {
                    format!("{bytes:.0}")
                } else {
                    "—".into()
                },
                cell(p),
                cell(s)
            );
        }
        md.push('\n');
        md
    }

    /// Where consul-kv's time goes relative to the floor, from this run's own figures.
    pub(super) fn where_time_goes(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "### Where the time goes\n");
        if let Some(case) = self.case("get-seq-fixed") {
            if let (Some(us), Some(floor)) =
                (self.figure("consul-kv", case), self.figure("floor", case))
            {
                let proto = self
                    .micro("build_get", crate_proto())
                    .map_or(0.0, |m| m.ns_per_op)
                    + self
                        .micro("parse_get", crate_proto())
                        .map_or(0.0, |m| m.ns_per_op);
                let serde = self.micro("parse_get", SERDE).map_or(0.0, |m| m.ns_per_op);
                let _ = writeln!(
                    md,
                    "- Sequential get against the fixed server: consul-kv {} vs the floor {} \
                     (p50), {:+.1} µs per call. Proto's share, from the micro benchmarks: \
                     build + parse {} against the floor's serde parse {} ({:+.2} µs). The \
                     rest is the executor: the call deadline (a timer entry), the connection-cap \
                     permit, retry bookkeeping, per-connection byte counters (they tell a \
                     stale pooled connection from one that carried the request), and the \
                     facade's boxed future (`IntoFuture` needs a type it can name); no \
                     tracing span is built when no subscriber listens.",
                    fmt_us(us),
                    fmt_us(floor),
                    us - floor,
                    fmt_ns(proto),
                    fmt_ns(serde),
                    (proto - serde) / 1e3
                );
            }
        }
        if let (Some(p), Some(s)) = (
            self.micro("parse_items", crate_proto()),
            self.micro("parse_items", SERDE),
        ) {
            let _ = writeln!(
                md,
                "- items() parse: proto {} vs serde typed {} for {:.0} bytes ({:+.2} ms): \
                 proto decodes every base64 value into `Bytes` and checks the headers; the \
                 baseline leaves values as base64 strings.",
                fmt_ns(p.ns_per_op),
                fmt_ns(s.ns_per_op),
                p.bytes,
                (p.ns_per_op - s.ns_per_op) / 1e6
            );
        }
        for id in ["get-seq-fixed", "get-tput-64"] {
            let Some(case) = self.case(id) else { continue };
            if let Some((lo, hi)) = self.record("floor", id).and_then(|r| r.range) {
                let shown = |v: f64| match case.metric {
                    Metric::Latency => fmt_us(v),
                    Metric::Throughput => format!("{} ops/s", fmt_ops(v)),
                };
                let _ = writeln!(
                    md,
                    "- Noise: the floor alone ranged {} – {} over the {} rounds of \"{}\" \
                     ({:.0}% spread); load average at the end {}. The machine is shared, so \
                     ratios within one round are more telling than figures across runs.",
                    shown(lo),
                    shown(hi),
                    self.sizes.repeat,
                    case.title,
                    (hi - lo) / lo.max(f64::MIN_POSITIVE) * 100.0,
                    self.machine.load
                );
            }
        }
        if let Some(case) = self.case("get-tput-64") {
            if let Some(r) = self.speed("consul-kv", "floor", case) {
                let _ = writeln!(
                    md,
                    "- 64 in flight: consul-kv at {r:.2}× the floor. Both contenders and both \
                     servers share {} cores, so throughput here measures CPU per request as \
                     much as latency.",
                    self.machine.cores
                );
            }
        }
        md
    }
}

pub(super) fn crate_proto() -> &'static str {
    "consul-kv-proto"
}

pub(super) const SERDE: &str = "serde typed";

pub(super) fn fmt_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else if us >= 100.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.1} µs")
    }
}

pub(super) fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

pub(super) fn fmt_ops(ops: f64) -> String {
    if ops >= 10_000.0 {
        format!("{:.1}k", ops / 1e3)
    } else {
        format!("{ops:.0}")
    }
}

pub(super) fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('\n', " ")
        .chars()
        .take(200)
        .collect()
}

pub(super) fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(fmt_us(12.34), "12.3 µs");
        assert_eq!(fmt_us(312.0), "312 µs");
        assert_eq!(fmt_us(25_000.0), "25.0 ms");
        assert_eq!(fmt_ops(41_234.0), "41.2k");
        assert_eq!(fmt_ns(1_500.0), "1.50 µs");
    }
}
