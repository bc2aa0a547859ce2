//! Tests of the `consul-kv` command line (crate `consul-kv-cli`), run as a process against a
//! real server over loopback.
//!
//! - `golden`: the same arguments through the real `consul kv` and through `consul-kv`, from
//!   the same starting store on the same real agent (`CONSUL_KV_TEST_TARGET=consul`); stdout,
//!   stderr, exit code and the store afterwards must match (index numbers and session IDs
//!   normalised). By default the recorded outputs of the real CLI (`golden.json`) are compared
//!   with `consul-kv` on the devserver instead.
//! - `extra`: what `consul kv` lacks: `import --atomic-batches`, `sync`, `watch`, `lock`.
//!
//! The program under test is the binary `consul-kv-under-test` of this package: the same
//! `main` as the `consul-kv` binary (`consul_kv_cli::main_entry`), built by Cargo for this test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod extra;
mod golden;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The program under test.
pub(crate) fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_consul-kv-under-test"))
}

/// Every environment variable the consul CLI reads, removed so the runs see only what a case
/// sets.
const CONSUL_ENV: &[&str] = &[
    "CONSUL_HTTP_ADDR",
    "CONSUL_HTTP_TOKEN",
    "CONSUL_HTTP_TOKEN_FILE",
    "CONSUL_HTTP_SSL",
    "CONSUL_HTTP_SSL_VERIFY",
    "CONSUL_HTTP_AUTH",
    "CONSUL_CACERT",
    "CONSUL_CAPATH",
    "CONSUL_CLIENT_CERT",
    "CONSUL_CLIENT_KEY",
    "CONSUL_TLS_SERVER_NAME",
    "CONSUL_NAMESPACE",
    "CONSUL_PARTITION",
    "CONSUL_GRPC_ADDR",
];

/// Runs `program args…` with `CONSUL_HTTP_ADDR=addr` and `env`, `stdin`, and a deadline; returns its
/// output.
pub(crate) fn run(
    program: &Path,
    args: &[String],
    addr: &str,
    env: &[(String, String)],
    stdin: Option<&[u8]>,
    deadline: Duration,
) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for v in CONSUL_ENV {
        cmd.env_remove(v);
    }
    cmd.env("CONSUL_HTTP_ADDR", addr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start the program");
    if let Some(input) = stdin {
        let mut s = child.stdin.take().expect("stdin");
        s.write_all(input).expect("write stdin");
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!(
                "{} {args:?} still running after {deadline:?}",
                program.display()
            );
        }
    }
}
