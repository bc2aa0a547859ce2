//! `consul-kv`: a small binary that behaves like `consul kv` for what scripts already do, and
//! goes further where users asked.
//!
//! - `get`, `put`, `delete`, `export`, `import`: the flags, arguments, output, error texts and
//!   exit codes of `consul kv` (Consul 1.14.11), Go's `-flag` spellings included.
//! - `import --atomic-batches`: the same input and stdout, written as transactions within
//!   Consul's limits, each batch all-or-nothing, with a progress bar on a terminal.
//! - `sync SOURCE PREFIX`: make a prefix look like an export file or a directory, every change
//!   conditional on the index seen; `--dry-run` prints the plan only.
//! - `watch KEY|PREFIX/`: print (or hand to a command) the value on every change, like
//!   `consul watch -type key|keyprefix`.
//! - `lock PREFIX -- CHILD…`: run a child while holding a lock or semaphore, like
//!   `consul lock`.
//!
//! The binary's `main` is [`main_entry`]; the library exists so the test suite can build the
//! same program under another name.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod argv;
pub mod batch;
pub mod common;
pub mod gocompat;
pub mod gojson;
pub mod kvcmd;
pub mod lock;
pub mod sync;
pub mod watch;

use argv::{Flag, FlagError, Kind};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "consul-kv",
    version,
    about = "A drop-in for `consul kv`, with atomic batched import, sync, watch and lock.",
    long_about = None
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Retrieves or lists data from the KV store (`consul kv get`).
    Get(kvcmd::GetArgs),
    /// Sets or updates data in the KV store (`consul kv put`).
    Put(kvcmd::PutArgs),
    /// Removes data from the KV store (`consul kv delete`).
    Delete(kvcmd::DeleteArgs),
    /// Exports a tree from the KV store as JSON (`consul kv export`).
    Export(kvcmd::ExportArgs),
    /// Imports a tree stored as JSON to the KV store (`consul kv import`).
    Import(kvcmd::ImportArgs),
    /// Makes a prefix look like an export file or a directory.
    Sync(sync::SyncArgs),
    /// Prints a key or prefix on every change, or runs a handler with it.
    Watch(watch::WatchArgs),
    /// Runs a child process while holding a lock or semaphore.
    Lock(lock::LockArgs),
}

/// The flags each subcommand takes, for [`argv::normalise`].
fn flags_of(sub: &str) -> Option<Vec<Flag>> {
    use argv::{HTTP_FLAGS, TENANCY_FLAGS};
    let own: &[(&'static str, Kind)] = match sub {
        "get" => &[
            ("base64", Kind::Bool),
            ("detailed", Kind::Bool),
            ("keys", Kind::Bool),
            ("recurse", Kind::Bool),
            ("separator", Kind::Str),
        ],
        "put" => &[
            ("base64", Kind::Bool),
            ("cas", Kind::Bool),
            ("modify-index", Kind::Uint),
            ("flags", Kind::Uint),
            ("acquire", Kind::Bool),
            ("release", Kind::Bool),
            ("session", Kind::Str),
        ],
        "delete" => &[
            ("recurse", Kind::Bool),
            ("cas", Kind::Bool),
            ("modify-index", Kind::Uint),
        ],
        "export" => &[],
        "import" => &[
            ("prefix", Kind::Str),
            ("atomic-batches", Kind::Bool),
            ("batch-ops", Kind::Uint),
        ],
        "sync" => &[("delete", Kind::Bool), ("dry-run", Kind::Bool)],
        "watch" => &[("shell", Kind::Bool), ("once", Kind::Bool)],
        "lock" => &[
            ("n", Kind::Int),
            ("name", Kind::Str),
            ("timeout", Kind::Str),
            ("child-exit-code", Kind::Bool),
            ("shell", Kind::Bool),
            ("pass-stdin", Kind::Bool),
            ("monitor-retry", Kind::Int),
            ("verbose", Kind::Bool),
        ],
        _ => return None,
    };
    let mut v: Vec<Flag> = own
        .iter()
        .map(|&(name, kind)| Flag { name, kind })
        .collect();
    v.extend_from_slice(HTTP_FLAGS);
    v.extend_from_slice(TENANCY_FLAGS);
    Some(v)
}

/// Runs the program with `args` (the first is the program name) and returns its exit code.
pub fn run(args: Vec<String>) -> u8 {
    let mut argv = args;
    if let Some(sub) = argv.get(1).cloned() {
        if let Some(flags) = flags_of(&sub) {
            match argv::normalise(&argv[2..], &flags) {
                Ok(rest) => {
                    argv.truncate(2);
                    argv.extend(rest);
                }
                Err(FlagError::Help) => {
                    argv.truncate(2);
                    argv.push("--help".to_owned());
                }
                Err(e) => {
                    eprintln!("{e}");
                    eprintln!(
                        "Usage: consul-kv {sub} [options] ... (see `consul-kv {sub} --help`)"
                    );
                    return 1;
                }
            }
        }
    }
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error starting the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        match cli.command {
            Command::Get(a) => kvcmd::get(a).await,
            Command::Put(a) => kvcmd::put(a).await,
            Command::Delete(a) => kvcmd::delete(a).await,
            Command::Export(a) => kvcmd::export(a).await,
            Command::Import(a) => kvcmd::import(a).await,
            Command::Sync(a) => sync::run(a).await,
            Command::Watch(a) => watch::run(a).await,
            Command::Lock(a) => lock::run(a).await,
        }
    })
}

/// The binary's `main`: runs with the process arguments and exits with the command's code.
pub fn main_entry() -> ExitCode {
    let mut args = Vec::new();
    for a in std::env::args_os() {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(raw) => {
                eprintln!(
                    "Error! Argument is not valid UTF-8: {}",
                    raw.to_string_lossy()
                );
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::from(run(args))
}
