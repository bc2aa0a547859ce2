//! `cargo xtask bench`: every contender against the same servers in one run, with a report
//! and a chart.
//!
//! ```text
//! cargo xtask bench [--quick] [--no-peers] [--update-readme]
//! cargo xtask bench readme        README's performance section from the last report
//! cargo xtask bench devserver     the devserver's own benchmark example, if it has one
//! cargo xtask bench watch         watch fan-out with and without shared queries (bench/watch.rs)
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
//! Std only: processes through `std::process::Command`, JSON read by a small parser below,
//! the SVG written by hand.

mod watch;

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HELP: &str = "\
cargo xtask bench [--quick] [--no-peers] [--update-readme]
cargo xtask bench readme      regenerate README.md's performance section from the last report
cargo xtask bench devserver   run the devserver's benchmark example
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
            "devserver" | "readme" | "watch" if sub.is_none() => sub = Some(a.as_str()),
            "-h" | "--help" | "help" => {
                println!("{HELP}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n\n{HELP}")),
        }
    }
    match sub {
        Some("devserver") => return devserver_bench(root),
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

    let machine = Machine::read(root, &contenders);
    let report = Report {
        command,
        sizes,
        cases,
        contenders,
        records,
        micro,
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

// ---------------------------------------------------------------------------------------------
// Sizes and cases.

/// How big each workload is.
#[derive(Debug, Clone)]
struct Sizes {
    quick: bool,
    /// Rounds of the whole matrix; the median run of each case × contender is reported.
    repeat: usize,
    keys: usize,
    value_size: usize,
    seq_iterations: u64,
    seconds: f64,
    write_iterations: u64,
    cas_iterations: u64,
    list_iterations: u64,
    watchers: usize,
    rounds: usize,
    micro_seconds: f64,
    timeout: Duration,
}

impl Sizes {
    fn full() -> Self {
        Self {
            quick: false,
            repeat: 3,
            keys: 10_000,
            value_size: 128,
            seq_iterations: 3_000,
            seconds: 3.0,
            write_iterations: 2_000,
            cas_iterations: 1_000,
            list_iterations: 20,
            watchers: 1_000,
            rounds: 5,
            micro_seconds: 2.0,
            timeout: Duration::from_secs(180),
        }
    }

    fn quick() -> Self {
        Self {
            quick: true,
            repeat: 1,
            keys: 500,
            value_size: 128,
            seq_iterations: 200,
            seconds: 0.5,
            write_iterations: 100,
            cas_iterations: 50,
            list_iterations: 5,
            watchers: 50,
            rounds: 2,
            micro_seconds: 0.2,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Whether a case is judged by latency (lower is better) or throughput (higher is better).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Latency,
    Throughput,
}

#[derive(Debug, Clone)]
struct Case {
    id: &'static str,
    title: String,
    server: &'static str,
    metric: Metric,
    args: Vec<String>,
    /// For throughput cases: the in-flight level.
    inflight: usize,
}

fn cases(s: &Sizes, servers: &Servers) -> Vec<Case> {
    let mut out = Vec::new();
    let mut case = |id,
                    title: String,
                    server,
                    target: &str,
                    metric,
                    workload: &str,
                    extra: Vec<String>,
                    inflight| {
        let mut args = vec![
            "--target".to_owned(),
            target.to_owned(),
            "--workload".to_owned(),
            workload.to_owned(),
        ];
        args.extend(extra);
        out.push(Case {
            id,
            title,
            server,
            metric,
            args,
            inflight,
        });
    };
    let n = |v: u64| v.to_string();
    let seq = vec!["--iterations".to_owned(), n(s.seq_iterations)];
    case(
        "get-seq-fixed",
        "get, sequential".into(),
        "fixed",
        &servers.fixed_get,
        Metric::Latency,
        "get",
        seq.clone(),
        1,
    );
    case(
        "get-seq-dev",
        "get, sequential".into(),
        "devserver",
        &servers.devserver,
        Metric::Latency,
        "get",
        seq,
        1,
    );
    for inflight in [1usize, 16, 64] {
        let id = match inflight {
            1 => "get-tput-1",
            16 => "get-tput-16",
            _ => "get-tput-64",
        };
        case(
            id,
            format!("get throughput, {inflight} in flight"),
            "fixed",
            &servers.fixed_get,
            Metric::Throughput,
            "get",
            vec![
                "--inflight".to_owned(),
                inflight.to_string(),
                "--seconds".to_owned(),
                s.seconds.to_string(),
            ],
            inflight,
        );
    }
    case(
        "set",
        "set, sequential".into(),
        "devserver",
        &servers.devserver,
        Metric::Latency,
        "set",
        vec!["--iterations".to_owned(), n(s.write_iterations)],
        1,
    );
    case(
        "cas",
        "CAS read-modify-write loop".into(),
        "devserver",
        &servers.devserver,
        Metric::Latency,
        "cas",
        vec!["--iterations".to_owned(), n(s.cas_iterations)],
        1,
    );
    let list = |iters: u64| {
        vec![
            "--iterations".to_owned(),
            iters.to_string(),
            "--keys".to_owned(),
            s.keys.to_string(),
        ]
    };
    case(
        "items",
        format!("items() over {} keys × {} B", s.keys, s.value_size),
        "devserver",
        &servers.devserver,
        Metric::Latency,
        "items",
        list(s.list_iterations),
        1,
    );
    case(
        "keys",
        format!("keys() over {} keys", s.keys),
        "devserver",
        &servers.devserver,
        Metric::Latency,
        "keys",
        list(s.list_iterations * 2),
        1,
    );
    case(
        "watch",
        format!("blocking-query wake latency, {} watchers", s.watchers),
        "devserver",
        &servers.devserver,
        Metric::Latency,
        "watch",
        vec![
            "--watchers".to_owned(),
            s.watchers.to_string(),
            "--rounds".to_owned(),
            s.rounds.to_string(),
        ],
        1,
    );
    out
}

// ---------------------------------------------------------------------------------------------
// Building the contenders.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Floor,
    Ours,
    RustPeer,
    GoPeer,
    PythonPeer,
}

#[derive(Debug, Clone)]
struct Contender {
    name: &'static str,
    kind: Kind,
    /// Program and leading arguments.
    cmd: Vec<String>,
    version: String,
}

impl Contender {
    fn is_peer(&self) -> bool {
        matches!(self.kind, Kind::RustPeer | Kind::GoPeer | Kind::PythonPeer)
    }
}

fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => root.join(d),
        None => root.join("target"),
    }
}

fn bench_binary(root: &Path) -> PathBuf {
    target_dir(root).join("release").join("consul-kv-bench")
}

/// `nice -n 10 <program>` where `nice` exists: builds share the machine.
fn niced(program: &str) -> Command {
    if Command::new("nice")
        .arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        let mut c = Command::new("nice");
        c.args(["-n", "10", program]);
        c
    } else {
        Command::new(program)
    }
}

fn status(cmd: &mut Command, what: &str) -> Result<(), String> {
    eprintln!("bench: {what}");
    let start = Instant::now();
    let st = cmd
        .status()
        .map_err(|e| format!("could not start {what}: {e}"))?;
    eprintln!("bench: {what}: {:.0} s", start.elapsed().as_secs_f64());
    if st.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({st})"))
    }
}

fn tool_version(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    text.lines().next().map(|l| l.trim().to_owned())
}

/// The version a Cargo.lock records for a package.
fn locked_version(lock: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() == format!("name = \"{name}\"") {
            if let Some(v) = lines
                .next()
                .and_then(|v| v.trim().strip_prefix("version = "))
            {
                return v.trim_matches('"').to_owned();
            }
        }
    }
    "?".to_owned()
}

/// The version a go.mod requires of a module (`require github.com/x/y v1.2.3`).
fn go_required_version(go_mod: &Path, module: &str) -> String {
    let text = std::fs::read_to_string(go_mod).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("require ").unwrap_or(l);
            let mut parts = rest.split_whitespace();
            (parts.next() == Some(module)).then(|| parts.next().map(str::to_owned))?
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn build_all(
    root: &Path,
    peers: bool,
    skipped: &mut Vec<String>,
) -> Result<Vec<Contender>, String> {
    let cargo = crate::cargo();
    status(
        niced(&cargo).current_dir(root).args([
            "build",
            "--release",
            "--locked",
            "-p",
            "consul-kv-bench",
        ]),
        "cargo build --release -p consul-kv-bench",
    )?;
    let bin = bench_binary(root).display().to_string();
    let ours = locked_version(&root.join("Cargo.lock"), "consul-kv");
    let mut out = vec![
        Contender {
            name: "floor",
            kind: Kind::Floor,
            cmd: vec![
                bin.clone(),
                "run".into(),
                "--contender".into(),
                "floor".into(),
            ],
            version: "hyper-util + serde_json".into(),
        },
        Contender {
            name: "consul-kv",
            kind: Kind::Ours,
            cmd: vec![bin, "run".into(), "--contender".into(), "consul-kv".into()],
            version: ours,
        },
    ];
    if !peers {
        skipped.push("peers: not run (--no-peers)".into());
        return Ok(out);
    }

    // Rust peers: one package each. Both are built in one cargo call (one feature resolution,
    // one set of shared dependencies); only if that fails is each built on its own, so that
    // one that cannot build does not take the other down.
    let peers_dir = root.join("xtask/bench-peers/rust");
    let peers_target = root.join("target/bench-peers");
    let lock = peers_dir.join("Cargo.lock");
    let build_peers = |packages: &[&str]| {
        let mut cmd = niced(&cargo);
        cmd.current_dir(&peers_dir)
            .env_remove("CARGO_TARGET_DIR")
            .args(["build", "--release", "--target-dir"])
            .arg(&peers_target);
        for p in packages {
            cmd.args(["-p", p]);
        }
        if lock.exists() {
            cmd.arg("--locked");
        }
        status(
            &mut cmd,
            &format!("cargo build --release -p {} (peers)", packages.join(" -p ")),
        )
    };
    let rust_peers = [
        ("rs-consul", "rs-consul-bench", "rs-consul"),
        ("consulrs", "consulrs-bench", "consulrs"),
    ];
    let all = build_peers(&["rs-consul-bench", "consulrs-bench"]);
    for (name, package, crate_name) in rust_peers {
        let built = match &all {
            Ok(()) => Ok(()),
            Err(_) => build_peers(&[package]),
        };
        match built {
            Ok(()) => out.push(Contender {
                name,
                kind: Kind::RustPeer,
                cmd: vec![peers_target
                    .join("release")
                    .join(package)
                    .display()
                    .to_string()],
                version: locked_version(&lock, crate_name),
            }),
            Err(e) => skipped.push(format!("{name}: skipped, its build failed: {e}")),
        }
    }

    // Go.
    let go_dir = root.join("xtask/bench-peers/go");
    match tool_version("go", &["version"]) {
        None => skipped.push("go-consul-api: skipped, no Go toolchain (`go`) on PATH".into()),
        Some(go) => {
            let go_bin = peers_target.join("go").join("consul-go-bench");
            let built = status(
                niced("go")
                    .current_dir(&go_dir)
                    .args(["build", "-o"])
                    .arg(&go_bin)
                    .arg("."),
                "go build (peer)",
            );
            match built {
                Ok(()) => out.push(Contender {
                    name: "go-consul-api",
                    kind: Kind::GoPeer,
                    cmd: vec![go_bin.display().to_string()],
                    version: format!(
                        "consul/api {} ({go})",
                        go_required_version(
                            &go_dir.join("go.mod"),
                            "github.com/hashicorp/consul/api"
                        )
                    ),
                }),
                Err(e) => skipped.push(format!("go-consul-api: skipped, {e}")),
            }
        }
    }

    // Python.
    match tool_version("python3", &["--version"]) {
        None => skipped.push("py-consul: skipped, no `python3` on PATH".into()),
        Some(py) => match python_env(root) {
            Ok((python, version)) => out.push(Contender {
                name: "py-consul",
                kind: Kind::PythonPeer,
                cmd: vec![
                    python,
                    root.join("xtask/bench-peers/python/bench.py")
                        .display()
                        .to_string(),
                ],
                version: format!("py-consul {version} ({py})"),
            }),
            Err(e) => skipped.push(format!("py-consul: skipped, {e}")),
        },
    }
    Ok(out)
}

/// Creates `target/bench-venv` and installs the pinned py-consul; the interpreter's path and
/// the installed version.
fn python_env(root: &Path) -> Result<(String, String), String> {
    let venv = root.join("target/bench-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        status(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv target/bench-venv",
        )
        .map_err(|e| format!("the virtualenv could not be created: {e}"))?;
    }
    let req = root.join("xtask/bench-peers/python/requirements.txt");
    status(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&req),
        "pip install -r xtask/bench-peers/python/requirements.txt",
    )
    .map_err(|e| format!("py-consul could not be installed: {e}"))?;
    let version = capture(
        Command::new(&python).args([
            "-c",
            "import importlib.metadata as m; print(m.version('py-consul'))",
        ]),
        Duration::from_secs(30),
    )
    .map(|v| v.trim().to_owned())
    .unwrap_or_else(|_| "?".into());
    Ok((python.display().to_string(), version))
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// Runs a command to completion within `timeout`; its standard output.
fn capture(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    let (out, err, st) = capture_all(cmd, timeout)?;
    if st {
        Ok(out)
    } else {
        Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            last_line(&err)
        ))
    }
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

/// Stdout, stderr, success; the child is killed at `timeout`.
fn capture_all(cmd: &mut Command, timeout: Duration) -> Result<(String, String, bool), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start {:?}: {e}", cmd.get_program()))?;
    let reader = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = reader(child.stdout.take().map(|s| Box::new(s) as _));
    let err = reader(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    match status {
        Some(st) => Ok((out, err, st.success())),
        None => Err(format!("timed out after {} s", timeout.as_secs())),
    }
}

/// `consul-kv-bench serve`, stopped (stdin closed) when dropped.
struct Servers {
    child: Child,
    devserver: String,
    fixed_get: String,
}

impl Servers {
    fn start(bin: &Path, s: &Sizes) -> Result<Self, String> {
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--keys",
                &s.keys.to_string(),
                "--value-size",
                &s.value_size.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start {} serve: {e}", bin.display()))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let urls = Json::parse(&line);
        let devserver = urls.get("devserver").and_then(Json::as_str);
        let fixed_get = urls
            .get("fixed")
            .and_then(|f| f.get("get"))
            .and_then(Json::as_str);
        match (devserver, fixed_get) {
            (Some(d), Some(f)) => Ok(Self {
                devserver: d.to_owned(),
                fixed_get: f.to_owned(),
                child,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("consul-kv-bench serve printed {line:?}"))
            }
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Results.

#[derive(Debug, Clone, PartialEq)]
enum Status {
    Ok,
    Unsupported(String),
    Failed(String),
}

#[derive(Debug, Clone)]
struct Record {
    contender: String,
    case: &'static str,
    status: Status,
    json: Json,
    /// The smallest and largest figure (p50 or ops/s) over the rounds that succeeded.
    range: Option<(f64, f64)>,
}

impl Record {
    fn num(&self, field: &str) -> Option<f64> {
        self.json.get(field).and_then(Json::as_f64)
    }

    fn ok(&self) -> bool {
        self.status == Status::Ok
    }

    fn summary(&self) -> String {
        match &self.status {
            Status::Ok => format!(
                "{:>10.0} ops/s  p50 {:>9.1} µs  p99 {:>9.1} µs",
                self.num("ops_per_sec").unwrap_or(0.0),
                self.num("p50_us").unwrap_or(0.0),
                self.num("p99_us").unwrap_or(0.0)
            ),
            Status::Unsupported(n) => format!("unsupported: {n}"),
            Status::Failed(n) => format!("FAILED: {n}"),
        }
    }

    fn raw_line(&self, case: &str, round: usize) -> String {
        match &self.status {
            Status::Failed(n) => format!(
                "{{\"case\":{},\"round\":{round},\"contender\":{},\"failed\":{}}}",
                json_str(case),
                json_str(&self.contender),
                json_str(n)
            ),
            _ => format!(
                "{{\"case\":{},\"round\":{round},\"result\":{}}}",
                json_str(case),
                self.json.to_string_compact()
            ),
        }
    }
}

/// The run with the median figure of a case (p50 or ops/s) among those that succeeded; the
/// last run when none did.
fn median_run(case: &Case, mut runs: Vec<Record>) -> Option<Record> {
    let figure = |r: &Record| match case.metric {
        Metric::Latency => r.num("p50_us"),
        Metric::Throughput => r.num("ops_per_sec"),
    };
    let mut ok: Vec<Record> = runs.iter().filter(|r| r.ok()).cloned().collect();
    if ok.is_empty() {
        return runs.pop();
    }
    ok.sort_by(|a, b| {
        figure(a)
            .unwrap_or(0.0)
            .total_cmp(&figure(b).unwrap_or(0.0))
    });
    let range = ok.first().and_then(figure).zip(ok.last().and_then(figure));
    let mid = ok.len() / 2;
    let mut median = ok.swap_remove(mid);
    median.range = range;
    Some(median)
}

fn run_one(c: &Contender, case: &Case, s: &Sizes) -> Record {
    let mut cmd = Command::new(&c.cmd[0]);
    cmd.args(&c.cmd[1..]).args(&case.args);
    let fail = |note: String| Record {
        contender: c.name.to_owned(),
        case: case.id,
        status: Status::Failed(note),
        json: Json::Null,
        range: None,
    };
    let (out, err, ok) = match capture_all(&mut cmd, s.timeout) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let line = out.lines().rev().find(|l| l.trim_start().starts_with('{'));
    let Some(line) = line else {
        return fail(if ok {
            "printed no result".into()
        } else {
            last_line(&err)
        });
    };
    let json = Json::parse(line);
    let note = json
        .get("note")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let unsupported = json.get("unsupported").and_then(Json::as_bool) == Some(true);
    let count = json.get("count").and_then(Json::as_f64).unwrap_or(0.0);
    let status = if unsupported {
        Status::Unsupported(note)
    } else if count <= 0.0 {
        Status::Failed(if note.is_empty() {
            "no operation succeeded".into()
        } else {
            note
        })
    } else {
        Status::Ok
    };
    Record {
        contender: c.name.to_owned(),
        case: case.id,
        status,
        json,
        range: None,
    }
}

#[derive(Debug, Clone)]
struct Micro {
    name: String,
    implementation: String,
    bytes: f64,
    ns_per_op: f64,
    mb_per_s: f64,
}

impl Micro {
    fn parse(line: &str) -> Option<Self> {
        let j = Json::parse(line);
        Some(Self {
            name: j.get("micro")?.as_str()?.to_owned(),
            implementation: j.get("impl")?.as_str()?.to_owned(),
            bytes: j.get("bytes")?.as_f64()?,
            ns_per_op: j.get("ns_per_op")?.as_f64()?,
            mb_per_s: j.get("mb_per_s")?.as_f64()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The machine.

#[derive(Debug, Clone, Default)]
struct Machine {
    cores: usize,
    cpu: String,
    memory: String,
    load: String,
    rustc: String,
    date: String,
    versions: Vec<(String, String)>,
}

impl Machine {
    fn read(_root: &Path, contenders: &[Contender]) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown CPU".to_owned(), |(_, v)| v.trim().to_owned());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or_else(String::new, |kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0));
        let load = std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            memory,
            load,
            rustc: tool_version("rustc", &["--version"]).unwrap_or_default(),
            date: today(),
            versions: contenders
                .iter()
                .map(|c| (c.name.to_owned(), c.version.clone()))
                .collect(),
        }
    }

    fn line(&self) -> String {
        format!(
            "{} cores ({}), {} RAM, Linux; {}; load average at the end {}",
            self.cores, self.cpu, self.memory, self.rustc, self.load
        )
    }
}

/// Today's UTC date, `YYYY-MM-DD`.
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

// ---------------------------------------------------------------------------------------------
// The report.

struct Report {
    command: String,
    sizes: Sizes,
    cases: Vec<Case>,
    contenders: Vec<Contender>,
    records: Vec<Record>,
    micro: Vec<Micro>,
    skipped: Vec<String>,
    machine: Machine,
    elapsed: Duration,
}

/// A target's verdict.
struct Verdict {
    target: String,
    measured: String,
    pass: Option<bool>,
}

impl Report {
    fn record(&self, contender: &str, case: &str) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.contender == contender && r.case == case)
    }

    /// The figure a case is judged by: p50 µs (latency) or ops/s (throughput).
    fn figure(&self, contender: &str, case: &Case) -> Option<f64> {
        let r = self.record(contender, case.id).filter(|r| r.ok())?;
        match case.metric {
            Metric::Latency => r.num("p50_us"),
            Metric::Throughput => r.num("ops_per_sec"),
        }
        .filter(|v| *v > 0.0)
    }

    /// Speed relative to `base` (higher is better): ops/ops or base latency / latency.
    fn speed(&self, contender: &str, base: &str, case: &Case) -> Option<f64> {
        let (a, b) = (self.figure(contender, case)?, self.figure(base, case)?);
        Some(match case.metric {
            Metric::Latency => b / a,
            Metric::Throughput => a / b,
        })
    }

    /// The best peer of a case (by its figure), optionally Rust peers only.
    fn best_peer(&self, case: &Case, rust_only: bool) -> Option<&'static str> {
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

    fn case(&self, id: &str) -> Option<&Case> {
        self.cases.iter().find(|c| c.id == id)
    }

    fn micro(&self, name: &str, implementation: &str) -> Option<&Micro> {
        self.micro
            .iter()
            .find(|m| m.name == name && m.implementation == implementation)
    }

    fn verdicts(&self) -> Vec<Verdict> {
        let mut v = Vec::new();
        let ratio = |x: Option<f64>| x.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.2}×"));
        for (id, where_) in [("get-seq-fixed", "fixed"), ("get-seq-dev", "devserver")] {
            let Some(case) = self.case(id) else { continue };
            // Latency ratio: consul-kv p50 / floor p50.
            let r = self.speed("consul-kv", "floor", case).map(|s| 1.0 / s);
            v.push(Verdict {
                target: format!("sequential get p50 within 1.15× of the floor ({where_})"),
                measured: ratio(r),
                pass: r.map(|r| r <= 1.15),
            });
        }
        for id in ["get-tput-1", "get-tput-16", "get-tput-64"] {
            let Some(case) = self.case(id) else { continue };
            let n = case.inflight;
            let r = self.speed("consul-kv", "floor", case);
            v.push(Verdict {
                target: format!("throughput ≥ 0.9× the floor, {n} in flight"),
                measured: ratio(r),
                pass: r.map(|r| r >= 0.9),
            });
            match self.best_peer(case, true) {
                Some(peer) => {
                    let r = self.speed("consul-kv", peer, case);
                    v.push(Verdict {
                        target: format!(
                            "throughput ≥ 2× the best Rust peer ({peer}), {n} in flight"
                        ),
                        measured: ratio(r),
                        pass: r.map(|r| r >= 2.0),
                    });
                }
                None => v.push(Verdict {
                    target: format!("throughput ≥ 2× the best Rust peer, {n} in flight"),
                    measured: "no Rust peer measured".into(),
                    pass: None,
                }),
            }
            let r = self.speed("consul-kv", "go-consul-api", case);
            v.push(Verdict {
                target: format!("throughput ahead of the Go client, {n} in flight"),
                measured: if r.is_some() {
                    ratio(r)
                } else {
                    "Go client not measured".into()
                },
                pass: r.map(|r| r > 1.0),
            });
        }
        let r = self
            .micro("parse_items", crate_proto())
            .zip(self.micro("parse_items", SERDE))
            .map(|(p, s)| p.ns_per_op / s.ns_per_op);
        v.push(Verdict {
            target: "items() parse within 1.2× of a bare typed serde parse".into(),
            measured: ratio(r),
            pass: r.map(|r| r <= 1.2),
        });
        v
    }

    fn markdown(&self) -> String {
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
        md.push_str(&self.where_time_goes());
        let _ = writeln!(
            md,
            "\nChart: `target/bench/report.svg`; raw results: `target/bench/results.jsonl`."
        );
        md
    }

    /// The targets and the one-table overview (also what the README shows).
    fn summary_tables(&self) -> String {
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

    fn case_table(&self, case: &Case) -> String {
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
                            md_escape(r.json.get("note").and_then(Json::as_str).unwrap_or("")),
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

    fn micro_table(&self) -> String {
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
    fn where_time_goes(&self) -> String {
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
                     rest is the executor: the call deadline (a timer), the connection-cap \
                     permit, retry bookkeeping, the tracing span, the facade's boxed future.",
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

    /// A horizontal grouped bar chart: speed relative to the floor, per case and contender.
    fn svg(&self) -> String {
        let bar_h = 14.0;
        let gap = 16.0;
        let left = 340.0;
        let width = 1040.0;
        let plot_w = width - left - 90.0;
        let top = 96.0;
        let n = self.contenders.len() as f64;
        let group_h = n * bar_h + gap;
        let height = top + group_h * self.cases.len() as f64 + 60.0;
        let mut max: f64 = 1.2;
        for case in &self.cases {
            for c in &self.contenders {
                if let Some(s) = self.speed(c.name, "floor", case) {
                    max = max.max(s * 1.05);
                }
            }
        }
        let max = ((max.min(4.0) * 2.0).ceil() / 2.0).max(1.5);
        let x = |v: f64| left + plot_w * (v.min(max) / max);
        let palette = [
            "#555555", "#d62728", "#1f77b4", "#17becf", "#2ca02c", "#9467bd", "#ff7f0e",
        ];
        let color = |i: usize| palette[i % palette.len()];
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             viewBox=\"0 0 {width} {height}\" font-family=\"Helvetica, Arial, sans-serif\" \
             font-size=\"12\">"
        );
        let _ = writeln!(svg, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Speed relative to the floor (raw hyper + typed serde): higher is faster, 1.0 = floor</text>",
            10
        );
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"40\" fill=\"#555\">{} ({}) · throughput: ops/s ÷ floor's; latency: floor's p50 ÷ p50</text><text x=\"10\" y=\"56\" fill=\"#555\">{}</text>",
            xml(&self.command),
            xml(&self.machine.date),
            xml(&self.machine.line())
        );
        // Legend.
        let mut lx = 10.0;
        for (i, c) in self.contenders.iter().enumerate() {
            let _ = writeln!(
                svg,
                "<rect x=\"{lx}\" y=\"68\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"78\">{}</text>",
                color(i),
                lx + 16.0,
                xml(c.name)
            );
            lx += 30.0 + 7.0 * c.name.len() as f64;
        }
        // Grid: 0, 0.5, 1 (the floor), ...
        let mut t = 0.0;
        while t <= max + 1e-9 {
            let gx = x(t);
            let (stroke, dash) = if (t - 1.0).abs() < 1e-9 {
                ("#000", "")
            } else {
                ("#ddd", " stroke-dasharray=\"3,3\"")
            };
            let _ = writeln!(
                svg,
                "<line x1=\"{gx:.1}\" y1=\"{top}\" x2=\"{gx:.1}\" y2=\"{:.1}\" stroke=\"{stroke}\"{dash}/><text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{t:.1}</text>",
                height - 40.0,
                height - 26.0
            );
            t += 0.5;
        }
        for (gi, case) in self.cases.iter().enumerate() {
            let gy = top + gi as f64 * group_h;
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-weight=\"bold\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
                left - 8.0,
                gy + n * bar_h / 2.0 - 2.0,
                xml(&case.title),
                left - 8.0,
                gy + n * bar_h / 2.0 + 12.0,
                xml(&format!(
                    "{}, {}",
                    case.server,
                    match case.metric {
                        Metric::Latency => "p50 latency",
                        Metric::Throughput => "throughput",
                    }
                ))
            );
            for (i, c) in self.contenders.iter().enumerate() {
                let y = gy + i as f64 * bar_h;
                match self.speed(c.name, "floor", case) {
                    Some(v) => {
                        let _ = writeln!(
                            svg,
                            "<rect x=\"{left}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {v:.3}</title></rect><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{v:.2}{}</text>",
                            (x(v) - left).max(1.0),
                            bar_h - 2.0,
                            color(i),
                            xml(c.name),
                            x(v) + 4.0,
                            y + bar_h - 4.0,
                            if v > max { " ▸" } else { "" }
                        );
                    }
                    None => {
                        let why = match self.record(c.name, case.id).map(|r| &r.status) {
                            Some(Status::Unsupported(_)) => "unsupported",
                            Some(Status::Failed(_)) => "failed",
                            _ => "not run",
                        };
                        let _ = writeln!(
                            svg,
                            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#999\">{} {why}</text>",
                            left + 4.0,
                            y + bar_h - 4.0,
                            xml(c.name)
                        );
                    }
                }
            }
        }
        svg.push_str("</svg>\n");
        svg
    }
}

fn crate_proto() -> &'static str {
    "consul-kv-proto"
}

const SERDE: &str = "serde typed";

fn fmt_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else if us >= 100.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.1} µs")
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn fmt_ops(ops: f64) -> String {
    if ops >= 10_000.0 {
        format!("{:.1}k", ops / 1e3)
    } else {
        format!("{ops:.0}")
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('\n', " ")
        .chars()
        .take(200)
        .collect()
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// ---------------------------------------------------------------------------------------------
// README.

/// Rewrites README.md's performance section from `target/bench/report.md`'s summary.
fn readme_from_report(root: &Path) -> Result<(), String> {
    let report_path = root.join("target/bench/report.md");
    let report = std::fs::read_to_string(&report_path).map_err(|e| {
        format!(
            "{}: {e} (run `cargo xtask bench` first)",
            report_path.display()
        )
    })?;
    let summary = report
        .split_once(SUMMARY_START)
        .and_then(|(_, rest)| rest.split_once(SUMMARY_END))
        .map(|(s, _)| s.trim())
        .ok_or("target/bench/report.md has no summary section")?;
    // The report's first paragraph names the command and the machine.
    let intro = report
        .lines()
        .find(|l| l.starts_with('`'))
        .unwrap_or_default();
    let contenders: Vec<&str> = report
        .lines()
        .skip_while(|l| !l.starts_with("Contenders:"))
        .skip(1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with("- "))
        .collect();
    let section = format!(
        "{README_START}\n## Performance\n\n{intro}\n\nContenders:\n\n{}\n\n{}\n\nThe full report (per-workload tables, proto micro \
         benchmarks, where the time goes) and the chart are written to `target/bench/report.md` \
         and `target/bench/report.svg` by the same command; `cargo xtask bench --update-readme` \
         regenerates this section.\n{README_END}",
        contenders.join("\n"),
        summary
    );
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path)
        .map_err(|e| format!("{}: {e}", readme_path.display()))?;
    // The heading lives inside the markers; one left just above them is folded in.
    let updated = match (readme.find(README_START), readme.find(README_END)) {
        (Some(a), Some(b)) if a < b => {
            let before = readme[..a].trim_end();
            let before = before.strip_suffix("## Performance").unwrap_or(before);
            format!(
                "{}\n\n{section}{}",
                before.trim_end(),
                &readme[b + README_END.len()..]
            )
        }
        _ => format!("{}\n\n{section}\n", readme.trim_end()),
    };
    write(&readme_path, &updated)?;
    eprintln!("bench: README.md performance section updated");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
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
            niced(&crate::cargo()).current_dir(root).args([
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

// ---------------------------------------------------------------------------------------------
// A small JSON reader: enough for the result lines (objects, strings, numbers, booleans, null).

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Self>),
    Obj(Vec<(String, Self)>),
}

impl Json {
    /// Parses `text`; anything malformed is `Null`.
    fn parse(text: &str) -> Self {
        let mut p = Parser {
            s: text.trim().as_bytes(),
            i: 0,
        };
        p.value().unwrap_or(Self::Null)
    }

    fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Self::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Num(n) => Some(*n),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn to_string_compact(&self) -> String {
        match self {
            Self::Null => "null".into(),
            Self::Bool(b) => b.to_string(),
            Self::Num(n) => {
                if n.fract() == 0.0 && n.abs() < 1e15 {
                    format!("{n:.0}")
                } else {
                    n.to_string()
                }
            }
            Self::Str(s) => json_str(s),
            Self::Arr(a) => format!(
                "[{}]",
                a.iter()
                    .map(Self::to_string_compact)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Self::Obj(o) => format!(
                "{{{}}}",
                o.iter()
                    .map(|(k, v)| format!("{}:{}", json_str(k), v.to_string_compact()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.ws();
        (self.s.get(self.i) == Some(&b)).then(|| self.i += 1)
    }

    fn value(&mut self) -> Option<Json> {
        self.ws();
        match *self.s.get(self.i)? {
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                if self.eat(b'}').is_some() {
                    return Some(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    fields.push((k, self.value()?));
                    if self.eat(b',').is_none() {
                        self.eat(b'}')?;
                        return Some(Json::Obj(fields));
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                if self.eat(b']').is_some() {
                    return Some(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    if self.eat(b',').is_none() {
                        self.eat(b']')?;
                        return Some(Json::Arr(items));
                    }
                }
            }
            b'"' => self.string().map(Json::Str),
            b't' => self.word("true", Json::Bool(true)),
            b'f' => self.word("false", Json::Bool(false)),
            b'n' => self.word("null", Json::Null),
            _ => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()?
                    .parse()
                    .ok()
                    .map(Json::Num)
            }
        }
    }

    fn word(&mut self, w: &str, v: Json) -> Option<Json> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Some(v)
        } else {
            None
        }
    }

    fn string(&mut self) -> Option<String> {
        if self.s.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
                            self.i += 4;
                            let ch = char::from_u32(u32::from_str_radix(hex, 16).ok()?)
                                .unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reads_result_lines() {
        let j = Json::parse(
            r#"{"contender":"floor","count":12,"p50_us":301.5,"entries":null,"unsupported":false,"note":"a \"b\"\n","fixed":{"get":"http://x"},"l":[1,2]}"#,
        );
        assert_eq!(j.get("contender").and_then(Json::as_str), Some("floor"));
        assert_eq!(j.get("count").and_then(Json::as_f64), Some(12.0));
        assert_eq!(j.get("p50_us").and_then(Json::as_f64), Some(301.5));
        assert_eq!(j.get("entries"), Some(&Json::Null));
        assert_eq!(j.get("unsupported").and_then(Json::as_bool), Some(false));
        assert_eq!(j.get("note").and_then(Json::as_str), Some("a \"b\"\n"));
        assert_eq!(
            j.get("fixed")
                .and_then(|f| f.get("get"))
                .and_then(Json::as_str),
            Some("http://x")
        );
        assert_eq!(Json::parse(&j.to_string_compact()), j);
        assert_eq!(Json::parse("{oops"), Json::Null);
    }

    #[test]
    fn dates() {
        assert_eq!(today().len(), 10);
    }

    #[test]
    fn units() {
        assert_eq!(fmt_us(12.34), "12.3 µs");
        assert_eq!(fmt_us(312.0), "312 µs");
        assert_eq!(fmt_us(25_000.0), "25.0 ms");
        assert_eq!(fmt_ops(41_234.0), "41.2k");
        assert_eq!(fmt_ns(1_500.0), "1.50 µs");
    }
}
