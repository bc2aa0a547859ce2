//! Smoke tests of the bench harness in a tiny configuration, so that it cannot rot: every
//! workload of our two contenders (consul-kv and the floor) against in-process servers, and
//! the `consul-kv-bench` binary's serve / run / micro contract. Peers are not built here.
//!
//! No timing assertions: only that results parse and count something.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use consul_kv_bench::contenders::{ConsulKv, Floor};
use consul_kv_bench::fixed::{Canned, Dataset};
use consul_kv_bench::harness::{self, Params, Workload};
use consul_kv_bench::serve::{seed, Servers};
use serde_json::Value;

const KEYS: usize = 20;

fn args(target: &str, workload: Workload) -> Vec<String> {
    [
        "--target",
        target,
        "--workload",
        workload.name(),
        "--iterations",
        "3",
        "--warmup",
        "1",
        "--inflight",
        "2",
        "--keys",
        &KEYS.to_string(),
        "--watchers",
        "3",
        "--rounds",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn check(line: &str) {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(v["count"].as_u64().is_some_and(|c| c > 0), "{line}");
    assert_eq!(v["errors"].as_u64(), Some(0), "{line}");
    assert_eq!(v["unsupported"].as_bool(), Some(false), "{line}");
    for field in ["seconds", "ops_per_sec", "p50_us", "p99_us", "mean_us"] {
        assert!(v[field].as_f64().is_some(), "{field} in {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_for_consul_kv_and_the_floor() {
    let data = Dataset {
        keys: KEYS,
        ..Dataset::default()
    };
    let servers = Servers::start(&data).await.unwrap();
    let urls: Value = serde_json::from_str(&servers.urls_json()).unwrap();
    let dev = urls["devserver"].as_str().unwrap().to_owned();
    assert_eq!(seed(&dev, &data, 4).await.unwrap(), KEYS);

    let mut cases: Vec<(String, Workload)> =
        Workload::ALL.iter().map(|&w| (dev.clone(), w)).collect();
    for (kind, workload) in [
        (Canned::Get, Workload::Get),
        (Canned::Set, Workload::Set),
        (Canned::Items, Workload::Items),
        (Canned::Keys, Workload::Keys),
    ] {
        assert_eq!(urls["fixed"][kind.name()], servers.fixed.url(kind));
        cases.push((servers.fixed.url(kind).to_owned(), workload));
    }

    for contender in ["consul-kv", "floor"] {
        for (target, workload) in &cases {
            let p = Params::parse(contender, &args(target, *workload)).unwrap();
            let out = if contender == "floor" {
                harness::run(Floor::new(&p).unwrap(), &p).await
            } else {
                harness::run(ConsulKv::new(&p).unwrap(), &p).await
            };
            let line = out.to_json();
            check(&line);
            if matches!(workload, Workload::Items | Workload::Keys) {
                let v: Value = serde_json::from_str(&line).unwrap();
                assert_eq!(v["entries"].as_u64(), Some(KEYS as u64), "{line}");
                assert!(v["rss_delta_kb"].as_u64().is_some(), "{line}");
            }
        }
    }
}

#[test]
fn the_binary_serves_runs_and_measures() {
    let bin = env!("CARGO_BIN_EXE_consul-kv-bench");
    let mut serve = Command::new(bin)
        .args(["serve", "--keys", "5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(serve.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let urls: Value = serde_json::from_str(&line).unwrap();
    let fixed_get = urls["fixed"]["get"].as_str().unwrap();
    let dev = urls["devserver"].as_str().unwrap();

    let seeded = Command::new(bin)
        .args(["seed", "--target", dev, "--keys", "5"])
        .output()
        .unwrap();
    assert!(seeded.status.success());
    let v: Value = serde_json::from_slice(&seeded.stdout).unwrap();
    assert_eq!(v["seeded"], 5);

    for target in [fixed_get, dev] {
        let run = Command::new(bin)
            .args(["run", "--contender", "consul-kv"])
            .args(args(target, Workload::Get))
            .output()
            .unwrap();
        assert!(run.status.success(), "{run:?}");
        check(String::from_utf8(run.stdout).unwrap().trim());
    }

    let micro = Command::new(bin)
        .args(["micro", "--seconds", "0.01", "--keys", "5"])
        .output()
        .unwrap();
    assert!(micro.status.success());
    let lines: Vec<Value> = String::from_utf8(micro.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for name in ["build_get", "parse_get", "parse_items", "parse_keys"] {
        assert!(
            lines
                .iter()
                .any(|l| l["micro"] == name && l["iterations"].as_u64() > Some(0)),
            "{name} missing in {lines:?}"
        );
    }

    // Closing standard input stops the servers.
    drop(serve.stdin.take());
    assert!(serve.wait().unwrap().success());
}
