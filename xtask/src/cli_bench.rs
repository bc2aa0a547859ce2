//! `cargo xtask bench cli`: the `consul-kv` binary beside the real `consul kv`, on the same
//! real servers.
//!
//! ```text
//! cargo xtask bench cli [--import-keys N] [--export-keys M] [--value-size B] [--import-runs K]
//!                       [--runs R]
//! ```
//!
//! Builds `consul-kv` (release) and, from the binary `cargo xtask consul` built, starts in
//! turn two fresh servers on free loopback ports: a `consul agent -dev` (Raft in memory) and a
//! single server with its Raft log on disk (`-server -bootstrap-expect 1 -data-dir <tmp>`, as
//! production servers run; the directory is removed afterwards). Against each it measures,
//! one process at a time:
//!
//! - import of the same N-entry export file (default 10,000): `consul kv import @file`,
//!   `consul-kv import @file` (one PUT per key, the drop-in) and
//!   `consul-kv import --atomic-batches @file`, each the median of K runs (default 3); the
//!   prefix is deleted before each run (untimed) and the key count checked after it.
//!   Target: `--atomic-batches` at least 20× faster than `consul kv import`.
//! - the floor: the same entries as prebuilt `/v1/txn` bodies sent over plain TCP, one and
//!   four at a time, which is Consul's own cost for writing them in transactions.
//! - export of M keys (default 100,000): `consul kv export` and `consul-kv export`, whose
//!   outputs must be byte-identical.
//! - binary size, and start-up (on the `-dev` agent only): the median of R runs (default 20)
//!   of `version` / `--version`, and of one `kv get` of a small key.
//!
//! Writes `target/bench/cli.md` and prints it. Fails when no Consul binary exists: every
//! figure here is relative to it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::agent::Agent;
use crate::Result;

const HELP: &str = "cargo xtask bench cli [--import-keys N] [--export-keys M] [--value-size B] \
                    [--import-runs K] [--runs R]";
const IMPORT_PREFIX: &str = "bench/import/";
const EXPORT_PREFIX: &str = "bench/export/";
const TARGET_RATIO: f64 = 20.0;

fn start_agent(bin: &Path, data_dir: Option<&Path>) -> Result<(Agent, SocketAddr)> {
    crate::agent::start(bin, "bench-cli", data_dir)
}

/// Runs `program args` (niced) against `addr`; returns (seconds, stdout). Fails on a non-zero
/// exit.
fn timed(program: &Path, args: &[&str], addr: SocketAddr) -> Result<(f64, Vec<u8>)> {
    let mut cmd = crate::bench::build::niced(program);
    cmd.args(args);
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

/// The two programs compared.
struct Bins<'a> {
    consul: &'a Path,
    ours: &'a Path,
}

/// What every server is given: the same files, sizes and run counts.
struct Work<'a> {
    import_file: &'a Path,
    import_keys: usize,
    export_seed: &'a Path,
    export_keys: usize,
    size: usize,
    import_runs: usize,
}

/// The figures of one server.
struct ServerResult {
    /// (command, median seconds); the first is `consul kv import`, the base of the ratios.
    imports: Vec<(&'static str, f64)>,
    /// (transactions in flight, median seconds).
    floors: Vec<(usize, f64)>,
    /// (seconds, bytes of output).
    consul_export: (f64, usize),
    ours_export: f64,
    identical: bool,
}

/// Import (each command `import_runs` times, the prefix deleted before each run and the key
/// count checked after it), the raw transaction floors, and the export of `export_keys` keys,
/// all against the server at `addr`.
fn measure_server(bins: &Bins<'_>, w: &Work<'_>, addr: SocketAddr) -> Result<ServerResult> {
    let at = format!("@{}", w.import_file.display());
    let n_keys = w.import_keys;
    let mut imports = Vec::new();
    for (name, program, args) in [
        (
            "consul kv import",
            bins.consul,
            vec!["kv", "import", at.as_str()],
        ),
        ("consul-kv import", bins.ours, vec!["import", at.as_str()]),
        (
            "consul-kv import --atomic-batches",
            bins.ours,
            vec!["import", "--atomic-batches", at.as_str()],
        ),
    ] {
        let mut t = Vec::with_capacity(w.import_runs);
        for run in 1..=w.import_runs {
            delete_prefix(addr, IMPORT_PREFIX)?;
            eprintln!("bench cli: {name} ({n_keys} keys, run {run})");
            let (secs, _) = timed(program, &args, addr)?;
            let n = count_keys(addr, IMPORT_PREFIX)?;
            if n != n_keys {
                return Err(format!("{name}: {n} keys stored, expected {n_keys}"));
            }
            t.push(secs);
        }
        imports.push((name, median(t)));
    }
    delete_prefix(addr, IMPORT_PREFIX)?;
    let mut floors = Vec::new();
    for inflight in [1, 4] {
        let mut t = Vec::with_capacity(w.import_runs);
        for run in 1..=w.import_runs {
            eprintln!(
                "bench cli: raw /v1/txn floor ({n_keys} keys, {inflight} in flight, run {run})"
            );
            t.push(raw_txn_floor(
                addr,
                IMPORT_PREFIX,
                n_keys,
                w.size,
                inflight,
            )?);
            if count_keys(addr, IMPORT_PREFIX)? != n_keys {
                return Err("the raw txn floor stored the wrong number of keys".into());
            }
            delete_prefix(addr, IMPORT_PREFIX)?;
        }
        floors.push((inflight, median(t)));
    }

    eprintln!("bench cli: seeding {} keys", w.export_keys);
    let seed = format!("@{}", w.export_seed.display());
    timed(bins.ours, &["import", "--atomic-batches", &seed], addr)?;
    if count_keys(addr, EXPORT_PREFIX)? != w.export_keys {
        return Err("the export seed is incomplete".into());
    }
    eprintln!("bench cli: exports of {} keys", w.export_keys);
    let (c_secs, c_out) = timed(bins.consul, &["kv", "export", EXPORT_PREFIX], addr)?;
    let (o_secs, o_out) = timed(bins.ours, &["export", EXPORT_PREFIX], addr)?;
    Ok(ServerResult {
        imports,
        floors,
        consul_export: (c_secs, c_out.len()),
        ours_export: o_secs,
        identical: c_out == o_out,
    })
}

/// Start-up: the median of `runs` runs of `version` and of one `kv get` of a small key.
fn measure_startup(
    bins: &Bins<'_>,
    addr: SocketAddr,
    runs: usize,
) -> Result<Vec<(&'static str, f64)>> {
    let single = "bench/single";
    crate::fixtures::exchange(addr, "PUT", &format!("/v1/kv/{single}"), b"v")?;
    let mut startup = Vec::new();
    for (name, program, args) in [
        ("consul version", bins.consul, vec!["version"]),
        ("consul-kv --version", bins.ours, vec!["--version"]),
        ("consul kv get KEY", bins.consul, vec!["kv", "get", single]),
        ("consul-kv get KEY", bins.ours, vec!["get", single]),
    ] {
        let mut t = Vec::with_capacity(runs);
        for _ in 0..runs {
            t.push(timed(program, &args, addr)?.0);
        }
        startup.push((name, median(t)));
    }
    Ok(startup)
}

/// Entry point of `cargo xtask bench cli`.
pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let (mut import_keys, mut export_keys, mut size, mut runs, mut import_runs) =
        (10_000usize, 100_000usize, 128usize, 20usize, 3usize);
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
            "--import-runs" => import_runs = num("--import-runs")?.max(1),
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
    let ours = crate::bench::build::build_release(root, "consul-kv-cli", "consul-kv")?;
    let target_dir = crate::bench::build::target_dir(root);
    let out_dir = target_dir.join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let import_file = out_dir.join("cli-import.json");
    export_file(&import_file, IMPORT_PREFIX, import_keys, size)?;
    let export_seed = out_dir.join("cli-export-seed.json");
    export_file(&export_seed, EXPORT_PREFIX, export_keys, size)?;
    let bins = Bins {
        consul: &consul,
        ours: &ours,
    };
    let work = Work {
        import_file: &import_file,
        import_keys,
        export_seed: &export_seed,
        export_keys,
        size,
        import_runs,
    };

    // One server at a time: the -dev agent (which also serves the start-up rows), then a
    // single server with its Raft log on disk in a fresh directory, removed afterwards.
    let mut servers = Vec::new();
    let (agent, addr) = start_agent(&consul, None)?;
    let dev = measure_server(&bins, &work, addr);
    let startup = dev
        .as_ref()
        .ok()
        .map(|_| measure_startup(&bins, addr, runs));
    drop(agent);
    servers.push(("`consul agent -dev` (Raft in memory)".to_owned(), dev?));
    let startup = startup.transpose()?.unwrap_or_default();
    let dir = out_dir.join(format!("cli-consul-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let disk = start_agent(&consul, Some(&dir)).and_then(|(agent, addr)| {
        let r = measure_server(&bins, &work, addr);
        drop(agent);
        r
    });
    let _ = std::fs::remove_dir_all(&dir);
    servers.push((
        "`consul agent -server -bootstrap-expect 1` (Raft on disk)".to_owned(),
        disk?,
    ));

    let mut md = String::new();
    let _ = writeln!(
        md,
        "## consul-kv CLI beside consul {}\n\n`cargo xtask bench cli --import-keys {import_keys} \
         --export-keys {export_keys} --value-size {size} --import-runs {import_runs} --runs {runs}`: \
         two fresh servers in turn, a `consul agent -dev` and a single server with its Raft log on \
         disk, on free loopback ports; one process at a time, every command under `nice -n 10`, \
         imports and floors the median of {import_runs} runs; load average at the end {}.\n",
        crate::consul::CONSUL_VERSION,
        crate::bench::machine::load_average()
    );
    let _ = writeln!(
        md,
        "| server | import of {import_keys} keys ({size} B values) | seconds | vs consul kv import |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|");
    for (server, r) in &servers {
        let base = r.imports.first().map_or(f64::NAN, |i| i.1);
        for (name, secs) in &r.imports {
            let _ = writeln!(
                md,
                "| {server} | `{name}` | {secs:.2} | {:.1}× |",
                base / secs.max(1e-9)
            );
        }
        for (inflight, floor) in &r.floors {
            let _ = writeln!(
                md,
                "| {server} | floor: prebuilt `/v1/txn` bodies of 128 sets over plain TCP, {inflight} in flight (no CLI) | {floor:.2} | {:.1}× |",
                base / floor.max(1e-9)
            );
        }
    }
    let _ = writeln!(
        md,
        "\n| server | export of {export_keys} keys | seconds | output |\n|---|---|---:|---|"
    );
    for (server, r) in &servers {
        let _ = writeln!(
            md,
            "| {server} | `consul kv export` | {:.2} | {} bytes |\n| {server} | `consul-kv export` | {:.2} | {} |",
            r.consul_export.0,
            r.consul_export.1,
            r.ours_export,
            if r.identical { "byte-identical" } else { "**DIFFERS**" }
        );
    }
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
    let _ = writeln!(
        md,
        "\n| start-up (median of {runs}, on the -dev agent) | ms |\n|---|---:|"
    );
    for (name, secs) in &startup {
        let _ = writeln!(md, "| `{name}` | {:.1} |", secs * 1000.0);
    }
    let _ = writeln!(md, "\n| target | measured | result |\n|---|---:|---|");
    for (server, r) in &servers {
        let base = r.imports.first().map_or(f64::NAN, |i| i.1);
        let ratio = r.imports.get(2).map_or(f64::NAN, |i| base / i.1.max(1e-9));
        let _ = writeln!(
            md,
            "| `import --atomic-batches` ≥ {TARGET_RATIO}× faster than `consul kv import`, {server} | {ratio:.1}× | {} |",
            if ratio >= TARGET_RATIO { "pass" } else { "**miss**" }
        );
    }
    let _ = writeln!(md, "\nTotal {:.0} s.", started.elapsed().as_secs_f64());
    let path = out_dir.join("cli.md");
    std::fs::write(&path, &md).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{md}");
    eprintln!("bench cli: wrote {}", path.display());
    if servers.iter().any(|(_, r)| !r.identical) {
        return Err("consul-kv export differs from consul kv export".into());
    }
    Ok(())
}
