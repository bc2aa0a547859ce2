//! `lock PREFIX [--] CHILD…`: like `consul lock`. Acquires the lock `PREFIX/.lock` (or, with
//! `-n` above 1, a semaphore of `n` holders under PREFIX), with the Go client's key layout so
//! it contends with `consul lock`, then runs the child with `CONSUL_LOCK_HELD=true`.
//!
//! - The child runs through `$SHELL -c` (else `/bin/sh -c`) with its arguments joined by
//!   spaces, unless `-shell=false`; stdin is closed unless `-pass-stdin`.
//! - When the lock is lost (its session invalidated, the key taken), or this process gets
//!   SIGINT or SIGTERM, the child gets SIGTERM and, if still running 5 s later, SIGKILL.
//! - When the child exits, the lock is released (and its key removed when nobody uses it).
//! - `-timeout` bounds the wait for the lock (`0`: wait forever); `-child-exit-code` exits 2
//!   when the child failed. Otherwise the exit code is 0, or 1 for an error.

use std::process::Stdio;
use std::time::Duration;

use clap::{ArgAction, Args};
use consul_kv::{Client, Lock, Semaphore};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};

use crate::common::{full_chain, HttpArgs, Ui};
use crate::watch::handler_command;

/// How long a child has between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Arguments of `lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// How many may hold it at once (above 1: a semaphore).
    #[arg(
        short = 'n',
        long = "n",
        default_value_t = 1,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub n: i64,
    /// The session name (default: derived from the child and the prefix).
    #[arg(long, default_value = "", value_name = "NAME")]
    pub name: String,
    /// The longest wait for the lock, as a Go duration (`10s`, `1m30s`); 0 waits forever.
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub timeout: String,
    /// Exit 2 when the child exits with an error.
    #[arg(long = "child-exit-code", action = ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = false,
          value_name = "BOOL")]
    pub child_exit_code: bool,
    /// Run the child through a shell.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = true, value_name = "BOOL")]
    pub shell: bool,
    /// Pass stdin to the child.
    #[arg(long = "pass-stdin", action = ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = false,
          value_name = "BOOL")]
    pub pass_stdin: bool,
    /// Accepted for compatibility with `consul lock`; losing the lock is noticed by the
    /// client's own bounded retries.
    #[arg(
        long = "monitor-retry",
        default_value_t = 3,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub monitor_retry: i64,
    /// Print what happens (acquisition, loss, child signals) on stderr.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub verbose: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub http: HttpArgs,
    /// PREFIX, then optionally `--`, then the child command.
    #[arg(value_name = "PREFIX [--] CHILD...")]
    pub args: Vec<String>,
}

/// Parses a Go duration (`300ms`, `1.5h`, `2h45m`, `0`).
pub fn parse_go_duration(s: &str) -> Option<(bool, Duration)> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some((neg, Duration::ZERO));
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * scale;
    }
    Duration::try_from_secs_f64(total).ok().map(|d| (neg, d))
}

enum Held {
    Lock(Lock),
    Semaphore(Semaphore),
}

impl Held {
    async fn lost(&self) {
        match self {
            Self::Lock(l) => {
                let _ = l.lost().await;
            }
            Self::Semaphore(s) => {
                let _ = s.lost().await;
            }
        }
    }

    async fn release(self, client: &Client, key: &str) -> Result<(), String> {
        match self {
            Self::Lock(l) => {
                l.release().await.map_err(|e| full_chain(&e))?;
                // Remove the lock key when nobody holds it (consul lock's cleanup).
                let kv = client.kv();
                if let Ok(Some(k)) = kv.get(key.to_owned()).await {
                    if k.session.is_none() && k.flags == consul_kv::LOCK_FLAG {
                        let _ = kv.delete(key.to_owned()).cas(&k).await;
                    }
                }
                Ok(())
            }
            Self::Semaphore(s) => s.release().await.map_err(|e| full_chain(&e)),
        }
    }
}

fn signal_child(pid: Option<u32>, sig: Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// `lock`.
pub async fn run(a: LockArgs) -> u8 {
    let mut ui = Ui::default();
    if a.n <= 0 {
        ui.error("Lock holder limit must be positive");
        return 1;
    }
    let mut rest = a.args.clone();
    if rest.len() >= 2 && rest[1] == "--" {
        rest.remove(1);
    }
    if rest.len() < 2 {
        ui.error("Key prefix and child command must be specified");
        return 1;
    }
    let prefix = rest[0].strip_prefix('/').unwrap_or(&rest[0]).to_owned();
    let child_args = rest[1..].to_vec();
    let Some((neg, timeout)) = parse_go_duration(&a.timeout) else {
        ui.error(format!(
            "invalid value {:?} for flag -timeout: parse error",
            a.timeout
        ));
        return 1;
    };
    if neg && !timeout.is_zero() {
        ui.error("Timeout must be positive");
        return 1;
    }
    if a.monitor_retry < 0 {
        ui.error("Number for 'monitor-retry' must be >= 0");
        return 1;
    }
    let name = if a.name.is_empty() {
        format!("Consul lock for '{}' at '{prefix}'", child_args.join(" "))
    } else {
        a.name.clone()
    };
    let client = match a.http.connect() {
        Ok(c) => c,
        Err(e) => {
            ui.error(format!("Error connecting to Consul agent: {e}"));
            return 1;
        }
    };
    let key = format!("{}/.lock", prefix.trim_end_matches('/'));
    let verbose = a.verbose;
    let say = |ui: &mut Ui, s: &str| {
        if verbose {
            ui.error(s);
        }
    };
    let (Ok(mut sigint), Ok(mut sigterm)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        ui.error("Error! Could not install signal handlers");
        return 1;
    };

    say(&mut ui, "Attempting lock acquisition");
    let acquire = async {
        if a.n == 1 {
            client
                .kv()
                .lock(key.clone())
                .session_name(name.clone())
                .await
                .map(Held::Lock)
        } else {
            let n = usize::try_from(a.n).unwrap_or(usize::MAX);
            client
                .kv()
                .semaphore(prefix.clone(), n)
                .session_name(name.clone())
                .await
                .map(Held::Semaphore)
        }
    };
    let held = tokio::select! {
        r = async {
            if timeout.is_zero() {
                Some(acquire.await)
            } else {
                tokio::time::timeout(timeout, acquire).await.ok()
            }
        } => r,
        _ = sigint.recv() => None,
        _ = sigterm.recv() => None,
    };
    let held = match held {
        Some(Ok(h)) => h,
        Some(Err(e)) => {
            ui.error(format!("Lock acquisition failed: {}", full_chain(&e)));
            return 1;
        }
        None => {
            ui.error("Shutdown triggered or timeout during lock acquisition");
            return 1;
        }
    };

    say(&mut ui, "Starting handler");
    let mut cmd = handler_command(&child_args, a.shell);
    cmd.env("CONSUL_LOCK_HELD", "true")
        .stdin(if a.pass_stdin {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child_code = 0;
    match cmd.spawn() {
        Err(e) => {
            ui.error(format!("Error starting handler: {e}"));
            child_code = 2;
        }
        Ok(mut child) => {
            let pid = child.id();
            let why = tokio::select! {
                status = child.wait() => {
                    match status {
                        Ok(s) if s.success() => {}
                        Ok(s) => {
                            ui.error(format!(
                                "Error running handler: exit status {}",
                                s.code().unwrap_or(-1)
                            ));
                            child_code = 2;
                        }
                        Err(e) => {
                            ui.error(format!("Error running handler: {e}"));
                            child_code = 2;
                        }
                    }
                    None
                }
                () = held.lost() => Some("Lock lost, killing child"),
                _ = sigint.recv() => Some("Shutdown triggered, killing child"),
                _ = sigterm.recv() => Some("Shutdown triggered, killing child"),
            };
            if let Some(why) = why {
                ui.error(why);
                signal_child(pid, Signal::SIGTERM);
                if tokio::time::timeout(KILL_GRACE, child.wait())
                    .await
                    .is_err()
                {
                    say(&mut ui, "Child did not exit after grace period of 5s");
                    signal_child(pid, Signal::SIGKILL);
                    let _ = child.wait().await;
                }
            }
        }
    }
    if let Err(e) = held.release(&client, &key).await {
        ui.error(format!("Lock release failed: {e}"));
        return 1;
    }
    if a.child_exit_code {
        child_code
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("0"), Some((false, Duration::ZERO)));
        assert_eq!(
            parse_go_duration("1s"),
            Some((false, Duration::from_secs(1)))
        );
        assert_eq!(
            parse_go_duration("1m30s"),
            Some((false, Duration::from_secs(90)))
        );
        assert_eq!(
            parse_go_duration("250ms"),
            Some((false, Duration::from_millis(250)))
        );
        assert_eq!(
            parse_go_duration("-1s"),
            Some((true, Duration::from_secs(1)))
        );
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
