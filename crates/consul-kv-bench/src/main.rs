//! `consul-kv-bench`: the benchmark binary `cargo xtask bench` drives.
//!
//! ```text
//! consul-kv-bench serve [--keys N] [--value-size B]
//!     starts the devserver and the fixed-response server, prints their base URLs as one
//!     JSON line, and serves until standard input reaches EOF
//! consul-kv-bench seed --target URL [--keys N] [--value-size B] [--prefix P]
//!     writes the list workloads' keys through the HTTP API
//! consul-kv-bench run --contender consul-kv|floor --target URL --workload W [...]
//!     one harness run; prints one JSON result line (flags: see the harness contract)
//! consul-kv-bench micro [--seconds S] [--keys N] [--value-size B] [--only NAME]
//!     proto build/parse micro benchmarks; one JSON line each
//! consul-kv-bench gzip [--target URL] [--keys N] [--value-size B] [--rounds R]
//!     items() with and without gzip (an in-process devserver without --target); one JSON line
//! consul-kv-bench watch-fanout --target URL --subscribers N [--keys K] [--shared yes|no] [--writes W] [--interval-ms MS]
//!     watch fan-out: wake-up latency and requests at the server; one JSON line
//! consul-kv-bench bulk --target URL|devserver [--keys N] [--value-size B] [--consul-bin PATH] [--runs R]
//!     put_all and import beside one PUT per key, R runs (default 3); the median of each
//! consul-kv-bench tree [--keys N] [--value-size B] [--rounds R] [--target URL]
//!     a huge tree through items_stream() beside items() (default 1,000,000 keys x 100 B,
//!     3 rounds, a devserver started in a child process); one JSON line
//! ```

use std::io::{Read as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use consul_kv_bench::contenders::{ConsulKv, Floor};
use consul_kv_bench::fixed::Dataset;
use consul_kv_bench::harness::{cli_main, USAGE};
use consul_kv_bench::micro;
use consul_kv_bench::serve::{seed_json, Servers};

const HELP: &str = "\
consul-kv-bench serve [--keys N] [--value-size B]
consul-kv-bench seed --target URL [--keys N] [--value-size B] [--prefix P]
consul-kv-bench run --contender consul-kv|floor <contract>
consul-kv-bench pair [--slices N] <contract>   (consul-kv and the floor in one process)
consul-kv-bench micro [--seconds S] [--keys N] [--value-size B] [--only NAME]
consul-kv-bench gzip [--target URL] [--keys N] [--value-size B] [--rounds R]
consul-kv-bench watch-fanout --target URL --subscribers N [--keys K] [--shared yes|no]
                             [--writes W] [--interval-ms MS]
consul-kv-bench bulk --target URL|devserver [--keys N] [--value-size B] [--consul-bin PATH] [--runs R]
consul-kv-bench tree [--keys N] [--value-size B] [--rounds R] [--target URL]
consul-kv-bench tree-read --target URL --prefix P --mode stream|items

<contract>:
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match cmd {
        "serve" => serve(rest),
        "seed" => seed(rest),
        "run" => run(rest),
        "pair" => run_pair(rest),
        "micro" => run_micro(rest),
        "gzip" => run_gzip(rest),
        "watch-fanout" => watch_fanout(rest),
        "bulk" => run_bulk(rest),
        "tree" => run_tree(rest),
        "tree-read" => run_tree_read(rest),
        "help" | "-h" | "--help" => {
            println!("{HELP}{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{HELP}{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("consul-kv-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--flag value` pairs, in order; a flag without its value is an error.
fn flag_pairs(args: &[String]) -> Result<Vec<(&str, &str)>, String> {
    args.chunks(2)
        .map(|pair| match pair {
            [flag, value] => Ok((flag.as_str(), value.as_str())),
            _ => Err(format!("{} needs a value", pair[0])),
        })
        .collect()
}

/// A flag's value as a count.
fn number(flag: &str, v: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .map_err(|_| format!("{flag}: {v:?} is not a number"))
}

/// Named flag values that are not part of the dataset.
type Extra<'a> = Vec<(&'a str, &'a str)>;

/// `--name value` flags into a dataset (and the other named values).
fn flags<'a>(args: &'a [String], extra: &[&str]) -> Result<(Dataset, Extra<'a>), String> {
    let mut data = Dataset::default();
    let mut rest = Vec::new();
    for (flag, value) in flag_pairs(args)? {
        let num = |v: &str| number(flag, v);
        match flag {
            "--keys" => data.keys = num(value)?,
            "--value-size" => data.value_size = num(value)?,
            "--prefix" => value.clone_into(&mut data.prefix),
            f if extra.contains(&f) => rest.push((f, value)),
            f => return Err(format!("unknown flag {f:?}\n\n{HELP}")),
        }
    }
    Ok((data, rest))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

fn serve(args: &[String]) -> Result<(), String> {
    let (data, _) = flags(args, &[])?;
    let rt = runtime()?;
    rt.block_on(async {
        let servers = Servers::start(&data).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", servers.urls_json()).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
        drop(out);
        // Serve until whoever started us closes our standard input (or exits).
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().lock().read_to_end(&mut sink);
        })
        .await
        .map_err(|e| e.to_string())?;
        servers
            .devserver
            .shutdown()
            .await
            .map_err(|e| format!("devserver shutdown: {e}"))
    })
}

fn seed(args: &[String]) -> Result<(), String> {
    let (data, rest) = flags(args, &["--target"])?;
    let target = rest
        .iter()
        .find(|(f, _)| *f == "--target")
        .map(|(_, v)| *v)
        .ok_or("--target is required")?;
    let line = runtime()?.block_on(seed_json(target, &data))?;
    println!("{line}");
    Ok(())
}

fn run(args: &[String]) -> Result<(), String> {
    let mut contender = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--contender" {
            contender = it.next().cloned();
        } else {
            rest.push(a.clone());
        }
    }
    let outcome = match contender.as_deref() {
        Some("consul-kv") => cli_main("consul-kv", &rest, ConsulKv::new)?,
        Some("floor") => cli_main("floor", &rest, Floor::new)?,
        other => {
            return Err(format!(
                "--contender must be consul-kv or floor, not {other:?}"
            ))
        }
    };
    println!("{}", outcome.to_json());
    Ok(())
}

fn run_pair(args: &[String]) -> Result<(), String> {
    let mut slices = 15usize;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--slices" {
            let v = it.next().ok_or("--slices needs a value")?;
            slices = number(a, v)?;
        } else {
            rest.push(a.clone());
        }
    }
    let p = consul_kv_bench::harness::Params::parse("pair", &rest)?;
    let paired = runtime()?.block_on(consul_kv_bench::pair::run(&p, slices))?;
    println!("{}", paired.to_json());
    Ok(())
}

fn run_micro(args: &[String]) -> Result<(), String> {
    let (data, rest) = flags(args, &["--seconds", "--only"])?;
    let only = rest.iter().find(|(f, _)| *f == "--only").map(|(_, v)| *v);
    let seconds = match rest.iter().find(|(f, _)| *f == "--seconds") {
        Some((_, v)) => v.parse::<f64>().map_err(|_| format!("--seconds: {v:?}"))?,
        None => 2.0,
    };
    for r in micro::run(&data, Duration::from_secs_f64(seconds.max(0.001)), only) {
        println!("{}", r.to_json());
    }
    Ok(())
}

fn run_gzip(args: &[String]) -> Result<(), String> {
    let (mut data, rest) = flags(args, &["--target", "--rounds"])?;
    if !args.iter().any(|a| a == "--keys") {
        data.keys = 10_000;
    }
    if !args.iter().any(|a| a == "--value-size") {
        data.value_size = 128;
    }
    data.prefix = "bench/gzip/".into();
    let rounds = match rest.iter().find(|(f, _)| *f == "--rounds") {
        Some((_, v)) => v.parse::<usize>().map_err(|_| format!("--rounds: {v:?}"))?,
        None => 50,
    };
    let target = rest
        .iter()
        .find(|(f, _)| *f == "--target")
        .map(|(_, v)| v.to_string());
    runtime()?.block_on(async {
        let (target, local) = match target {
            Some(t) => (t, None),
            None => {
                let d = consul_kv_devserver::DevServer::builder()
                    .start()
                    .await
                    .map_err(|e| e.to_string())?;
                (d.http_addr(), Some(d))
            }
        };
        let r = consul_kv_bench::gzip::run(&target, &data, rounds, false).await?;
        println!("{}", r.to_json());
        if let Some(d) = local {
            d.shutdown().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

fn watch_fanout(args: &[String]) -> Result<(), String> {
    let mut cfg = consul_kv_bench::fanout::FanoutConfig {
        target: String::new(),
        subscribers: 1000,
        keys: 10,
        shared: true,
        writes: 50,
        interval: Duration::from_millis(50),
    };
    for (flag, value) in flag_pairs(args)? {
        let num = |v: &str| number(flag, v);
        match flag {
            "--target" => value.clone_into(&mut cfg.target),
            "--subscribers" => cfg.subscribers = num(value)?,
            "--keys" => cfg.keys = num(value)?.max(1),
            "--writes" => cfg.writes = num(value)?,
            "--interval-ms" => cfg.interval = Duration::from_millis(num(value)? as u64),
            "--shared" => {
                cfg.shared = match value {
                    "yes" | "true" => true,
                    "no" | "false" => false,
                    v => return Err(format!("--shared: {v:?} is not yes or no")),
                }
            }
            f => return Err(format!("unknown flag {f:?}\n\n{HELP}")),
        }
    }
    if cfg.target.is_empty() {
        return Err("--target is required".into());
    }
    let result = runtime()?.block_on(consul_kv_bench::fanout::run(cfg))?;
    println!("{}", result.to_json());
    Ok(())
}

fn run_bulk(args: &[String]) -> Result<(), String> {
    let (data, rest) = flags(args, &["--target", "--consul-bin", "--runs"])?;
    let runs = match rest.iter().find(|(f, _)| *f == "--runs") {
        Some((_, v)) => v.parse::<usize>().map_err(|_| format!("--runs: {v:?}"))?,
        None => 3,
    }
    .max(1);
    let target = rest
        .iter()
        .find(|(f, _)| *f == "--target")
        .map(|(_, v)| (*v).to_owned())
        .ok_or("--target is required")?;
    let opts = consul_kv_bench::bulk::BulkOptions {
        keys: data.keys,
        value_size: data.value_size,
        prefix: format!("bench-bulk/{}/", std::process::id()),
        consul_bin: rest
            .iter()
            .find(|(f, _)| *f == "--consul-bin")
            .map(|(_, v)| std::path::PathBuf::from(v)),
    };
    runtime()?.block_on(async {
        let local = if target == "devserver" {
            Some(
                consul_kv_devserver::DevServer::builder()
                    .start()
                    .await
                    .map_err(|e| format!("devserver: {e}"))?,
            )
        } else {
            None
        };
        let url = local.as_ref().map_or(target.clone(), |d| d.http_addr());
        // Every method `runs` times, interleaved; the median run of each is printed.
        let mut all: Vec<Vec<consul_kv_bench::bulk::BulkResult>> = Vec::new();
        for _ in 0..runs {
            for (i, r) in consul_kv_bench::bulk::run(&url, &opts)
                .await?
                .into_iter()
                .enumerate()
            {
                match all.get_mut(i) {
                    Some(v) => v.push(r),
                    None => all.push(vec![r]),
                }
            }
        }
        for mut v in all {
            v.sort_by_key(|r| r.elapsed);
            println!("{}", v[v.len() / 2].to_json());
        }
        if let Some(d) = local {
            d.shutdown().await.map_err(|e| format!("devserver: {e}"))?;
        }
        Ok(())
    })
}

fn run_tree(args: &[String]) -> Result<(), String> {
    let mut p = consul_kv_bench::tree::TreeParams {
        keys: 1_000_000,
        value_size: 100,
        rounds: 3,
    };
    let mut target = None;
    for (flag, value) in flag_pairs(args)? {
        let num = |v: &str| number(flag, v);
        match flag {
            "--keys" => p.keys = num(value)?,
            "--value-size" => p.value_size = num(value)?,
            "--rounds" => p.rounds = num(value)?,
            "--target" => target = Some(value.to_owned()),
            f => return Err(format!("unknown flag {f:?}\n\n{HELP}")),
        }
    }
    // Without a target, a devserver in a child process: this process's memory is the
    // client's alone.
    let mut child = None;
    let target = match target {
        Some(t) => t,
        None => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let mut c = std::process::Command::new(exe)
                .args(["serve", "--keys", "1"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("serve: {e}"))?;
            let mut line = String::new();
            let out = c.stdout.take().ok_or("serve: no stdout")?;
            std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)
                .map_err(|e| format!("serve: {e}"))?;
            let urls: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| format!("serve said {line:?}: {e}"))?;
            let url = urls["devserver"]
                .as_str()
                .ok_or_else(|| format!("serve said {line:?}"))?
                .to_owned();
            child = Some(c);
            url
        }
    };
    let result = runtime()?.block_on(consul_kv_bench::tree::run(&target, &p));
    if let Some(mut c) = child {
        drop(c.stdin.take());
        let _ = c.wait();
    }
    println!("{}", result?);
    Ok(())
}

/// One read of `tree`, in a fresh process (so that its peak memory is its own).
fn run_tree_read(args: &[String]) -> Result<(), String> {
    let get = |name: &str| {
        args.chunks(2)
            .find(|p| p[0] == name)
            .and_then(|p| p.get(1))
            .cloned()
            .ok_or_else(|| format!("{name} is required"))
    };
    let (target, prefix, mode) = (get("--target")?, get("--prefix")?, get("--mode")?);
    let line = runtime()?.block_on(consul_kv_bench::tree::read_once(&target, &prefix, &mode))?;
    println!("{line}");
    Ok(())
}
