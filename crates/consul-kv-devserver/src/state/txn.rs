//! Transactions in the state store: every KV verb of `/v1/txn`, applied all or nothing.

use std::time::Instant;

use super::*;

impl Dc {
    /// Runs a transaction. `allowed` is whether the caller's token may read and write KV
    /// (ACL mode); `write` whether any op is a write verb (the write path consumes an index).
    pub(crate) fn txn(
        &mut self,
        ops: &[TxnKv],
        allowed: bool,
        write: bool,
        now: Instant,
        ch: &mut Changes,
    ) -> Result<Vec<KvEntry>, Vec<TxnError>> {
        // preCheck / kvsPreApply: all errors collected, nothing applied.
        let mut errors = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let verb = op.verb.as_str();
            if op.key.is_empty() && verb != "delete-tree" {
                errors.push(TxnError::new(i, "Must provide key"));
            } else if !allowed && !matches!(verb, "get" | "get-tree" | "get-or-empty") {
                errors.push(TxnError::new(i, "Permission denied"));
            } else if verb == "lock" && self.lock_delay_active(&op.key, now) {
                errors.push(TxnError::new(
                    i,
                    format!("failed to lock key {} due to lock delay", quote(&op.key)),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let idx = if write { self.next_index() } else { 0 };
        self.journal = Some(Journal {
            undo: Vec::new(),
            kvs_table: self.kvs_table,
            tomb_table: self.tomb_table,
        });
        let mut local = Changes::default();
        let mut results = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match self.txn_op(idx, op, write, &mut local) {
                Ok(r) => {
                    let is_read = matches!(op.verb.as_str(), "get" | "get-tree" | "get-or-empty");
                    if allowed || !is_read {
                        results.extend(r);
                    }
                }
                Err(what) => errors.push(TxnError::new(i, what)),
            }
        }
        let journal = self.journal.take();
        if errors.is_empty() {
            ch.keys.extend(local.keys);
            ch.trees.extend(local.trees);
            return Ok(results);
        }
        if let Some(j) = journal {
            for u in j.undo.into_iter().rev() {
                match u {
                    Undo::Kv(k, old) => {
                        self.raw_set(&k, old);
                    }
                    Undo::Tomb(k, old) => match old {
                        Some(i) => {
                            self.tombstones.insert(k, i);
                        }
                        None => {
                            self.tombstones.remove(&k);
                        }
                    },
                }
            }
            self.kvs_table = j.kvs_table;
            self.tomb_table = j.tomb_table;
        }
        Err(errors)
    }

    /// `txnKVS`: one operation; the result entries or the error text.
    fn txn_op(
        &mut self,
        idx: u64,
        op: &TxnKv,
        write: bool,
        ch: &mut Changes,
    ) -> Result<Vec<KvEntry>, String> {
        let key = op.key.as_str();
        let q = quote(key);
        let session = (!op.session.is_empty()).then(|| op.session.clone());
        let req = || Entry::request(op.flags, op.value.clone(), session.clone());
        let bare = |e: &Entry| vec![e.to_wire(key, false)];
        // Writes only run on the write path (a read-only transaction has none).
        let is_write = matches!(
            op.verb.as_str(),
            "set" | "cas" | "lock" | "unlock" | "delete" | "delete-tree" | "delete-cas"
        );
        if is_write && !write {
            return Err(format!("unknown KV verb {}", quote(&op.verb)));
        }
        match op.verb.as_str() {
            "set" => Ok(bare(&self.set_txn(idx, key, req(), false, ch))),
            "cas" => self
                .set_cas_txn(idx, key, req(), op.index, ch)
                .map(|e| bare(&e))
                .ok_or_else(|| format!("failed to set key {q}, index is stale")),
            "lock" => self
                .lock_txn(idx, key, req(), ch)?
                .map(|e| bare(&e))
                .ok_or_else(|| format!("failed to lock key {q}, lock is already held")),
            "unlock" => self
                .unlock_txn(idx, key, req(), ch)?
                .map(|e| bare(&e))
                .ok_or_else(|| {
                    format!(
                        "failed to unlock key {q}, lock isn't held, or is held by another session"
                    )
                }),
            "get" => self
                .kvs
                .get(key)
                .map(|e| vec![e.to_wire(key, true)])
                .ok_or_else(|| format!("key {q} doesn't exist")),
            "get-or-empty" => Ok(match self.kvs.get(key) {
                Some(e) => vec![e.to_wire(key, true)],
                None => {
                    let mut echo = Entry::request(op.flags, None, session.clone());
                    echo.modify_index = op.index;
                    vec![echo.to_wire(key, false)]
                }
            }),
            "get-tree" => Ok(self
                .prefixed(key)
                .map(|(k, e)| e.to_wire(k, true))
                .collect()),
            "check-index" => match self.kvs.get(key) {
                None => Err(format!("failed to check index, key {q} doesn't exist")),
                Some(e) if e.modify_index != op.index => Err(format!(
                    "failed index check for key {q}, current modify index {} != {}",
                    e.modify_index, op.index
                )),
                Some(e) => Ok(bare(e)),
            },
            "check-session" => match self.kvs.get(key) {
                None => Err(format!("failed to check session, key {q} doesn't exist")),
                Some(e) if e.session.as_deref().unwrap_or("") != op.session => Err(format!(
                    "failed session check for key {q}, current session {} != {}",
                    quote(e.session.as_deref().unwrap_or("")),
                    quote(&op.session)
                )),
                Some(e) => Ok(bare(e)),
            },
            "check-not-exists" => match self.kvs.get(key) {
                Some(_) => Err(format!("key {q} exists")),
                None => Ok(Vec::new()),
            },
            "delete" => {
                self.delete_txn(idx, key, ch);
                Ok(Vec::new())
            }
            "delete-tree" => {
                self.delete_tree_txn(idx, key, ch);
                Ok(Vec::new())
            }
            "delete-cas" => {
                if self.delete_cas_txn(idx, op.index, key, ch) {
                    Ok(Vec::new())
                } else {
                    Err(format!("failed to delete key {q}, index is stale"))
                }
            }
            other => Err(format!("unknown KV verb {}", quote(other))),
        }
    }
}
