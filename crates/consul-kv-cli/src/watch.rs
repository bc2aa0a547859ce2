//! `watch KEY|PREFIX/ [-- HANDLER ARGS…]`: like `consul watch -type key` (or `-type
//! keyprefix` when the argument ends in `/`).
//!
//! Without a handler, prints the data as indented JSON (Consul's `KVPair` layout, `null` for a
//! missing key or an empty prefix) once per change; `--once` prints the current data and
//! exits, as `consul watch` does. With a handler, runs it on every change with the compact
//! JSON on stdin and `CONSUL_INDEX` set to the index of the data, through `$SHELL -c` (or
//! `/bin/sh`) unless `--shell=false`. A handler that fails stops the watch (exit 1).

use std::process::Stdio;

use base64::Engine as _;
use clap::{ArgAction, Args};
use consul_kv::proto::kv as op;
use consul_kv::{Client, KvPair, WatchOptions};
use tokio::io::AsyncWriteExt as _;

use crate::common::{full_chain, HttpArgs, Ui};
use crate::gocompat::Json;

/// Arguments of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Run the handler through a shell (`$SHELL -c`, else `/bin/sh -c`).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = true, value_name = "BOOL")]
    pub shell: bool,
    /// Print the current data once and exit (what `consul watch` does without a handler).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub once: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub http: HttpArgs,
    /// KEY or PREFIX/, then optionally `--` and the handler.
    #[arg(value_name = "KEY|PREFIX/ [-- HANDLER...]")]
    pub args: Vec<String>,
}

/// Consul's `KVPair` as Go's `api` package encodes it.
pub fn pair_json(p: &KvPair) -> Json {
    Json::Object(vec![
        ("Key", Json::Str(p.key.as_bytes().to_vec())),
        ("CreateIndex", Json::Uint(p.create_index)),
        ("ModifyIndex", Json::Uint(p.modify_index)),
        ("LockIndex", Json::Uint(p.lock_index)),
        ("Flags", Json::Uint(p.flags)),
        (
            "Value",
            match &p.value {
                None => Json::Null,
                Some(v) => Json::Str(
                    base64::engine::general_purpose::STANDARD
                        .encode(v)
                        .into_bytes(),
                ),
            },
        ),
        (
            "Session",
            Json::Str(
                p.session
                    .as_ref()
                    .map(|s| s.as_str().as_bytes().to_vec())
                    .unwrap_or_default(),
            ),
        ),
    ])
}

/// Builds the handler command: through the shell, or the arguments as they are.
pub fn handler_command(args: &[String], shell: bool) -> tokio::process::Command {
    if shell {
        let sh = std::env::var("SHELL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".to_owned());
        let mut c = tokio::process::Command::new(sh);
        c.arg("-c").arg(args.join(" "));
        c
    } else {
        let mut c = tokio::process::Command::new(&args[0]);
        c.args(&args[1..]);
        c
    }
}

async fn run_handler(args: &[String], shell: bool, index: u64, data: &Json) -> Result<(), String> {
    let mut cmd = handler_command(args, shell);
    cmd.env("CONSUL_INDEX", index.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("Error starting handler: {e}"))?;
    let mut input = data.compact().into_bytes();
    input.push(b'\n');
    if let Some(mut stdin) = child.stdin.take() {
        // A handler that does not read its input is not an error.
        let _ = stdin.write_all(&input).await;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| format!("Error executing handler: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "Error executing handler: exit status {}",
            status.code().unwrap_or(-1)
        ))
    }
}

/// `watch`.
pub async fn run(a: WatchArgs) -> u8 {
    let mut ui = Ui::default();
    let Some(target) = a.args.first().cloned() else {
        ui.error("Error! Missing KEY or PREFIX/ argument");
        return 1;
    };
    let mut handler: Vec<String> = a.args[1..].to_vec();
    if handler.first().is_some_and(|s| s == "--") {
        handler.remove(0);
    }
    let target = target.strip_prefix('/').unwrap_or(&target).to_owned();
    let client = match a.http.connect() {
        Ok(c) => c,
        Err(e) => {
            ui.error(format!("Error connecting to Consul agent: {e}"));
            return 1;
        }
    };
    let mut source = Source::new(&client, &target);
    loop {
        let (index, data) = match source.next().await {
            Ok(x) => x,
            Err(e) => {
                ui.error(format!("Error querying Consul agent: {e}"));
                return 1;
            }
        };
        if handler.is_empty() {
            ui.info(data.indented("    "));
            ui.flush();
            if a.once {
                return 0;
            }
        } else if let Err(e) = run_handler(&handler, a.shell, index, &data).await {
            ui.error(e);
            return 1;
        }
    }
}

/// The data being watched: one key, or every key under a prefix.
enum Source {
    Key(Box<consul_kv_hyper::HyperWatch<op::Get>>),
    Prefix(Box<consul_kv::PrefixWatch>),
}

impl Source {
    fn new(client: &Client, target: &str) -> Self {
        if target.is_empty() || target.ends_with('/') {
            Self::Prefix(Box::new(client.kv().watch_prefix(target.to_owned())))
        } else {
            Self::Key(Box::new(
                client
                    .executor()
                    .watch(op::Get::new(target.to_owned()), WatchOptions::default()),
            ))
        }
    }

    /// The next data and its index: the current data first, then one per change.
    async fn next(&mut self) -> Result<(u64, Json), String> {
        match self {
            Self::Key(w) => {
                let r = w.next().await.map_err(|e| full_chain(&e))?;
                let data = r.value.as_ref().map(pair_json).unwrap_or(Json::Null);
                Ok((r.meta.last_index.get(), data))
            }
            Self::Prefix(w) => {
                let items = w
                    .next()
                    .await
                    .ok_or_else(|| "the watch ended".to_owned())?
                    .map_err(|e| full_chain(&e))?;
                let index = items.consul().last_index().get();
                let data = if items.is_empty() {
                    Json::Null
                } else {
                    Json::Array(items.iter().map(pair_json).collect())
                };
                Ok((index, data))
            }
        }
    }
}
