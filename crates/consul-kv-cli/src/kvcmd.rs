//! The drop-in subcommands: `get`, `put`, `delete`, `export`, `import`, with the arguments,
//! checks, output and error texts of `consul kv` in Consul 1.14.11, in the same order.

use base64::Engine as _;
use bytes::Bytes;
use clap::{ArgAction, Args};
use consul_kv::{Cas, Index, KvPair};

use crate::common::{go_error, read_file, read_stdin, HttpArgs, Req, Ui};
use crate::gocompat::{go_base64_decode, tabwrite, Json};

/// Arguments of `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Base64-encode the value.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub base64: bool,
    /// Print the key's metadata too (indexes, flags, session).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub detailed: bool,
    /// List key names under the prefix (folded at -separator).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub keys: bool,
    /// List every key and value under the prefix.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub recurse: bool,
    /// The separator -keys folds at ("" lists every key).
    #[arg(long, default_value = "/", value_name = "SEP")]
    pub separator: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub http: HttpArgs,
    /// KEY_OR_PREFIX.
    #[arg(value_name = "KEY_OR_PREFIX")]
    pub args: Vec<String>,
}

/// Arguments of `put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The data is base64-encoded.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub base64: bool,
    /// Check-and-set on -modify-index.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub cas: bool,
    /// The modify index a -cas write expects.
    #[arg(long = "modify-index", default_value_t = 0, value_name = "INDEX")]
    pub modify_index: u64,
    /// Opaque flags stored with the value.
    #[arg(long, default_value_t = 0, value_name = "FLAGS")]
    pub flags: u64,
    /// Acquire the lock on the key for -session.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub acquire: bool,
    /// Release the lock on the key held by -session.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub release: bool,
    /// The session for -acquire and -release.
    #[arg(long, default_value = "", value_name = "ID")]
    pub session: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub http: HttpArgs,
    /// `KEY [DATA|@FILE|-]`.
    #[arg(value_name = "KEY [DATA]")]
    pub args: Vec<String>,
}

/// Arguments of `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Delete every key under the prefix.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub recurse: bool,
    /// Check-and-set on -modify-index.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value_t = false, value_name = "BOOL")]
    pub cas: bool,
    /// The modify index a -cas delete expects.
    #[arg(long = "modify-index", default_value_t = 0, value_name = "INDEX")]
    pub modify_index: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub http: HttpArgs,
    /// KEY_OR_PREFIX.
    #[arg(value_name = "KEY_OR_PREFIX")]
    pub args: Vec<String>,
}

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub http: HttpArgs,
    /// PREFIX (default: the whole store).
    #[arg(value_name = "PREFIX")]
    pub args: Vec<String>,
}

/// Arguments of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A prefix prepended to every imported key.
    #[arg(long, default_value = "", value_name = "PREFIX")]
    pub prefix: String,
    /// Write in transactions (each batch all-or-nothing) instead of one PUT per key.
    #[arg(long = "atomic-batches", action = ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value_t = false,
          value_name = "BOOL")]
    pub atomic_batches: bool,
    /// The most operations per transaction with --atomic-batches (default: Consul's limit).
    #[arg(long = "batch-ops", value_name = "N")]
    pub batch_ops: Option<u64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub http: HttpArgs,
    /// DATA, @FILE or - for stdin.
    #[arg(value_name = "DATA")]
    pub args: Vec<String>,
}

fn strip_slash(key: &str) -> &str {
    key.strip_prefix('/').unwrap_or(key)
}

/// The `-detailed` rendering of one pair (Go's `prettyKVPair`).
pub fn pretty_pair(pair: &KvPair, b64: bool) -> Vec<u8> {
    let mut raw = Vec::new();
    raw.extend_from_slice(format!("CreateIndex\t{}\n", pair.create_index).as_bytes());
    raw.extend_from_slice(format!("Flags\t{}\n", pair.flags).as_bytes());
    raw.extend_from_slice(b"Key\t");
    raw.extend_from_slice(pair.key.as_bytes());
    raw.push(b'\n');
    raw.extend_from_slice(format!("LockIndex\t{}\n", pair.lock_index).as_bytes());
    raw.extend_from_slice(format!("ModifyIndex\t{}\n", pair.modify_index).as_bytes());
    match &pair.session {
        Some(s) => raw.extend_from_slice(format!("Session\t{}\n", s.as_str()).as_bytes()),
        None => raw.extend_from_slice(b"Session\t-\n"),
    }
    raw.extend_from_slice(b"Value\t");
    if b64 {
        raw.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(pair.value_bytes())
                .as_bytes(),
        );
    } else {
        raw.extend_from_slice(pair.value_bytes());
    }
    tabwrite(&raw, 6)
}

fn connect_error(ui: &mut Ui, e: &str) -> u8 {
    ui.error(format!("Error connecting to Consul agent: {e}"));
    1
}

/// `get`.
pub async fn get(a: GetArgs) -> u8 {
    let mut ui = Ui::default();
    let key = match a.args.len() {
        0 => String::new(),
        1 => strip_slash(&a.args[0]).to_owned(),
        n => {
            ui.error(format!("Too many arguments (expected 1, got {n})"));
            return 1;
        }
    };
    if key.is_empty() && !(a.recurse || a.keys) {
        ui.error("Error! Missing KEY argument");
        return 1;
    }
    let client = match a.http.connect() {
        Ok(c) => c,
        Err(e) => return connect_error(&mut ui, &e),
    };
    let kv = client.kv();
    let consistency = a.http.consistency();
    let req = Req {
        method: "Get",
        key: &key,
        read: true,
    };
    if a.keys {
        let mut q = kv.keys(key.clone()).consistency(consistency);
        let mut extra = vec![("keys", String::new())];
        if !a.separator.is_empty() {
            q = q.separator(a.separator.clone());
            extra.push(("separator", a.separator.clone()));
        }
        match q.await {
            Ok(keys) => {
                for k in keys.iter() {
                    ui.info(k);
                }
                0
            }
            Err(e) => {
                let msg = go_error(&a.http, req, &extra, &e);
                ui.error(format!("Error querying Consul agent: {msg}"));
                1
            }
        }
    } else if a.recurse {
        match kv.items(key.clone()).consistency(consistency).await {
            Ok(items) => {
                let n = items.len();
                for (i, pair) in items.iter().enumerate() {
                    if a.detailed {
                        ui.info(pretty_pair(pair, a.base64));
                        if i + 1 < n {
                            ui.info("");
                        }
                    } else {
                        let mut line =
                            Vec::with_capacity(pair.key.len() + 1 + pair.value_bytes().len());
                        line.extend_from_slice(pair.key.as_bytes());
                        line.push(b':');
                        if a.base64 {
                            line.extend_from_slice(
                                base64::engine::general_purpose::STANDARD
                                    .encode(pair.value_bytes())
                                    .as_bytes(),
                            );
                        } else {
                            line.extend_from_slice(pair.value_bytes());
                        }
                        ui.info(line);
                    }
                }
                0
            }
            Err(e) => {
                let msg = go_error(&a.http, req, &[("recurse", String::new())], &e);
                ui.error(format!("Error querying Consul agent: {msg}"));
                1
            }
        }
    } else {
        match kv.get(key.clone()).consistency(consistency).await {
            Ok(Some(k)) => {
                if a.detailed {
                    ui.info(pretty_pair(k.pair(), a.base64));
                } else if a.base64 {
                    ui.info(base64::engine::general_purpose::STANDARD.encode(k.bytes()));
                } else {
                    ui.info(k.bytes());
                }
                0
            }
            Ok(None) => {
                ui.error(format!("Error! No key exists at: {key}"));
                1
            }
            Err(e) => {
                let msg = go_error(&a.http, req, &[], &e);
                ui.error(format!("Error querying Consul agent: {msg}"));
                1
            }
        }
    }
}

/// Reads DATA the way `consul kv put` and `import` do: `@file`, `-` for stdin, else literal.
fn data_from_arg(data: &str) -> Result<Vec<u8>, String> {
    if let Some(path) = data.strip_prefix('@') {
        return read_file(path).map_err(|e| format!("Failed to read file: {e}"));
    }
    if data == "-" {
        return read_stdin().map_err(|e| format!("Failed to read stdin: {e}"));
    }
    Ok(data.as_bytes().to_vec())
}

/// `put`.
pub async fn put(a: PutArgs) -> u8 {
    let mut ui = Ui::default();
    let (key, data) = match a.args.len() {
        0 => {
            ui.error("Error! Missing KEY argument");
            return 1;
        }
        1 => (a.args[0].clone(), Vec::new()),
        2 => match data_from_arg(&a.args[1]) {
            Ok(d) => (a.args[0].clone(), d),
            Err(e) => {
                ui.error(format!("Error! {e}"));
                return 1;
            }
        },
        n => {
            ui.error(format!(
                "Error! Too many arguments (expected 1 or 2, got {n})"
            ));
            return 1;
        }
    };
    let mut value = data;
    if a.base64 {
        let (decoded, err) = go_base64_decode(&value);
        if let Some(at) = err {
            // Like consul: the error is printed and the write goes on with what decoded.
            ui.error(format!(
                "Error! Cannot base 64 decode data: illegal base64 data at input byte {at}"
            ));
        }
        value = decoded;
    }
    if (a.release || a.acquire) && a.session.is_empty() {
        ui.error("Error! Missing -session (required with -acquire and -release)");
        return 1;
    }
    let client = match a.http.connect() {
        Ok(c) => c,
        Err(e) => return connect_error(&mut ui, &e),
    };
    let kv = client.kv();
    let value = Bytes::from(value);
    let mut extra: Vec<(&str, String)> = Vec::new();
    if a.flags != 0 {
        extra.push(("flags", a.flags.to_string()));
    }
    let req = Req {
        method: "Put",
        key: &key,
        read: false,
    };
    if a.cas {
        extra.push(("cas", a.modify_index.to_string()));
        let r = kv
            .set(key.clone(), value)
            .flags(a.flags)
            .cas(match Index::new_nonzero(a.modify_index) {
                Some(i) => Cas::ModifyIndex(i),
                None => Cas::Absent,
            })
            .await;
        match r {
            Ok(true) => {
                ui.info(format!("Success! Data written to: {key}"));
                0
            }
            Ok(false) if a.modify_index == 0 => {
                ui.error(format!(
                    "Error! Did not write to {key}: CAS performed with index=0 and key already exists."
                ));
                1
            }
            Ok(false) => {
                ui.error(format!("Error! Did not write to {key}: CAS failed"));
                1
            }
            Err(e) => {
                let msg = go_error(&a.http, req, &extra, &e);
                ui.error(format!("Error! Did not write to {key}: {msg}"));
                1
            }
        }
    } else if a.acquire {
        let session = match consul_kv::SessionId::new(a.session.clone()) {
            Ok(s) => s,
            Err(e) => {
                ui.error(format!("Error! Failed writing data: {e}"));
                return 1;
            }
        };
        extra.push(("acquire", a.session.clone()));
        match kv
            .acquire(key.clone(), &session)
            .value(value)
            .flags(a.flags)
            .await
        {
            Ok(true) => {
                ui.info(format!("Success! Lock acquired on: {key}"));
                0
            }
            Ok(false) => {
                ui.error("Error! Did not acquire lock");
                1
            }
            Err(e) => {
                let msg = go_error(&a.http, req, &extra, &e);
                ui.error(format!("Error! Failed writing data: {msg}"));
                1
            }
        }
    } else if a.release {
        let session = match consul_kv::SessionId::new(a.session.clone()) {
            Ok(s) => s,
            Err(_) => {
                ui.error(format!("Error! Failed writing data: {key}"));
                return 1;
            }
        };
        match kv
            .release(key.clone(), &session)
            .value(value)
            .flags(a.flags)
            .await
        {
            Ok(true) => {
                ui.info(format!("Success! Lock released on: {key}"));
                0
            }
            Ok(false) => {
                ui.error("Error! Did not release lock");
                1
            }
            Err(_) => {
                // consul prints the key here, not the error.
                ui.error(format!("Error! Failed writing data: {key}"));
                1
            }
        }
    } else {
        match kv.set(key.clone(), value).flags(a.flags).await {
            Ok(_) => {
                ui.info(format!("Success! Data written to: {key}"));
                0
            }
            Err(e) => {
                let msg = go_error(&a.http, req, &extra, &e);
                ui.error(format!("Error! Failed writing data: {msg}"));
                1
            }
        }
    }
}

/// `delete`.
pub async fn delete(a: DeleteArgs) -> u8 {
    let mut ui = Ui::default();
    let key = match a.args.len() {
        0 => String::new(),
        1 => strip_slash(&a.args[0]).to_owned(),
        n => {
            ui.error(format!("Too many arguments (expected 1, got {n})"));
            return 1;
        }
    };
    if key.is_empty() && !a.recurse {
        ui.error("Error! Missing KEY argument");
        return 1;
    }
    if a.cas && a.modify_index == 0 {
        ui.error(
            "Cannot delete a key that does not exist. Provide a -modify-index greater than than 0.",
        );
        return 1;
    }
    if a.modify_index != 0 && !a.cas {
        ui.error("Cannot specify -modify-index without -cas!");
        return 1;
    }
    if a.recurse && a.cas {
        ui.error("Cannot specify both -cas and -recurse!");
        return 1;
    }
    let client = match a.http.connect() {
        Ok(c) => c,
        Err(e) => return connect_error(&mut ui, &e),
    };
    let kv = client.kv();
    let req = Req {
        method: "Delete",
        key: &key,
        read: false,
    };
    if a.recurse {
        match kv.delete_tree(key.clone()).await {
            Ok(_) => {
                ui.info(format!("Success! Deleted keys with prefix: {key}"));
                0
            }
            Err(e) => {
                let msg = go_error(&a.http, req, &[("recurse", String::new())], &e);
                ui.error(format!("Error! Did not delete prefix {key}: {msg}"));
                1
            }
        }
    } else if a.cas {
        match kv.delete(key.clone()).cas(Index::new(a.modify_index)).await {
            Ok(true) => {
                ui.info(format!("Success! Deleted key: {key}"));
                0
            }
            Ok(false) => {
                ui.error(format!("Error! Did not delete key {key}: CAS failed"));
                1
            }
            Err(e) => {
                let msg = go_error(&a.http, req, &[("cas", a.modify_index.to_string())], &e);
                ui.error(format!("Error! Did not delete key {key}: {msg}"));
                1
            }
        }
    } else {
        match kv.delete(key.clone()).await {
            Ok(_) => {
                ui.info(format!("Success! Deleted key: {key}"));
                0
            }
            Err(e) => {
                let msg = go_error(&a.http, req, &[], &e);
                ui.error(format!("Error deleting key {key}: {msg}"));
                1
            }
        }
    }
}

/// One entry of an export file: Consul's `{"key", "flags", "value"}` with the value base64.
pub fn export_entry(pair: &KvPair) -> Json {
    Json::Object(vec![
        ("key", Json::Str(pair.key.as_bytes().to_vec())),
        ("flags", Json::Uint(pair.flags)),
        (
            "value",
            Json::Str(
                base64::engine::general_purpose::STANDARD
                    .encode(pair.value_bytes())
                    .into_bytes(),
            ),
        ),
    ])
}

/// `export`.
pub async fn export(a: ExportArgs) -> u8 {
    let mut ui = Ui::default();
    let key = match a.args.len() {
        0 => String::new(),
        1 => strip_slash(&a.args[0]).to_owned(),
        n => {
            ui.error(format!("Too many arguments (expected 1, got {n})"));
            return 1;
        }
    };
    let client = match a.http.connect() {
        Ok(c) => c,
        Err(e) => return connect_error(&mut ui, &e),
    };
    let req = Req {
        method: "Get",
        key: &key,
        read: true,
    };
    match client
        .kv()
        .items(key.clone())
        .consistency(a.http.consistency())
        .await
    {
        Ok(items) => {
            let json = Json::Array(items.iter().map(export_entry).collect());
            ui.info(json.indented("\t"));
            0
        }
        Err(e) => {
            let msg = go_error(&a.http, req, &[("recurse", String::new())], &e);
            ui.error(format!("Error querying Consul agent: {msg}"));
            1
        }
    }
}

/// Reads and decodes `import`'s DATA argument; errors are worded as consul words them.
pub fn import_data(args: &[String]) -> Result<Vec<u8>, String> {
    match args.len() {
        0 => return Err("Error! Missing DATA argument".to_owned()),
        1 => {}
        n => return Err(format!("Error! Too many arguments (expected 1, got {n})")),
    }
    let data = &args[0];
    if data.is_empty() {
        return Err("Error! Empty DATA argument".to_owned());
    }
    data_from_arg(data).map_err(|e| format!("Error! {e}"))
}

/// `import`.
pub async fn import(a: ImportArgs) -> u8 {
    let mut ui = Ui::default();
    let data = match import_data(&a.args) {
        Ok(d) => d,
        Err(e) => {
            ui.error(e);
            return 1;
        }
    };
    let client = match a.http.connect() {
        Ok(c) => c,
        Err(e) => return connect_error(&mut ui, &e),
    };
    let entries = match crate::gojson::parse_entries(&data) {
        Ok(e) => e,
        Err(e) => {
            ui.error(format!("Cannot unmarshal data: {e}"));
            return 1;
        }
    };
    if a.atomic_batches {
        return crate::batch::import_batched(&client, &a, entries, &mut ui).await;
    }
    let kv = client.kv();
    for entry in entries {
        let (value, err) = go_base64_decode(entry.value.as_bytes());
        if let Some(at) = err {
            ui.error(format!(
                "Error base 64 decoding value for key {}: illegal base64 data at input byte {at}",
                entry.key
            ));
            return 1;
        }
        let key = format!("{}{}", a.prefix, entry.key);
        let req = Req {
            method: "Put",
            key: &key,
            read: false,
        };
        let extra: Vec<(&str, String)> = if entry.flags != 0 {
            vec![("flags", entry.flags.to_string())]
        } else {
            Vec::new()
        };
        if let Err(e) = kv.set(key.clone(), value).flags(entry.flags).await {
            let msg = go_error(&a.http, req, &extra, &e);
            ui.error(format!("Error! Failed writing data for key {key}: {msg}"));
            return 1;
        }
        ui.info(format!("Imported: {key}"));
    }
    0
}
