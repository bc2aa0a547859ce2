//! The register workload: several clients per read mode, each its own `consul_kv::Client`
//! talking to one server, doing reads, writes and compare-and-sets on a few registers and
//! recording every operation in a [`History`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use consul_kv::{Cas, Client, Consistency, RetryPolicy};
use consul_kv_tests::history::{Call, History, Op, Return};
use tokio::task::JoinHandle;

/// The three read modes, with the names the table uses.
pub const MODES: [(Consistency, &str); 3] = [
    (Consistency::Default, "default"),
    (Consistency::Consistent, "consistent"),
    (Consistency::Stale, "stale"),
];

/// The deadline of one call. Shorter than the pauses, so that a client stuck on a paused server
/// gives up, reconnects and queues a fresh request for the moment the server wakes up.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// A client with short deadlines and a small retry budget, so that a fault shows up in the
/// history instead of being waited out.
pub fn client(base: &str) -> Client {
    Client::builder()
        .address(base)
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(1))
        .retry(
            RetryPolicy::default()
                .max_attempts(3)
                .base(Duration::from_millis(50))
                .cap(Duration::from_millis(500))
                .budget(Duration::from_secs(4)),
        )
        .build()
        .unwrap()
}

/// A small xorshift generator, seeded per worker.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// One worker's settings.
pub struct Worker {
    pub process: u64,
    /// Added to the process id after an unknown outcome.
    pub process_stride: u64,
    pub mode: Consistency,
    pub keys: Vec<String>,
    pub client: Client,
    pub server: String,
    pub gap: Duration,
}

/// What went wrong in a way the history cannot say (a value that is not ours).
#[derive(Debug, Default)]
pub struct Oddities {
    pub malformed: AtomicU64,
}

fn parse(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

impl Worker {
    async fn read(
        &self,
        h: &History,
        process: u64,
        key: &str,
        odd: &Oddities,
    ) -> (Return, Option<Cas>) {
        let invoke = h.now();
        let res = self.client.kv().get(key).consistency(self.mode).await;
        let complete = h.now();
        let (ret, cas) = match res {
            Ok(None) => (Return::Read(None), Some(Cas::Absent)),
            Ok(Some(k)) => match parse(k.bytes()) {
                Some(v) => (Return::Read(Some(v)), Some(Cas::from(k.pair()))),
                None => {
                    odd.malformed.fetch_add(1, Ordering::Relaxed);
                    (
                        Return::Fail(format!("not a register value: {:?}", k.bytes())),
                        None,
                    )
                }
            },
            Err(e) => (Return::Fail(error_text(&e)), None),
        };
        h.push(Op {
            process,
            key: key.to_owned(),
            call: Call::Read,
            invoke,
            complete,
            ret: ret.clone(),
            server: self.server.clone(),
        });
        (ret, cas)
    }

    async fn write(&self, h: &History, process: u64, key: &str) -> Return {
        let v = h.unique_value();
        let invoke = h.now();
        let res = self.client.kv().set(key, v.to_string()).await;
        let complete = h.now();
        let ret = match res {
            Ok(true) => Return::Written,
            Ok(false) => Return::Fail("the server answered false".into()),
            Err(e) => classify(&e),
        };
        h.push(Op {
            process,
            key: key.to_owned(),
            call: Call::Write(v),
            invoke,
            complete,
            ret: ret.clone(),
            server: self.server.clone(),
        });
        ret
    }

    async fn cas(&self, h: &History, process: u64, key: &str, odd: &Oddities) -> Return {
        // Read first (in this worker's read mode, recorded like any read), then CAS on the
        // modify index that read saw. Values are unique, so the index stands for the value.
        let (read, cas) = self.read(h, process, key, odd).await;
        let (Return::Read(from), Some(cas)) = (read.clone(), cas) else {
            return read;
        };
        let to = h.unique_value();
        let invoke = h.now();
        let res = self.client.kv().set(key, to.to_string()).cas(cas).await;
        let complete = h.now();
        let ret = match res {
            Ok(applied) => Return::Cas(applied),
            Err(e) => classify(&e),
        };
        h.push(Op {
            process,
            key: key.to_owned(),
            call: Call::Cas { from, to },
            invoke,
            complete,
            ret: ret.clone(),
            server: self.server.clone(),
        });
        ret
    }

    /// Runs until `stop`: 50 % reads, 25 % writes, 25 % read-then-CAS.
    pub async fn run(self, h: Arc<History>, stop: Arc<AtomicBool>, odd: Arc<Oddities>, seed: u64) {
        let mut rng = Rng::new(seed);
        let mut process = self.process;
        while !stop.load(Ordering::Relaxed) {
            let key = &self.keys[rng.below(self.keys.len() as u64) as usize];
            let dice = rng.below(4);
            let ret = match dice {
                0 | 1 => self.read(&h, process, key, &odd).await.0,
                2 => self.write(&h, process, key).await,
                _ => self.cas(&h, process, key, &odd).await,
            };
            match ret {
                Return::Unknown(_) => {
                    process += self.process_stride;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Return::Fail(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => {}
            }
            let jitter = rng.below(self.gap.as_millis() as u64 + 1);
            tokio::time::sleep(self.gap / 2 + Duration::from_millis(jitter / 2)).await;
        }
    }
}

/// A write's error: `unknown` when the client says the outcome is unknown, else `fail` (the
/// client reports the write as certainly not applied).
pub fn classify(e: &consul_kv::Error) -> Return {
    if e.is_outcome_unknown() {
        Return::Unknown(error_text(e))
    } else {
        Return::Fail(error_text(e))
    }
}

/// The error and its sources on one line.
pub fn error_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Starts `per_mode` workers for each read mode; worker `w` talks to `servers[w % n]`. Keys are
/// `<prefix>/<mode>/r<i>`.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    h: &Arc<History>,
    stop: &Arc<AtomicBool>,
    odd: &Arc<Oddities>,
    prefix: &str,
    servers: &[(String, String)],
    per_mode: usize,
    registers: usize,
    gap: Duration,
) -> Vec<JoinHandle<()>> {
    let stride = (MODES.len() * per_mode) as u64;
    let mut handles = Vec::new();
    for (m, (mode, name)) in MODES.iter().enumerate() {
        let keys: Vec<String> = (0..registers)
            .map(|i| format!("{prefix}/{name}/r{i}"))
            .collect();
        for w in 0..per_mode {
            let (server, url) = &servers[w % servers.len()];
            let worker = Worker {
                process: (m * per_mode + w) as u64,
                process_stride: stride,
                mode: *mode,
                keys: keys.clone(),
                client: client(url),
                server: server.clone(),
                gap,
            };
            let seed = (m * 1000 + w) as u64 + 7;
            handles.push(tokio::spawn(worker.run(
                h.clone(),
                stop.clone(),
                odd.clone(),
                seed,
            )));
        }
    }
    handles
}
