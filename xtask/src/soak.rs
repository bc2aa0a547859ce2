//! `cargo xtask soak` and `cargo xtask fuzz`.
//!
//! - `soak` runs the reliability suite at the full sizes listed in `tests/reliability/README.md`
//!   (release build, `CONSUL_KV_SOAK=1`, one scenario at a time), then the conformance suite
//!   for R19 (against the devserver, and against Consul 1.14.11 when `cargo xtask consul` has
//!   built it), and prints one table:
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
    let mut rows: Vec<Vec<String>> = stdout
        .lines()
        // libtest prints `test name ... ` before the test's own output on the same line.
        .filter_map(|l| l.split_once("RELIABILITY | ").map(|(_, rest)| rest))
        .map(|l| l.split(" | ").map(str::to_owned).collect())
        .collect();
    rows.push(conformance_row(root, &cargo, None)?);
    let bin = crate::consul::binary_path();
    if bin.is_file() {
        rows.push(conformance_row(root, &cargo, Some(bin.as_path()))?);
    }
    // R1 … R20 in order (a row's scenario starts with its number).
    let number = |r: &Vec<String>| -> u32 {
        r.first()
            .and_then(|s| s.strip_prefix('R'))
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u32::MAX)
    };
    rows.sort_by_key(number);
    println!("| scenario | figure | target | pass |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!("| {} |", r.join(" | "));
    }
    let passed = rows
        .iter()
        .filter(|r| r.last().map(String::as_str) == Some("PASS"))
        .count();
    let missing: Vec<String> = (1..=20)
        .filter(|n| !rows.iter().any(|r| number(r) == *n))
        .map(|n| format!("R{n}"))
        .collect();
    if !missing.is_empty() {
        println!("\nmissing rows: {}", missing.join(", "));
    }
    println!("\n{passed} passed, {} failed", rows.len() - passed);
    if out.status.success() && passed == rows.len() && !rows.is_empty() && missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "soak: {} of {} scenarios failed",
            rows.len() - passed,
            rows.len()
        ))
    }
}

/// R19: the conformance suite (the server against Consul's documented and recorded
/// behaviour), run once, as one row: how many cases passed.
fn conformance_row(root: &Path, cargo: &str, consul: Option<&Path>) -> Result<Vec<String>> {
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "--release",
        "--locked",
        "-p",
        "consul-kv-tests",
        "--test",
        "conformance",
    ])
    .current_dir(root)
    .stderr(Stdio::inherit());
    let log = crate::skip_log(match consul {
        Some(_) => "soak-skips-consul.log",
        None => "soak-skips-devserver.log",
    })?;
    cmd.env("CONSUL_KV_SKIP_LOG", &log);
    let against = match consul {
        Some(bin) => {
            cmd.env("CONSUL_KV_TEST_TARGET", "consul")
                .env("CONSUL_KV_CONSUL_BIN", bin);
            format!("Consul {}", crate::consul::CONSUL_VERSION)
        }
        None => {
            cmd.env("CONSUL_KV_TEST_TARGET", "devserver");
            "the devserver".to_owned()
        }
    };
    let out = cmd
        .output()
        .map_err(|e| format!("could not run the conformance suite: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let count = |what: &str| -> usize {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix("test result: "))
            .filter_map(|l| {
                l.split(';')
                    .find_map(|p| p.trim().strip_suffix(what))
                    .and_then(|n| n.trim().rsplit(' ').next())
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .sum()
    };
    let (passed, failed) = (count(" passed"), count(" failed"));
    // A case that needs a devserver hook (fault switches, clock control) records itself and
    // returns early against a real agent; it counts as passed in libtest's total, so the
    // row says how many of the passes ran nothing.
    let skipped = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    let ran = passed.saturating_sub(skipped);
    let pass = out.status.success() && failed == 0 && ran >= 60;
    Ok(vec![
        format!("R19 server conformance against {against}"),
        format!("{ran} cases ran and passed, {failed} failed, {skipped} skipped (need a devserver hook)"),
        "every case that runs passes; ≥ 60 run".to_owned(),
        if pass { "PASS" } else { "FAIL" }.to_owned(),
    ])
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
