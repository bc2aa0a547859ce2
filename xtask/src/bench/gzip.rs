//! `cargo xtask bench gzip`: `items()` over 10,000 keys × 128 B with and without gzip, against
//! the devserver (in the bench process) and, when `CONSUL_HTTP_ADDR` names one, a real agent.
//! Prints one table; the figures come from `consul-kv-bench gzip`, run once per server.

use std::path::Path;

use serde_json::Value;

use super::build::{build_bench_binary, niced};

fn ms(v: &Value, field: &str) -> String {
    v[field].as_u64().map_or_else(
        || "?".to_owned(),
        |us| format!("{:.1} ms", us as f64 / 1000.0),
    )
}

fn kib(v: &Value, field: &str) -> String {
    v[field].as_u64().map_or_else(
        || "?".to_owned(),
        |b| format!("{:.0} KiB", b as f64 / 1024.0),
    )
}

pub(super) fn run(root: &Path) -> Result<(), String> {
    let bin = build_bench_binary(root)?;
    let mut targets = vec![("devserver".to_owned(), None)];
    if let Some(addr) = std::env::var("CONSUL_HTTP_ADDR")
        .ok()
        .filter(|a| !a.is_empty())
    {
        let url = if addr.contains("://") {
            addr
        } else {
            format!("http://{addr}")
        };
        targets.push((format!("agent at {url}"), Some(url)));
    }
    println!("| server | plain p50 (min) | gzip p50 (min) | plain body | gzip body |");
    println!("|---|---:|---:|---:|---:|");
    for (name, url) in targets {
        let mut cmd = niced(&bin);
        cmd.args(["gzip", "--rounds", "30"]);
        if let Some(u) = &url {
            cmd.args(["--target", u]);
        }
        let out = cmd
            .output()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "consul-kv-bench gzip against {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(line.trim())
            .map_err(|e| format!("consul-kv-bench gzip printed {line:?}: {e}"))?;
        println!(
            "| {name} | {} ({}) | {} ({}) | {} | {} |",
            ms(&v, "plain_p50_us"),
            ms(&v, "plain_min_us"),
            ms(&v, "gzip_p50_us"),
            ms(&v, "gzip_min_us"),
            kib(&v, "plain_bytes"),
            kib(&v, "gzip_bytes"),
        );
    }
    Ok(())
}
