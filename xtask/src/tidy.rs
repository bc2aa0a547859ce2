//! `cargo xtask tidy`: repository rules that no compiler checks.
//!
//! - `consul-kv-proto`'s normal dependency tree holds no hyper, hyper-util or tokio.
//! - Every Rust source file starts with a `//!` module doc.
//! - No `#[ignore]` or `#[should_panic]` tests, and no `todo!`/`unimplemented!` stubs.
//! - The MSRV the README states equals the workspace `rust-version`.
//! - Library code never adds or subtracts a duration to or from an instant with `+`, `-`,
//!   `+=` or `-=` (that panics on overflow, and a server or caller controls the duration):
//!   it uses `consul_kv_proto::time::instant_after`, `checked_add` or
//!   `saturating_duration_since`. Clippy cannot catch this: `disallowed-methods` does not see
//!   operators, and `arithmetic_side_effects` flags every integer sum.

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
        let shown = file.strip_prefix(root).unwrap_or(file);
        if is_library_source(shown) {
            if let Ok(text) = std::fs::read_to_string(file) {
                for (line, what) in instant_arithmetic(&text) {
                    problems.push(format!(
                        "{}:{line}: `{what}` adds a duration to an instant unchecked; \
                         use consul_kv_proto::time::instant_after or checked_add",
                        shown.display()
                    ));
                }
            }
        }
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

/// The library crates' sources (not their tests, examples or benches).
fn is_library_source(path: &Path) -> bool {
    let p = path.to_string_lossy().replace('\\', "/");
    [
        "crates/consul-kv-proto/src/",
        "crates/consul-kv-hyper/src/",
        "crates/consul-kv/src/",
        "crates/consul-kv-devserver/src/",
    ]
    .iter()
    .any(|dir| p.starts_with(dir))
}

/// Names that hold an `Instant` in this code base, or spell one out.
fn is_instant_operand(operand: &str) -> bool {
    let o = operand.trim();
    let last = o
        .rsplit(['.', ':'])
        .next()
        .unwrap_or(o)
        .trim_end_matches("()")
        .to_ascii_lowercase();
    o.contains("Instant::now()")
        || o.contains("Instant::from_std")
        || matches!(
            last.as_str(),
            "now"
                | "at"
                | "started"
                | "start"
                | "deadline"
                | "last_ok"
                | "next"
                | "until"
                | "expires"
                | "not_before"
                | "refilled_at"
                | "since"
                | "t0"
        )
        || last.ends_with("_at")
        || last.ends_with("_until")
        || last.ends_with("_deadline")
}

/// `(line, expression)` for each `instant + duration` (or `-`, `+=`, `-=`) in library code,
/// outside tests (`#[cfg(test)]` starts the test module, which is the file's tail) and
/// comments.
fn instant_arithmetic(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        if raw.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let line = match raw.find("//") {
            Some(i) => &raw[..i],
            None => raw,
        };
        let bytes = line.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            if b != b'+' && b != b'-' {
                continue;
            }
            // A binary operator surrounded by spaces (`a + b`, `a += b`); `->` and unary minus
            // are not.
            let assign = bytes.get(i + 1) == Some(&b'=');
            let after = if assign { i + 2 } else { i + 1 };
            if i == 0 || bytes[i - 1] != b' ' || bytes.get(after) != Some(&b' ') {
                continue;
            }
            let left = operand_before(&line[..i - 1]);
            if is_instant_operand(left) {
                out.push((n + 1, line.trim().to_owned()));
                break;
            }
        }
    }
    out
}

/// The operand that ends `s`: a path, field or call chain such as `self.at` or
/// `Instant::now()`.
fn operand_before(s: &str) -> &str {
    let mut depth = 0i32;
    let mut start = s.len();
    for (i, c) in s.char_indices().rev() {
        match c {
            ')' | ']' => depth += 1,
            '(' | '[' if depth > 0 => depth -= 1,
            c if depth > 0 || c.is_alphanumeric() || matches!(c, '_' | '.' | ':') => {
                let _ = c;
            }
            _ => break,
        }
        start = i;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_instant_plus_duration() {
        let code = "fn f() {\n    let a = Instant::now() + d;\n    let b = last_ok + ttl / 2;\n    self.refilled_at += interval;\n    let c = deadline - margin;\n    let x = attempt + 1;\n    let y = a.saturating_add(b); // now + d in a comment\n    let z = -1;\n}\n#[cfg(test)]\nmod tests { fn t() { let _ = now + d; } }\n";
        let hits: Vec<usize> = instant_arithmetic(code)
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(hits, vec![2, 3, 4, 5]);
    }

    #[test]
    fn library_sources_only() {
        assert!(is_library_source(Path::new(
            "crates/consul-kv-hyper/src/client.rs"
        )));
        assert!(!is_library_source(Path::new(
            "crates/consul-kv-hyper/tests/executor.rs"
        )));
        assert!(!is_library_source(Path::new(
            "crates/consul-kv-bench/src/harness.rs"
        )));
    }
}
