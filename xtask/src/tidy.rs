//! `cargo xtask tidy`: repository rules that no compiler checks.
//!
//! - `consul-kv-proto`'s normal dependency tree holds no hyper, hyper-util or tokio.
//! - Every Rust source file starts with a `//!` module doc.
//! - No `#[ignore]` or `#[should_panic]` tests, and no `todo!`/`unimplemented!` stubs.
//! - The MSRV the README states equals the workspace `rust-version`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;

/// Runs every rule and reports all failures at once.
pub(crate) fn run(root: &Path) -> Result {
    let mut problems = Vec::new();
    proto_dependencies(root, &mut problems);
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "tests", "fuzz/fuzz_targets"] {
        collect_rs(&root.join(dir), &mut files);
    }
    for file in &files {
        check_file(root, file, &mut problems);
    }
    msrv(root, &mut problems);
    if problems.is_empty() {
        eprintln!("tidy: {} Rust files checked, all rules hold", files.len());
        Ok(())
    } else {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        Err(format!("tidy found {} problem(s)", problems.len()))
    }
}

fn proto_dependencies(root: &Path, problems: &mut Vec<String>) {
    let out = Command::new(crate::cargo())
        .args([
            "tree",
            "-p",
            "consul-kv-proto",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--locked",
        ])
        .current_dir(root)
        .output();
    match out {
        Err(e) => problems.push(format!("could not run cargo tree: {e}")),
        Ok(o) if !o.status.success() => problems.push(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            for line in text.lines() {
                let name = line.split_whitespace().next().unwrap_or_default();
                if matches!(name, "hyper" | "hyper-util" | "tokio") {
                    problems.push(format!(
                        "consul-kv-proto depends on {name} (it must stay sans-IO)"
                    ));
                }
            }
        }
    }
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != "corpus" && name != "artifacts" {
                collect_rs(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn check_file(root: &Path, file: &Path, problems: &mut Vec<String>) {
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let Ok(text) = std::fs::read_to_string(file) else {
        problems.push(format!("{shown}: unreadable"));
        return;
    };
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    if !first.trim_start().starts_with("//!") {
        problems.push(format!("{shown}: does not start with a //! module doc"));
    }
    // This file names the banned patterns itself.
    if shown.ends_with("tidy.rs") {
        return;
    }
    let banned = [
        ["#[", "ignore"].concat(),
        ["#[", "should_panic"].concat(),
        ["todo", "!("].concat(),
        ["unimplemented", "!("].concat(),
    ];
    for (n, line) in text.lines().enumerate() {
        for b in &banned {
            if line.contains(b.as_str()) {
                problems.push(format!("{shown}:{}: `{b}` is not allowed", n + 1));
            }
        }
    }
}

/// The workspace `rust-version` (the MSRV), from the root `Cargo.toml`.
pub(crate) fn workspace_rust_version(root: &Path) -> Option<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
}

fn msrv(root: &Path, problems: &mut Vec<String>) {
    let Some(version) = workspace_rust_version(root) else {
        problems.push("Cargo.toml has no workspace rust-version".to_owned());
        return;
    };
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
    let stated = format!("MSRV: Rust {version}");
    if !readme.contains(&stated) {
        problems.push(format!(
            "README.md must state `{stated}` (the workspace rust-version)"
        ));
    }
}
