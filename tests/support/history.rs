//! A history recorder for client operations on registers, in the form a linearizability
//! checker reads (Jepsen's and porcupine's): who invoked what, when, and what came back.
//!
//! Every time is read from one monotonic clock ([`Instant`]) and kept as nanoseconds since the
//! recorder was made, so operations from many tasks and clients share one time line. An
//! operation's result is one of three outcomes:
//!
//! - `ok`: the server answered (a read's value, a write's acknowledgement, whether a CAS was
//!   applied);
//! - `fail`: the operation certainly had no effect (a read that got no answer, a write the
//!   client knows was never applied);
//! - `unknown`: it may or may not have taken effect (the client reported
//!   `OutcomeUnknown`). The checker lets it take effect at any time after its invocation, or
//!   never.
//!
//! Registers hold integers, written as decimal strings; every value written in one history is
//! unique ([`History::unique_value`]), so comparing a value is comparing a version. The file
//! format is JSON lines, one operation per line (see `xtask/linearizability`).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Value};

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Read the register.
    Read,
    /// Write a value.
    Write(i64),
    /// Write `to` if the register holds `from` (`None`: if the key does not exist).
    Cas {
        /// The expected value.
        from: Option<i64>,
        /// The new value.
        to: i64,
    },
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Return {
    /// A read's answer: the value, or `None` for an absent key.
    Read(Option<i64>),
    /// A write was acknowledged.
    Written,
    /// A CAS was answered: applied or not.
    Cas(bool),
    /// Certainly no effect; the error as text.
    Fail(String),
    /// May or may not have taken effect; the error as text.
    Unknown(String),
}

impl Return {
    /// `ok`, `fail` or `unknown`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Fail(_) => "fail",
            Self::Unknown(_) => "unknown",
            _ => "ok",
        }
    }
}

/// One recorded operation.
#[derive(Debug, Clone)]
pub struct Op {
    /// The process (client) id. A process whose operation ended `unknown` continues under a
    /// new id, as in Jepsen: the old one may still be in flight.
    pub process: u64,
    /// The register (key).
    pub key: String,
    /// What was asked.
    pub call: Call,
    /// Invocation time, ns since the recorder's start.
    pub invoke: u64,
    /// Completion time, ns since the recorder's start.
    pub complete: u64,
    /// What came back.
    pub ret: Return,
    /// Which server the client talked to.
    pub server: String,
}

impl Op {
    /// The JSON line the checker reads.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "process": self.process,
            "key": self.key,
            "invoke": self.invoke,
            "outcome": self.ret.outcome(),
            "server": self.server,
        });
        let m = v.as_object_mut().expect("an object");
        match self.call {
            Call::Read => {
                m.insert("f".into(), json!("read"));
            }
            Call::Write(x) => {
                m.insert("f".into(), json!("write"));
                m.insert("arg".into(), json!(x));
            }
            Call::Cas { from, to } => {
                m.insert("f".into(), json!("cas"));
                m.insert("from".into(), json!(from));
                m.insert("to".into(), json!(to));
            }
        }
        // An unknown outcome has no meaningful completion: the checker treats it as open.
        let complete = match self.ret {
            Return::Unknown(_) => Value::Null,
            _ => json!(self.complete),
        };
        m.insert("complete".into(), complete);
        match &self.ret {
            Return::Read(x) => {
                m.insert("value".into(), json!(x));
            }
            Return::Cas(applied) => {
                m.insert("value".into(), json!(applied));
            }
            Return::Written => {}
            Return::Fail(e) | Return::Unknown(e) => {
                m.insert("error".into(), json!(e));
            }
        }
        v
    }
}

/// Counts of a history's operations by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every operation.
    pub ops: usize,
    /// Answered.
    pub ok: usize,
    /// Certainly without effect.
    pub fail: usize,
    /// Outcome unknown.
    pub unknown: usize,
}

/// A shared recorder: one clock, one list of operations, one source of unique values.
#[derive(Debug)]
pub struct History {
    start: Instant,
    ops: Mutex<Vec<Op>>,
    next_value: AtomicI64,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
            next_value: AtomicI64::new(1),
        }
    }

    /// Nanoseconds since the recorder's start (monotonic).
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant the clock counts from.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// A value no other write in this history uses (1, 2, 3, …).
    pub fn unique_value(&self) -> i64 {
        self.next_value.fetch_add(1, Ordering::Relaxed)
    }

    /// Records a completed (or abandoned) operation.
    pub fn push(&self, op: Op) {
        self.ops.lock().unwrap().push(op);
    }

    /// A copy of the operations, in invocation order.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = self.ops.lock().unwrap().clone();
        ops.sort_by_key(|o| (o.invoke, o.process));
        ops
    }

    /// The operations whose key starts with `prefix`, in invocation order.
    pub fn ops_under(&self, prefix: &str) -> Vec<Op> {
        self.ops()
            .into_iter()
            .filter(|o| o.key.starts_with(prefix))
            .collect()
    }

    /// Writes `ops` as JSON lines; returns their counts.
    pub fn write_jsonl(ops: &[Op], path: &Path) -> std::io::Result<Counts> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut c = Counts::default();
        for op in ops {
            c.ops += 1;
            match op.ret {
                Return::Fail(_) => c.fail += 1,
                Return::Unknown(_) => c.unknown += 1,
                _ => c.ok += 1,
            }
            serde_json::to_writer(&mut out, &op.to_json())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_what_the_checker_reads() {
        let h = History::new();
        let a = h.unique_value();
        let b = h.unique_value();
        assert_ne!(a, b);
        let op = Op {
            process: 3,
            key: "r0".into(),
            call: Call::Cas { from: None, to: b },
            invoke: 10,
            complete: 20,
            ret: Return::Cas(true),
            server: "n0".into(),
        };
        let v = op.to_json();
        assert_eq!(v["f"], "cas");
        assert!(v["from"].is_null());
        assert_eq!(v["to"], b);
        assert_eq!(v["value"], true);
        assert_eq!(v["complete"], 20);
        let unknown = Op {
            call: Call::Write(a),
            ret: Return::Unknown("reset".into()),
            ..op
        };
        let v = unknown.to_json();
        assert_eq!(v["outcome"], "unknown");
        assert!(v["complete"].is_null());
        assert_eq!(v["arg"], a);
    }
}
