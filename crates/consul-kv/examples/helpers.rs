//! The helpers built on KV, one section each: `update`, `put_all`, `export` / `import`,
//! `sync`, `get_json` / `set_json` and `tree`.
//!
//! ```text
//! cargo run --example helpers
//! ```
//!
//! With `CONSUL_HTTP_ADDR` set it talks to that agent (writing under `examples/helpers/`);
//! without it, it starts the embedded development server in-process.

use bytes::Bytes;
use consul_kv::{Client, ExportEntry};
use consul_kv_devserver::{DevServer, DevServerHandle};
use serde::{Deserialize, Serialize};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const P: &str = "examples/helpers/";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (client, dev) = connect().await?;
    let kv = client.kv();
    kv.delete_tree(P).await?;

    println!("\n## update: read-modify-write with CAS, retried on conflict");
    let counter = format!("{P}counter");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let kv = kv.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                kv.update(&counter, |current| {
                    let n: u64 = current
                        .and_then(|p| std::str::from_utf8(p.value_bytes()).ok()?.parse().ok())
                        .unwrap_or(0);
                    Some(Bytes::from((n + 1).to_string()))
                })
                .await?;
            }
            Ok::<_, consul_kv::UpdateError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let now = kv.get(&counter).await?.ok_or("the counter exists")?;
    println!("8 tasks × 25 updates -> {:?}", now.as_str().unwrap_or("?"));

    println!("\n## put_all: many keys in transactions of ≤ 128 operations / 512 KiB");
    let entries = (0..1000).map(|i| (format!("{P}load/{i:04}"), format!("value {i}")));
    let report = kv
        .put_all(entries)
        .progress(|p| {
            if p.chunk + 1 == p.chunks {
                println!("  chunk {}/{} committed", p.chunk + 1, p.chunks);
            }
        })
        .await?;
    println!(
        "{} entries, {} transactions, {} value bytes",
        report.entries, report.transactions, report.bytes
    );

    println!("\n## export / import: the `consul kv export` format");
    let exported: Vec<ExportEntry> = kv.export(format!("{P}load/")).await?;
    let file = serde_json::to_vec_pretty(&exported)?; // the consul CLI imports this
    let back: Vec<ExportEntry> = serde_json::from_slice(&file)?;
    let report = kv
        .import(back)
        .rewrite_prefix(format!("{P}load/"), format!("{P}copy/"))
        .await?;
    println!(
        "exported {} entries ({} bytes of JSON), imported them under {P}copy/ in {} transactions",
        exported.len(),
        file.len(),
        report.transactions
    );

    println!("\n## sync: write only what differs, never over a concurrent edit");
    let desired = [
        (format!("{P}app/name"), "web"),
        (format!("{P}app/port"), "8080"),
    ];
    kv.set(format!("{P}app/name"), "old").await?;
    kv.set(format!("{P}app/stale"), "x").await?;
    let plan = kv
        .sync(format!("{P}app/"), desired)
        .delete(true)
        .plan()
        .await?;
    println!("{plan}");
    kv.set(format!("{P}app/stale"), "edited meanwhile").await?; // someone else writes
    let report = plan.apply(&kv).await?;
    println!("applied {} operations", report.applied);
    for c in &report.conflicts {
        println!("conflict, left alone: {} ({}): {}", c.key, c.action, c.what);
    }

    println!("\n## typed values: JSON in and out, and a prefix as one struct");
    #[derive(Debug, Serialize, Deserialize)]
    struct Limits {
        rps: u32,
        burst: u32,
    }
    kv.set_json(
        format!("{P}limits"),
        &Limits {
            rps: 100,
            burst: 20,
        },
    )
    .await?;
    let limits: Option<Limits> = kv.get_json(format!("{P}limits")).await?;
    println!("get_json -> {limits:?}");

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // printed with Debug
    struct App {
        name: String,
        db: Db,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // printed with Debug
    struct Db {
        host: String,
        port: u16,
    }
    kv.put_all([
        (format!("{P}config/app/name"), "web"),
        (format!("{P}config/app/db/host"), "db.internal"),
        (format!("{P}config/app/db/port"), "5432"),
    ])
    .await?;
    let app: App = kv.tree(format!("{P}config/app/")).await?;
    println!("tree -> {app:?}");

    kv.delete_tree(P).await?;
    if let Some(dev) = dev {
        dev.shutdown().await?;
    }
    Ok(())
}

async fn connect() -> Result<(Client, Option<DevServerHandle>), BoxError> {
    if std::env::var_os("CONSUL_HTTP_ADDR").is_some_and(|v| !v.is_empty()) {
        let client = Client::from_env()?;
        println!("Using the Consul agent at {}", client.address());
        return Ok((client, None));
    }
    let dev = DevServer::builder().start().await?;
    println!(
        "CONSUL_HTTP_ADDR is unset: started the embedded devserver at {}",
        dev.http_addr()
    );
    let client = Client::builder().address(dev.http_addr()).build()?;
    Ok((client, Some(dev)))
}
