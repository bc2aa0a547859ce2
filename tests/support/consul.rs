//! Real Consul agents for tests: a `-dev` agent or a three-server cluster on loopback.
//!
//! The binary comes from `cargo xtask consul` (Consul 1.14.11 built from Go modules, cached
//! outside the repo) or from `CONSUL_KV_CONSUL_BIN`. Every agent listens on free loopback ports
//! with DNS, gRPC, gRPC-TLS and Serf WAN disabled, so parallel agents cannot clash. An agent is
//! killed and reaped when its handle drops; a shared agent that outlives its handle (a `static`)
//! is watched by a small shell loop that kills it once the test process is gone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Consul version `cargo xtask consul` builds.
pub const CONSUL_VERSION: &str = "1.14.11";

/// The cached binary, if present: `CONSUL_KV_CONSUL_BIN`, else the xtask cache path.
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CONSUL_KV_CONSUL_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let cache = if let Some(d) = std::env::var_os("CONSUL_KV_CACHE_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        PathBuf::from(d).join("consul-kv")
    } else {
        PathBuf::from(std::env::var_os("HOME")?).join(".cache/consul-kv")
    };
    let p = cache
        .join(format!("consul-{CONSUL_VERSION}"))
        .join("consul");
    p.is_file().then_some(p)
}

/// A free loopback TCP port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One `GET` over a plain TCP connection; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let (status, body) = match resp.parse(&buf) {
        Ok(httparse::Status::Complete(head_len)) => (
            resp.code.unwrap_or(0),
            String::from_utf8_lossy(&buf[head_len..]).into_owned(),
        ),
        _ => (0, String::new()),
    };
    Ok((status, body))
}

/// Ports of one agent.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// HTTP API.
    pub http: u16,
    /// Serf LAN gossip.
    pub serf_lan: u16,
    /// Server RPC (Raft).
    pub server: u16,
}

impl Ports {
    /// Three free ports.
    pub fn free() -> Self {
        Self {
            http: free_port(),
            serf_lan: free_port(),
            server: free_port(),
        }
    }
}

/// A running Consul agent.
#[derive(Debug)]
pub struct ConsulAgent {
    child: Option<Child>,
    ports: Ports,
    node: String,
    data_dir: Option<PathBuf>,
}

fn base_args(ports: Ports) -> Vec<String> {
    [
        "-bind",
        "127.0.0.1",
        "-client",
        "127.0.0.1",
        "-http-port",
        &ports.http.to_string(),
        "-serf-lan-port",
        &ports.serf_lan.to_string(),
        "-server-port",
        &ports.server.to_string(),
        "-serf-wan-port",
        "-1",
        "-dns-port",
        "-1",
        "-grpc-port",
        "-1",
        "-grpc-tls-port",
        "-1",
        "-log-level",
        "warn",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn spawn(bin: &Path, args: &[String]) -> std::io::Result<Child> {
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

impl ConsulAgent {
    /// Starts `consul agent -dev` on free ports.
    pub fn dev(bin: &Path) -> std::io::Result<Self> {
        let ports = Ports::free();
        let node = format!("dev-{}", ports.http);
        let mut args = vec![
            "agent".to_owned(),
            "-dev".to_owned(),
            "-node".to_owned(),
            node.clone(),
        ];
        args.extend(base_args(ports));
        Ok(Self {
            child: Some(spawn(bin, &args)?),
            ports,
            node,
            data_dir: None,
        })
    }

    /// Starts one server of a cluster that expects `expect` servers and joins `peers` (their
    /// Serf LAN ports).
    pub fn server(
        bin: &Path,
        node: &str,
        ports: Ports,
        expect: usize,
        peers: &[u16],
        data_dir: PathBuf,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&data_dir)?;
        let mut args: Vec<String> = vec![
            "agent".into(),
            "-server".into(),
            "-bootstrap-expect".into(),
            expect.to_string(),
            "-node".into(),
            node.into(),
            "-data-dir".into(),
            data_dir.display().to_string(),
            "-retry-interval".into(),
            "1s".into(),
            "-hcl".into(),
            "performance { raft_multiplier = 1 }".into(),
        ];
        args.extend(base_args(ports));
        for p in peers {
            args.push("-retry-join".into());
            args.push(format!("127.0.0.1:{p}"));
        }
        Ok(Self {
            child: Some(spawn(bin, &args)?),
            ports,
            node: node.to_owned(),
            data_dir: Some(data_dir),
        })
    }

    /// The HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.http))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.http_addr())
    }

    /// The ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// The node name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// The leader's server address as this agent reports it (`127.0.0.1:PORT`), if any.
    pub fn leader(&self) -> Option<String> {
        let (status, body) = http_get(
            self.http_addr(),
            "/v1/status/leader",
            Duration::from_secs(2),
        )
        .ok()?;
        let leader = body.trim().trim_matches('"').to_owned();
        (status == 200 && !leader.is_empty()).then_some(leader)
    }

    /// Waits until the agent reports a leader and serves KV reads.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if !self.is_running() {
                return Err(format!("consul agent {} exited during start", self.node));
            }
            if self.leader().is_some() {
                if let Ok((status, _)) = http_get(
                    self.http_addr(),
                    "/v1/kv/ready-probe",
                    Duration::from_secs(2),
                ) {
                    if status == 404 || status == 200 {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "consul agent {} not ready after {timeout:?}",
            self.node
        ))
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Makes sure the agent dies with this process even if the handle is never dropped: a
    /// detached shell loop kills it once the current process is gone.
    pub fn kill_with_this_process(&self) {
        if let Some(c) = &self.child {
            let script = format!(
                "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill -9 {child} 2>/dev/null",
                parent = std::process::id(),
                child = c.id()
            );
            let _ = Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
        }
    }
}

impl Drop for ConsulAgent {
    fn drop(&mut self) {
        self.kill();
        if let Some(d) = &self.data_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A cluster of Consul servers on loopback, each with its own ports and data directory.
#[derive(Debug)]
pub struct ConsulCluster {
    agents: Vec<ConsulAgent>,
    root: PathBuf,
}

impl ConsulCluster {
    /// Starts `n` servers (`-bootstrap-expect n`) and waits for a leader.
    pub fn start(bin: &Path, n: usize, timeout: Duration) -> Result<Self, String> {
        let root = std::env::temp_dir().join(format!(
            "consul-kv-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        let ports: Vec<Ports> = (0..n).map(|_| Ports::free()).collect();
        let mut agents = Vec::with_capacity(n);
        for (i, p) in ports.iter().enumerate() {
            let peers: Vec<u16> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, q)| q.serf_lan)
                .collect();
            let agent = ConsulAgent::server(
                bin,
                &format!("n{i}-{}", p.http),
                *p,
                n,
                &peers,
                root.join(format!("d{i}")),
            )
            .map_err(|e| format!("start server {i}: {e}"))?;
            agent.kill_with_this_process();
            agents.push(agent);
        }
        let mut cluster = Self { agents, root };
        for a in &mut cluster.agents {
            a.wait_ready(timeout)?;
        }
        Ok(cluster)
    }

    /// The agents (killed ones included).
    pub fn agents(&self) -> &[ConsulAgent] {
        &self.agents
    }

    /// The HTTP base URLs of the servers still running.
    pub fn base_urls(&mut self) -> Vec<String> {
        self.agents
            .iter_mut()
            .filter_map(|a| a.is_running().then(|| a.base_url()))
            .collect()
    }

    /// The index of the current leader, as the first running server reports it.
    pub fn leader_index(&mut self) -> Option<usize> {
        let leader = self
            .agents
            .iter_mut()
            .filter(|a| a.child.is_some())
            .find_map(|a| a.leader())?;
        let port: u16 = leader.rsplit(':').next()?.parse().ok()?;
        self.agents.iter().position(|a| a.ports.server == port)
    }

    /// Kills the current leader; returns its index.
    pub fn kill_leader(&mut self) -> Option<usize> {
        let i = self.leader_index()?;
        self.agents[i].kill();
        Some(i)
    }

    /// Waits until a running server reports a leader that is still running.
    pub fn wait_for_new_leader(&mut self, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(i) = self.leader_index() {
                if self.agents[i].child.is_some() {
                    return Some(start.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for ConsulCluster {
    fn drop(&mut self) {
        for a in &mut self.agents {
            a.kill();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
