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
use consul_kv::{ExportEntry, SyncAction};

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
    let entries = crate::gojson::parse_entries(&data)
        .map_err(|e| format!("{source}: not an export file: {e}"))?;
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
    let desired: Vec<ExportEntry> = desired
        .into_iter()
        .map(|(k, (v, f))| ExportEntry::new(k, f, v))
        .collect();
    let kv = client.kv();
    let plan = match kv
        .sync(prefix.clone(), desired.clone())
        .delete(a.delete)
        .plan()
        .await
    {
        Ok(p) => p,
        Err(e) => {
            ui.error(format!("Error! {}", full_chain(&e)));
            return ERROR;
        }
    };
    if plan.is_empty() {
        ui.info(format!(
            "in sync: {} keys under {prefix:?} match {source}",
            desired.len()
        ));
        return IN_SYNC;
    }
    let mut lines: Vec<(&str, char)> = Vec::with_capacity(plan.len());
    lines.extend(plan.added.iter().map(|e| (e.key.as_str(), '+')));
    lines.extend(plan.changed.iter().map(|c| (c.desired.key.as_str(), '~')));
    lines.extend(plan.deleted.iter().map(|d| (d.key.as_str(), '-')));
    lines.sort_unstable();
    for (key, sign) in &lines {
        ui.info(format!("{sign} {key}"));
    }
    let (add, chg, del) = (plan.added.len(), plan.changed.len(), plan.deleted.len());
    if a.dry_run {
        ui.info(format!(
            "plan: {add} to add, {chg} to change, {del} to delete (dry run: nothing written)"
        ));
        return CHANGED;
    }
    match plan.apply(&kv).await {
        Ok(report) => {
            let lost = |action: SyncAction| {
                report
                    .conflicts
                    .iter()
                    .filter(|c| c.action == action)
                    .count()
            };
            ui.info(format!(
                "applied: {} added, {} changed, {} deleted",
                add - lost(SyncAction::Add),
                chg - lost(SyncAction::Change),
                del - lost(SyncAction::Delete)
            ));
            if report.conflicts.is_empty() {
                return CHANGED;
            }
            for c in &report.conflicts {
                ui.info(format!("! {} ({})", c.key, c.what));
            }
            ui.error(format!(
                "{} conflicts: changed by someone else since the plan was made; left alone",
                report.conflicts.len()
            ));
            CONFLICT
        }
        Err(e) => {
            ui.error(format!("Error! {}", full_chain(&e)));
            ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_a_folder() {
        assert_eq!(folder("/app"), "app/");
        assert_eq!(folder("app/"), "app/");
        assert_eq!(folder(""), "");
    }
}
