//! `cargo xtask bench cli`: the `consul-kv` binary beside the real `consul kv`, on the same
//! real agent.
//!
//! ```text
//! cargo xtask bench cli [--import-keys N] [--export-keys M] [--value-size B] [--runs R]
//! ```
//!
//! Builds `consul-kv` (release), starts a fresh `consul agent -dev` on free loopback ports
//! from the binary `cargo xtask consul` built, and measures, one process at a time:
//!
//! - import of the same N-entry export file (default 10,000): `consul kv import @file`,
//!   `consul-kv import @file` (one PUT per key, the drop-in) and
//!   `consul-kv import --atomic-batches @file`; the prefix is deleted before each run
//!   (untimed) and the key count checked after it. Target: `--atomic-batches` at least 20×
//!   faster than `consul kv import`.
//! - the floor: the same entries as prebuilt `/v1/txn` bodies sent over plain TCP, one and
//!   four at a time, which is Consul's own cost for writing them in transactions.
//! - export of M keys (default 100,000): `consul kv export` and `consul-kv export`, whose
//!   outputs must be byte-identical.
//! - binary size, and start-up: the median of R runs (default 20) of `version` /
//!   `--version`, and of one `kv get` of a small key.
//!
//! Writes `target/bench/cli.md` and prints it. Fails when no Consul binary exists: every
//! figure here is relative to it.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

const HELP: &str =
    "cargo xtask bench cli [--import-keys N] [--export-keys M] [--value-size B] [--runs R]";
const TARGET_RATIO: f64 = 20.0;

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn start_agent(bin: &Path) -> Result<(Agent, SocketAddr)> {
    let (http, serf, server) = (free_port()?, free_port()?, free_port()?);
    let child = Command::new(bin)
        .args(["agent", "-dev", "-node", "bench-cli", "-bind", "127.0.0.1"])
        .args(["-client", "127.0.0.1", "-http-port", &http.to_string()])
        .args(["-serf-lan-port", &serf.to_string()])
        .args(["-server-port", &server.to_string(), "-serf-wan-port", "-1"])
        .args([
            "-dns-port",
            "-1",
            "-grpc-port",
            "-1",
            "-grpc-tls-port",
            "-1",
        ])
        .args(["-log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {}: {e}", bin.display()))?;
    let agent = Agent(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], http));
    let start = Instant::now();
    loop {
        if let Ok(r) = crate::fixtures::exchange(addr, "GET", "/v1/status/leader", b"") {
            if r.status == 200 && r.body.len() > 2 {
                return Ok((agent, addr));
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err("the dev agent elected no leader within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `program args` (niced) against `addr`; returns (seconds, stdout). Fails on a non-zero
/// exit.
fn timed(program: &Path, args: &[&str], addr: SocketAddr) -> Result<(f64, Vec<u8>)> {
    let mut cmd = Command::new("nice");
    cmd.arg("-n").arg("10").arg(program).args(args);
    cmd.env("CONSUL_HTTP_ADDR", addr.to_string())
        .env_remove("CONSUL_HTTP_TOKEN")
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "{} {args:?}: {}: {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((secs, out.stdout))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An export file of `n` keys under `prefix` with `size`-byte values.
fn export_file(path: &Path, prefix: &str, n: usize, size: usize) -> Result {
    let mut s = String::with_capacity(n * (size * 2 + 64));
    s.push('[');
    for i in 0..n {
        let value: Vec<u8> = (0..size).map(|j| b'a' + ((i + j) % 26) as u8).collect();
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "\n\t{{\n\t\t\"key\": \"{prefix}{i:06}\",\n\t\t\"flags\": 0,\n\t\t\"value\": \"{}\"\n\t}}",
            base64(&value)
        );
    }
    s.push_str("\n]\n");
    std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))
}

/// The floor for any client: the same `n` entries as `/v1/txn` bodies of 128 `set`s, built
/// before the clock starts and sent one after another over plain TCP, nothing parsed. What is
/// left is Consul's own cost per transaction.
fn raw_txn_floor(
    addr: SocketAddr,
    prefix: &str,
    n: usize,
    size: usize,
    inflight: usize,
) -> Result<f64> {
    let mut bodies = Vec::new();
    let mut i = 0;
    while i < n {
        let end = (i + 128).min(n);
        let mut b = String::from("[");
        for k in i..end {
            let value: Vec<u8> = (0..size).map(|j| b'a' + ((k + j) % 26) as u8).collect();
            if k > i {
                b.push(',');
            }
            let _ = write!(
                b,
                "{{\"KV\":{{\"Verb\":\"set\",\"Key\":\"{prefix}{k:06}\",\"Value\":\"{}\"}}}}",
                base64(&value)
            );
        }
        b.push(']');
        bodies.push(b);
        i = end;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    // `inflight` senders take the next body until none is left.
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..inflight.max(1))
            .map(|_| {
                scope.spawn(|| -> Result {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(b) = bodies.get(i) else {
                            return Ok(());
                        };
                        let r = crate::fixtures::exchange(addr, "PUT", "/v1/txn", b.as_bytes())?;
                        if r.status != 200 {
                            return Err(format!("raw txn: {}", r.status));
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| "a sender panicked".to_owned())?)
    })?;
    Ok(start.elapsed().as_secs_f64())
}

/// How many keys the agent holds under `prefix`.
fn count_keys(addr: SocketAddr, prefix: &str) -> Result<usize> {
    let r = crate::fixtures::exchange(addr, "GET", &format!("/v1/kv/{prefix}?keys"), b"")?;
    if r.status == 404 {
        return Ok(0);
    }
    Ok(String::from_utf8_lossy(&r.body).matches('"').count() / 2)
}

fn delete_prefix(addr: SocketAddr, prefix: &str) -> Result {
    let r = crate::fixtures::exchange(addr, "DELETE", &format!("/v1/kv/{prefix}?recurse"), b"")?;
    if r.status == 200 {
        Ok(())
    } else {
        Err(format!("DELETE {prefix}: {}", r.status))
    }
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Entry point of `cargo xtask bench cli`.
pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let (mut import_keys, mut export_keys, mut size, mut runs) =
        (10_000usize, 100_000usize, 128usize, 20usize);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> Result<usize> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number\n{HELP}"))
        };
        match a.as_str() {
            "--import-keys" => import_keys = num("--import-keys")?,
            "--export-keys" => export_keys = num("--export-keys")?,
            "--value-size" => size = num("--value-size")?,
            "--runs" => runs = num("--runs")?.max(1),
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{HELP}")),
        }
    }
    let consul = crate::consul::binary_path();
    if !consul.is_file() {
        return Err(
            "no Consul binary: run `cargo xtask consul` first (every figure is relative to it)"
                .into(),
        );
    }
    let started = Instant::now();
    let cargo = crate::cargo();
    eprintln!("bench cli: cargo build --release --locked -p consul-kv-cli");
    let st = Command::new("nice")
        .args([
            "-n",
            "10",
            &cargo,
            "build",
            "--release",
            "--locked",
            "-p",
            "consul-kv-cli",
        ])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cargo: {e}"))?;
    if !st.success() {
        return Err(format!("cargo build --release -p consul-kv-cli: {st}"));
    }
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let ours = target_dir.join("release").join("consul-kv");
    let out_dir = target_dir.join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let (agent, addr) = start_agent(&consul)?;

    // Import.
    let prefix = "bench/import/";
    let file = out_dir.join("cli-import.json");
    export_file(&file, prefix, import_keys, size)?;
    let at = format!("@{}", file.display());
    let mut rows = Vec::new();
    for (name, program, args) in [
        (
            "consul kv import",
            &consul,
            vec!["kv", "import", at.as_str()],
        ),
        ("consul-kv import", &ours, vec!["import", at.as_str()]),
        (
            "consul-kv import --atomic-batches",
            &ours,
            vec!["import", "--atomic-batches", at.as_str()],
        ),
    ] {
        delete_prefix(addr, prefix)?;
        eprintln!("bench cli: {name} ({import_keys} keys)");
        let (secs, _) = timed(program, &args, addr)?;
        let n = count_keys(addr, prefix)?;
        if n != import_keys {
            return Err(format!("{name}: {n} keys stored, expected {import_keys}"));
        }
        rows.push((name, secs));
    }
    delete_prefix(addr, prefix)?;
    let mut floors = Vec::new();
    for inflight in [1, 4] {
        eprintln!("bench cli: raw /v1/txn floor ({import_keys} keys, {inflight} in flight)");
        let secs = raw_txn_floor(addr, prefix, import_keys, size, inflight)?;
        if count_keys(addr, prefix)? != import_keys {
            return Err("the raw txn floor stored the wrong number of keys".into());
        }
        delete_prefix(addr, prefix)?;
        floors.push((inflight, secs));
    }

    // Export.
    let eprefix = "bench/export/";
    let efile = out_dir.join("cli-export-seed.json");
    export_file(&efile, eprefix, export_keys, size)?;
    eprintln!("bench cli: seeding {export_keys} keys");
    timed(
        &ours,
        &[
            "import",
            "--atomic-batches",
            &format!("@{}", efile.display()),
        ],
        addr,
    )?;
    if count_keys(addr, eprefix)? != export_keys {
        return Err("the export seed is incomplete".into());
    }
    eprintln!("bench cli: exports of {export_keys} keys");
    let (c_secs, c_out) = timed(&consul, &["kv", "export", eprefix], addr)?;
    let (o_secs, o_out) = timed(&ours, &["export", eprefix], addr)?;
    let identical = c_out == o_out;

    // Start-up.
    let single = "bench/single";
    crate::fixtures::exchange(addr, "PUT", &format!("/v1/kv/{single}"), b"v")?;
    let mut startup = Vec::new();
    for (name, program, args) in [
        ("consul version", &consul, vec!["version"]),
        ("consul-kv --version", &ours, vec!["--version"]),
        ("consul kv get KEY", &consul, vec!["kv", "get", single]),
        ("consul-kv get KEY", &ours, vec!["get", single]),
    ] {
        let mut t = Vec::with_capacity(runs);
        for _ in 0..runs {
            t.push(timed(program, &args, addr)?.0);
        }
        startup.push((name, median(t)));
    }
    drop(agent);

    let mut md = String::new();
    let _ = writeln!(
        md,
        "## consul-kv CLI beside consul {}\n\n`cargo xtask bench cli --import-keys {import_keys} \
         --export-keys {export_keys} --value-size {size} --runs {runs}`: one fresh `consul agent \
         -dev`, one process at a time, every command under `nice -n 10`; load average at the end {}.\n",
        crate::consul::CONSUL_VERSION,
        load_average()
    );
    let _ = writeln!(
        md,
        "| import of {import_keys} keys ({size} B values) | seconds | vs consul kv import |"
    );
    let _ = writeln!(md, "|---|---:|---:|");
    let base = rows.first().map(|r| r.1).unwrap_or(f64::NAN);
    for (name, secs) in &rows {
        let _ = writeln!(
            md,
            "| `{name}` | {secs:.2} | {:.1}× |",
            base / secs.max(1e-9)
        );
    }
    for (inflight, floor) in &floors {
        let _ = writeln!(
            md,
            "| floor: prebuilt `/v1/txn` bodies of 128 sets over plain TCP, {inflight} in flight (no CLI) | {floor:.2} | {:.1}× |",
            base / floor.max(1e-9)
        );
    }
    let _ = writeln!(
        md,
        "\n| export of {export_keys} keys | seconds | output |\n|---|---:|---|\n| `consul kv export` | {c_secs:.2} | {} bytes |\n| `consul-kv export` | {o_secs:.2} | {} |",
        c_out.len(),
        if identical { "byte-identical" } else { "**DIFFERS**" }
    );
    // The workspace's release profile keeps line tables (`debug = 1`); `strip` shows the size
    // of what `cargo install` users could ship.
    let stripped = out_dir.join("consul-kv.stripped");
    let stripped_size = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(&ours)
        .status()
        .ok()
        .filter(std::process::ExitStatus::success)
        .map(|_| file_size(&stripped));
    let _ = writeln!(
        md,
        "\n| binary | size |\n|---|---:|\n| `consul` | {:.1} MiB |\n| `consul-kv` (release, with the profile's line tables) | {:.1} MiB |",
        file_size(&consul) as f64 / 1048576.0,
        file_size(&ours) as f64 / 1048576.0
    );
    if let Some(sz) = stripped_size {
        let _ = writeln!(
            md,
            "| `consul-kv` (release, stripped) | {:.1} MiB |",
            sz as f64 / 1048576.0
        );
    }
    let _ = writeln!(md, "\n| start-up (median of {runs}) | ms |\n|---|---:|");
    for (name, secs) in &startup {
        let _ = writeln!(md, "| `{name}` | {:.1} |", secs * 1000.0);
    }
    let ratio = rows.get(2).map_or(f64::NAN, |r| base / r.1.max(1e-9));
    let _ = writeln!(
        md,
        "\n| target | measured | result |\n|---|---:|---|\n| `import --atomic-batches` ≥ {TARGET_RATIO}× faster than `consul kv import` | {ratio:.1}× | {} |",
        if ratio >= TARGET_RATIO { "pass" } else { "**miss**" }
    );
    let _ = writeln!(md, "\nTotal {:.0} s.", started.elapsed().as_secs_f64());
    let path = out_dir.join("cli.md");
    std::fs::write(&path, &md).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{md}");
    eprintln!("bench cli: wrote {}", path.display());
    if !identical {
        return Err("consul-kv export differs from consul kv export".into());
    }
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}
