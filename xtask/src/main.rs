//! Project automation, run as `cargo xtask <command>` (std and serde_json only, so it builds in
//! seconds).
//!
//! Commands:
//! - `ci`: fmt check, clippy, tests, the MSRV build, docs, tidy — what `.ci/run` runs.
//! - `tidy`: the repository rules that no compiler checks.
//! - `msrv`: the library crates built with the README's MSRV toolchain (a step of `ci`).
//! - `soak`: the reliability suite at full size, as one table.
//! - `fuzz`: every cargo-fuzz target for a set time where nightly exists.
//! - `fixtures`: record real Consul responses into the proto crate's fixtures.
//! - `consul`: build (once) and print the path of a real Consul agent from Go modules.
//! - `consistency`: faults × read modes on a real cluster, checked for linearizability.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod agent;
mod bench;
mod browser;
mod bulk_bench;
mod cli_bench;
mod consistency;
mod consul;
mod fixtures;
mod soak;
mod tidy;

type Result<T = (), E = String> = std::result::Result<T, E>;

const HELP: &str = "\
cargo xtask <command>

Commands:
  bench     every client against the same servers: target/bench/report.md + report.svg
            (`bench bulk`: put_all and import beside one PUT per key: target/bench/bulk.md)
            (`bench cli`: the consul-kv binary beside consul kv: target/bench/cli.md)
  ci        fmt --check, clippy -D warnings, tests, MSRV build, docs -D warnings, tidy
  consul    build (once, cached outside the repo) a real Consul agent; print its path
  consistency [small|full]  faults x read modes on 3 Consul servers, checked for linearizability
  fixtures  record real Consul responses into crates/consul-kv-proto/tests/fixtures
  soak      the reliability suite at full size; prints scenario | figure | target | pass
  fuzz [S]  run every cargo-fuzz target for S seconds (default 60) where nightly exists
  msrv      build the library crates with the MSRV toolchain (rustup; a step of ci)
  tidy      repository rules: //! module docs, no ignored tests, proto dependency tree, MSRV
  help      this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("help");
    let rest = args.get(1..).unwrap_or_default();
    let result = match cmd {
        "bench" if rest.first().is_some_and(|a| a == "bulk") => {
            bulk_bench::run(&root(), rest.get(1..).unwrap_or_default())
        }
        "bench" if rest.first().is_some_and(|a| a == "cli") => {
            cli_bench::run(&root(), rest.get(1..).unwrap_or_default())
        }
        "bench" => bench::run(&root(), rest),
        "ci" => ci(rest),
        "tidy" => tidy::run(&root()),
        "msrv" => msrv_build(),
        "fixtures" => fixtures::run(&root()),
        "soak" => soak::soak(&root()),
        "fuzz" => soak::fuzz(&root(), rest),
        "consul" => consul::ensure_consul(&root()).map(|p| println!("{}", p.display())),
        "consistency" => consistency::run(&root(), rest),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of `xtask/`).
fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Runs a command in the workspace root, echoing it; fails on a non-zero exit.
fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result {
    let shown = format!("{program} {}", args.join(" "));
    eprintln!("\n$ {shown}");
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root())
        .status()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    eprintln!("  ({shown}: {:.1} s)", start.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed with {status}"))
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The library crates (and the devserver binary), as users build them.
const PUBLISHED: [&str; 4] = [
    "consul-kv-proto",
    "consul-kv-hyper",
    "consul-kv",
    "consul-kv-devserver",
];

/// Builds the published crates with the MSRV toolchain (the workspace `rust-version`, which
/// the README states), so the MSRV is checked, not only stated. Only their libraries and
/// binaries: the test suites' dev-dependencies need a newer compiler, and users never build
/// them. Needs rustup; installs the toolchain (minimal profile) when it is missing. Without
/// rustup, or when the install fails (no network), the step says loudly that it was skipped.
fn msrv_build() -> Result {
    let root = root();
    let version =
        tidy::workspace_rust_version(&root).ok_or("Cargo.toml has no workspace rust-version")?;
    let rustup_works = Command::new("rustup")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !rustup_works {
        eprintln!(
            "\n!!! MSRV BUILD SKIPPED: rustup not found, so Rust {version} cannot be installed.\n\
             !!! The library crates were built with the default toolchain only.\n"
        );
        return Ok(());
    }
    let installed = Command::new("rustup")
        .args(["run", &version, "rustc", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        if let Err(e) = run(
            "rustup",
            &["toolchain", "install", &version, "--profile", "minimal"],
            &[],
        ) {
            eprintln!(
                "\n!!! MSRV BUILD SKIPPED: Rust {version} could not be installed ({e}).\n\
                 !!! The library crates were built with the default toolchain only.\n"
            );
            return Ok(());
        }
    }
    // A target dir of its own, so the two compilers' artifacts do not evict each other. It
    // lives in the cache beside the Consul binary (outside the repository), so a fresh clone
    // on the same machine checks in seconds instead of compiling every dependency again.
    let target_dir = consul::cache_dir().join(format!("msrv-target-{version}"));
    let target_dir = target_dir.display().to_string();
    let mut args = vec![
        "run",
        version.as_str(),
        "cargo",
        "check",
        "--locked",
        "--lib",
        "--bins",
        "--target-dir",
        target_dir.as_str(),
    ];
    for p in PUBLISHED {
        args.extend(["-p", p]);
    }
    run("rustup", &args, &[])
}

/// Runs the conformance suite, the facade's integration tests and the `consul-kv` command's
/// tests (its golden cases side by side with the real `consul kv`) against a real Consul agent
/// (built by `cargo xtask consul`), or says loudly why it could not.
fn real_consul_suites(cargo: &str, bin: Option<&Path>, skip_log: &Path) -> Result {
    let Some(bin) = bin else {
        eprintln!(
            "\n!!! REAL-CONSUL RUN SKIPPED: no Go toolchain found, so no Consul agent could be \
             built.\n!!! The conformance, integration and cluster suites ran against the \
             devserver only; the CLI's golden cases were compared with their recorded consul kv \
             outputs, not with a live consul kv.\n"
        );
        return Ok(());
    };
    let bin = bin.display().to_string();
    run(
        cargo,
        &[
            "test",
            "-p",
            "consul-kv-tests",
            "--locked",
            "--test",
            "conformance",
            "--test",
            "it",
            "--test",
            "cli",
            "--test",
            "watching",
            "--test",
            "helpers",
        ],
        &[
            ("CONSUL_KV_TEST_TARGET", "consul"),
            ("CONSUL_KV_CONSUL_BIN", bin.as_str()),
            ("CONSUL_KV_SKIP_LOG", &skip_log.display().to_string()),
        ],
    )
}

/// A fresh (empty) skip log under `target/`, for the tests to append their skipped cases to.
fn skip_log(name: &str) -> Result<PathBuf> {
    let dir = root().join("target");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, "").map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// `N cases skipped <against>: a (why), b (why)` from a skip log, or `None` when it is empty.
fn skip_summary(path: &Path, against: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut cases: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once('\t') {
            Some((case, why)) => format!("{case} ({why})"),
            None => l.to_owned(),
        })
        .collect();
    cases.sort();
    cases.dedup();
    (!cases.is_empty()).then(|| {
        format!(
            "{} case{} skipped {against}: {}",
            cases.len(),
            if cases.len() == 1 { "" } else { "s" },
            cases.join(", ")
        )
    })
}

fn ci(_args: &[String]) -> Result {
    let cargo = cargo();
    let start = Instant::now();
    run(&cargo, &["fmt", "--all", "--", "--check"], &[])?;
    run(
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    // Build the real Consul agent first, so that the cluster failover test runs in the
    // workspace tests below.
    let consul_bin = if consul::go_available() {
        Some(consul::ensure_consul(&root())?)
    } else {
        None
    };
    let devserver_skips = skip_log("ci-skips-devserver.log")?;
    let consul_skips = skip_log("ci-skips-consul.log")?;
    let devserver_log = devserver_skips.display().to_string();
    let bin = consul_bin
        .as_deref()
        .map(|b| b.display().to_string())
        .unwrap_or_default();
    let mut envs = vec![("CONSUL_KV_SKIP_LOG", devserver_log.as_str())];
    if consul_bin.is_some() {
        // The binary exists: the cluster failover test must run, not skip.
        envs.push(("CONSUL_KV_CONSUL_BIN", bin.as_str()));
        envs.push(("CONSUL_KV_REQUIRE_CONSUL", "1"));
    }
    browser::ensure();
    run(&cargo, &["test", "--workspace", "--locked"], &envs)?;
    consistency::ci_report(&root());
    real_consul_suites(&cargo, consul_bin.as_deref(), &consul_skips)?;
    msrv_build()?;
    run(
        &cargo,
        &["doc", "--workspace", "--no-deps", "--locked"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    tidy::run(&root())?;
    eprintln!(
        "\nci: all steps passed in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    if let Some(s) = skip_summary(&devserver_skips, "against the devserver") {
        eprintln!("ci: {s}");
    }
    if consul_bin.is_some() {
        eprintln!(
            "ci: {}",
            skip_summary(
                &consul_skips,
                &format!("against Consul {}", consul::CONSUL_VERSION)
            )
            .unwrap_or_else(|| format!(
                "0 cases skipped against Consul {}",
                consul::CONSUL_VERSION
            ))
        );
    }
    Ok(())
}
