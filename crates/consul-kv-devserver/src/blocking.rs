//! Blocking queries: a registry of waiters per datacenter, woken only by writes that touch
//! what they watch, and the `blockingquery.Query` loop of Consul.
//!
//! A waiter is an entry in the registry plus a [`tokio::sync::Notify`]; no thread or task is
//! spent per waiter. The entry is removed when its guard drops, which also happens when hyper
//! drops the request future because the client disconnected.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::state::Changes;

/// What a blocking query depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One key.
    Key(String),
    /// Every key under a prefix.
    Prefix(String),
    /// Any KV write (legacy missing-key behaviour).
    AnyKv,
    /// The session table.
    Sessions,
}

impl Target {
    fn matches(&self, ch: &Changes) -> bool {
        if ch.everything {
            return true;
        }
        match self {
            Self::Key(k) => {
                ch.keys.iter().any(|c| c == k) || ch.trees.iter().any(|p| k.starts_with(p.as_str()))
            }
            Self::Prefix(p) => {
                ch.keys.iter().any(|c| c.starts_with(p.as_str()))
                    || ch
                        .trees
                        .iter()
                        .any(|t| t.starts_with(p.as_str()) || p.starts_with(t.as_str()))
            }
            Self::AnyKv => !ch.keys.is_empty() || !ch.trees.is_empty(),
            Self::Sessions => ch.sessions,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    waiters: HashMap<u64, (Target, Arc<Notify>)>,
}

/// The waiters of one datacenter.
#[derive(Debug)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    count: Arc<AtomicUsize>,
}

impl Registry {
    /// A registry counting its waiters into `count` (shared by all datacenters).
    pub(crate) fn new(count: Arc<AtomicUsize>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            count,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a waiter; it stays registered until the guard drops.
    pub(crate) fn register(&self, target: Target) -> WaiterGuard<'_> {
        let notify = Arc::new(Notify::new());
        let id = {
            let mut inner = self.lock();
            inner.next_id = inner.next_id.wrapping_add(1);
            let id = inner.next_id;
            inner.waiters.insert(id, (target, Arc::clone(&notify)));
            id
        };
        self.count.fetch_add(1, Ordering::SeqCst);
        WaiterGuard {
            registry: self,
            id,
            notify,
        }
    }

    /// Wakes the waiters that `changes` concern.
    pub(crate) fn wake(&self, changes: &Changes) {
        if changes.is_empty() {
            return;
        }
        let inner = self.lock();
        for (target, notify) in inner.waiters.values() {
            if target.matches(changes) {
                notify.notify_one();
            }
        }
    }
}

/// A registered waiter.
#[derive(Debug)]
pub(crate) struct WaiterGuard<'a> {
    registry: &'a Registry,
    id: u64,
    notify: Arc<Notify>,
}

impl WaiterGuard<'_> {
    /// Waits for a wake-up (a wake-up that came before this call is not lost).
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.registry.lock().waiters.remove(&self.id);
        self.registry.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The outcome of one run of a blocking query's body.
#[derive(Debug)]
pub(crate) struct Run<T> {
    /// The result index (0 allowed; the HTTP layer writes 1).
    pub(crate) index: u64,
    /// Whether the query found nothing (Consul's `ErrNotFound`, single-key and session info).
    pub(crate) not_found: bool,
    /// The result.
    pub(crate) value: T,
}

/// Consul's `blockingquery.Query` loop: runs `query` until its index passes `min_index`,
/// a watched change arrives, or `deadline` passes. With `min_index == 0` runs once.
pub(crate) async fn query<T>(
    registry: &Registry,
    target: Target,
    min_index: u64,
    deadline: Option<Instant>,
    not_found_aware: bool,
    mut query: impl FnMut() -> Run<T>,
) -> Run<T> {
    let Some(deadline) = deadline.filter(|_| min_index > 0) else {
        return query();
    };
    let waiter = registry.register(target);
    let mut min = min_index;
    let mut not_found = false;
    loop {
        let run = query();
        if run.not_found && not_found_aware {
            if not_found {
                // The result has not changed: keep blocking.
                min = run.index;
            }
            not_found = true;
        }
        if run.index > min {
            return run;
        }
        tokio::select! {
            () = waiter.notified() => {}
            () = tokio::time::sleep_until(deadline) => return run,
        }
    }
}
