//! Running: child processes with timeouts, the servers (`consul-kv-bench serve`), one run of a
//! contender on a case, and the result records (read with `serde_json`).

use serde_json::Value;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::build::Contender;
use super::cases::{Case, Metric, Sizes};

/// Runs a command to completion within `timeout`; its standard output.
pub(super) fn capture(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    let (out, err, st) = capture_all(cmd, timeout)?;
    if st {
        Ok(out)
    } else {
        Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            last_line(&err)
        ))
    }
}

pub(super) fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

/// Stdout, stderr, success; the child is killed at `timeout`.
pub(super) fn capture_all(
    cmd: &mut Command,
    timeout: Duration,
) -> Result<(String, String, bool), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start {:?}: {e}", cmd.get_program()))?;
    let reader = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = reader(child.stdout.take().map(|s| Box::new(s) as _));
    let err = reader(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    match status {
        Some(st) => Ok((out, err, st.success())),
        None => Err(format!("timed out after {} s", timeout.as_secs())),
    }
}

/// `consul-kv-bench serve`, stopped (stdin closed) when dropped.
pub(super) struct Servers {
    pub(super) child: Child,
    pub(super) devserver: String,
    pub(super) fixed_get: String,
}

impl Servers {
    pub(super) fn start(bin: &Path, s: &Sizes) -> Result<Self, String> {
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--keys",
                &s.keys.to_string(),
                "--value-size",
                &s.value_size.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start {} serve: {e}", bin.display()))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let urls = parse_line(&line);
        let devserver = urls.get("devserver").and_then(Value::as_str);
        let fixed_get = urls
            .get("fixed")
            .and_then(|f| f.get("get"))
            .and_then(Value::as_str);
        match (devserver, fixed_get) {
            (Some(d), Some(f)) => Ok(Self {
                devserver: d.to_owned(),
                fixed_get: f.to_owned(),
                child,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("consul-kv-bench serve printed {line:?}"))
            }
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// Results.

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Status {
    Ok,
    Unsupported(String),
    Failed(String),
}

#[derive(Debug, Clone)]
pub(super) struct Record {
    pub(super) contender: String,
    pub(super) case: &'static str,
    pub(super) status: Status,
    pub(super) json: Value,
    /// The smallest and largest figure (p50 or ops/s) over the rounds that succeeded.
    pub(super) range: Option<(f64, f64)>,
}

impl Record {
    pub(super) fn num(&self, field: &str) -> Option<f64> {
        self.json.get(field).and_then(Value::as_f64)
    }

    pub(super) fn ok(&self) -> bool {
        self.status == Status::Ok
    }

    pub(super) fn summary(&self) -> String {
        match &self.status {
            Status::Ok => format!(
                "{:>10.0} ops/s  p50 {:>9.1} µs  p99 {:>9.1} µs",
                self.num("ops_per_sec").unwrap_or(0.0),
                self.num("p50_us").unwrap_or(0.0),
                self.num("p99_us").unwrap_or(0.0)
            ),
            Status::Unsupported(n) => format!("unsupported: {n}"),
            Status::Failed(n) => format!("FAILED: {n}"),
        }
    }

    pub(super) fn raw_line(&self, case: &str, round: usize) -> String {
        match &self.status {
            Status::Failed(n) => serde_json::json!({
                "case": case,
                "round": round,
                "contender": self.contender,
                "failed": n,
            })
            .to_string(),
            _ => {
                serde_json::json!({ "case": case, "round": round, "result": self.json }).to_string()
            }
        }
    }
}

/// The run with the median figure of a case (p50 or ops/s) among those that succeeded; the
/// last run when none did.
pub(super) fn median_run(case: &Case, mut runs: Vec<Record>) -> Option<Record> {
    let figure = |r: &Record| match case.metric {
        Metric::Latency => r.num("p50_us"),
        Metric::Throughput => r.num("ops_per_sec"),
    };
    let mut ok: Vec<Record> = runs.iter().filter(|r| r.ok()).cloned().collect();
    if ok.is_empty() {
        return runs.pop();
    }
    ok.sort_by(|a, b| {
        figure(a)
            .unwrap_or(0.0)
            .total_cmp(&figure(b).unwrap_or(0.0))
    });
    let range = ok.first().and_then(figure).zip(ok.last().and_then(figure));
    let mid = ok.len() / 2;
    let mut median = ok.swap_remove(mid);
    median.range = range;
    Some(median)
}

pub(super) fn run_one(c: &Contender, case: &Case, s: &Sizes) -> Record {
    let mut cmd = Command::new(&c.cmd[0]);
    cmd.args(&c.cmd[1..]).args(&case.args);
    let fail = |note: String| Record {
        contender: c.name.to_owned(),
        case: case.id,
        status: Status::Failed(note),
        json: Value::Null,
        range: None,
    };
    let (out, err, ok) = match capture_all(&mut cmd, s.timeout) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let line = out.lines().rev().find(|l| l.trim_start().starts_with('{'));
    let Some(line) = line else {
        return fail(if ok {
            "printed no result".into()
        } else {
            last_line(&err)
        });
    };
    let json = parse_line(line);
    let note = json
        .get("note")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let unsupported = json.get("unsupported").and_then(Value::as_bool) == Some(true);
    let count = json.get("count").and_then(Value::as_f64).unwrap_or(0.0);
    let status = if unsupported {
        Status::Unsupported(note)
    } else if count <= 0.0 {
        Status::Failed(if note.is_empty() {
            "no operation succeeded".into()
        } else {
            note
        })
    } else {
        Status::Ok
    };
    Record {
        contender: c.name.to_owned(),
        case: case.id,
        status,
        json,
        range: None,
    }
}

#[derive(Debug, Clone)]
pub(super) struct Micro {
    pub(super) name: String,
    pub(super) implementation: String,
    pub(super) bytes: f64,
    pub(super) ns_per_op: f64,
    pub(super) mb_per_s: f64,
}

impl Micro {
    pub(super) fn parse(line: &str) -> Option<Self> {
        let j = parse_line(line);
        Some(Self {
            name: j.get("micro")?.as_str()?.to_owned(),
            implementation: j.get("impl")?.as_str()?.to_owned(),
            bytes: j.get("bytes")?.as_f64()?,
            ns_per_op: j.get("ns_per_op")?.as_f64()?,
            mb_per_s: j.get("mb_per_s")?.as_f64()?,
        })
    }
}

/// One JSON result line; anything malformed reads as `null` (the run is then reported as
/// failed with the line it printed).
pub(super) fn parse_line(line: &str) -> Value {
    serde_json::from_str(line.trim()).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_are_read_with_serde_json() {
        let j = parse_line(
            r#" {"contender":"floor","count":12,"p50_us":301.5,"unsupported":false,"note":"a \"b\"\n"} "#,
        );
        assert_eq!(j.get("contender").and_then(Value::as_str), Some("floor"));
        assert_eq!(j.get("count").and_then(Value::as_f64), Some(12.0));
        assert_eq!(j.get("note").and_then(Value::as_str), Some("a \"b\"\n"));
        assert_eq!(parse_line("{oops"), Value::Null);
        let m = Micro::parse(
            r#"{"micro":"get","impl":"consul-kv-proto","bytes":10,"ns_per_op":5.5,"mb_per_s":1.8}"#,
        )
        .unwrap();
        assert_eq!((m.name.as_str(), m.ns_per_op), ("get", 5.5));
        assert!(Micro::parse(r#"{"micro":"get"}"#).is_none());
    }
}
