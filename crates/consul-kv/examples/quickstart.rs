//! The README's quick start (aioconsul's KV vocabulary), step by step, printing what each
//! call does.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! With `CONSUL_HTTP_ADDR` set it talks to that agent (and reads `CONSUL_HTTP_TOKEN` & co.);
//! without it, it starts the embedded development server in-process, with datacenters `dc1`
//! and `dc2`, so it works on a fresh machine.

use std::time::Duration;

use consul_kv::{Client, TxnOutcome};
use consul_kv_devserver::{DevServer, DevServerHandle};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (client, dev) = connect().await?;
    let kv = client.kv();

    println!("\n## Simple usage");
    let set = kv.set("foo", "bar").await?;
    println!("{:<38} -> {set}", "kv.set(\"foo\", \"bar\")");
    let value = kv.get("foo").await?;
    let key = value.as_ref().ok_or("foo should exist")?;
    println!(
        "{:<38} -> {:?} (flags {}, modify index {})",
        "kv.get(\"foo\")",
        key.as_str().unwrap_or("<binary>"),
        key.flags,
        key.modify_index
    );
    let meta = key.consul();
    println!(
        "{:<38} -> last index {}, known leader {}, last contact {:?}",
        "  .consul()",
        meta.last_index(),
        meta.known_leader(),
        meta.last_contact()
    );

    println!("\n## Playing with CAS");
    let applied = kv.set("foo", "baz").cas(meta).await?;
    println!(
        "{:<38} -> {applied} (nobody wrote in between)",
        "kv.set(\"foo\", \"baz\").cas(meta)    "
    );
    let stale = kv.set("foo", "qux").cas(meta).await?;
    println!(
        "{:<38} -> {stale} (the meta is stale now)",
        "kv.set(\"foo\", \"qux\").cas(meta)    "
    );

    println!("\n## Prefixes");
    for (k, v) in [
        ("my/prefix/a", "1"),
        ("my/prefix/b/c", "2"),
        ("my/prefix/b/d", "3"),
    ] {
        kv.set(k, v).await?;
    }
    let values = kv.items("my/prefix/").await?;
    println!(
        "{:<38} -> {} entries:",
        "kv.items(\"my/prefix/\")",
        values.len()
    );
    for e in &values {
        println!(
            "    {} = {:?}",
            e.key,
            String::from_utf8_lossy(e.value_bytes())
        );
    }
    let keys = kv.keys("my/prefix/").await?;
    println!("{:<38} -> {:?}", "kv.keys(\"my/prefix/\")", &*keys);
    let folders = kv.keys("my/prefix/").separator("/").await?;
    println!(
        "{:<38} -> {:?}",
        "kv.keys(\"my/prefix/\").separator(\"/\")", &*folders
    );

    println!("\n## Delete");
    let deleted = kv.delete("foo").await?;
    println!(
        "{:<38} -> {deleted}",
        "kv.delete(\"foo\")                   "
    );
    println!("{:<38} -> {:?}", "kv.get(\"foo\")", kv.get("foo").await?);

    println!("\n## Acquired keys");
    let session = client.session().create().name("quickstart").await?;
    println!(
        "{:<38} -> session {session}",
        "client.session().create()          "
    );
    let acquired = kv
        .acquire("foo", &session)
        .value("held by quickstart")
        .await?;
    println!(
        "{:<38} -> {acquired}",
        "kv.acquire(\"foo\", &session)        "
    );
    let held = kv.get("foo").await?;
    println!(
        "{:<38} -> session {:?}, value {:?} (acquire replaced it)",
        "kv.get(\"foo\")",
        held.as_ref()
            .and_then(|k| k.session.as_ref())
            .map(|s| s.as_str()),
        held.as_ref().and_then(|k| k.as_str())
    );
    let released = kv.release("foo", &session).await?;
    println!(
        "{:<38} -> {released}",
        "kv.release(\"foo\", &session)        "
    );
    client.session().destroy(&session).await?;

    println!("\n## Datacenter");
    kv.dc("dc2").set("foo/bar/baz", "in dc2").await.ok();
    match client.kv().dc("dc2").items("foo/bar").await {
        Ok(dc2) => println!(
            "{:<38} -> {:?}",
            "client.kv().dc(\"dc2\").items(\"foo/bar\")",
            dc2.iter().map(|e| e.key.as_str()).collect::<Vec<_>>()
        ),
        Err(e) => println!(
            "{:<38} -> this agent has no dc2: {}",
            "client.kv().dc(\"dc2\")",
            std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string)
        ),
    }

    println!("\n## A transaction");
    let outcome = kv
        .txn()
        .check_not_exists("my/prefix/txn")
        .set("my/prefix/txn", "atomic")
        .get("my/prefix/a")
        .await?;
    match &outcome {
        TxnOutcome::Committed(r) => println!(
            "{:<38} -> committed, {} results",
            "kv.txn()...",
            r.results.len()
        ),
        TxnOutcome::RolledBack(errors) => {
            println!(
                "{:<38} -> rolled back: {errors:?}",
                "kv.txn()...                        "
            )
        }
    }

    println!("\n## A watch");
    let mut watch = kv.watch("my/prefix/a");
    let first = watch.next().await.ok_or("watch ended")??;
    println!(
        "{:<38} -> now {:?}",
        "kv.watch(\"my/prefix/a\")",
        first.as_ref().and_then(|k| k.as_str())
    );
    let writer = {
        let kv = kv.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            kv.set("my/prefix/a", "changed").await
        })
    };
    let next = watch.next().await.ok_or("watch ended")??;
    println!(
        "{:<38} -> {:?}",
        "  after a write",
        next.as_ref().and_then(|k| k.as_str())
    );
    writer.await??;

    println!("\n## A lock");
    let lock = client.lock("my/prefix/leader").value("quickstart").await?;
    println!(
        "{:<38} -> held by session {}",
        "client.lock(\"my/prefix/leader\")",
        lock.session()
    );
    let released = lock.release().await?;
    println!(
        "{:<38} -> {released}",
        "lock.release()                     "
    );

    println!("\n## Clean up");
    kv.delete_tree("my/prefix/").await?;
    kv.delete("foo").await?;
    kv.dc("dc2").delete_tree("foo/bar/").await.ok();
    println!("{:<38} -> done", "kv.delete_tree(\"my/prefix/\")");

    if let Some(dev) = dev {
        dev.shutdown().await?;
    }
    Ok(())
}

/// The agent at `CONSUL_HTTP_ADDR`, or an embedded devserver when it is unset.
async fn connect() -> Result<(Client, Option<DevServerHandle>), BoxError> {
    if std::env::var_os("CONSUL_HTTP_ADDR").is_some_and(|v| !v.is_empty()) {
        let client = Client::from_env()?;
        println!("Using the Consul agent at {}", client.address());
        return Ok((client, None));
    }
    let dev = DevServer::builder()
        .datacenter("dc1")
        .datacenter("dc2")
        .start()
        .await?;
    println!(
        "CONSUL_HTTP_ADDR is unset: started the embedded devserver at {}",
        dev.http_addr()
    );
    let client = Client::builder().address(dev.http_addr()).build()?;
    Ok((client, Some(dev)))
}
