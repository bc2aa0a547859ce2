//! `cargo xtask bench`: every contender against the same servers in one run, with a report
//! and a chart.
//!
//! ```text
//! cargo xtask bench [--quick] [--no-peers] [--update-readme]
//! cargo xtask bench readme        README's performance section from the last report
//! cargo xtask bench devserver     the devserver's own benchmark example, if it has one
//! cargo xtask bench gzip          items() with and without gzip (devserver, CONSUL_HTTP_ADDR)
//! cargo xtask bench watch         watch fan-out with and without shared queries (watch.rs)
//! ```
//!
//! 1. Builds (release) `consul-kv-bench` and the peers: the Rust ones from
//!    `xtask/bench-peers/rust` (their own workspace and target dir, `target/bench-peers`),
//!    the Go one from `xtask/bench-peers/go` with this machine's Go, and py-consul in a
//!    virtualenv at `target/bench-venv`. A peer whose toolchain is missing or whose build or
//!    install fails is skipped, with a line in the report saying why.
//! 2. Starts `consul-kv-bench serve` (the devserver and the fixed-response server), seeds the
//!    list workloads' keys through the devserver's HTTP API, and runs every contender ×
//!    workload against those same servers, one process per run, one after another.
//! 3. Runs the proto micro benchmarks, then writes `target/bench/report.md`,
//!    `target/bench/report.svg` and the raw result lines `target/bench/results.jsonl`.
//!
//! Processes run through `std::process::Command`, result lines are read with `serde_json`,
//! the SVG is written by hand. The rooms: `cases.rs` (sizes and what is measured), `build.rs`
//! (the contenders), `run.rs` (processes, servers, one run, result records), `machine.rs`,
//! `report.rs` (Markdown), `chart.rs` (SVG), `readme.rs` (README's performance section).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) mod build;
mod cases;
mod chart;
mod gzip;
pub(crate) mod machine;
mod readme;
mod report;
mod run;
mod watch;

use build::{bench_binary, build_all, niced, status};
use cases::{cases, Sizes, PAIRED};
use machine::Machine;
use readme::readme_from_report;
use report::Report;
use run::{capture, median_run, parse_line, run_one, Alloc, Micro, Record, Servers};

const HELP: &str = "\
cargo xtask bench [--quick] [--no-peers] [--update-readme]
cargo xtask bench readme      regenerate README.md's performance section from the last report
cargo xtask bench devserver   run the devserver's benchmark example
cargo xtask bench gzip        items() over 10,000 keys with and without gzip (devserver, and
                              the agent at CONSUL_HTTP_ADDR when set)
cargo xtask bench watch       watch fan-out: 1,000 and 10,000 subscribers, shared or not
  --quick          tiny sizes: a smoke run in well under a minute once built
  --no-peers       only consul-kv and the floor
  --update-readme  also regenerate README.md's performance section";

const README_START: &str = "<!-- bench:start -->";
const README_END: &str = "<!-- bench:end -->";
const SUMMARY_START: &str = "<!-- summary:start -->";
const SUMMARY_END: &str = "<!-- summary:end -->";

/// Entry point of `cargo xtask bench`.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let mut quick = false;
    let mut peers = true;
    let mut update_readme = false;
    let mut sub = None;
    for a in args {
        match a.as_str() {
            "--quick" => quick = true,
            "--no-peers" => peers = false,
            "--update-readme" => update_readme = true,
            "devserver" | "readme" | "gzip" | "watch" if sub.is_none() => sub = Some(a.as_str()),
            "-h" | "--help" | "help" => {
                println!("{HELP}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n\n{HELP}")),
        }
    }
    match sub {
        Some("devserver") => return devserver_bench(root),
        Some("gzip") => return gzip::run(root),
        Some("watch") => return watch::run(root),
        Some("readme") => return readme_from_report(root),
        _ => {}
    }
    let sizes = if quick { Sizes::quick() } else { Sizes::full() };
    let command = format!(
        "cargo xtask bench{}{}",
        if quick { " --quick" } else { "" },
        if peers { "" } else { " --no-peers" }
    );
    let started = Instant::now();
    let out_dir = root.join("target").join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;

    let mut skipped = Vec::new();
    let contenders = build_all(root, peers, &mut skipped)?;

    let bench_bin = bench_binary(root);
    let servers = Servers::start(&bench_bin, &sizes)?;
    eprintln!(
        "bench: devserver {} · fixed get {}",
        servers.devserver, servers.fixed_get
    );
    let seeded = capture(
        Command::new(&bench_bin).args([
            "seed",
            "--target",
            &servers.devserver,
            "--keys",
            &sizes.keys.to_string(),
            "--value-size",
            &sizes.value_size.to_string(),
        ]),
        Duration::from_secs(300),
    )?;
    eprintln!("bench: seeded {}", seeded.trim());

    let cases = cases(&sizes, &servers);
    // Every round runs every case for every contender, so a burst of load on the shared
    // machine hits one run of each, not all runs of one contender; the median run is kept.
    let mut runs: Vec<Vec<Record>> = vec![Vec::new(); cases.len() * contenders.len()];
    let mut raw = String::new();
    for round in 1..=sizes.repeat {
        for (ci, case) in cases.iter().enumerate() {
            for (ki, c) in contenders.iter().enumerate() {
                let rec = run_one(c, case, &sizes);
                eprintln!(
                    "bench: [{round}/{}] {:<14} {:<14} {}",
                    sizes.repeat,
                    c.name,
                    case.id,
                    rec.summary()
                );
                let _ = writeln!(raw, "{}", rec.raw_line(case.id, round));
                runs[ci * contenders.len() + ki].push(rec);
            }
        }
    }
    let records: Vec<Record> = runs
        .into_iter()
        .zip(
            cases
                .iter()
                .flat_map(|case| contenders.iter().map(move |_| case)),
        )
        .filter_map(|(r, case)| median_run(case, r))
        .collect();

    // The target cases again, consul-kv against the floor in one process: alternating short
    // slices share the scheduler placement that moves separate runs by 10 % and more.
    let mut paired = Vec::new();
    for case in cases.iter().filter(|c| PAIRED.contains(&c.id)) {
        let mut args = vec!["pair".to_owned()];
        args.extend(case.args.iter().cloned());
        args.extend([
            "--seconds".to_owned(),
            sizes.pair_seconds.to_string(),
            "--slices".to_owned(),
            sizes.pair_slices.to_string(),
        ]);
        match capture(Command::new(&bench_bin).args(&args), sizes.timeout) {
            Ok(out) => {
                let json = parse_line(out.trim());
                let shown = |k: &str| json[k]["median"].as_f64().unwrap_or(f64::NAN);
                eprintln!(
                    "bench: paired {:<14} ops ratio {:.2}, p50 ratio {:.2}",
                    case.id,
                    shown("ops_ratio"),
                    shown("p50_ratio")
                );
                let _ = writeln!(
                    raw,
                    "{}",
                    serde_json::json!({ "case": case.id, "paired": json })
                );
                paired.push((case.id, json));
            }
            Err(e) => skipped.push(format!("the paired run of {} failed: {e}", case.id)),
        }
    }

    eprintln!("bench: proto micro benchmarks");
    let micro_out = capture(
        Command::new(&bench_bin).args([
            "micro",
            "--seconds",
            &sizes.micro_seconds.to_string(),
            "--keys",
            &sizes.keys.to_string(),
            "--value-size",
            &sizes.value_size.to_string(),
        ]),
        Duration::from_secs(600),
    )?;
    let micro: Vec<Micro> = micro_out.lines().filter_map(Micro::parse).collect();
    raw.push_str(&micro_out);
    drop(servers);

    eprintln!("bench: allocations per parse");
    let allocs_out = capture(
        Command::new(bench_bin.with_file_name("consul-kv-bench-allocs")).args([
            "--keys",
            &sizes.keys.to_string(),
            "--value-size",
            &sizes.value_size.to_string(),
        ]),
        Duration::from_secs(300),
    )?;
    let allocs: Vec<Alloc> = allocs_out.lines().filter_map(Alloc::parse).collect();
    raw.push_str(&allocs_out);

    eprintln!(
        "bench: a tree of {} keys through items_stream() (its own devserver)",
        sizes.tree_keys
    );
    let tree = match capture(
        Command::new(&bench_bin).args([
            "tree",
            "--keys",
            &sizes.tree_keys.to_string(),
            "--value-size",
            "100",
            "--rounds",
            &sizes.tree_rounds.to_string(),
        ]),
        Duration::from_secs(1800),
    ) {
        Ok(out) => {
            raw.push_str(&out);
            out.lines()
                .map(parse_line)
                .find(|j| j.get("stream_all").is_some())
        }
        Err(e) => {
            skipped.push(format!("the huge-tree read failed: {e}"));
            None
        }
    };

    let machine = Machine::read(root, &contenders);
    let report = Report {
        command,
        sizes,
        cases,
        contenders,
        records,
        paired,
        micro,
        allocs,
        tree,
        skipped,
        machine,
        elapsed: started.elapsed(),
    };
    let md = report.markdown();
    let svg = report.svg();
    write(&out_dir.join("report.md"), &md)?;
    write(&out_dir.join("report.svg"), &svg)?;
    write(&out_dir.join("results.jsonl"), &raw)?;
    println!("{md}");
    eprintln!(
        "bench: wrote {} and {} in {:.0} s",
        out_dir.join("report.md").display(),
        out_dir.join("report.svg").display(),
        started.elapsed().as_secs_f64()
    );
    if update_readme {
        readme_from_report(root)?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

// The devserver's own benchmark.

fn devserver_bench(root: &Path) -> Result<(), String> {
    let dir = root.join("crates/consul-kv-devserver/examples");
    let mut examples: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    let stem = name.strip_suffix(".rs")?.to_owned();
                    stem.contains("bench").then_some(stem)
                })
                .collect()
        })
        .unwrap_or_default();
    examples.sort();
    if examples.is_empty() {
        println!(
            "bench: the devserver has no benchmark example yet \
             (crates/consul-kv-devserver/examples/*bench*.rs); nothing to run"
        );
        return Ok(());
    }
    for ex in examples {
        status(
            niced(crate::cargo()).current_dir(root).args([
                "run",
                "--release",
                "--locked",
                "-p",
                "consul-kv-devserver",
                "--example",
                &ex,
            ]),
            &format!("cargo run --release -p consul-kv-devserver --example {ex}"),
        )?;
    }
    Ok(())
}
