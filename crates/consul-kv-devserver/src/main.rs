//! `consul-kv-devserver`: runs the devserver as a process.
//!
//! ```text
//! consul-kv-devserver [--listen 127.0.0.1:8500] [--datacenter dc1 [--datacenter dc2 …]]
//!                     [--acl-token TOKEN] [--data FILE [--data-fsync]] [--tombstone-ttl 15m]
//!                     [--node-name NAME] [--log-level info] [--no-ui]
//!                     [--consul-version 1.14|1.21|1.22] [--rate-limit READ,WRITE]
//! ```
//!
//! The KV browser is at `http://ADDR/ui/` unless `--no-ui` is given.
//!
//! Logs go to stderr (level from `--log-level`, else `RUST_LOG` if it is a plain level, else
//! `info`). With `--data`, every write is in the file before it is answered (a write-ahead
//! log; `--data-fsync` also syncs it to the disk);
//! SIGINT or SIGTERM stops the server and compacts the file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use consul_kv_devserver::DevServer;
use tracing::Level;

/// An embedded, Consul-compatible KV, session and transaction server.
#[derive(Debug, Parser)]
#[command(name = "consul-kv-devserver", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8500")]
    listen: SocketAddr,
    /// A datacenter; repeat for more; the first is the default (default dc1).
    #[arg(long = "datacenter", visible_alias = "dc", value_name = "DC")]
    datacenters: Vec<String>,
    /// Enable ACL mode with this management token.
    #[arg(long, value_name = "TOKEN")]
    acl_token: Option<String>,
    /// Keep every datacenter, session and index in this write-ahead log: a write is in the
    /// file before it is answered, so killing the server loses nothing it acknowledged (a
    /// `consul kv export` file is imported into the default datacenter).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// With --data: also `fdatasync` each write before answering it (group commit), so that
    /// a power loss loses nothing acknowledged either.
    #[arg(long)]
    data_fsync: bool,
    /// Reap tombstones older than this Go duration, like Consul's `tombstone_ttl` (0: never).
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_ttl)]
    tombstone_ttl: std::time::Duration,
    /// The agent's node name (default: the host name, else `devserver`).
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// error, warn, info, debug or trace (default: `RUST_LOG` if it is a plain level, else info).
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    log_level: Option<Level>,
    /// Do not serve the KV browser at /ui/.
    #[arg(long)]
    no_ui: bool,
    /// The Consul release to reproduce where releases differ: 1.14 (default), 1.21 or 1.22.
    #[arg(long, value_name = "VERSION", default_value = "1.14")]
    consul_version: consul_kv_devserver::ConsulVersion,
    /// Enforce a server rate limit like Consul 1.15+: READ,WRITE requests per second
    /// (e.g. 100,20); reads over it get 429, writes 503, before anything is applied.
    #[arg(long, value_name = "READ,WRITE")]
    rate_limit: Option<consul_kv_devserver::RateLimit>,
}

fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    consul_kv_proto::parse_go_duration(s).ok_or_else(|| format!("not a duration like 15m: {s:?}"))
}

fn parse_level(s: &str) -> Result<Level, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("unknown log level {s:?}"))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // `--help`, `--version` and bad arguments print and exit here (status 2 on an error).
    let args = Args::parse();
    let level = args.log_level.unwrap_or_else(|| {
        std::env::var("RUST_LOG")
            .ok()
            .and_then(|s| parse_level(&s).ok())
            .unwrap_or(Level::INFO)
    });
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();

    let mut builder = DevServer::builder()
        .listen(args.listen)
        .ui(!args.no_ui)
        .consul_version(args.consul_version);
    if let Some(l) = args.rate_limit {
        builder = builder.rate_limit(l);
    }
    for dc in &args.datacenters {
        builder = builder.datacenter(dc);
    }
    if let Some(t) = &args.acl_token {
        builder = builder.acl_token(t);
    }
    if let Some(d) = &args.data {
        builder = builder.data_file(d);
    }
    if let Some(n) = &args.node_name {
        builder = builder.node_name(n);
    }
    builder = builder
        .tombstone_ttl(Some(args.tombstone_ttl))
        .data_fsync(args.data_fsync);
    let server = match builder.start().await {
        Ok(s) => {
            if let Some(r) = s.recovery() {
                tracing::info!(
                    records = r.records,
                    discarded_bytes = r.discarded_bytes,
                    "data file recovered"
                );
            }
            s
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        addr = %server.http_addr(),
        datacenters = ?server.datacenters(),
        node = server.node_name(),
        acl = args.acl_token.is_some(),
        "ready"
    );
    if !args.no_ui {
        tracing::info!("KV browser at {}/ui/", server.http_addr());
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    match server.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "shutdown failed");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("consul-kv-devserver").chain(v.iter().copied()))
    }

    #[test]
    fn parses_flags() {
        let a = parse(&[
            "--listen",
            "127.0.0.1:9000",
            "--datacenter",
            "dc1",
            "--datacenter=dc2",
            "--dc",
            "dc3",
            "--acl-token",
            "root",
            "--data",
            "/tmp/x.json",
            "--node-name",
            "node-a",
            "--log-level",
            "debug",
        ])
        .unwrap();
        assert_eq!(a.listen.port(), 9000);
        assert_eq!(a.datacenters, ["dc1", "dc2", "dc3"]);
        assert_eq!(a.acl_token.as_deref(), Some("root"));
        assert_eq!(a.data, Some(PathBuf::from("/tmp/x.json")));
        assert_eq!(a.node_name.as_deref(), Some("node-a"));
        assert_eq!(a.log_level, Some(Level::DEBUG));
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.listen, SocketAddr::from(([127, 0, 0, 1], 8500)));
        assert!(a.datacenters.is_empty());
        assert_eq!(a.node_name, None);
        assert_eq!(a.log_level, None);
        assert!(!a.no_ui);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&["--listen"]).is_err());
        assert!(parse(&["--listen", "nope"]).is_err());
        assert!(parse(&["--log-level", "loud"]).is_err());
        assert!(parse(&["--what"]).is_err());
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(help.to_string().contains("--node-name"));
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
