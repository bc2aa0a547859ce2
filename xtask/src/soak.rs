//! `cargo xtask soak` and `cargo xtask fuzz`.
//!
//! - `soak` runs the reliability suite at the full sizes listed in `tests/reliability/README.md`
//!   (release build, `CONSUL_KV_SOAK=1`, one scenario at a time) and prints one table:
//!   scenario, figure, target, pass.
//! - `fuzz [SECONDS]` runs every cargo-fuzz target in `fuzz/` for SECONDS each (default 60) on
//!   a nightly toolchain, keeping the corpus in `fuzz/corpus/<target>`; without nightly it says
//!   it was skipped.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::Result;

/// Runs the reliability suite at full size and prints the table.
pub(crate) fn soak(root: &Path) -> Result {
    let cargo = crate::cargo();
    eprintln!("$ CONSUL_KV_SOAK=1 cargo test --release -p consul-kv-tests --test reliability -- --nocapture --test-threads=1");
    let out = Command::new(&cargo)
        .args([
            "test",
            "--release",
            "--locked",
            "-p",
            "consul-kv-tests",
            "--test",
            "reliability",
            "--",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CONSUL_KV_SOAK", "1")
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run cargo test: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        // libtest prints `test name ... ` before the test's own output on the same line.
        .filter_map(|l| l.split_once("RELIABILITY | ").map(|(_, rest)| rest))
        .map(|l| l.split(" | ").collect())
        .collect();
    println!("| scenario | figure | target | pass |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!("| {} |", r.join(" | "));
    }
    let passed = rows.iter().filter(|r| r.last() == Some(&"PASS")).count();
    println!("\n{passed} passed, {} failed", rows.len() - passed);
    if out.status.success() && passed == rows.len() && !rows.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "soak: {} of {} scenarios failed",
            rows.len() - passed,
            rows.len()
        ))
    }
}

fn has_nightly() -> bool {
    Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn has_cargo_fuzz() -> bool {
    Command::new(crate::cargo())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs each fuzz target for the given time.
pub(crate) fn fuzz(root: &Path, args: &[String]) -> Result {
    let seconds: u64 = match args.first() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("not a number of seconds: {s:?}"))?,
        None => 60,
    };
    if !has_nightly() {
        eprintln!("fuzz: SKIPPED: no nightly toolchain (cargo-fuzz needs one)");
        return Ok(());
    }
    if !has_cargo_fuzz() {
        eprintln!("fuzz: cargo-fuzz is missing; installing it from crates.io");
        crate::run(&crate::cargo(), &["install", "cargo-fuzz", "--locked"], &[])?;
    }
    let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml"))
        .map_err(|e| format!("fuzz/Cargo.toml: {e}"))?;
    let targets: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "consul-kv-proto-fuzz")
        .collect();
    let time = format!("-max_total_time={seconds}");
    for t in &targets {
        let corpus = root.join("fuzz/corpus").join(t);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let status = Command::new("rustup")
            .args(["run", "nightly", "cargo", "fuzz", "run", t, "--", &time])
            .current_dir(root)
            .status()
            .map_err(|e| format!("cargo fuzz run {t}: {e}"))?;
        if !status.success() {
            return Err(format!("fuzz target {t} failed: see fuzz/artifacts/{t}"));
        }
        let kept = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        eprintln!("fuzz: {t}: {seconds} s, no crash; corpus {kept} inputs");
    }
    Ok(())
}
