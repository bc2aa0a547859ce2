//! `export` / `import` in the `consul kv export` format, and the round trip through a file
//! written by the real `consul` CLI.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use consul_kv::proto::export::to_cli_json;
use consul_kv::ExportEntry;
use consul_kv_tests::consul::{binary, ConsulAgent};
use consul_kv_tests::server;

use crate::{client, prefix};

/// Entries with everything an export must carry: flags up to `u64::MAX`, binary and empty
/// values, folder keys, keys with spaces, unicode and characters Go's JSON escapes.
fn varied_entries(p: &str, n: usize) -> Vec<ExportEntry> {
    (0..n)
        .map(|i| {
            let key = match i % 13 {
                0 => format!("{p}folder-{i:05}/"),
                1 => format!("{p}awk/ü {i:05} ?#%&<>+=;@$,"),
                2 => format!("{p}deep/a/b/c/{i:05}"),
                _ => format!("{p}k/{i:05}"),
            };
            let value: Bytes = if i % 13 == 0 || i % 11 == 0 {
                Bytes::new()
            } else if i % 7 == 0 {
                (0..=255u8)
                    .map(|b| b ^ (i as u8))
                    .collect::<Vec<u8>>()
                    .into()
            } else if i == 4242 {
                vec![b'x'; 100 * 1024].into()
            } else {
                format!("{{\"n\":{i},\"html\":\"<a href='x'>&</a>\",\"ü\":\"\\u2028\"}}").into()
            };
            let flags = match i {
                42 => u64::MAX,
                _ if i % 5 == 0 => (i as u64) * 7919,
                _ => 0,
            };
            ExportEntry::new(key, flags, value)
        })
        .collect()
}

#[tokio::test]
async fn export_then_import_under_another_prefix_keeps_every_byte() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("export-import");
    let src = format!("{p}src/");
    let dst = format!("{p}dst/");
    let entries = varied_entries(&src, 300);
    let report = kv.import(entries.clone()).await.unwrap();
    assert_eq!(report.entries, 300);
    let exported = kv.export(&src).await.unwrap();
    let mut want = entries.clone();
    want.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(exported, want);

    // Through a file, as serde_json writes it, and as the CLI would print it.
    let pretty = serde_json::to_vec_pretty(&exported).unwrap();
    let back: Vec<ExportEntry> = serde_json::from_slice(&pretty).unwrap();
    let cli = to_cli_json(&exported);
    assert!(cli.starts_with("[\n\t{\n\t\t\"key\": "));
    assert_eq!(
        serde_json::from_str::<Vec<ExportEntry>>(&cli).unwrap(),
        back
    );

    let report = kv.import(back).rewrite_prefix(&src, &dst).await.unwrap();
    assert_eq!(report.entries, 300);
    let copied = kv.export(&dst).await.unwrap();
    let moved: Vec<ExportEntry> = exported
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.key = e.key.replacen(&src, &dst, 1);
            e
        })
        .collect();
    assert_eq!(copied, moved);
}

fn consul_cli(bin: &Path, agent: &ConsulAgent, args: &[&str]) -> Vec<u8> {
    // `consul kv <verb> -flags… args…`: flags go before the positional arguments.
    let (verb, rest) = args.split_at(2);
    let out = Command::new(bin)
        .args(verb)
        .arg(format!("-http-addr={}", agent.http_addr()))
        .args(rest)
        .env_remove("CONSUL_HTTP_TOKEN")
        .env_remove("CONSUL_HTTP_TOKEN_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run the consul CLI");
    assert!(
        out.status.success(),
        "consul {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("consul-kv-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10000_entry_export_by_the_real_cli_imports_and_exports_back_identical() {
    let Some(bin) = binary() else {
        eprintln!(
            "SKIPPED: a_10000_entry_export_by_the_real_cli_imports_and_exports_back_identical \
             needs the real Consul binary (run `cargo xtask consul` or set CONSUL_KV_CONSUL_BIN)"
        );
        return;
    };
    let p = prefix("cli-export");
    let entries = varied_entries(&p, 10_000);
    let input = temp_file("cli-input.json", &serde_json::to_vec(&entries).unwrap());

    // A real agent of its own, filled by the real `consul kv import`, exported by the real
    // `consul kv export`.
    let (agent, cli_file) = tokio::task::spawn_blocking({
        let bin = bin.clone();
        let p = p.clone();
        let input = input.clone();
        move || {
            let mut agent = ConsulAgent::dev(&bin).expect("start consul agent -dev");
            agent
                .wait_ready(Duration::from_secs(60))
                .expect("agent ready");
            consul_cli(
                &bin,
                &agent,
                &["kv", "import", &format!("@{}", input.display())],
            );
            let file = consul_cli(&bin, &agent, &["kv", "export", &p]);
            (agent, file)
        }
    })
    .await
    .unwrap();
    let _ = std::fs::remove_file(&input);
    let cli_entries: Vec<ExportEntry> = serde_json::from_slice(&cli_file).unwrap();
    assert_eq!(cli_entries.len(), 10_000);
    assert!(
        cli_file.starts_with(b"[\n\t{\n\t\t\"key\": "),
        "the CLI's own layout"
    );

    // Import through kv.import into the server under test, export back.
    let server = server::start().await;
    let kv = client(&server).kv();
    let report = kv.import(cli_entries.clone()).await.unwrap();
    assert_eq!(report.entries, 10_000);
    assert!(
        report.transactions + report.single_writes <= 80,
        "{report:?}"
    );
    let ours = kv.export(&p).await.unwrap();
    assert_eq!(
        serde_json::to_string_pretty(&ours).unwrap(),
        serde_json::to_string_pretty(&cli_entries).unwrap(),
        "byte-identical after serde_json pretty printing"
    );
    assert!(
        to_cli_json(&ours).as_bytes() == cli_file.as_slice(),
        "to_cli_json writes the very bytes `consul kv export` printed"
    );

    // And the CLI reads what serde_json writes: a sample moved under another prefix,
    // imported by the CLI, exported by the CLI.
    let q = format!("{p}again/");
    let sample: Vec<ExportEntry> = ours
        .iter()
        .step_by(37)
        .map(|e| {
            let mut e = e.clone();
            e.key = e.key.replacen(&p, &q, 1);
            e
        })
        .collect();
    let file = temp_file(
        "serde-pretty.json",
        &serde_json::to_vec_pretty(&sample).unwrap(),
    );
    let reexported = tokio::task::spawn_blocking({
        let file = file.clone();
        let q = q.clone();
        move || {
            consul_cli(
                &bin,
                &agent,
                &["kv", "import", &format!("@{}", file.display())],
            );
            consul_cli(&bin, &agent, &["kv", "export", &q])
        }
    })
    .await
    .unwrap();
    let _ = std::fs::remove_file(&file);
    let mut want = sample.clone();
    want.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(reexported, to_cli_json(&want).into_bytes());
}
