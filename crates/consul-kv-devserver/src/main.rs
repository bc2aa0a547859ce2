//! `consul-kv-devserver`: runs the devserver as a process.
//!
//! ```text
//! consul-kv-devserver [--listen 127.0.0.1:8500] [--datacenter dc1 [--datacenter dc2 …]]
//!                     [--acl-token TOKEN] [--data FILE] [--tombstone-ttl 15m]
//!                     [--log-level info]
//! ```
//!
//! Logs go to stderr (level from `--log-level`, else `RUST_LOG` if it is a plain level, else
//! `info`). With `--data`, every write is on disk before it is answered (a write-ahead log);
//! SIGINT or SIGTERM stops the server and compacts the file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use consul_kv_devserver::DevServer;
use tracing::Level;

const USAGE: &str = "usage: consul-kv-devserver [--listen ADDR] [--datacenter DC]... \
[--acl-token TOKEN] [--data FILE] [--tombstone-ttl DURATION] [--log-level LEVEL]

  --listen ADDR        address to listen on (default 127.0.0.1:8500)
  --datacenter DC      a datacenter; repeat for more; the first is the default (default dc1)
  --acl-token TOKEN    enable ACL mode with this management token
  --data FILE          keep every datacenter, session and index in this write-ahead log:
                       a write is on disk before it is answered (a `consul kv export`
                       file is imported into the default datacenter)
  --tombstone-ttl D    reap tombstones older than D, a Go duration (default 15m; 0 = never)
  --log-level LEVEL    error, warn, info, debug or trace (default info)
  -h, --help           this text";

#[derive(Debug)]
struct Args {
    listen: SocketAddr,
    datacenters: Vec<String>,
    acl_token: Option<String>,
    data: Option<PathBuf>,
    tombstone_ttl: Option<std::time::Duration>,
    level: Level,
}

fn parse_level(s: &str) -> Option<Level> {
    s.trim().parse().ok()
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 8500)),
        datacenters: Vec::new(),
        acl_token: None,
        data: None,
        tombstone_ttl: Some(consul_kv_devserver::DEFAULT_TOMBSTONE_TTL),
        level: std::env::var("RUST_LOG")
            .ok()
            .and_then(|s| parse_level(&s))
            .unwrap_or(Level::INFO),
    };
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => {
                let v = value("--listen")?;
                args.listen = v.parse().map_err(|e| format!("--listen {v:?}: {e}"))?;
            }
            "--datacenter" | "--dc" => args.datacenters.push(value("--datacenter")?),
            "--acl-token" => args.acl_token = Some(value("--acl-token")?),
            "--data" => args.data = Some(PathBuf::from(value("--data")?)),
            "--tombstone-ttl" => {
                let v = value("--tombstone-ttl")?;
                let d = consul_kv_proto::parse_go_duration(&v)
                    .ok_or_else(|| format!("--tombstone-ttl {v:?}: not a duration like 15m"))?;
                args.tombstone_ttl = Some(d).filter(|d| !d.is_zero());
            }
            "--log-level" => {
                let v = value("--log-level")?;
                args.level = parse_level(&v).ok_or_else(|| format!("unknown log level {v:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(args))
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
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("consul-kv-devserver: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_max_level(args.level)
        .with_writer(std::io::stderr)
        .init();

    let mut builder = DevServer::builder().listen(args.listen);
    for dc in &args.datacenters {
        builder = builder.datacenter(dc);
    }
    if let Some(t) = &args.acl_token {
        builder = builder.acl_token(t);
    }
    if let Some(d) = &args.data {
        builder = builder.data_file(d);
    }
    builder = builder.tombstone_ttl(args.tombstone_ttl);
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

    fn parse(v: &[&str]) -> Result<Option<Args>, String> {
        parse_args(v.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_flags() {
        let a = parse(&[
            "--listen",
            "127.0.0.1:9000",
            "--datacenter",
            "dc1",
            "--datacenter=dc2",
            "--acl-token",
            "root",
            "--data",
            "/tmp/x.json",
            "--log-level",
            "debug",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(a.listen.port(), 9000);
        assert_eq!(a.datacenters, ["dc1", "dc2"]);
        assert_eq!(a.acl_token.as_deref(), Some("root"));
        assert_eq!(a.data, Some(PathBuf::from("/tmp/x.json")));
        assert_eq!(a.level, Level::DEBUG);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&["--listen"]).is_err());
        assert!(parse(&["--listen", "nope"]).is_err());
        assert!(parse(&["--what"]).is_err());
        assert!(parse(&["--help"]).unwrap().is_none());
    }
}
