//! The running server's shared state: configuration, per-datacenter state and waiters, the
//! leader switch, the session TTL sweeper, and the fault switches.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::blocking::Registry;
use crate::rng::uuid_v4;
use crate::state::{Changes, Dc};
use crate::{Fault, Jitter};

/// Everything the builder configured.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) datacenters: Vec<String>,
    pub(crate) acl_token: Option<String>,
    pub(crate) jitter: Jitter,
    pub(crate) start_index: u64,
    pub(crate) node_name: String,
    pub(crate) ttl_scale: f64,
    pub(crate) max_query_time: Duration,
    pub(crate) default_query_time: Duration,
    pub(crate) kv_max_value_size: usize,
    pub(crate) legacy_missing_key_wakeups: bool,
    pub(crate) leader_hold: Duration,
    pub(crate) ui: bool,
    pub(crate) consul_version: crate::ConsulVersion,
}

/// One datacenter: its state and its waiters.
#[derive(Debug)]
pub(crate) struct DcHandle {
    pub(crate) name: String,
    state: Mutex<Dc>,
    pub(crate) registry: Registry,
}

impl DcHandle {
    /// Locks the state (a poisoned lock is recovered: the state stays consistent because
    /// nothing in it panics half-way on purpose).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Dc> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: Config,
    pub(crate) node_id: String,
    dcs: Vec<DcHandle>,
    pub(crate) waiters: Arc<AtomicUsize>,
    leader: watch::Sender<bool>,
    leader_lost: Mutex<Option<Instant>>,
    fault: Mutex<Option<Fault>>,
    pub(crate) limiter: crate::ratelimit::Limiter,
    rng: Mutex<fastrand::Rng>,
    jitter_rng: Mutex<fastrand::Rng>,
    sweeper: Notify,
    /// The write-ahead log of `--data`, once opened.
    pub(crate) wal: std::sync::OnceLock<crate::wal::Wal>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(cfg: Config) -> Self {
        let waiters = Arc::new(AtomicUsize::new(0));
        let dcs = cfg
            .datacenters
            .iter()
            .map(|name| DcHandle {
                name: name.clone(),
                state: Mutex::new(Dc::new(cfg.start_index, cfg.ttl_scale)),
                registry: Registry::new(Arc::clone(&waiters)),
            })
            .collect();
        let mut rng = fastrand::Rng::new();
        let node_id = uuid_v4(&mut rng);
        let jitter_rng = match cfg.jitter {
            Jitter::Seeded(seed) => fastrand::Rng::with_seed(seed),
            _ => fastrand::Rng::new(),
        };
        let (leader, _) = watch::channel(true);
        Self {
            cfg,
            node_id,
            dcs,
            waiters,
            leader,
            leader_lost: Mutex::new(None),
            fault: Mutex::new(None),
            limiter: crate::ratelimit::Limiter::default(),
            rng: Mutex::new(rng),
            jitter_rng: Mutex::new(jitter_rng),
            sweeper: Notify::new(),
            wal: std::sync::OnceLock::new(),
        }
    }

    /// The default datacenter (the first configured).
    pub(crate) fn default_dc(&self) -> Option<&DcHandle> {
        self.dcs.first()
    }

    /// Every datacenter.
    pub(crate) fn dcs(&self) -> &[DcHandle] {
        &self.dcs
    }

    /// The datacenter named `name` (`""` is the default one).
    pub(crate) fn dc(&self, name: &str) -> Option<&DcHandle> {
        if name.is_empty() {
            return self.default_dc();
        }
        self.dcs.iter().find(|d| d.name == name)
    }

    /// Runs a write on a datacenter, then wakes the waiters it concerns.
    pub(crate) fn write<R>(&self, dc: &DcHandle, f: impl FnOnce(&mut Dc, &mut Changes) -> R) -> R {
        let mut ch = Changes::default();
        let r = {
            let mut st = dc.lock();
            let index_before = st.last_index();
            let r = f(&mut st, &mut ch);
            // Logged under the lock, so the log's order is the index order.
            if let Some(wal) = self.wal.get() {
                if let Some(redo) = st.redo(&ch, index_before) {
                    wal.append(&dc.name, redo);
                }
            }
            r
        };
        dc.registry.wake(&ch);
        if ch.sessions {
            self.sweeper.notify_one();
        }
        r
    }

    /// A fresh UUID v4.
    pub(crate) fn uuid(&self) -> String {
        uuid_v4(&mut lock(&self.rng))
    }

    /// The deadline of a blocking query: `wait` (nanoseconds, Go-parsed) clamped like
    /// Consul's `RPCQueryTimeout`, plus jitter of up to a sixteenth.
    pub(crate) fn deadline(&self, wait: Option<i128>) -> Instant {
        let mut t = match wait {
            Some(n) if n > 0 => Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX)),
            _ => self.cfg.default_query_time,
        };
        if t > self.cfg.max_query_time {
            t = self.cfg.max_query_time;
        }
        let stagger = u64::try_from((t / 16).as_nanos()).unwrap_or(u64::MAX);
        let jitter = match self.cfg.jitter {
            Jitter::None => 0,
            Jitter::Max => stagger,
            Jitter::Random | Jitter::Seeded(_) if stagger > 0 => {
                lock(&self.jitter_rng).u64(..stagger)
            }
            Jitter::Random | Jitter::Seeded(_) => 0,
        };
        let total = t.saturating_add(Duration::from_nanos(jitter));
        let now = Instant::now();
        // A configured query time near `Duration::MAX` must not overflow the clock.
        Instant::from_std(consul_kv_proto::time::instant_after(now.into_std(), total))
    }

    // ----- leader -----

    /// Whether the cluster has a leader.
    pub(crate) fn has_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Milliseconds since the leader was lost (0 with a leader).
    pub(crate) fn last_contact_ms(&self) -> u64 {
        lock(&self.leader_lost)
            .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    pub(crate) fn set_leader(&self, up: bool) {
        {
            let mut lost = lock(&self.leader_lost);
            match (up, lost.is_some()) {
                (false, false) => *lost = Some(Instant::now()),
                (true, true) => *lost = None,
                _ => {}
            }
        }
        self.leader.send_replace(up);
    }

    /// Waits up to the hold time for a leader, like `forwardRequestToLeader`.
    pub(crate) async fn await_leader(&self) -> bool {
        let mut rx = self.leader.subscribe();
        let res = tokio::time::timeout(self.cfg.leader_hold, async {
            rx.wait_for(|up| *up).await.is_ok()
        })
        .await;
        matches!(res, Ok(true))
    }

    // ----- faults -----

    pub(crate) fn fault(&self) -> Option<Fault> {
        lock(&self.fault).clone()
    }

    pub(crate) fn set_fault(&self, fault: Option<Fault>) {
        *lock(&self.fault) = fault;
    }
}

/// Invalidates sessions whose TTL timer ran out.
pub(crate) async fn sweep(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let now = Instant::now();
        for dc in shared.dcs() {
            let n = shared.write(dc, |st, ch| st.expire_sessions(now.into_std(), ch));
            if n > 0 {
                tracing::debug!(dc = %dc.name, sessions = n, "sessions expired");
            }
        }
        let next = shared
            .dcs()
            .iter()
            .filter_map(|dc| dc.lock().next_expiry())
            .min()
            .map(Instant::from_std);
        let far = Instant::from_std(consul_kv_proto::time::instant_after(
            std::time::Instant::now(),
            Duration::from_secs(3600),
        ));
        tokio::select! {
            () = tokio::time::sleep_until(next.unwrap_or(far)) => {}
            () = shared.sweeper.notified() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}
