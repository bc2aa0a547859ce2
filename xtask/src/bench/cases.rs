//! What is measured: the workload sizes (`--quick` or full) and the cases, each a workload
//! against one server, judged by latency or throughput.

use std::time::Duration;

use super::run::Servers;

/// How big each workload is.
#[derive(Debug, Clone)]
pub(super) struct Sizes {
    pub(super) quick: bool,
    /// Rounds of the whole matrix; the median run of each case × contender is reported.
    pub(super) repeat: usize,
    pub(super) keys: usize,
    pub(super) value_size: usize,
    pub(super) seq_iterations: u64,
    pub(super) seconds: f64,
    pub(super) write_iterations: u64,
    pub(super) cas_iterations: u64,
    pub(super) list_iterations: u64,
    pub(super) watchers: usize,
    pub(super) rounds: usize,
    /// Pairs of slices of `consul-kv-bench pair` per paired case, and each slice's length.
    pub(super) pair_slices: usize,
    pub(super) pair_seconds: f64,
    pub(super) micro_seconds: f64,
    /// Entries of the huge tree read through `items_stream()` (`consul-kv-bench tree`).
    pub(super) tree_keys: usize,
    /// Reads of each kind over the huge tree.
    pub(super) tree_rounds: usize,
    pub(super) timeout: Duration,
}

impl Sizes {
    pub(super) fn full() -> Self {
        Self {
            quick: false,
            repeat: 5,
            keys: 10_000,
            value_size: 128,
            seq_iterations: 3_000,
            seconds: 3.0,
            write_iterations: 2_000,
            cas_iterations: 1_000,
            list_iterations: 20,
            watchers: 1_000,
            rounds: 5,
            pair_slices: 15,
            pair_seconds: 0.4,
            micro_seconds: 2.0,
            tree_keys: 1_000_000,
            tree_rounds: 3,
            timeout: Duration::from_secs(180),
        }
    }

    pub(super) fn quick() -> Self {
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
            pair_slices: 3,
            pair_seconds: 0.1,
            micro_seconds: 0.2,
            tree_keys: 5_000,
            tree_rounds: 1,
            timeout: Duration::from_secs(60),
        }
    }
}

/// The cases whose targets are judged by `consul-kv-bench pair`: consul-kv against the floor
/// in one process (see `crates/consul-kv-bench/src/pair.rs` for why).
pub(super) const PAIRED: [&str; 6] = [
    "get-seq-fixed",
    "get-seq-dev",
    "get-tput-1",
    "get-tput-16",
    "get-tput-64",
    "cas",
];

/// Whether a case is judged by latency (lower is better) or throughput (higher is better).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Metric {
    Latency,
    Throughput,
}

#[derive(Debug, Clone)]
pub(super) struct Case {
    pub(super) id: &'static str,
    pub(super) title: String,
    pub(super) server: &'static str,
    pub(super) metric: Metric,
    pub(super) args: Vec<String>,
    /// For throughput cases: the in-flight level.
    pub(super) inflight: usize,
}

pub(super) fn cases(s: &Sizes, servers: &Servers) -> Vec<Case> {
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
