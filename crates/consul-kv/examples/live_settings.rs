//! A service that keeps typed settings loaded from a Consul prefix and reloads them whenever a
//! key under the prefix changes, keeping the last good settings when a value is bad and saying
//! when its view of Consul is blind.
//!
//! ```text
//! cargo run -p consul-kv --example live_settings
//! ```
//!
//! With `CONSUL_HTTP_ADDR` set it talks to that agent; without it, it starts the embedded
//! development server in-process. The example plays both parts: the service (which watches
//! `example/live-settings/`) and an operator who edits the keys, then it exits.

use std::sync::Arc;
use std::time::Duration;

use consul_kv::{Client, Kv};
use consul_kv_devserver::{DevServer, DevServerHandle};
use serde::Deserialize;
use tokio::sync::{mpsc, RwLock};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const PREFIX: &str = "example/live-settings/";

/// The settings the service runs with: `greeting`, `db/host`, `db/port`, `limits/rps`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Settings {
    greeting: String,
    db: Db,
    #[serde(default)]
    limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Db {
    host: String,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Limits {
    rps: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { rps: 100 }
    }
}

/// What the service reports to the operator part of the example.
#[derive(Debug)]
enum Event {
    Reloaded(Settings),
    Rejected(String),
}

/// The service: watches the prefix and swaps its settings on each change.
async fn service(kv: Kv, current: Arc<RwLock<Option<Settings>>>, events: mpsc::Sender<Event>) {
    let mut settings = kv.watch_tree::<Settings>(PREFIX);
    // Say when the settings may be stale: the watch's health reports every failed request.
    let mut health = settings.health_receiver();
    tokio::spawn(async move {
        let mut blind = false;
        while health.changed().await.is_ok() {
            let h = health.borrow_and_update().clone();
            if h.error.is_some() != blind {
                blind = h.error.is_some();
                if blind {
                    println!("[service] configuration source unreachable; settings may be stale");
                } else {
                    println!("[service] configuration source reachable again");
                }
            }
        }
    });
    while let Some(item) = settings.next().await {
        let event = match item {
            Ok(new) => {
                println!("[service] reloaded settings: {new:?}");
                *current.write().await = Some(new.clone());
                Event::Reloaded(new)
            }
            Err(e) => {
                let why = std::error::Error::source(&e).map_or(String::new(), |s| s.to_string());
                println!("[service] keeping the previous settings: {e}: {why}");
                Event::Rejected(e.key().unwrap_or(PREFIX).to_owned())
            }
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (client, _dev) = connect().await?;
    let kv = client.kv();
    kv.delete_tree(PREFIX).await?;
    kv.set(format!("{PREFIX}greeting"), "hello").await?;
    kv.set(format!("{PREFIX}db/host"), "db.internal").await?;
    kv.set(format!("{PREFIX}db/port"), "5432").await?;

    let current = Arc::new(RwLock::new(None));
    let (tx, mut rx) = mpsc::channel(8);
    let task = tokio::spawn(service(kv.clone(), current.clone(), tx));

    println!("[service] started: {:?}", next(&mut rx).await?);

    println!("[operator] db/port = 6432, limits/rps = 250");
    kv.set(format!("{PREFIX}db/port"), "6432").await?;
    kv.set(format!("{PREFIX}limits/rps"), "250").await?;
    // Depending on timing the two writes arrive in one reload or two.
    loop {
        if let Event::Reloaded(s) = next(&mut rx).await? {
            if s.limits.rps == 250 {
                break;
            }
        }
    }

    println!("[operator] db/port = \"not a port\" (a mistake)");
    kv.set(format!("{PREFIX}db/port"), "not a port").await?;
    match next(&mut rx).await? {
        Event::Rejected(key) => println!("[service] rejected the bad value of {key}"),
        other => return Err(format!("expected a rejection, got {other:?}").into()),
    }
    println!(
        "[service] still running with port {:?}",
        current.read().await.as_ref().map(|s| s.db.port)
    );

    println!("[operator] db/port = 7432 (fixed)");
    kv.set(format!("{PREFIX}db/port"), "7432").await?;
    println!("[service] now: {:?}", next(&mut rx).await?);

    task.abort();
    kv.delete_tree(PREFIX).await?;
    Ok(())
}

/// The service's next report, or an error after 30 s.
async fn next(rx: &mut mpsc::Receiver<Event>) -> Result<Event, BoxError> {
    let event = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .map_err(|_| "no reload within 30 s")?;
    Ok(event.ok_or("the service stopped")?)
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
