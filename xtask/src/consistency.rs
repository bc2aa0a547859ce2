//! `cargo xtask consistency [small|full]`: the consistency suite against a real three-server
//! Consul cluster, four faults × three read modes, histories checked for linearizability by
//! porcupine (`xtask/linearizability`, Go), and a lock under a paused leader. Prints the table.
//!
//! `cargo xtask ci` runs the same suite at the small size inside `cargo test --workspace` and
//! then prints its table with [`ci_report`], or says loudly why it was skipped.

use std::path::Path;
use std::process::Command;

use crate::Result;

/// Runs the suite at `small` or `full` size (default `full`) and prints the table.
pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let size = match args.first().map(String::as_str) {
        None | Some("full") => "full",
        Some("small") => "small",
        Some(other) => return Err(format!("unknown size {other:?}: small or full")),
    };
    if !crate::consul::go_available() {
        skipped("no Go toolchain: neither a Consul agent nor the checker can be built");
        return Ok(());
    }
    let bin = crate::consul::ensure_consul(root)?;
    let bin = bin.display().to_string();
    let result = crate::run(
        &crate::cargo(),
        &[
            "test",
            "-p",
            "consul-kv-tests",
            "--locked",
            "--test",
            "consistency",
        ],
        &[
            ("CONSUL_KV_CONSISTENCY_SIZE", size),
            ("CONSUL_KV_CONSUL_BIN", bin.as_str()),
        ],
    );
    print_table(root);
    result
}

fn skipped(why: &str) {
    eprintln!(
        "\n!!! CONSISTENCY RUN SKIPPED: {why}.\n!!! No history was recorded or checked for \
         linearizability.\n"
    );
}

fn print_table(root: &Path) -> bool {
    let dir = root.join("target/consistency");
    if let Ok(why) = std::fs::read_to_string(dir.join("SKIPPED")) {
        skipped(why.trim());
        return false;
    }
    if let Ok(why) = std::fs::read_to_string(dir.join("UNCHECKED")) {
        eprintln!(
            "\n!!! CONSISTENCY HISTORIES NOT CHECKED: {}.\n!!! They are in {}.\n",
            why.trim(),
            dir.display()
        );
    }
    match std::fs::read_to_string(dir.join("table.md")) {
        Ok(t) => {
            println!("\n{t}");
            true
        }
        Err(_) => false,
    }
}

/// After `cargo test --workspace` in CI: prints the consistency table the suite wrote, or a
/// loud line saying why there is none.
pub(crate) fn ci_report(root: &Path) {
    let go = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !print_table(root) && !root.join("target/consistency/SKIPPED").exists() {
        skipped(if go {
            "the suite left no table"
        } else {
            "no Go toolchain"
        });
    }
}
