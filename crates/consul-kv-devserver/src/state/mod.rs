//! The state store of one datacenter: KV entries, tombstones, sessions, lock-delays and the
//! Raft-like index, with Consul's state-store semantics (`agent/consul/state/kvs.go`,
//! `session.go`, `txn.go`).
//!
//! Everything here is synchronous and runs under the datacenter's mutex; callers hand the
//! returned [`Changes`] to the waiter registry after unlocking.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use consul_kv_proto::kv::wire::{ExportEntry, KvEntry};
use consul_kv_proto::session::wire::{ServiceCheck, Session};
use consul_kv_proto::txn::wire::TxnError;

use crate::go::quote;

pub(crate) mod durable;
mod sessions;
mod txn;

/// Consul's `MaxLockDelay`.
pub(crate) const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One KV entry (Consul's `DirEntry` without the key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Entry {
    pub(crate) lock_index: u64,
    pub(crate) flags: u64,
    pub(crate) value: Option<Bytes>,
    pub(crate) session: Option<String>,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

impl Entry {
    /// A fresh entry carrying what a write request supplies.
    pub(crate) fn request(flags: u64, value: Option<Bytes>, session: Option<String>) -> Self {
        Self {
            flags,
            value: value.filter(|v| !v.is_empty()),
            session,
            ..Self::default()
        }
    }

    /// Consul's `DirEntry.Equal`: everything but the indexes.
    fn same_content(&self, other: &Self) -> bool {
        self.lock_index == other.lock_index
            && self.flags == other.flags
            && self.value == other.value
            && self.session == other.session
    }

    /// The wire shape; `with_value` is `false` for transaction results of writes.
    pub(crate) fn to_wire(&self, key: &str, with_value: bool) -> KvEntry {
        let value = if with_value {
            self.value.as_deref()
        } else {
            None
        };
        let mut w = KvEntry::new(key, value);
        w.lock_index = self.lock_index;
        w.flags = self.flags;
        w.session = self.session.clone();
        w.create_index = self.create_index;
        w.modify_index = self.modify_index;
        w
    }
}

/// What a session does to its locks when invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behavior {
    /// Release the locks.
    Release,
    /// Delete the locked keys.
    Delete,
}

impl Behavior {
    fn as_str(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Delete => "delete",
        }
    }
}

/// A stored session.
#[derive(Debug, Clone)]
pub(crate) struct SessionRec {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) node: String,
    pub(crate) lock_delay: Duration,
    pub(crate) behavior: Behavior,
    pub(crate) ttl: String,
    pub(crate) ttl_dur: Option<Duration>,
    pub(crate) node_checks: Option<Vec<String>>,
    pub(crate) service_checks: Option<Vec<ServiceCheck>>,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
    pub(crate) expires: Option<Instant>,
}

impl SessionRec {
    /// The wire shape.
    pub(crate) fn to_wire(&self) -> Session {
        let mut s = Session::new(self.id.clone(), self.node.clone());
        s.name = self.name.clone();
        s.lock_delay = u64::try_from(self.lock_delay.as_nanos()).unwrap_or(u64::MAX);
        s.behavior = self.behavior.as_str().to_owned();
        s.ttl = self.ttl.clone();
        s.node_checks = self.node_checks.clone();
        s.service_checks = self.service_checks.clone();
        s.create_index = self.create_index;
        s.modify_index = self.modify_index;
        s
    }
}

/// What a write touched, for waking blocking queries.
#[derive(Debug, Default, Clone)]
pub(crate) struct Changes {
    /// Keys written or deleted.
    pub(crate) keys: Vec<String>,
    /// Prefixes deleted with `recurse` / `delete-tree`.
    pub(crate) trees: Vec<String>,
    /// The session table changed.
    pub(crate) sessions: bool,
    /// Wake everything (tombstone reaping, restores).
    pub(crate) everything: bool,
}

impl Changes {
    /// Whether nothing changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.trees.is_empty() && !self.sessions && !self.everything
    }
}

/// A KV write of `PUT` / `DELETE /v1/kv/<key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KvWrite {
    /// Plain set.
    Set,
    /// `?cas=N`.
    Cas(u64),
    /// `?acquire=<session>`.
    Lock(String),
    /// `?release=<session>`.
    Unlock(String),
    /// Plain delete.
    Delete,
    /// `?recurse` delete.
    DeleteTree,
    /// `?cas=N` delete.
    DeleteCas(u64),
}

/// One KV operation of a transaction, already decoded.
#[derive(Debug, Clone, Default)]
pub(crate) struct TxnKv {
    pub(crate) verb: String,
    pub(crate) key: String,
    pub(crate) value: Option<Bytes>,
    pub(crate) flags: u64,
    pub(crate) index: u64,
    pub(crate) session: String,
}

#[derive(Debug)]
enum Undo {
    Kv(String, Option<Entry>),
    Tomb(String, Option<u64>),
}

#[derive(Debug)]
struct Journal {
    undo: Vec<Undo>,
    kvs_table: u64,
    tomb_table: u64,
}

/// The state of one datacenter.
#[derive(Debug)]
pub(crate) struct Dc {
    /// The last index handed out (Raft's last applied index).
    index: u64,
    kvs: BTreeMap<String, Entry>,
    tombstones: BTreeMap<String, u64>,
    kvs_table: u64,
    tomb_table: u64,
    sessions_table: u64,
    sessions: BTreeMap<String, SessionRec>,
    held: HashMap<String, BTreeSet<String>>,
    lock_delays: HashMap<String, Instant>,
    journal: Option<Journal>,
    ttl_scale: f64,
}

/// The session a lock or unlock names; Consul's `missing session` when it names none.
fn requested_session(e: &Entry) -> Result<String, String> {
    match e.session.as_deref() {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => Err("missing session".to_owned()),
    }
}

impl Dc {
    /// An empty datacenter whose last applied index is `start_index`.
    pub(crate) fn new(start_index: u64, ttl_scale: f64) -> Self {
        Self {
            index: start_index,
            kvs: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            kvs_table: 0,
            tomb_table: 0,
            sessions_table: 0,
            sessions: BTreeMap::new(),
            held: HashMap::new(),
            lock_delays: HashMap::new(),
            journal: None,
            ttl_scale,
        }
    }

    /// The last applied index.
    pub(crate) fn last_index(&self) -> u64 {
        self.index
    }

    /// The number of live keys.
    pub(crate) fn key_count(&self) -> usize {
        self.kvs.len()
    }

    fn next_index(&mut self) -> u64 {
        self.index = self.index.saturating_add(1);
        self.index
    }

    fn kvs_max(&self) -> u64 {
        self.kvs_table.max(self.tomb_table)
    }

    fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a Entry)> {
        self.kvs
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    fn tomb_max(&self, prefix: &str) -> u64 {
        self.tombstones
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, i)| *i)
            .max()
            .unwrap_or(0)
    }

    // ----- reads -----

    /// `KVSGet`: the entry and the index to report (the entry's `ModifyIndex`, or the
    /// KV tables' max index when missing; may be 0).
    pub(crate) fn get(&self, key: &str) -> (u64, Option<&Entry>) {
        match self.kvs.get(key) {
            Some(e) => (e.modify_index, Some(e)),
            None => (self.kvs_max(), None),
        }
    }

    /// `KVSList`: entries under `prefix` and the index to report (may be 0).
    pub(crate) fn list<'a>(&'a self, prefix: &'a str) -> (u64, Vec<(&'a String, &'a Entry)>) {
        let entries: Vec<_> = self.prefixed(prefix).collect();
        let table = self.kvs_max();
        let lindex = if prefix.is_empty() {
            table
        } else {
            let live = entries
                .iter()
                .map(|(_, e)| e.modify_index)
                .max()
                .unwrap_or(0);
            live.max(self.tomb_max(prefix))
        };
        (if lindex != 0 { lindex } else { table }, entries)
    }

    /// The KV tables' index: it changes with every KV write, so a reader that sees the same
    /// value twice saw the same tree (a streamed list checks it between chunks).
    pub(crate) fn kv_tables_index(&self) -> u64 {
        self.kvs_max()
    }

    /// The entries under `prefix` after the key `after` (from the first with `None`), in key
    /// order: the next chunk of a streamed list.
    pub(crate) fn list_after<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a String, &'a Entry)> {
        let from = match after {
            Some(k) => std::ops::Bound::Excluded(k),
            None => std::ops::Bound::Included(prefix),
        };
        self.kvs
            .range::<str, _>((from, std::ops::Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Whether a lock-delay is in force on `key`.
    pub(crate) fn lock_delay_active(&self, key: &str, now: Instant) -> bool {
        self.lock_delays.get(key).is_some_and(|t| *t > now)
    }

    /// The sessions table index (may be 0).
    pub(crate) fn sessions_index(&self) -> u64 {
        self.sessions_table
    }

    /// One session.
    pub(crate) fn session(&self, id: &str) -> Option<&SessionRec> {
        self.sessions.get(id)
    }

    /// All sessions, ordered by ID.
    pub(crate) fn sessions(&self) -> impl Iterator<Item = &SessionRec> {
        self.sessions.values()
    }

    /// The `consul kv export` entries of the whole store, in key order.
    pub(crate) fn export(&self) -> Vec<ExportEntry> {
        self.kvs
            .iter()
            .map(|(k, e)| {
                let value = e
                    .value
                    .as_deref()
                    .map(|v| B64.encode(v))
                    .unwrap_or_default();
                ExportEntry::new(k.clone(), e.flags, value)
            })
            .collect()
    }

    // ----- primitive mutations -----

    fn raw_set(&mut self, key: &str, entry: Option<Entry>) -> Option<Entry> {
        if let Some(s) = entry.as_ref().and_then(|e| e.session.clone()) {
            self.held.entry(s).or_default().insert(key.to_owned());
        }
        let new_session = entry.as_ref().and_then(|e| e.session.clone());
        let old = match entry {
            Some(e) => self.kvs.insert(key.to_owned(), e),
            None => self.kvs.remove(key),
        };
        if let Some(s) = old.as_ref().and_then(|e| e.session.as_ref()) {
            if Some(s) != new_session.as_ref() {
                if let Some(set) = self.held.get_mut(s) {
                    set.remove(key);
                    if set.is_empty() {
                        self.held.remove(s);
                    }
                }
            }
        }
        old
    }

    fn put(&mut self, idx: u64, key: &str, entry: Entry, ch: &mut Changes) {
        let old = self.raw_set(key, Some(entry));
        if let Some(j) = self.journal.as_mut() {
            j.undo.push(Undo::Kv(key.to_owned(), old));
        }
        self.kvs_table = idx;
        ch.keys.push(key.to_owned());
    }

    fn remove(&mut self, idx: u64, key: &str, ch: &mut Changes) {
        let old = self.raw_set(key, None);
        if old.is_some() {
            if let Some(j) = self.journal.as_mut() {
                j.undo.push(Undo::Kv(key.to_owned(), old));
            }
            self.kvs_table = idx;
            ch.keys.push(key.to_owned());
        }
    }

    fn tomb(&mut self, idx: u64, key: &str) {
        let old = self.tombstones.insert(key.to_owned(), idx);
        if let Some(j) = self.journal.as_mut() {
            j.undo.push(Undo::Tomb(key.to_owned(), old));
        }
        self.tomb_table = idx;
    }

    // ----- Consul's KV transaction primitives -----

    /// `kvsSetTxn`.
    fn set_txn(
        &mut self,
        idx: u64,
        key: &str,
        mut e: Entry,
        update_session: bool,
        ch: &mut Changes,
    ) -> Entry {
        let existing = self.kvs.get(key);
        e.create_index = existing.map_or(idx, |x| x.create_index);
        if !update_session {
            e.session = existing.and_then(|x| x.session.clone());
        }
        if let Some(x) = existing {
            if x.same_content(&e) {
                e.modify_index = x.modify_index;
                return e;
            }
        }
        e.modify_index = idx;
        self.put(idx, key, e.clone(), ch);
        e
    }

    /// `kvsSetCASTxn`; `None` when the CAS failed.
    fn set_cas_txn(
        &mut self,
        idx: u64,
        key: &str,
        e: Entry,
        cas: u64,
        ch: &mut Changes,
    ) -> Option<Entry> {
        match self.kvs.get(key) {
            Some(_) if cas == 0 => return None,
            None if cas != 0 => return None,
            Some(x) if x.modify_index != cas => return None,
            _ => {}
        }
        Some(self.set_txn(idx, key, e, false, ch))
    }

    /// `kvsLockTxn`; `Ok(None)` when another session holds the lock.
    fn lock_txn(
        &mut self,
        idx: u64,
        key: &str,
        mut e: Entry,
        ch: &mut Changes,
    ) -> Result<Option<Entry>, String> {
        let session = requested_session(&e)?;
        if !self.sessions.contains_key(&session) {
            return Err(format!("invalid session {}", quote(&session)));
        }
        match self.kvs.get(key) {
            Some(x) if x.session.as_deref() == Some(session.as_str()) => {
                e.create_index = x.create_index;
                e.lock_index = x.lock_index;
            }
            Some(x) if x.session.is_some() => return Ok(None),
            Some(x) => {
                e.create_index = x.create_index;
                e.lock_index = x.lock_index.saturating_add(1);
            }
            None => {
                e.create_index = idx;
                e.lock_index = 1;
            }
        }
        e.modify_index = idx;
        Ok(Some(self.set_txn(idx, key, e, true, ch)))
    }

    /// `kvsUnlockTxn`; `Ok(None)` when the session does not hold the lock.
    fn unlock_txn(
        &mut self,
        idx: u64,
        key: &str,
        mut e: Entry,
        ch: &mut Changes,
    ) -> Result<Option<Entry>, String> {
        let session = requested_session(&e)?;
        let Some(x) = self.kvs.get(key) else {
            return Ok(None);
        };
        if x.session.as_deref() != Some(session.as_str()) {
            return Ok(None);
        }
        e.session = None;
        e.lock_index = x.lock_index;
        e.create_index = x.create_index;
        e.modify_index = idx;
        Ok(Some(self.set_txn(idx, key, e, true, ch)))
    }

    /// `kvsDeleteTxn`.
    fn delete_txn(&mut self, idx: u64, key: &str, ch: &mut Changes) {
        if self.kvs.contains_key(key) {
            self.tomb(idx, key);
            self.remove(idx, key, ch);
        }
    }

    /// `kvsDeleteCASTxn`.
    fn delete_cas_txn(&mut self, idx: u64, cas: u64, key: &str, ch: &mut Changes) -> bool {
        match self.kvs.get(key) {
            None => true,
            Some(x) if x.modify_index != cas => false,
            Some(_) => {
                self.delete_txn(idx, key, ch);
                true
            }
        }
    }

    /// `kvsDeleteTreeTxn`.
    fn delete_tree_txn(&mut self, idx: u64, prefix: &str, ch: &mut Changes) {
        let keys: Vec<String> = self.prefixed(prefix).map(|(k, _)| k.clone()).collect();
        if keys.is_empty() {
            return;
        }
        for k in &keys {
            let old = self.raw_set(k, None);
            if let Some(j) = self.journal.as_mut() {
                j.undo.push(Undo::Kv(k.clone(), old));
            }
        }
        if !prefix.is_empty() {
            self.tomb(idx, prefix);
        }
        self.kvs_table = idx;
        ch.trees.push(prefix.to_owned());
    }

    // ----- KV endpoint -----

    /// `KVS.Apply` for the KV endpoint: `Ok(answer)` is the `true`/`false` body for CAS,
    /// lock, unlock and CAS delete (plain writes always answer `true`).
    pub(crate) fn kv_apply(
        &mut self,
        op: KvWrite,
        key: &str,
        flags: u64,
        value: Option<Bytes>,
        now: Instant,
        ch: &mut Changes,
    ) -> Result<bool, String> {
        // kvsPreApply: lock-delay is checked on the leader before Raft.
        if matches!(op, KvWrite::Lock(_)) && self.lock_delay_active(key, now) {
            return Ok(false);
        }
        let idx = self.next_index();
        match op {
            KvWrite::Set => {
                self.set_txn(idx, key, Entry::request(flags, value, None), false, ch);
                Ok(true)
            }
            KvWrite::Cas(cas) => Ok(self
                .set_cas_txn(idx, key, Entry::request(flags, value, None), cas, ch)
                .is_some()),
            KvWrite::Lock(s) => Ok(self
                .lock_txn(idx, key, Entry::request(flags, value, Some(s)), ch)?
                .is_some()),
            KvWrite::Unlock(s) => Ok(self
                .unlock_txn(idx, key, Entry::request(flags, value, Some(s)), ch)?
                .is_some()),
            KvWrite::Delete => {
                self.delete_txn(idx, key, ch);
                Ok(true)
            }
            KvWrite::DeleteTree => {
                self.delete_tree_txn(idx, key, ch);
                Ok(true)
            }
            KvWrite::DeleteCas(cas) => Ok(self.delete_cas_txn(idx, cas, key, ch)),
        }
    }

    /// Loads `consul kv export` entries as plain sets, one index each.
    pub(crate) fn import(&mut self, entries: Vec<(String, u64, Option<Bytes>)>) {
        let mut ch = Changes::default();
        for (key, flags, value) in entries {
            let idx = self.next_index();
            self.set_txn(
                idx,
                &key,
                Entry::request(flags, value, None),
                false,
                &mut ch,
            );
        }
    }

    /// Reaps every tombstone (one Raft write, like Consul's tombstone GC). Returns how many.
    pub(crate) fn reap_tombstones(&mut self, ch: &mut Changes) -> usize {
        let n = self.tombstones.len();
        if n > 0 {
            self.tombstones.clear();
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

    fn set(dc: &mut Dc, key: &str, v: &str) -> bool {
        let mut ch = Changes::default();
        dc.kv_apply(
            KvWrite::Set,
            key,
            0,
            Some(Bytes::from(v.to_owned())),
            Instant::now(),
            &mut ch,
        )
        .unwrap()
    }

    fn session(dc: &mut Dc, id: &str, behavior: Behavior, delay: Duration) {
        let rec = SessionRec {
            id: id.into(),
            name: String::new(),
            node: "n".into(),
            lock_delay: delay,
            behavior,
            ttl: String::new(),
            ttl_dur: None,
            node_checks: None,
            service_checks: None,
            create_index: 0,
            modify_index: 0,
            expires: None,
        };
        dc.session_create(rec, Instant::now(), &mut Changes::default());
    }

    #[test]
    fn unchanged_write_keeps_modify_index() {
        let mut dc = Dc::new(10, 1.0);
        set(&mut dc, "a", "1");
        let (i1, _) = dc.get("a");
        set(&mut dc, "a", "1");
        assert_eq!(dc.get("a").0, i1);
        set(&mut dc, "a", "2");
        assert!(dc.get("a").0 > i1);
        assert_eq!(dc.get("a").1.unwrap().create_index, i1);
    }

    #[test]
    fn tombstones_keep_list_index() {
        let mut dc = Dc::new(10, 1.0);
        set(&mut dc, "p/a", "1");
        set(&mut dc, "p/b", "1");
        let mut ch = Changes::default();
        dc.kv_apply(KvWrite::Delete, "p/b", 0, None, Instant::now(), &mut ch)
            .unwrap();
        let after_delete = dc.list("p/").0;
        assert_eq!(after_delete, dc.last_index());
        dc.reap_tombstones(&mut ch);
        assert!(dc.list("p/").0 < after_delete);
    }

    #[test]
    fn lock_release_and_invalidate() {
        let mut dc = Dc::new(10, 1.0);
        session(&mut dc, "s1", Behavior::Release, Duration::from_secs(5));
        let now = Instant::now();
        let mut ch = Changes::default();
        assert!(dc
            .kv_apply(KvWrite::Lock("s1".into()), "k", 0, None, now, &mut ch)
            .unwrap());
        assert_eq!(dc.get("k").1.unwrap().lock_index, 1);
        assert!(dc
            .kv_apply(KvWrite::Lock("s1".into()), "k", 0, None, now, &mut ch)
            .unwrap());
        assert_eq!(dc.get("k").1.unwrap().lock_index, 1);
        assert_eq!(
            dc.kv_apply(KvWrite::Lock("nope".into()), "k", 0, None, now, &mut ch),
            Err("invalid session \"nope\"".into())
        );
        assert!(dc.session_destroy("s1", now, &mut ch));
        let e = dc.get("k").1.unwrap();
        assert_eq!(e.session, None);
        assert_eq!(e.lock_index, 1);
        assert!(dc.lock_delay_active("k", now));
        session(&mut dc, "s2", Behavior::Delete, Duration::ZERO);
        assert!(!dc
            .kv_apply(KvWrite::Lock("s2".into()), "k", 0, None, now, &mut ch)
            .unwrap());
    }

    #[test]
    fn failed_txn_rolls_back() {
        let mut dc = Dc::new(10, 1.0);
        set(&mut dc, "x", "1");
        let before = dc.get("x").1.cloned();
        let ops = vec![
            TxnKv {
                verb: "set".into(),
                key: "x".into(),
                value: Some(Bytes::from_static(b"2")),
                ..TxnKv::default()
            },
            TxnKv {
                verb: "delete-tree".into(),
                key: String::new(),
                ..TxnKv::default()
            },
            TxnKv {
                verb: "get".into(),
                key: "missing".into(),
                ..TxnKv::default()
            },
        ];
        let r = dc.txn(&ops, true, true, Instant::now(), &mut Changes::default());
        let errs = r.unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].what, "key \"missing\" doesn't exist");
        assert_eq!(dc.get("x").1.cloned(), before);
    }
}
