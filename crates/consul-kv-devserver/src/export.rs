//! `consul kv export` JSON (imported from a former `--data` file, and
//! [`DevServerHandle::export_json`](crate::DevServerHandle::export_json)), and atomic file
//! replacement.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use consul_kv_proto::kv::wire::ExportEntry;
use serde::Serialize;

/// Entries to import: key, flags, value.
pub(crate) type Imported = Vec<(String, u64, Option<Bytes>)>;

/// Parses `consul kv export` JSON.
pub(crate) fn parse(data: &[u8]) -> Result<Imported, String> {
    let entries: Vec<ExportEntry> = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    entries
        .into_iter()
        .map(|e| {
            let value = base64::engine::general_purpose::STANDARD
                .decode(e.value.as_bytes())
                .map_err(|err| format!("key {:?}: bad base64 value: {err}", e.key))?;
            let value = (!value.is_empty()).then(|| Bytes::from(value));
            Ok((e.key, e.flags, value))
        })
        .collect()
}

/// Formats entries like `consul kv export`: tab-indented, with a trailing newline.
pub(crate) fn to_json(entries: &[ExportEntry]) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if entries.serialize(&mut ser).is_err() {
        return "[]\n".to_owned();
    }
    buf.push(b'\n');
    String::from_utf8(buf).unwrap_or_else(|_| "[]\n".to_owned())
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory, synced,
/// then renamed over the target. A crash mid-save leaves the old file intact.
pub(crate) fn save_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data.json".to_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable where the platform allows it.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_format() {
        let entries = vec![
            ExportEntry::new("a/b", 7, "dmFs"),
            ExportEntry::new("empty", 0, ""),
        ];
        let s = to_json(&entries);
        assert!(s.starts_with("[\n\t{\n\t\t\"key\": \"a/b\",\n\t\t\"flags\": 7,\n"));
        let back = parse(s.as_bytes()).unwrap();
        assert_eq!(back[0], ("a/b".into(), 7, Some(Bytes::from_static(b"val"))));
        assert_eq!(back[1], ("empty".into(), 0, None));
        assert!(parse(b"{").is_err());
        assert!(parse(br#"[{"key":"k","value":"%%%"}]"#).is_err());
    }

    #[test]
    fn atomic_save_replaces() {
        let dir = std::env::temp_dir().join(format!("devserver-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("kv.json");
        save_atomic(&p, b"[]\n").unwrap();
        save_atomic(&p, b"[1]\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "[1]\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
