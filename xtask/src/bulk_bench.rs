//! `cargo xtask bench bulk`: `kv.put_all` and `kv.import` beside one `PUT` per key, against
//! the devserver and a real Consul agent.
//!
//! ```text
//! cargo xtask bench bulk [--keys N] [--value-size B]
//! ```
//!
//! Builds `consul-kv-bench` (release), runs `consul-kv-bench bulk` against an in-process
//! devserver and, when `cargo xtask consul` has built the binary, against a fresh
//! `consul agent -dev` (Raft in memory) and a fresh single server with its Raft log on disk
//! (`-server -bootstrap-expect 1`, as in production), each on free loopback ports, where the
//! real `consul kv import` is timed too. Prints a table and writes it to
//! `target/bench/bulk.md`. The target: `put_all` and `import` at least 20× faster than one
//! `PUT` per key on real Consul.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use crate::agent::Agent;
use crate::Result;

const HELP: &str = "cargo xtask bench bulk [--keys N] [--value-size B]";
const TARGET_RATIO: f64 = 20.0;

/// One result line of `consul-kv-bench bulk`.
struct Line {
    method: String,
    keys: u64,
    requests: u64,
    seconds: f64,
}

/// The raw text of a top-level JSON field of a flat one-line object (numbers and plain
/// strings only, as `consul-kv-bench bulk` prints them).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = &line[start..];
    let end = rest.find([',', '}'])?;
    Some(rest[..end].trim().trim_matches('"'))
}

fn parse(line: &str) -> Option<Line> {
    Some(Line {
        method: field(line, "bulk")?.to_owned(),
        keys: field(line, "keys")?.parse().ok()?,
        requests: field(line, "requests")?.parse().ok()?,
        seconds: field(line, "seconds")?.parse().ok()?,
    })
}

fn start_agent(bin: &Path, data_dir: Option<&Path>) -> Result<(Agent, String)> {
    let (agent, addr) = crate::agent::start(bin, "bench-bulk", data_dir)?;
    Ok((agent, format!("http://{addr}")))
}

fn run_bulk(
    bench: &Path,
    target: &str,
    keys: &str,
    size: &str,
    consul: Option<&Path>,
) -> Result<Vec<Line>> {
    let mut cmd = crate::bench::build::niced(bench);
    cmd.args([
        "bulk",
        "--target",
        target,
        "--keys",
        keys,
        "--value-size",
        size,
    ]);
    if let Some(c) = consul {
        cmd.arg("--consul-bin").arg(c);
    }
    eprintln!("bench bulk: {target}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", bench.display()))?;
    if !out.status.success() {
        return Err(format!(
            "consul-kv-bench bulk --target {target}: {}",
            out.status
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Line> = text.lines().filter_map(parse).collect();
    if lines.is_empty() {
        return Err(format!("consul-kv-bench bulk printed no result:\n{text}"));
    }
    Ok(lines)
}

/// Entry point of `cargo xtask bench bulk`.
pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let (mut keys, mut size) = ("10000".to_owned(), "128".to_owned());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--keys" => keys = it.next().cloned().ok_or("--keys needs a value")?,
            "--value-size" => size = it.next().cloned().ok_or("--value-size needs a value")?,
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{HELP}")),
        }
    }
    let started = Instant::now();
    let bench = crate::bench::build::build_release(root, "consul-kv-bench", "consul-kv-bench")?;
    let target_dir = crate::bench::build::target_dir(root);
    let consul = Some(crate::consul::binary_path()).filter(|p| p.is_file());

    let mut sections: Vec<(String, Vec<Line>)> = Vec::new();
    sections.push((
        "devserver".into(),
        run_bulk(&bench, "devserver", &keys, &size, consul.as_deref())?,
    ));
    let real_note = match &consul {
        Some(bin) => {
            let (agent, base) = start_agent(bin, None)?;
            let lines = run_bulk(&bench, &base, &keys, &size, Some(bin))?;
            drop(agent);
            sections.push((
                format!("Consul {} -dev", crate::consul::CONSUL_VERSION),
                lines,
            ));
            let dir = target_dir
                .join("bench")
                .join(format!("bulk-consul-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let (agent, base) = start_agent(bin, Some(&dir))?;
            let lines = run_bulk(&bench, &base, &keys, &size, Some(bin));
            drop(agent);
            let _ = std::fs::remove_dir_all(&dir);
            sections.push((
                format!(
                    "Consul {} server, Raft on disk",
                    crate::consul::CONSUL_VERSION
                ),
                lines?,
            ));
            String::new()
        }
        None => {
            "no Consul binary (`cargo xtask consul`): the real-Consul rows were SKIPPED\n".into()
        }
    };

    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Bulk writes\n\n`cargo xtask bench bulk --keys {keys} --value-size {size}`: {keys} keys of {size} B, \
         median of 3 runs per method, sequential; load average at the end {}.\n",
        crate::bench::machine::load_average()
    );
    let _ = writeln!(
        md,
        "| server | method | requests | seconds | keys/s | vs one PUT per key |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
    let mut verdicts = Vec::new();
    for (server, lines) in &sections {
        let base = lines
            .iter()
            .find(|l| l.method == "put-per-key")
            .map(|l| l.seconds);
        for l in lines {
            let ratio = base.map(|b| b / l.seconds.max(1e-9));
            let _ = writeln!(
                md,
                "| {server} | {} | {} | {:.3} | {:.0} | {} |",
                l.method,
                l.requests,
                l.seconds,
                l.keys as f64 / l.seconds.max(1e-9),
                ratio.map_or("-".into(), |r| format!("{r:.1}×"))
            );
            if server.starts_with("Consul") && (l.method == "put_all" || l.method == "import") {
                if let Some(r) = ratio {
                    verdicts.push(format!(
                        "| `{}` ≥ {TARGET_RATIO}× one PUT per key ({server}) | {r:.1}× | {} |",
                        l.method,
                        if r >= TARGET_RATIO {
                            "pass"
                        } else {
                            "**miss**"
                        }
                    ));
                }
            }
        }
    }
    md.push('\n');
    md.push_str(&real_note);
    if !verdicts.is_empty() {
        let _ = writeln!(md, "| target | measured | result |\n|---|---:|---|");
        for v in &verdicts {
            let _ = writeln!(md, "{v}");
        }
    }
    let _ = writeln!(md, "\nTotal {:.0} s.", started.elapsed().as_secs_f64());
    let out_dir = target_dir.join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let path = out_dir.join("bulk.md");
    std::fs::write(&path, &md).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{md}");
    eprintln!("bench bulk: wrote {}", path.display());
    Ok(())
}
