//! Build and cache a real Consul agent binary from Go modules.
//!
//! The integration tests of this workspace talk to a real Consul agent. Rather
//! than downloading a prebuilt release (which this project's machines cannot
//! do), the agent is compiled from source with the Go toolchain, through the
//! small wrapper Go module kept in `xtask/consul/` (its `go.mod` and `go.sum`
//! pin Consul and its whole module graph; see `xtask/consul/README.md` for why
//! this exact version was chosen).
//!
//! The binary lands outside the repository, in [`cache_dir`], at
//! [`binary_path`]. [`ensure_consul`] is idempotent: it only builds when that
//! binary is missing or does not report [`CONSUL_VERSION`]. The first build
//! takes several minutes on two cores; later calls return immediately.
//!
//! Only the Go toolchain and its usual module and build caches (`GOMODCACHE`,
//! `GOCACHE`, with their defaults) are used; the Go module proxy must be
//! reachable the first time.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The Consul release that [`ensure_consul`] builds (without the leading `v`).
///
/// Must match the `github.com/hashicorp/consul` requirement in
/// `xtask/consul/go.mod`.
pub(crate) const CONSUL_VERSION: &str = "1.14.11";

/// Go package path of Consul's `main` package.
const CONSUL_MAIN_PACKAGE: &str = "github.com/hashicorp/consul";

/// The wrapper Go module, relative to the workspace root.
const WRAPPER_DIR: &str = "xtask/consul";

/// How often to tell the user that a long build is still running.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// Directory under which built binaries are cached.
///
/// `$CONSUL_KV_CACHE_DIR` if set, else `$XDG_CACHE_HOME/consul-kv`, else
/// `$HOME/.cache/consul-kv` (and, with none of them set, a directory under the
/// system temporary directory). Relative paths are made absolute against the
/// current directory so that the result stays valid after a `cd`.
pub(crate) fn cache_dir() -> PathBuf {
    let dir = cache_dir_from(non_empty_env, env::temp_dir);
    std::path::absolute(&dir).unwrap_or(dir)
}

/// [`cache_dir`]'s choice, given a lookup of non-empty environment variables
/// and the system temporary directory (separate so that it can be tested
/// without changing the process environment).
fn cache_dir_from(
    var: impl Fn(&str) -> Option<OsString>,
    temp_dir: impl FnOnce() -> PathBuf,
) -> PathBuf {
    if let Some(dir) = var("CONSUL_KV_CACHE_DIR") {
        PathBuf::from(dir)
    } else if let Some(xdg) = var("XDG_CACHE_HOME") {
        PathBuf::from(xdg).join("consul-kv")
    } else if let Some(home) = var("HOME") {
        PathBuf::from(home).join(".cache").join("consul-kv")
    } else {
        temp_dir().join("consul-kv-cache")
    }
}

/// Where the Consul binary for [`CONSUL_VERSION`] is (or will be) cached:
/// `cache_dir()/consul-<version>/consul`.
pub(crate) fn binary_path() -> PathBuf {
    cache_dir()
        .join(format!("consul-{CONSUL_VERSION}"))
        .join("consul")
}

/// Whether a working Go toolchain can be run.
pub(crate) fn go_available() -> bool {
    Command::new(go_command())
        .arg("version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Make sure the Consul binary is built and cached, and return its path.
///
/// If [`binary_path`] already exists and `consul version` reports
/// [`CONSUL_VERSION`], it is returned as is. Otherwise Consul is built with
/// `go build` in `<workspace_root>/xtask/consul`, written to a temporary file
/// in the same directory, checked, and renamed into place atomically (so a
/// concurrent or interrupted build never leaves a half-written binary at
/// [`binary_path`]). Progress goes to stderr.
pub(crate) fn ensure_consul(workspace_root: &Path) -> Result<PathBuf, String> {
    let bin = binary_path();
    if bin.is_file() && check_version(&bin).is_ok() {
        return Ok(bin);
    }

    let wrapper = workspace_root.join(WRAPPER_DIR);
    if !wrapper.join("go.mod").is_file() {
        return Err(format!(
            "{} has no go.mod: cannot build Consul (is {} the workspace root?)",
            wrapper.display(),
            workspace_root.display()
        ));
    }
    if !go_available() {
        return Err(format!(
            "the Go toolchain (`{}`) was not found or does not run; \
             install Go (1.21 or newer) to build Consul {CONSUL_VERSION}",
            go_command().to_string_lossy()
        ));
    }

    let out_dir = bin
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} has no parent directory", bin.display()))?;
    fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let tmp = out_dir.join(temp_name());

    let result = build_into(&wrapper, &tmp)
        .and_then(|()| check_version(&tmp))
        .and_then(|()| {
            fs::rename(&tmp, &bin)
                .map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), bin.display()))
        });
    if result.is_err() {
        // Best effort: the temporary file may not even exist.
        let _ = fs::remove_file(&tmp);
    }
    result?;

    eprintln!("xtask: Consul {CONSUL_VERSION} is at {}", bin.display());
    Ok(bin)
}

/// Run `go build` for Consul's main package, writing the binary to `out`.
fn build_into(wrapper: &Path, out: &Path) -> Result<(), String> {
    eprintln!(
        "xtask: building Consul {CONSUL_VERSION} from Go modules in {} \
         (first build takes several minutes) ...",
        wrapper.display()
    );
    let started = Instant::now();
    let mut cmd = Command::new(go_command());
    cmd.current_dir(wrapper)
        .arg("build")
        // go.mod and go.sum are complete and committed: never rewrite them.
        .arg("-mod=readonly")
        .arg("-trimpath")
        .args(["-ldflags", "-s -w"])
        .arg("-o")
        .arg(out)
        .arg(CONSUL_MAIN_PACKAGE)
        // A static, pure-Go binary, as Consul's own releases are; this also
        // means no C compiler is needed.
        .env("CGO_ENABLED", "0")
        // Ignore any go.work file in a parent directory.
        .env("GOWORK", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", go_command().to_string_lossy()))?;
    let status = wait_with_heartbeat(child, started)?;
    if !status.success() {
        return Err(format!(
            "`go build` of Consul {CONSUL_VERSION} failed ({status})"
        ));
    }
    eprintln!(
        "xtask: built Consul {CONSUL_VERSION} in {}s",
        started.elapsed().as_secs()
    );
    Ok(())
}

/// Wait for `child`, printing a line to stderr every [`HEARTBEAT`].
fn wait_with_heartbeat(mut child: Child, started: Instant) -> Result<ExitStatus, String> {
    let mut next_report = HEARTBEAT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => return Err(format!("cannot wait for `go build`: {e}")),
        }
        let elapsed = started.elapsed();
        if elapsed >= next_report {
            eprintln!(
                "xtask: still building Consul ({}s so far) ...",
                elapsed.as_secs()
            );
            next_report += HEARTBEAT;
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// Check that `bin version` runs and reports [`CONSUL_VERSION`].
fn check_version(bin: &Path) -> Result<(), String> {
    let output = Command::new(bin)
        .arg("version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} version: {e}", bin.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} version failed ({})",
            bin.display(),
            output.status
        ));
    }
    version_matches(&String::from_utf8_lossy(&output.stdout)).map_err(|printed| {
        format!(
            "{} version printed {printed:?}, expected \"Consul v{CONSUL_VERSION}\"",
            bin.display()
        )
    })
}

/// Whether the output of `consul version` starts with the line
/// `Consul v<CONSUL_VERSION>`; on a mismatch, the first line it printed.
fn version_matches(stdout: &str) -> Result<(), String> {
    let first = stdout.lines().next().map_or("", str::trim);
    let expected = format!("Consul v{CONSUL_VERSION}");
    if first == expected {
        Ok(())
    } else {
        Err(first.to_owned())
    }
}

/// The `go` command to run: `go` from `PATH`, or the standard install
/// location `/usr/local/go/bin/go` when `go` is not on `PATH`.
fn go_command() -> OsString {
    let standard = Path::new("/usr/local/go/bin/go");
    if !on_path("go") && standard.is_file() {
        standard.as_os_str().to_os_string()
    } else {
        OsString::from("go")
    }
}

/// Whether an executable file named `name` is in a directory of `PATH`.
fn on_path(name: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// A file name for the temporary build output, unique to this process.
fn temp_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(".consul.tmp-{}-{nanos}", std::process::id())
}

/// The value of environment variable `name`, if set and not empty.
fn non_empty_env(name: &str) -> Option<OsString> {
    env::var_os(name).filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn tmp() -> PathBuf {
        PathBuf::from("/tmp")
    }

    #[test]
    fn cache_dir_prefers_explicit_variable() {
        let vars = [
            ("CONSUL_KV_CACHE_DIR", "/c"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(cache_dir_from(lookup(&vars), tmp), PathBuf::from("/c"));
    }

    #[test]
    fn cache_dir_falls_back_to_xdg_then_home_then_temp() {
        let xdg = [("XDG_CACHE_HOME", "/x"), ("HOME", "/h")];
        assert_eq!(
            cache_dir_from(lookup(&xdg), tmp),
            PathBuf::from("/x/consul-kv")
        );
        let home = [("HOME", "/h")];
        assert_eq!(
            cache_dir_from(lookup(&home), tmp),
            PathBuf::from("/h/.cache/consul-kv")
        );
        assert_eq!(
            cache_dir_from(lookup(&[]), tmp),
            PathBuf::from("/tmp/consul-kv-cache")
        );
    }

    #[test]
    fn binary_path_is_versioned_under_cache_dir() {
        let bin = binary_path();
        assert!(bin.is_absolute());
        assert!(bin.starts_with(cache_dir()));
        assert!(bin.ends_with(format!("consul-{CONSUL_VERSION}/consul")));
    }

    #[test]
    fn version_line_must_match_exactly() {
        let good = format!("Consul v{CONSUL_VERSION}\nRevision \nBuild Date x\n");
        assert_eq!(version_matches(&good), Ok(()));
        assert_eq!(
            version_matches("Consul v1.14.10\n"),
            Err("Consul v1.14.10".to_owned())
        );
        assert_eq!(
            version_matches(&format!("Consul v{CONSUL_VERSION}-dev\n")),
            Err(format!("Consul v{CONSUL_VERSION}-dev"))
        );
        assert_eq!(version_matches(""), Err(String::new()));
    }

    #[test]
    fn wrapper_go_mod_requires_the_same_version() {
        let go_mod = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("consul")
            .join("go.mod");
        let text = fs::read_to_string(&go_mod).unwrap();
        let wanted = format!("github.com/hashicorp/consul v{CONSUL_VERSION}");
        assert!(
            text.lines().any(|l| l.trim() == wanted
                || l.trim().strip_prefix("require ") == Some(wanted.as_str())),
            "{} does not require {wanted}",
            go_mod.display()
        );
    }
}
