//! Sessions in the state store: create, destroy (with Consul's release/delete behaviours and
//! lock-delays), renew, TTL expiry.

use std::time::{Duration, Instant};

use consul_kv_proto::time::instant_after;

use super::*;

impl Dc {
    /// Stores a new session (ID already generated) and returns its ID.
    pub(crate) fn session_create(
        &mut self,
        mut rec: SessionRec,
        now: Instant,
        ch: &mut Changes,
    ) -> String {
        let idx = self.next_index();
        rec.create_index = idx;
        rec.modify_index = idx;
        rec.expires = rec
            .ttl_dur
            .map(|ttl| instant_after(now, self.invalidate_after(ttl)));
        let id = rec.id.clone();
        self.sessions.insert(id.clone(), rec);
        self.sessions_table = idx;
        ch.sessions = true;
        id
    }

    pub(super) fn invalidate_after(&self, ttl: Duration) -> Duration {
        ttl.saturating_mul(2).mul_f64(self.ttl_scale)
    }

    /// Destroys a session (idempotent). Returns whether it existed.
    pub(crate) fn session_destroy(&mut self, id: &str, now: Instant, ch: &mut Changes) -> bool {
        if !self.sessions.contains_key(id) {
            return false;
        }
        let idx = self.next_index();
        self.invalidate(idx, id, now, ch);
        true
    }

    /// `deleteSessionTxn`: removes the session and releases or deletes its keys.
    fn invalidate(&mut self, idx: u64, id: &str, now: Instant, ch: &mut Changes) {
        let Some(rec) = self.sessions.remove(id) else {
            return;
        };
        self.sessions_table = idx;
        ch.sessions = true;
        let keys: Vec<String> = self
            .held
            .get(id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let delay = rec.lock_delay.min(MAX_LOCK_DELAY);
        for key in keys {
            match rec.behavior {
                Behavior::Release => {
                    if let Some(mut e) = self.kvs.get(&key).cloned() {
                        e.session = None;
                        self.set_txn(idx, &key, e, true, ch);
                    }
                }
                Behavior::Delete => self.delete_txn(idx, &key, ch),
            }
            if !delay.is_zero() {
                self.lock_delays.insert(key, instant_after(now, delay));
            }
        }
        self.held.remove(id);
        // Forget lock-delays that have run out.
        if self.lock_delays.len() > 1024 {
            self.lock_delays.retain(|_, t| *t > now);
        }
    }

    /// `Session.Renew`: resets the TTL timer. `None` for an unknown session.
    pub(crate) fn session_renew(&mut self, id: &str, now: Instant) -> Option<SessionRec> {
        let after = self
            .sessions
            .get(id)?
            .ttl_dur
            .map(|t| self.invalidate_after(t));
        let rec = self.sessions.get_mut(id)?;
        if let Some(after) = after {
            rec.expires = Some(instant_after(now, after));
        }
        Some(rec.clone())
    }

    /// Invalidates every session whose TTL timer has run out. Returns how many.
    pub(crate) fn expire_sessions(&mut self, now: Instant, ch: &mut Changes) -> usize {
        let due: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.expires.is_some_and(|t| t <= now))
            .map(|s| s.id.clone())
            .collect();
        for id in &due {
            let idx = self.next_index();
            self.invalidate(idx, id, now, ch);
        }
        due.len()
    }

    /// The earliest TTL deadline.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.sessions.values().filter_map(|s| s.expires).min()
    }
}
