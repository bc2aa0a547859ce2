//! Admission: at most `cap` requests in flight per client; the rest wait in FIFO order.
//!
//! A `tokio::sync::Semaphore` does this, but every release of one of its permits takes the
//! semaphore's wait-list lock, even when nobody waits. At 64 requests in flight on two worker
//! threads that lock is contended on most releases, and a contended lock parks a thread. Here
//! the common case (a free slot, nobody waiting) is one compare-and-swap to enter and one
//! atomic decrement to leave; the semaphore is used only as the queue of callers that found
//! every slot taken, and a leaving request hands its slot straight to the first of them.
//!
//! Invariants (all counters `SeqCst`):
//! - `admitted` counts the slots taken: requests in flight, plus slots handed to the queue
//!   whose permit nobody has taken yet. It never exceeds `cap`.
//! - `waiting` counts callers that gave up on the fast path, from just before their last
//!   fast-path try until they hold a slot or are dropped.
//! - A leaving request with somebody waiting keeps its slot counted and adds one permit to the
//!   queue. Without waiters it gives the slot back, then looks at `waiting` once more: a caller
//!   that registered meanwhile may have missed the slot, so the leaver takes a slot again (if
//!   one is still free) and queues it for that caller. In the total order of `SeqCst`
//!   operations either the caller's retry sees the freed slot or the leaver's second look sees
//!   the caller, so no caller sleeps while a slot is free.
//! - A queued permit nobody takes (its caller was dropped, or also got in by the fast path) is
//!   a counted slot that the next caller to find every slot taken picks up at once, so no
//!   capacity is lost.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use tokio::sync::Semaphore;

/// The admission gate of one client.
#[derive(Debug)]
pub(crate) struct Admission {
    cap: usize,
    admitted: AtomicUsize,
    waiting: AtomicUsize,
    queue: Semaphore,
}

/// One admitted request's slot; dropping it lets the next request in.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<Admission>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate.leave();
    }
}

/// Decrements `waiting` when a waiting caller gets its slot or is dropped.
struct Waiting<'a>(&'a Admission);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, SeqCst);
    }
}

impl Admission {
    /// A gate that admits `cap` requests at once (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            admitted: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            queue: Semaphore::new(0),
        }
    }

    /// Takes a free slot, if there is one.
    fn try_take(&self) -> bool {
        let mut n = self.admitted.load(SeqCst);
        while n < self.cap {
            match self
                .admitted
                .compare_exchange_weak(n, n + 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
        false
    }

    /// Waits for a slot (FIFO among the callers that had to wait).
    pub(crate) async fn enter(self: &Arc<Self>) -> Ticket {
        if !self.try_take() {
            self.waiting.fetch_add(1, SeqCst);
            let waiting = Waiting(self);
            if !self.try_take() {
                match self.queue.acquire().await {
                    // The slot the permit stands for is already counted in `admitted`.
                    Ok(permit) => permit.forget(),
                    // The queue is never closed, so this cannot happen; if it did, the caller
                    // would go in over the cap (counted, so that its ticket's `leave` keeps
                    // `admitted` right) rather than hang.
                    Err(_) => {
                        self.admitted.fetch_add(1, SeqCst);
                    }
                }
            }
            drop(waiting);
        }
        Ticket {
            gate: Arc::clone(self),
        }
    }

    fn leave(&self) {
        if self.waiting.load(SeqCst) > 0 {
            self.queue.add_permits(1);
            return;
        }
        self.admitted.fetch_sub(1, SeqCst);
        if self.waiting.load(SeqCst) > 0 && self.try_take() {
            self.queue.add_permits(1);
        }
    }

    /// Slots held by callers now (taken slots minus those queued and not yet picked up).
    #[cfg(test)]
    fn in_use(&self) -> usize {
        self.admitted.load(SeqCst) - self.queue.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Yields until `cond` holds; fails the test (rather than hanging it) after 30 s.
    async fn until(cond: impl Fn() -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while !cond() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(waited.is_ok(), "the condition never held");
    }

    #[tokio::test]
    async fn admits_up_to_the_cap_then_queues_in_order() {
        let gate = Arc::new(Admission::new(2));
        let a = gate.enter().await;
        let b = gate.enter().await;
        assert_eq!(gate.in_use(), 2);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 0..3 {
            let (g, order) = (Arc::clone(&gate), Arc::clone(&order));
            waiters.push(tokio::spawn(async move {
                let t = g.enter().await;
                order.lock().unwrap().push(i);
                t
            }));
            // Let each waiter register before the next, so the queue order is 0, 1, 2.
            until(|| gate.waiting.load(SeqCst) > i).await;
        }
        assert!(
            order.lock().unwrap().is_empty(),
            "nobody gets in over the cap"
        );
        drop(a);
        let first = waiters.remove(0).await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec![0]);
        drop(b);
        drop(first);
        for w in waiters {
            drop(w.await.unwrap());
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        assert_eq!(gate.in_use(), 0, "every slot came back");
    }

    #[tokio::test]
    async fn a_dropped_waiter_does_not_lose_the_slot() {
        let gate = Arc::new(Admission::new(1));
        let held = gate.enter().await;
        let g = Arc::clone(&gate);
        let waiter = tokio::spawn(async move { g.enter().await });
        until(|| gate.waiting.load(SeqCst) > 0).await;
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(gate.waiting.load(SeqCst), 0);
        drop(held);
        // The slot is free again: the next caller gets in at once.
        let t = tokio::time::timeout(Duration::from_secs(30), gate.enter())
            .await
            .expect("the slot came back");
        drop(t);
        assert_eq!(gate.in_use(), 0);
    }

    /// Many tasks on several threads: never more than `cap` inside, everyone gets in, and
    /// every slot comes back.
    #[test]
    fn stress_never_over_the_cap_and_never_stuck() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        for cap in [1usize, 3, 8] {
            let gate = Arc::new(Admission::new(cap));
            let inside = Arc::new(AtomicUsize::new(0));
            let peak = Arc::new(AtomicUsize::new(0));
            let done = rt.block_on(async {
                let mut tasks = Vec::new();
                for _ in 0..32 {
                    let (gate, inside, peak) =
                        (Arc::clone(&gate), Arc::clone(&inside), Arc::clone(&peak));
                    tasks.push(tokio::spawn(async move {
                        let mut n = 0u32;
                        for i in 0..500u32 {
                            let t = gate.enter().await;
                            let now = inside.fetch_add(1, SeqCst) + 1;
                            peak.fetch_max(now, SeqCst);
                            if i % 7 == 0 {
                                tokio::task::yield_now().await;
                            }
                            inside.fetch_sub(1, SeqCst);
                            drop(t);
                            n += 1;
                        }
                        n
                    }));
                }
                let mut total = 0;
                for t in tasks {
                    total += t.await.unwrap();
                }
                total
            });
            assert_eq!(done, 32 * 500, "cap {cap}: every task got in every time");
            assert!(
                peak.load(SeqCst) <= cap,
                "cap {cap}: {} inside",
                peak.load(SeqCst)
            );
            assert_eq!(gate.in_use(), 0, "cap {cap}: every slot came back");
            // No capacity was lost: `cap` callers get in at once, and one more must wait.
            rt.block_on(async {
                let mut held = Vec::new();
                for _ in 0..cap {
                    let t = tokio::time::timeout(Duration::from_secs(30), gate.enter()).await;
                    held.push(t.expect("a free slot"));
                }
                let over = tokio::time::timeout(Duration::from_millis(50), gate.enter()).await;
                assert!(over.is_err(), "cap {cap}: one over the cap got in");
            });
        }
    }
}
