//! `sync SOURCE PREFIX [--delete] [--dry-run]`: make a prefix look like an export file or a
//! directory.
//!
//! - SOURCE is a directory (every regular file below it is a key: `PREFIX/relative/path`,
//!   its content the value, flags 0) or an export file as `consul kv export` writes it (`-`
//!   for stdin), whose keys are full keys that must lie under PREFIX.
//! - PREFIX is a folder: a `/` is appended when missing (an empty PREFIX is the whole store).
//! - The plan is printed first: `+ key` (added), `~ key` (changed value or flags), `- key`
//!   (deleted, only with `--delete`: keys under PREFIX that SOURCE lacks).
//! - Then, unless `--dry-run`, every change is written conditionally on the modify index
//!   seen when the plan was made (a create only if the key is still absent), in
//!   transactions. A change someone else made in between is a conflict: it is reported as
//!   `! key` and left alone; the rest is applied.
//! - Exit code: 0 in sync (nothing to do), 1 changed (or would change, with `--dry-run`),
//!   2 conflicts, 3 error.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use clap::{ArgAction, Args};
use consul_kv::proto::txn::TxnOp;
use consul_kv::{Cas, Client, Index, TxnOutcome};

use crate::batch::{batches, op_size, Chunk, MAX_TXN_OPS};
use crate::common::{full_chain, read_file, read_stdin, HttpArgs, Ui};
use crate::gocompat::go_base64_decode;

/// Exit code: nothing to do.
pub const IN_SYNC: u8 = 0;
/// Exit code: changes applied (or, with `--dry-run`, pending).
pub const CHANGED: u8 = 1;
/// Exit code: at least one conflicting change was left alone.
pub const CONFLICT: u8 = 2;
/// Exit code: an error (bad source, Consul unreachable, …).
pub const ERROR: u8 = 3;

/// Arguments of `sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Also delete keys under PREFIX that SOURCE does not have.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub delete: bool,
    /// Print the plan only; write nothing.
    #[arg(long = "dry-run", action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub dry_run: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub http: HttpArgs,
    /// SOURCE PREFIX.
    #[arg(value_name = "SOURCE PREFIX")]
    pub args: Vec<String>,
}

/// What the store should hold under the prefix: key → (value, flags).
pub type Desired = BTreeMap<String, (Bytes, u64)>;

/// One change of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create the key (only if still absent).
    Add {
        /// The key.
        key: String,
        /// Its value.
        value: Bytes,
        /// Its flags.
        flags: u64,
    },
    /// Overwrite the key (only if its modify index is still `index`).
    Update {
        /// The key.
        key: String,
        /// Its new value.
        value: Bytes,
        /// Its new flags.
        flags: u64,
        /// The modify index seen.
        index: u64,
    },
    /// Delete the key (only if its modify index is still `index`).
    Remove {
        /// The key.
        key: String,
        /// The modify index seen.
        index: u64,
    },
}

impl Change {
    /// The key.
    pub fn key(&self) -> &str {
        match self {
            Self::Add { key, .. } | Self::Update { key, .. } | Self::Remove { key, .. } => key,
        }
    }

    fn sign(&self) -> char {
        match self {
            Self::Add { .. } => '+',
            Self::Update { .. } => '~',
            Self::Remove { .. } => '-',
        }
    }

    fn size(&self) -> usize {
        match self {
            Self::Add { key, value, .. } | Self::Update { key, value, .. } => {
                op_size(key, value.len())
            }
            Self::Remove { key, .. } => op_size(key, 0),
        }
    }

    fn op(&self) -> TxnOp {
        match self {
            Self::Add { key, value, flags } => {
                TxnOp::cas(key.clone(), value.clone(), Cas::Absent).with_flags(*flags)
            }
            Self::Update {
                key,
                value,
                flags,
                index,
            } => TxnOp::cas(key.clone(), value.clone(), Index::new(*index)).with_flags(*flags),
            Self::Remove { key, index } => TxnOp::delete_cas(key.clone(), Index::new(*index)),
        }
    }
}

/// The folder form of PREFIX: no leading `/`, a trailing `/` unless empty.
pub fn folder(prefix: &str) -> String {
    let p = prefix.strip_prefix('/').unwrap_or(prefix);
    if p.is_empty() || p.ends_with('/') {
        p.to_owned()
    } else {
        format!("{p}/")
    }
}

/// Reads SOURCE into the desired state under `prefix` (already in [`folder`] form).
///
/// # Errors
/// A message for an unreadable source, a malformed export file, a value that is not base64,
/// a key outside the prefix or a file name that is not UTF-8.
pub fn load_source(source: &str, prefix: &str) -> Result<Desired, String> {
    let mut out = Desired::new();
    let path = Path::new(source);
    if source != "-" && path.is_dir() {
        walk(path, path, prefix, &mut out)?;
        return Ok(out);
    }
    let data = if source == "-" {
        read_stdin()?
    } else {
        read_file(source)?
    };
    let entries =
        crate::gojson::parse_entries(&data).map_err(|e| format!("{source}: not an export file: {e}"))?;
    for e in entries {
        if !e.key.starts_with(prefix) {
            return Err(format!(
                "{source}: key {:?} is not under the prefix {prefix:?}",
                e.key
            ));
        }
        let (value, err) = go_base64_decode(e.value.as_bytes());
        if let Some(at) = err {
            return Err(format!(
                "{source}: the value of {:?} is not base64 (illegal data at input byte {at})",
                e.key
            ));
        }
        out.insert(e.key, (Bytes::from(value), e.flags));
    }
    Ok(out)
}

fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Desired) -> Result<(), String> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let p = entry.path();
        let meta = std::fs::metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        if meta.is_dir() {
            walk(root, &p, prefix, out)?;
        } else if meta.is_file() {
            let rel = p
                .strip_prefix(root)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            let mut parts = Vec::new();
            for c in rel.components() {
                let s = c
                    .as_os_str()
                    .to_str()
                    .ok_or_else(|| format!("{}: the file name is not UTF-8", p.display()))?;
                parts.push(s);
            }
            let key = format!("{prefix}{}", parts.join("/"));
            let value = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            out.insert(key, (Bytes::from(value), 0));
        }
    }
    Ok(())
}

/// The changes that make `current` (key → (value, flags, modify index)) look like `desired`.
pub fn plan(
    desired: &Desired,
    current: &BTreeMap<String, (Bytes, u64, u64)>,
    delete: bool,
) -> Vec<Change> {
    let mut changes = Vec::new();
    for (key, (value, flags)) in desired {
        match current.get(key) {
            None => changes.push(Change::Add {
                key: key.clone(),
                value: value.clone(),
                flags: *flags,
            }),
            Some((v, f, index)) if v != value || f != flags => changes.push(Change::Update {
                key: key.clone(),
                value: value.clone(),
                flags: *flags,
                index: *index,
            }),
            Some(_) => {}
        }
    }
    if delete {
        for (key, (_, _, index)) in current {
            if !desired.contains_key(key) {
                changes.push(Change::Remove {
                    key: key.clone(),
                    index: *index,
                });
            }
        }
    }
    changes.sort_by(|a, b| a.key().cmp(b.key()));
    changes
}

/// Applies `changes`, each conditional on the index it was planned from. Returns the keys that
/// conflicted (left alone).
///
/// # Errors
/// A message when Consul refused a transaction for another reason than a conflict, or could
/// not be reached; the batches before it are applied.
pub async fn apply(client: &Client, changes: &[Change]) -> Result<Vec<String>, String> {
    let kv = client.kv();
    let sizes: Vec<usize> = changes.iter().map(Change::size).collect();
    let mut conflicts = Vec::new();
    for chunk in batches(&sizes, MAX_TXN_OPS) {
        let mut pending: Vec<&Change> = match chunk {
            Chunk::Txn(s, e) => changes[s..e].iter().collect(),
            Chunk::Single(i) => vec![&changes[i]],
        };
        // Each round either commits or removes at least one conflicting change: bounded.
        while !pending.is_empty() {
            let mut txn = kv.txn();
            for c in &pending {
                txn = txn.op(c.op());
            }
            match txn.await {
                Ok(TxnOutcome::Committed(_)) => break,
                Ok(TxnOutcome::RolledBack(errs)) => {
                    let mut bad: Vec<usize> = errs
                        .iter()
                        .map(|e| e.op_index)
                        .filter(|i| *i < pending.len())
                        .collect();
                    if bad.is_empty() {
                        bad = (0..pending.len()).collect();
                    }
                    bad.sort_unstable();
                    bad.dedup();
                    for i in bad.into_iter().rev() {
                        conflicts.push(pending.remove(i).key().to_owned());
                    }
                }
                Err(e) => {
                    return Err(format!(
                        "Error! Failed writing a batch from {}: {}",
                        pending.first().map(|c| c.key()).unwrap_or_default(),
                        full_chain(&e)
                    ))
                }
            }
        }
    }
    conflicts.sort();
    Ok(conflicts)
}

/// `sync`.
pub async fn run(a: SyncArgs) -> u8 {
    let mut ui = Ui::default();
    let (source, prefix) = match a.args.as_slice() {
        [s, p] => (s.clone(), folder(p)),
        _ => {
            ui.error(format!(
                "Error! Expected SOURCE and PREFIX (got {} arguments)",
                a.args.len()
            ));
            return ERROR;
        }
    };
    let desired = match load_source(&source, &prefix) {
        Ok(d) => d,
        Err(e) => {
            ui.error(format!("Error! {e}"));
            return ERROR;
        }
    };
    let client = match a.http.connect() {
        Ok(c) => c,
        Err(e) => {
            ui.error(format!("Error connecting to Consul agent: {e}"));
            return ERROR;
        }
    };
    let items = match client
        .kv()
        .items(prefix.clone())
        .consistency(consul_kv::Consistency::Consistent)
        .await
    {
        Ok(i) => i,
        Err(e) => {
            ui.error(format!("Error querying Consul agent: {}", full_chain(&e)));
            return ERROR;
        }
    };
    let current: BTreeMap<String, (Bytes, u64, u64)> = items
        .into_iter()
        .map(|p| {
            let v = p.value.clone().unwrap_or_default();
            (p.key, (v, p.flags, p.modify_index))
        })
        .collect();
    let changes = plan(&desired, &current, a.delete);
    if changes.is_empty() {
        ui.info(format!(
            "in sync: {} keys under {prefix:?} match {source}",
            desired.len()
        ));
        return IN_SYNC;
    }
    for c in &changes {
        ui.info(format!("{} {}", c.sign(), c.key()));
    }
    let count = |s: char| changes.iter().filter(|c| c.sign() == s).count();
    let (add, chg, del) = (count('+'), count('~'), count('-'));
    if a.dry_run {
        ui.info(format!(
            "plan: {add} to add, {chg} to change, {del} to delete (dry run: nothing written)"
        ));
        return CHANGED;
    }
    match apply(&client, &changes).await {
        Ok(conflicts) => {
            let lost = |s: char| {
                changes
                    .iter()
                    .filter(|c| c.sign() == s && conflicts.iter().any(|k| k == c.key()))
                    .count()
            };
            ui.info(format!(
                "applied: {} added, {} changed, {} deleted",
                add - lost('+'),
                chg - lost('~'),
                del - lost('-')
            ));
            if conflicts.is_empty() {
                return CHANGED;
            }
            for k in &conflicts {
                ui.info(format!("! {k}"));
            }
            ui.error(format!(
                "{} conflicts: changed by someone else since the plan was made; left alone",
                conflicts.len()
            ));
            CONFLICT
        }
        Err(e) => {
            ui.error(e);
            ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_adds_changes_and_deletes_in_key_order() {
        let mut desired = Desired::new();
        desired.insert("p/a".into(), (Bytes::from_static(b"1"), 0));
        desired.insert("p/b".into(), (Bytes::from_static(b"2"), 0));
        desired.insert("p/c".into(), (Bytes::from_static(b"3"), 5));
        let mut current = BTreeMap::new();
        current.insert("p/b".into(), (Bytes::from_static(b"2"), 0, 7));
        current.insert("p/c".into(), (Bytes::from_static(b"3"), 0, 8));
        current.insert("p/d".into(), (Bytes::from_static(b"4"), 0, 9));
        let p = plan(&desired, &current, true);
        let signs: Vec<(char, &str)> = p.iter().map(|c| (c.sign(), c.key())).collect();
        assert_eq!(signs, [('+', "p/a"), ('~', "p/c"), ('-', "p/d")]);
        assert_eq!(plan(&desired, &current, false).len(), 2);
        assert_eq!(folder("/app"), "app/");
        assert_eq!(folder(""), "");
    }
}
