//! Building the contenders (release): consul-kv-bench, the Rust peers in their own
//! workspace, the Go peer with this machine's Go, py-consul in a virtualenv. A peer that cannot
//! be built is skipped with the reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::run::capture;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Floor,
    Ours,
    RustPeer,
    GoPeer,
    PythonPeer,
}

#[derive(Debug, Clone)]
pub(super) struct Contender {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    /// Program and leading arguments.
    pub(super) cmd: Vec<String>,
    pub(super) version: String,
}

impl Contender {
    pub(super) fn is_peer(&self) -> bool {
        matches!(self.kind, Kind::RustPeer | Kind::GoPeer | Kind::PythonPeer)
    }
}

pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => root.join(d),
        None => root.join("target"),
    }
}

/// Builds `consul-kv-bench` (release) and returns the binary's path.
pub(super) fn build_bench_binary(root: &Path) -> Result<PathBuf, String> {
    build_release(root, "consul-kv-bench", "consul-kv-bench")
}

/// Builds `package` (release, niced) and returns the path of its binary `bin`.
pub(crate) fn build_release(root: &Path, package: &str, bin: &str) -> Result<PathBuf, String> {
    status(
        niced(crate::cargo()).current_dir(root).args([
            "build",
            "--release",
            "--locked",
            "-p",
            package,
        ]),
        &format!("cargo build --release -p {package}"),
    )?;
    Ok(target_dir(root).join("release").join(bin))
}

pub(super) fn bench_binary(root: &Path) -> PathBuf {
    target_dir(root).join("release").join("consul-kv-bench")
}

/// `nice -n 10 <program>` where `nice` exists: builds share the machine.
pub(crate) fn niced(program: impl AsRef<std::ffi::OsStr>) -> Command {
    if Command::new("nice")
        .arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        let mut c = Command::new("nice");
        c.args(["-n", "10"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

pub(super) fn status(cmd: &mut Command, what: &str) -> Result<(), String> {
    eprintln!("bench: {what}");
    let start = Instant::now();
    let st = cmd
        .status()
        .map_err(|e| format!("could not start {what}: {e}"))?;
    eprintln!("bench: {what}: {:.0} s", start.elapsed().as_secs_f64());
    if st.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({st})"))
    }
}

pub(super) fn tool_version(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    text.lines().next().map(|l| l.trim().to_owned())
}

/// The version a Cargo.lock records for a package.
pub(super) fn locked_version(lock: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() == format!("name = \"{name}\"") {
            if let Some(v) = lines
                .next()
                .and_then(|v| v.trim().strip_prefix("version = "))
            {
                return v.trim_matches('"').to_owned();
            }
        }
    }
    "?".to_owned()
}

/// The version a go.mod requires of a module (`require github.com/x/y v1.2.3`).
pub(super) fn go_required_version(go_mod: &Path, module: &str) -> String {
    let text = std::fs::read_to_string(go_mod).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("require ").unwrap_or(l);
            let mut parts = rest.split_whitespace();
            (parts.next() == Some(module)).then(|| parts.next().map(str::to_owned))?
        })
        .unwrap_or_else(|| "?".to_owned())
}

pub(super) fn build_all(
    root: &Path,
    peers: bool,
    skipped: &mut Vec<String>,
) -> Result<Vec<Contender>, String> {
    let cargo = crate::cargo();
    let bin = build_bench_binary(root)?.display().to_string();
    let ours = locked_version(&root.join("Cargo.lock"), "consul-kv");
    let mut out = vec![
        Contender {
            name: "floor",
            kind: Kind::Floor,
            cmd: vec![
                bin.clone(),
                "run".into(),
                "--contender".into(),
                "floor".into(),
            ],
            version: "hyper-util + serde_json".into(),
        },
        Contender {
            name: "consul-kv",
            kind: Kind::Ours,
            cmd: vec![bin, "run".into(), "--contender".into(), "consul-kv".into()],
            version: ours,
        },
    ];
    if !peers {
        skipped.push("peers: not run (--no-peers)".into());
        return Ok(out);
    }

    // Rust peers: one package each. Both are built in one cargo call (one feature resolution,
    // one set of shared dependencies); only if that fails is each built on its own, so that
    // one that cannot build does not take the other down.
    let peers_dir = root.join("xtask/bench-peers/rust");
    let peers_target = root.join("target/bench-peers");
    let lock = peers_dir.join("Cargo.lock");
    let build_peers = |packages: &[&str]| {
        let mut cmd = niced(&cargo);
        cmd.current_dir(&peers_dir)
            .env_remove("CARGO_TARGET_DIR")
            .args(["build", "--release", "--target-dir"])
            .arg(&peers_target);
        for p in packages {
            cmd.args(["-p", p]);
        }
        if lock.exists() {
            cmd.arg("--locked");
        }
        status(
            &mut cmd,
            &format!("cargo build --release -p {} (peers)", packages.join(" -p ")),
        )
    };
    let rust_peers = [
        ("rs-consul", "rs-consul-bench", "rs-consul"),
        ("consulrs", "consulrs-bench", "consulrs"),
    ];
    let all = build_peers(&["rs-consul-bench", "consulrs-bench"]);
    for (name, package, crate_name) in rust_peers {
        let built = match &all {
            Ok(()) => Ok(()),
            Err(_) => build_peers(&[package]),
        };
        match built {
            Ok(()) => out.push(Contender {
                name,
                kind: Kind::RustPeer,
                cmd: vec![peers_target
                    .join("release")
                    .join(package)
                    .display()
                    .to_string()],
                version: locked_version(&lock, crate_name),
            }),
            Err(e) => skipped.push(format!("{name}: skipped, its build failed: {e}")),
        }
    }

    // Go.
    let go_dir = root.join("xtask/bench-peers/go");
    match tool_version("go", &["version"]) {
        None => skipped.push("go-consul-api: skipped, no Go toolchain (`go`) on PATH".into()),
        Some(go) => {
            let go_bin = peers_target.join("go").join("consul-go-bench");
            let built = status(
                niced("go")
                    .current_dir(&go_dir)
                    .args(["build", "-o"])
                    .arg(&go_bin)
                    .arg("."),
                "go build (peer)",
            );
            match built {
                Ok(()) => out.push(Contender {
                    name: "go-consul-api",
                    kind: Kind::GoPeer,
                    cmd: vec![go_bin.display().to_string()],
                    version: format!(
                        "consul/api {} ({go})",
                        go_required_version(
                            &go_dir.join("go.mod"),
                            "github.com/hashicorp/consul/api"
                        )
                    ),
                }),
                Err(e) => skipped.push(format!("go-consul-api: skipped, {e}")),
            }
        }
    }

    // Python.
    match tool_version("python3", &["--version"]) {
        None => skipped.push("py-consul: skipped, no `python3` on PATH".into()),
        Some(py) => match python_env(root) {
            Ok((python, version)) => out.push(Contender {
                name: "py-consul",
                kind: Kind::PythonPeer,
                cmd: vec![
                    python,
                    root.join("xtask/bench-peers/python/bench.py")
                        .display()
                        .to_string(),
                ],
                version: format!("py-consul {version} ({py})"),
            }),
            Err(e) => skipped.push(format!("py-consul: skipped, {e}")),
        },
    }
    Ok(out)
}

/// Creates `target/bench-venv` and installs the pinned py-consul; the interpreter's path and
/// the installed version.
pub(super) fn python_env(root: &Path) -> Result<(String, String), String> {
    let venv = root.join("target/bench-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        status(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv target/bench-venv",
        )
        .map_err(|e| format!("the virtualenv could not be created: {e}"))?;
    }
    let req = root.join("xtask/bench-peers/python/requirements.txt");
    status(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&req),
        "pip install -r xtask/bench-peers/python/requirements.txt",
    )
    .map_err(|e| format!("py-consul could not be installed: {e}"))?;
    let version = capture(
        Command::new(&python).args([
            "-c",
            "import importlib.metadata as m; print(m.version('py-consul'))",
        ]),
        Duration::from_secs(30),
    )
    .map(|v| v.trim().to_owned())
    .unwrap_or_else(|_| "?".into());
    Ok((python.display().to_string(), version))
}
