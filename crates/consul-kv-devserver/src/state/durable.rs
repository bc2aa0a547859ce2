//! What the write-ahead log ([`crate::wal`]) stores of a datacenter: a full [`DcSnapshot`], and
//! per write a [`Redo`] record holding the resulting state of everything the write touched
//! (physical redo, so replay needs no clock, no random session IDs and no re-validation).
//!
//! This module is a child of `state` so that it can read and rebuild [`Dc`]'s private tables.

use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Behavior, Changes, Dc, Entry, ServiceCheck, SessionRec, B64};
use consul_kv_proto::time::instant_after;

/// One KV entry as stored in the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct EntryRec {
    #[serde(rename = "l")]
    lock_index: u64,
    #[serde(rename = "f")]
    flags: u64,
    /// Base64.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    session: Option<String>,
    #[serde(rename = "c")]
    create_index: u64,
    #[serde(rename = "m")]
    modify_index: u64,
}

impl EntryRec {
    fn from_entry(e: &Entry) -> Self {
        Self {
            lock_index: e.lock_index,
            flags: e.flags,
            value: e.value.as_deref().map(|v| B64.encode(v)),
            session: e.session.clone(),
            create_index: e.create_index,
            modify_index: e.modify_index,
        }
    }

    fn to_entry(&self) -> Result<Entry, String> {
        let value = match &self.value {
            Some(v) => Some(Bytes::from(
                B64.decode(v.as_bytes()).map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        Ok(Entry {
            lock_index: self.lock_index,
            flags: self.flags,
            value,
            session: self.session.clone(),
            create_index: self.create_index,
            modify_index: self.modify_index,
        })
    }
}

/// One session as stored in the log. Its TTL timer restarts from the full TTL when the log is
/// replayed, as Consul's new leader restarts every session timer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SessionSnap {
    id: String,
    name: String,
    node: String,
    lock_delay_ns: u64,
    delete: bool,
    ttl: String,
    ttl_ns: Option<u64>,
    node_checks: Option<Vec<String>>,
    service_checks: Option<Vec<(String, String)>>,
    create_index: u64,
    modify_index: u64,
}

impl SessionSnap {
    fn from_rec(s: &SessionRec) -> Self {
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            node: s.node.clone(),
            lock_delay_ns: u64::try_from(s.lock_delay.as_nanos()).unwrap_or(u64::MAX),
            delete: s.behavior == Behavior::Delete,
            ttl: s.ttl.clone(),
            ttl_ns: s
                .ttl_dur
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            node_checks: s.node_checks.clone(),
            service_checks: s.service_checks.as_ref().map(|v| {
                v.iter()
                    .map(|c| (c.id.clone(), c.namespace.clone()))
                    .collect()
            }),
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }

    fn to_rec(&self, dc: &Dc, now: Instant) -> SessionRec {
        let ttl_dur = self.ttl_ns.map(std::time::Duration::from_nanos);
        SessionRec {
            id: self.id.clone(),
            name: self.name.clone(),
            node: self.node.clone(),
            lock_delay: std::time::Duration::from_nanos(self.lock_delay_ns),
            behavior: if self.delete {
                Behavior::Delete
            } else {
                Behavior::Release
            },
            ttl: self.ttl.clone(),
            ttl_dur,
            node_checks: self.node_checks.clone(),
            service_checks: self.service_checks.as_ref().map(|v| {
                v.iter()
                    .map(|(id, ns)| {
                        let mut c = ServiceCheck::new(id.clone());
                        c.namespace = ns.clone();
                        c
                    })
                    .collect()
            }),
            create_index: self.create_index,
            modify_index: self.modify_index,
            expires: ttl_dur.map(|t| instant_after(now, dc.invalidate_after(t))),
        }
    }
}

/// The table indexes of a datacenter.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Indexes {
    index: u64,
    kvs: u64,
    tomb: u64,
    sessions: u64,
}

/// A whole datacenter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct DcSnapshot {
    indexes: Indexes,
    kvs: Vec<(String, EntryRec)>,
    tombstones: Vec<(String, u64)>,
    sessions: Vec<SessionSnap>,
}

/// The result of one write: the state after it of everything it touched.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Redo {
    indexes: Indexes,
    /// Prefixes whose live keys were all deleted (`recurse` deletes), applied first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    trees: Vec<String>,
    /// Each touched key: its entry (or none) and its tombstone (or none) after the write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    keys: Vec<(String, Option<EntryRec>, Option<u64>)>,
    /// The whole session table, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sessions: Option<Vec<SessionSnap>>,
    /// The whole datacenter, for writes that touch everything (tombstone reaping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    full: Option<DcSnapshot>,
}

impl Dc {
    fn indexes(&self) -> Indexes {
        Indexes {
            index: self.index,
            kvs: self.kvs_table,
            tomb: self.tomb_table,
            sessions: self.sessions_table,
        }
    }

    fn set_indexes(&mut self, i: Indexes) {
        // The last applied index never goes backwards, whatever the log says.
        self.index = self.index.max(i.index);
        self.kvs_table = i.kvs;
        self.tomb_table = i.tomb;
        self.sessions_table = i.sessions;
    }

    fn session_snaps(&self) -> Vec<SessionSnap> {
        self.sessions.values().map(SessionSnap::from_rec).collect()
    }

    /// The whole datacenter.
    pub(crate) fn snapshot(&self) -> DcSnapshot {
        DcSnapshot {
            indexes: self.indexes(),
            kvs: self
                .kvs
                .iter()
                .map(|(k, e)| (k.clone(), EntryRec::from_entry(e)))
                .collect(),
            tombstones: self
                .tombstones
                .iter()
                .map(|(k, i)| (k.clone(), *i))
                .collect(),
            sessions: self.session_snaps(),
        }
    }

    /// Replaces the whole datacenter with `s`; session timers restart at `now`.
    ///
    /// # Errors
    /// A value that is not base64 (a corrupt record that passed its checksum).
    pub(crate) fn restore(&mut self, s: &DcSnapshot, now: Instant) -> Result<(), String> {
        let keys: Vec<String> = self.kvs.keys().cloned().collect();
        for k in keys {
            self.raw_set(&k, None);
        }
        for (k, e) in &s.kvs {
            self.raw_set(k, Some(e.to_entry()?));
        }
        self.tombstones = s.tombstones.iter().cloned().collect();
        self.sessions = s
            .sessions
            .iter()
            .map(|x| (x.id.clone(), x.to_rec(self, now)))
            .collect();
        self.set_indexes(s.indexes);
        Ok(())
    }

    /// The redo record of a write that produced `ch`, or `None` when it changed nothing
    /// (`index_before` tells whether it consumed an index, which must survive too).
    pub(crate) fn redo(&self, ch: &Changes, index_before: u64) -> Option<Redo> {
        if ch.is_empty() && self.index == index_before {
            return None;
        }
        if ch.everything {
            return Some(Redo {
                indexes: self.indexes(),
                trees: Vec::new(),
                keys: Vec::new(),
                sessions: None,
                full: Some(self.snapshot()),
            });
        }
        let mut keys: Vec<(String, Option<EntryRec>, Option<u64>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for k in ch.keys.iter().chain(ch.trees.iter()) {
            if seen.insert(k.as_str()) {
                keys.push((
                    k.clone(),
                    self.kvs.get(k).map(EntryRec::from_entry),
                    self.tombstones.get(k).copied(),
                ));
            }
        }
        Some(Redo {
            indexes: self.indexes(),
            trees: ch.trees.clone(),
            keys,
            sessions: ch.sessions.then(|| self.session_snaps()),
            full: None,
        })
    }

    /// Applies a redo record read back from the log.
    ///
    /// # Errors
    /// A value that is not base64.
    pub(crate) fn apply(&mut self, r: &Redo, now: Instant) -> Result<(), String> {
        if let Some(full) = &r.full {
            return self.restore(full, now);
        }
        for prefix in &r.trees {
            let doomed: Vec<String> = self.prefixed(prefix).map(|(k, _)| k.clone()).collect();
            for k in doomed {
                self.raw_set(&k, None);
            }
        }
        for (k, entry, tomb) in &r.keys {
            let entry = match entry {
                Some(e) => Some(e.to_entry()?),
                None => None,
            };
            self.raw_set(k, entry);
            match tomb {
                Some(i) => {
                    self.tombstones.insert(k.clone(), *i);
                }
                None => {
                    self.tombstones.remove(k);
                }
            }
        }
        if let Some(sessions) = &r.sessions {
            self.sessions = sessions
                .iter()
                .map(|x| (x.id.clone(), x.to_rec(self, now)))
                .collect();
            // Locks held by sessions that no longer exist were released by the same write.
            self.held.retain(|s, _| self.sessions.contains_key(s));
        }
        self.set_indexes(r.indexes);
        Ok(())
    }

    /// Reaps the tombstones whose index is at most `max_index` (Consul's tombstone GC reaps
    /// what is older than `tombstone_ttl`). Returns how many; one index when any.
    pub(crate) fn reap_tombstones_upto(&mut self, max_index: u64, ch: &mut Changes) -> usize {
        let before = self.tombstones.len();
        self.tombstones.retain(|_, i| *i > max_index);
        let n = before - self.tombstones.len();
        if n > 0 {
            let idx = self.next_index();
            self.tomb_table = idx;
            ch.everything = true;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::KvWrite;

    #[test]
    fn redo_replays_to_the_same_state() {
        let now = Instant::now();
        let mut live = Dc::new(0, 1.0);
        let mut replica = Dc::new(0, 1.0);
        let mut apply = |live: &mut Dc, f: &dyn Fn(&mut Dc, &mut Changes)| {
            let before = live.index;
            let mut ch = Changes::default();
            f(live, &mut ch);
            if let Some(r) = live.redo(&ch, before) {
                let text = serde_json::to_string(&r).unwrap();
                let back: Redo = serde_json::from_str(&text).unwrap();
                replica.apply(&back, now).unwrap();
            }
        };
        apply(&mut live, &|d, ch| {
            d.kv_apply(KvWrite::Set, "a/1", 3, Some(Bytes::from("x")), now, ch)
                .unwrap();
        });
        apply(&mut live, &|d, ch| {
            d.kv_apply(KvWrite::Set, "a/2", 0, None, now, ch).unwrap();
        });
        apply(&mut live, &|d, ch| {
            d.kv_apply(KvWrite::Set, "b", 0, Some(Bytes::from("y")), now, ch)
                .unwrap();
        });
        apply(&mut live, &|d, ch| {
            d.kv_apply(KvWrite::DeleteTree, "a/", 0, None, now, ch)
                .unwrap();
        });
        apply(&mut live, &|d, ch| {
            d.kv_apply(KvWrite::Delete, "b", 0, None, now, ch).unwrap();
        });
        assert_eq!(live.snapshot(), replica.snapshot());
        assert_eq!(replica.last_index(), 5);
        let mut ch = Changes::default();
        assert_eq!(live.reap_tombstones_upto(4, &mut ch), 1);
        let r = live.redo(&ch, 5).unwrap();
        replica.apply(&r, now).unwrap();
        assert_eq!(live.snapshot(), replica.snapshot());
    }
}
