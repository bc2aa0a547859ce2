//! `cargo xtask bench watch`: watch fan-out, with and without shared blocking queries.
//!
//! Builds `consul-kv-bench` (release), starts `consul-kv-bench serve` (the devserver in its own
//! process), then runs `consul-kv-bench watch-fanout` once per configuration, one process
//! each: 1,000 and 10,000 subscribers of 10 keys, with one shared blocking query per key and
//! with one query per subscriber, 50 writes each, one every 50 ms (20 writes/s). Prints a table and writes it to
//! `target/bench/watch.md` (the raw lines to `target/bench/watch.jsonl`).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;

use super::build::{build_bench_binary, niced, target_dir};
use super::cases::Sizes;
use super::run::{parse_line, Servers};

/// (subscribers, shared)
const CONFIGS: [(usize, bool); 4] = [(1000, true), (1000, false), (10_000, true), (10_000, false)];
const KEYS: usize = 10;
const WRITES: usize = 50;

pub(super) fn run(root: &Path) -> Result<(), String> {
    let bin = build_bench_binary(root)?;
    let servers = Servers::start(&bin, &Sizes::quick())?;
    println!(
        "bench watch: devserver {} (its own process)",
        servers.devserver
    );
    let mut lines = Vec::new();
    for (subscribers, shared) in CONFIGS {
        println!(
            "bench watch: {subscribers} subscribers, {}",
            if shared { "shared" } else { "not shared" }
        );
        let out = niced(&bin)
            .args([
                "watch-fanout",
                "--target",
                &servers.devserver,
                "--subscribers",
                &subscribers.to_string(),
                "--keys",
                &KEYS.to_string(),
                "--shared",
                if shared { "yes" } else { "no" },
                "--writes",
                &WRITES.to_string(),
            ])
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() || line.is_empty() {
            return Err(format!(
                "watch-fanout {subscribers} {shared} failed ({}): {line}",
                out.status
            ));
        }
        lines.push(line);
    }
    drop(servers);
    let table = table(&lines);
    let dir = target_dir(root).join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("watch.md"), &table).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("watch.jsonl"), lines.join("\n") + "\n").map_err(|e| e.to_string())?;
    println!("\n{table}");
    Ok(())
}

fn table(lines: &[String]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Watch fan-out: {KEYS} keys, {WRITES} writes at 20/s, devserver in its own process \
         (`cargo xtask bench watch`)\n"
    );
    let _ = writeln!(
        t,
        "| subscribers | sharing | blocking queries | first answers | wake p50 | wake p99 | all woke p50 | all woke max | missed | answers / write | requests / s |"
    );
    let _ = writeln!(t, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for l in lines {
        let j = parse_line(l);
        let f = |k: &str| {
            j.get(k)
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(f64::NAN)
        };
        let shared = j
            .get("shared")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let _ = writeln!(
            t,
            "| {:.0} | {} | {:.0} | {:.0} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} | {:.1} | {:.0} |",
            f("subscribers"),
            if shared { "shared" } else { "one query each" },
            f("queries"),
            f("setup_ms"),
            f("wake_p50_ms"),
            f("wake_p99_ms"),
            f("all_woke_p50_ms"),
            f("all_woke_max_ms"),
            f("missed"),
            f("answers_per_write"),
            f("requests_per_s"),
        );
    }
    t
}
