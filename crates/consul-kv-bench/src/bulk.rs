//! Bulk writes: `kv.put_all` and `kv.import` of a `consul kv export` file beside one `PUT`
//! per key (what `consul kv import` does), against one server.
//!
//! Each method writes the same `keys` entries of `value_size` bytes under its own fresh
//! prefix (`put_all` with its default transactions in flight, and with one at a time); the prefix is deleted before and after (untimed). `import` is timed from the
//! export file's bytes: parsing included. With a Consul binary, the real
//! `consul kv import @file` is timed too.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use consul_kv::proto::export::to_cli_json;
use consul_kv::{Client, ExportEntry};

/// What to write.
#[derive(Debug, Clone)]
pub struct BulkOptions {
    /// How many keys.
    pub keys: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// The key prefix (a run's methods each use a sub-prefix).
    pub prefix: String,
    /// A `consul` binary, to time `consul kv import` as well.
    pub consul_bin: Option<PathBuf>,
}

/// One timed method.
#[derive(Debug, Clone)]
pub struct BulkResult {
    /// `put-per-key`, `put_all`, `put_all (1 in flight)`, `import` or `consul-cli-import`.
    pub method: &'static str,
    /// Keys written.
    pub keys: usize,
    /// HTTP requests made.
    pub requests: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl BulkResult {
    /// One JSON line.
    pub fn to_json(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        serde_json::json!({
            "bulk": self.method,
            "keys": self.keys,
            "requests": self.requests,
            "seconds": (secs * 1e4).round() / 1e4,
            "keys_per_s": if secs > 0.0 { (self.keys as f64 / secs).round() } else { 0.0 },
        })
        .to_string()
    }
}

fn entries(prefix: &str, keys: usize, value_size: usize) -> Vec<(String, Vec<u8>)> {
    (0..keys)
        .map(|i| {
            let mut v = format!("{i:08}:").into_bytes();
            v.resize(value_size.max(v.len()), b'x');
            (format!("{prefix}{i:06}"), v)
        })
        .collect()
}

async fn check(client: &Client, prefix: &str, keys: usize, method: &str) -> Result<(), String> {
    let found = client
        .kv()
        .keys(prefix)
        .await
        .map_err(|e| format!("{method}: listing {prefix}: {e}"))?;
    if found.len() == keys {
        Ok(())
    } else {
        Err(format!(
            "{method}: {} keys under {prefix}, expected {keys}",
            found.len()
        ))
    }
}

async fn clear(client: &Client, prefix: &str) -> Result<(), String> {
    client
        .kv()
        .delete_tree(prefix)
        .await
        .map(|_| ())
        .map_err(|e| format!("deleting {prefix}: {e}"))
}

/// Runs every method once against `target` (a base URL).
///
/// # Errors
/// A write fails, or a method did not leave exactly `keys` keys.
pub async fn run(target: &str, opts: &BulkOptions) -> Result<Vec<BulkResult>, String> {
    let client = Client::builder()
        .address(target)
        .build()
        .map_err(|e| format!("client: {e}"))?;
    let kv = client.kv();
    let mut out = Vec::new();

    // One PUT per key, in order, as `consul kv import` does.
    let p = format!("{}put-per-key/", opts.prefix);
    clear(&client, &p).await?;
    let data = entries(&p, opts.keys, opts.value_size);
    let start = Instant::now();
    for (k, v) in &data {
        kv.set(k, v.as_slice())
            .await
            .map_err(|e| format!("put-per-key {k}: {e}"))?;
    }
    out.push(BulkResult {
        method: "put-per-key",
        keys: opts.keys,
        requests: opts.keys,
        elapsed: start.elapsed(),
    });
    check(&client, &p, opts.keys, "put-per-key").await?;
    clear(&client, &p).await?;

    // put_all.
    let p = format!("{}put-all/", opts.prefix);
    clear(&client, &p).await?;
    let data = entries(&p, opts.keys, opts.value_size);
    let start = Instant::now();
    let report = kv
        .put_all(data)
        .await
        .map_err(|e| format!("put_all: {e}"))?;
    out.push(BulkResult {
        method: "put_all",
        keys: report.entries,
        requests: report.transactions + report.single_writes,
        elapsed: start.elapsed(),
    });
    check(&client, &p, opts.keys, "put_all").await?;

    // put_all with one transaction in flight at a time.
    let s1 = format!("{}put-all-serial/", opts.prefix);
    clear(&client, &s1).await?;
    let data = entries(&s1, opts.keys, opts.value_size);
    let start = Instant::now();
    let report = kv
        .put_all(data)
        .concurrency(1)
        .await
        .map_err(|e| format!("put_all: {e}"))?;
    out.push(BulkResult {
        method: "put_all (1 in flight)",
        keys: report.entries,
        requests: report.transactions + report.single_writes,
        elapsed: start.elapsed(),
    });
    check(&client, &s1, opts.keys, "put_all (1 in flight)").await?;
    clear(&client, &s1).await?;

    // import: the export of what put_all wrote, as the CLI prints it, moved to a new prefix.
    let exported = kv.export(&p).await.map_err(|e| format!("export: {e}"))?;
    let file = to_cli_json(&exported);
    let q = format!("{}import/", opts.prefix);
    clear(&client, &q).await?;
    let start = Instant::now();
    let parsed: Vec<ExportEntry> =
        serde_json::from_str(&file).map_err(|e| format!("parsing the export: {e}"))?;
    let report = kv
        .import(parsed)
        .rewrite_prefix(&p, &q)
        .await
        .map_err(|e| format!("import: {e}"))?;
    out.push(BulkResult {
        method: "import",
        keys: report.entries,
        requests: report.transactions + report.single_writes,
        elapsed: start.elapsed(),
    });
    check(&client, &q, opts.keys, "import").await?;
    clear(&client, &q).await?;

    // The real CLI importing the same file (one PUT per key), when a binary is at hand.
    if let Some(bin) = &opts.consul_bin {
        let r = format!("{}cli-import/", opts.prefix);
        clear(&client, &r).await?;
        let moved: Vec<ExportEntry> = exported
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.key = e.key.replacen(&p, &r, 1);
                e
            })
            .collect();
        let path = std::env::temp_dir().join(format!("consul-kv-bulk-{}.json", std::process::id()));
        std::fs::write(&path, to_cli_json(&moved))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let addr = target.trim_start_matches("http://").to_owned();
        let bin = bin.clone();
        let arg = format!("@{}", path.display());
        let start = Instant::now();
        let status = tokio::task::spawn_blocking(move || {
            Command::new(bin)
                .args(["kv", "import", &format!("-http-addr={addr}"), &arg])
                .env_remove("CONSUL_HTTP_TOKEN")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .status()
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("consul kv import: {e}"))?;
        let elapsed = start.elapsed();
        let _ = std::fs::remove_file(&path);
        if !status.success() {
            return Err(format!("consul kv import: {status}"));
        }
        out.push(BulkResult {
            method: "consul-cli-import",
            keys: opts.keys,
            requests: opts.keys,
            elapsed,
        });
        check(&client, &r, opts.keys, "consul-cli-import").await?;
        clear(&client, &r).await?;
    }
    clear(&client, &p).await?;
    Ok(out)
}
