//! One real Consul agent on free loopback ports, for the xtask commands that need one
//! (`fixtures`, `bench bulk`, `bench cli`). The agent is killed when its handle drops.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

/// A running agent; dropping it kills and reaps the process.
pub(crate) struct Agent(Child);

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

/// Starts `bin` as a `-dev` agent (in-memory Raft), or with `data_dir` as a single server
/// that keeps its Raft log on disk (`-server -bootstrap-expect 1`, as a production server
/// does), named `node`, and waits up to 60 s for it to elect a leader. Returns the agent and
/// its HTTP address.
pub(crate) fn start(
    bin: &Path,
    node: &str,
    data_dir: Option<&Path>,
) -> Result<(Agent, SocketAddr)> {
    let (http, serf, server) = (free_port()?, free_port()?, free_port()?);
    let mut cmd = Command::new(bin);
    match data_dir {
        None => cmd.args(["agent", "-dev"]),
        Some(d) => cmd
            .args(["agent", "-server", "-bootstrap-expect", "1", "-data-dir"])
            .arg(d),
    };
    let child = cmd
        .args(["-node", node, "-bind", "127.0.0.1"])
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
    let started = Instant::now();
    loop {
        if let Ok(r) = crate::fixtures::exchange(addr, "GET", "/v1/status/leader", b"") {
            if r.status == 200 && r.body.len() > 2 {
                return Ok((agent, addr));
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the agent elected no leader within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
