//! The golden test: `consul kv ARGS` and `consul-kv ARGS` from the same starting store.
//!
//! With `CONSUL_KV_TEST_TARGET=consul` (the real-Consul step of `cargo xtask ci`) one dev
//! agent is started from the binary `cargo xtask consul` built (or `CONSUL_KV_CONSUL_BIN`); for every case the store is reset to [`FIXTURE`], the real CLI runs, the store is
//! reset again and `consul-kv` runs; stdout, stderr, the exit code and the store afterwards
//! must be equal once index numbers and session IDs are normalised. Each case's normalised
//! outcome of the real CLI is recorded in `golden.json` when `CONSUL_KV_GOLDEN_RECORD=1`.
//!
//! Otherwise (the default), `consul-kv` runs against the devserver and is compared with the
//! recorded outcomes of the real CLI (cases marked `real_only` depend on Consul's own error
//! texts for sessions and are skipped there, with a note).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use consul_kv::{Bytes, Client};
use consul_kv_tests::consul::{binary, free_port, ConsulAgent};

use crate::ours;

/// The starting store of every case: key, flags, value.
const FIXTURE: &[(&str, u64, &[u8])] = &[
    ("app/config", 0, b"v1"),
    ("app/db/host", 42, b"db.local"),
    ("app/db/port", 0, b"5432"),
    ("app/empty", 0, b""),
    ("app/folder/", 0, b""),
    ("app/html", 0, b"<a href=\"x\">&amp;</a>"),
    ("app/multi", 0, b"line one\nline\ttwo\n"),
    ("app/bin", 3, b"\x00\xff\x01binary\xc3"),
    ("app/\u{fc}n\u{ef}code key", 0, "\u{fc}ber".as_bytes()),
    ("apple", 0, b"not under app/"),
    ("other/x", 7, b"y"),
];

/// The payload of `@file` cases.
const PAYLOAD: &[u8] = b"from a file\nsecond line\n";

/// An export file for the import cases.
const EXPORT: &str = r#"[
	{
		"key": "imp/a",
		"flags": 0,
		"value": "YWxwaGE="
	},
	{
		"key": "imp/b/c",
		"flags": 12,
		"value": ""
	},
	{
		"key": "imp/dir/",
		"flags": 0,
		"value": ""
	}
]"#;

/// A self-signed certificate and its key (P-256, valid for a century), for the TLS flags:
/// Go's client loads and checks these files even for a plain `http://` agent.
const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBiTCCAS+gAwIBAgIUVl+S4aQUmDxCGuo6u7JwqG4bS5gwCgYIKoZIzj0EAwIw\nGTEXMBUGA1UEAwwOY29uc3VsLWt2LXRlc3QwIBcNMjYxMTMwMTAwNDEyWhgPMjEy\nNjExMDYxMDA0MTJaMBkxFzAVBgNVBAMMDmNvbnN1bC1rdi10ZXN0MFkwEwYHKoZI\nzj0CAQYIKoZIzj0DAQcDQgAEyRLX6+A5D+O8qqVW/G+Jb1OAF8mMQdfua+0TsqAu\nEH/NDO7nM6Aa1gHeQR+YgEfvTotZlLidh7J0OfC6w3P/dKNTMFEwHQYDVR0OBBYE\nFLtk1Np7zs4prjaBHSpmdlOpHo0xMB8GA1UdIwQYMBaAFLtk1Np7zs4prjaBHSpm\ndlOpHo0xMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgH27hMYD+\ncXnyu4sWGct9RSa5FN57ZZabg7nbonVdtv0CIQCXLMAFzov/C8r8O0Z+0DWlTlbj\nRP+d5ZJ4rl45KiktyQ==\n-----END CERTIFICATE-----\n";
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSA4/vcq97Q4zC83+\ndkN1W0WlVcB2zDLpIMhk1UwMAS+hRANCAATJEtfr4DkP47yqpVb8b4lvU4AXyYxB\n1+5r7ROyoC4Qf80M7uczoBrWAd5BH5iAR+9Oi1mUuJ2HsnQ58LrDc/90\n-----END PRIVATE KEY-----\n";

/// What a case needs before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pre {
    None,
    /// `lock/held` is acquired by the run's session `{SESSION}` (value "held").
    Acquired,
}

struct Case {
    name: &'static str,
    args: &'static [&'static str],
    stdin: Option<&'static [u8]>,
    pre: Pre,
    /// Environment variables for the run (placeholders allowed in values).
    env: &'static [(&'static str, &'static str)],
    /// Depends on Consul's own wording where the devserver's differs.
    real_only: bool,
}

const fn c(name: &'static str, args: &'static [&'static str]) -> Case {
    Case {
        name,
        args,
        stdin: None,
        pre: Pre::None,
        env: &[],
        real_only: false,
    }
}

const fn with_stdin(mut case: Case, stdin: &'static [u8]) -> Case {
    case.stdin = Some(stdin);
    case
}

const fn acquired(mut case: Case) -> Case {
    case.pre = Pre::Acquired;
    case
}

const fn with_env(mut case: Case, env: &'static [(&'static str, &'static str)]) -> Case {
    case.env = env;
    case
}

const fn real_only(mut case: Case) -> Case {
    case.real_only = true;
    case
}

/// Placeholders: `{IDX:key}` the key's modify index, `{SESSION}` the run's session,
/// `{PAYLOAD}` / `{EXPORT}` files with [`PAYLOAD`] / [`EXPORT`], `{DEAD}` a closed port,
/// `{AGENT}` the agent's address, `{CERT}` / `{KEY}` / `{CADIR}` / `{NOTPEM}` / `{TOKENFILE}`
/// TLS and token files.
const CASES: &[Case] = &[
    // get
    c("get value", &["get", "app/config"]),
    c("get leading slash", &["get", "/app/config"]),
    c("get empty value", &["get", "app/empty"]),
    c("get binary value", &["get", "app/bin"]),
    c("get multi-line value", &["get", "app/multi"]),
    c("get unicode key", &["get", "app/\u{fc}n\u{ef}code key"]),
    c("get -base64", &["get", "-base64", "app/bin"]),
    c("get -detailed", &["get", "-detailed", "app/db/host"]),
    c(
        "get -detailed -base64",
        &["get", "-detailed", "-base64", "app/bin"],
    ),
    c(
        "get -detailed tab in value",
        &["get", "-detailed", "app/multi"],
    ),
    acquired(c(
        "get -detailed session",
        &["get", "-detailed", "lock/held"],
    )),
    c("get -recurse", &["get", "-recurse", "app"]),
    c("get -recurse folder", &["get", "-recurse", "app/"]),
    c(
        "get -recurse -base64",
        &["get", "-recurse", "-base64", "app/db"],
    ),
    c(
        "get -recurse -detailed",
        &["get", "-recurse", "-detailed", "app/db/"],
    ),
    c("get -recurse whole store", &["get", "-recurse"]),
    c("get -recurse nothing", &["get", "-recurse", "nothing/"]),
    c("get -keys root", &["get", "-keys"]),
    c("get -keys prefix", &["get", "-keys", "app/"]),
    c(
        "get -keys no separator",
        &["get", "-keys", "-separator=", "app/"],
    ),
    c(
        "get -keys separator d",
        &["get", "-keys", "-separator", "d", "app/"],
    ),
    c("get -keys nothing", &["get", "-keys", "nothing/"]),
    c(
        "get --double-dash flags",
        &["get", "--recurse=true", "--base64", "app/db"],
    ),
    c(
        "get -recurse=false",
        &["get", "-recurse=false", "app/config"],
    ),
    c("get -stale", &["get", "-stale", "app/config"]),
    c("get -token", &["get", "-token=anything", "app/config"]),
    c("get missing key", &["get", "missing/key"]),
    c("get no key", &["get"]),
    c("get too many arguments", &["get", "a", "b"]),
    c("get flag after key", &["get", "app/config", "-recurse"]),
    c("get -- ends flags", &["get", "--", "-recurse"]),
    c(
        "get unknown datacenter",
        &["get", "-datacenter=nope", "app/config"],
    ),
    c(
        "get agent unreachable",
        &["get", "-http-addr={DEAD}", "app/config"],
    ),
    // the HTTP flags and CONSUL_HTTP_* variables
    c(
        "-token-file",
        &["get", "-token-file={TOKENFILE}", "app/config"],
    ),
    c(
        "-token-file missing",
        &["get", "-token-file=/nonexistent/token", "app/config"],
    ),
    c("-ca-file", &["get", "-ca-file={CERT}", "app/config"]),
    c(
        "-ca-file not PEM",
        &["get", "-ca-file={NOTPEM}", "app/config"],
    ),
    c(
        "-ca-file missing",
        &["get", "-ca-file=/nonexistent/ca.pem", "app/config"],
    ),
    c("-ca-path", &["get", "-ca-path={CADIR}", "app/config"]),
    c(
        "-ca-path missing",
        &["get", "-ca-path=/nonexistent/cadir", "app/config"],
    ),
    c(
        "-client-cert -client-key",
        &[
            "get",
            "-client-cert={CERT}",
            "-client-key={KEY}",
            "app/config",
        ],
    ),
    c(
        "-client-cert without key",
        &["get", "-client-cert={CERT}", "app/config"],
    ),
    c(
        "-client-key is a certificate",
        &[
            "get",
            "-client-cert={CERT}",
            "-client-key={CERT}",
            "app/config",
        ],
    ),
    c(
        "-client-cert not PEM",
        &[
            "get",
            "-client-cert={NOTPEM}",
            "-client-key={KEY}",
            "app/config",
        ],
    ),
    c(
        "-tls-server-name",
        &["get", "-tls-server-name=consul.example", "app/config"],
    ),
    c(
        "-http-addr wins over CONSUL_HTTP_ADDR",
        &["get", "-http-addr={AGENT}", "app/config"],
    ),
    real_only(c("-namespace", &["get", "-namespace=team", "app/config"])),
    real_only(c(
        "-partition",
        &["put", "-partition=team", "app/config", "x"],
    )),
    with_env(
        c("CONSUL_HTTP_TOKEN", &["get", "app/config"]),
        &[("CONSUL_HTTP_TOKEN", "anything")],
    ),
    with_env(
        c("CONSUL_HTTP_TOKEN_FILE missing", &["get", "app/config"]),
        &[("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/token")],
    ),
    with_env(
        c("CONSUL_CACERT not PEM", &["export", "app/"]),
        &[("CONSUL_CACERT", "{NOTPEM}")],
    ),
    with_env(
        c("CONSUL_CAPATH", &["get", "app/config"]),
        &[("CONSUL_CAPATH", "{CADIR}")],
    ),
    with_env(
        c("CONSUL_CLIENT_CERT without key", &["delete", "app/config"]),
        &[("CONSUL_CLIENT_CERT", "{CERT}")],
    ),
    with_env(
        c("CONSUL_CLIENT_CERT and KEY", &["get", "app/config"]),
        &[
            ("CONSUL_CLIENT_CERT", "{CERT}"),
            ("CONSUL_CLIENT_KEY", "{KEY}"),
        ],
    ),
    with_env(
        c("CONSUL_TLS_SERVER_NAME", &["get", "app/config"]),
        &[("CONSUL_TLS_SERVER_NAME", "x")],
    ),
    real_only(with_env(
        c("CONSUL_NAMESPACE", &["get", "app/config"]),
        &[("CONSUL_NAMESPACE", "team")],
    )),
    with_env(
        c("CONSUL_HTTP_ADDR unreachable", &["get", "app/config"]),
        &[("CONSUL_HTTP_ADDR", "{DEAD}")],
    ),
    // put
    c("put value", &["put", "new/key", "hello"]),
    c("put no data", &["put", "new/key"]),
    c("put empty data", &["put", "new/key", ""]),
    c(
        "put overwrite -flags",
        &["put", "-flags=9", "app/config", "v2"],
    ),
    c(
        "put -base64",
        &["put", "-base64", "new/b", "aGVsbG8gd29ybGQ="],
    ),
    c(
        "put -base64 invalid",
        &["put", "-base64", "new/b", "aGVsbG8*d29ybGQ="],
    ),
    c("put @file", &["put", "new/file", "@{PAYLOAD}"]),
    c(
        "put @missing file",
        &["put", "new/file", "@/nonexistent/file"],
    ),
    with_stdin(
        c("put - stdin", &["put", "new/stdin", "-"]),
        b"from stdin\n",
    ),
    c("put dash data", &["put", "new/dash", "-x"]),
    c(
        "put -cas ok",
        &[
            "put",
            "-cas",
            "-modify-index={IDX:app/config}",
            "app/config",
            "v3",
        ],
    ),
    c(
        "put -cas stale index",
        &["put", "-cas", "-modify-index=1", "app/config", "v3"],
    ),
    c(
        "put -cas without index",
        &["put", "-cas", "app/config", "v3"],
    ),
    c(
        "put -cas without index creates",
        &["put", "-cas", "brand/new", "v3"],
    ),
    c(
        "put -cas index 0",
        &["put", "-cas", "-modify-index=0", "brand/new", "x"],
    ),
    c(
        "put -acquire",
        &["put", "-acquire", "-session={SESSION}", "lock/k", "mine"],
    ),
    c("put -acquire no session", &["put", "-acquire", "lock/k"]),
    c("put -release no session", &["put", "-release", "lock/k"]),
    acquired(c(
        "put -release",
        &["put", "-release", "-session={SESSION}", "lock/held", "free"],
    )),
    c(
        "put -release not held",
        &["put", "-release", "-session={SESSION}", "app/config"],
    ),
    acquired(c(
        "put -acquire held by other",
        &["put", "-acquire", "-session={OTHER}", "lock/held"],
    )),
    real_only(c(
        "put -acquire unknown session",
        &[
            "put",
            "-acquire",
            "-session=00000000-0000-0000-0000-000000000000",
            "lock/k",
        ],
    )),
    c("put no key", &["put"]),
    c("put too many arguments", &["put", "a", "b", "c"]),
    c(
        "put unknown datacenter",
        &["put", "-datacenter=nope", "k", "v"],
    ),
    // delete
    c("delete key", &["delete", "app/config"]),
    c("delete missing key", &["delete", "missing/key"]),
    c("delete leading slash", &["delete", "/app/db/host"]),
    c("delete -recurse", &["delete", "-recurse", "app/db"]),
    c(
        "delete -recurse byte prefix",
        &["delete", "-recurse", "app"],
    ),
    c("delete -recurse everything", &["delete", "-recurse"]),
    c("delete no key", &["delete"]),
    c("delete too many arguments", &["delete", "a", "b"]),
    c(
        "delete -cas ok",
        &[
            "delete",
            "-cas",
            "-modify-index={IDX:app/config}",
            "app/config",
        ],
    ),
    c(
        "delete -cas stale index",
        &["delete", "-cas", "-modify-index=1", "app/config"],
    ),
    c(
        "delete -cas without index",
        &["delete", "-cas", "app/config"],
    ),
    c(
        "delete -modify-index without -cas",
        &["delete", "-modify-index=5", "app/config"],
    ),
    c(
        "delete -cas -recurse",
        &["delete", "-recurse", "-cas", "-modify-index=5", "app"],
    ),
    c(
        "delete unknown datacenter",
        &["delete", "-datacenter=nope", "app/config"],
    ),
    // export
    c("export prefix", &["export", "app/"]),
    c("export whole store", &["export"]),
    c("export leading slash", &["export", "/other"]),
    c("export nothing", &["export", "nothing/"]),
    c("export too many arguments", &["export", "a", "b"]),
    c("export -stale", &["export", "-stale", "other/"]),
    c("export unknown datacenter", &["export", "-datacenter=nope"]),
    // import
    c("import @file", &["import", "@{EXPORT}"]),
    with_stdin(c("import - stdin", &["import", "-"]), EXPORT.as_bytes()),
    c(
        "import literal",
        &["import", r#"[{"key":"lit/k","flags":1,"value":"dg=="}]"#],
    ),
    c("import -prefix", &["import", "-prefix=copy/", "@{EXPORT}"]),
    c("import no data", &["import"]),
    c("import empty data", &["import", ""]),
    c("import too many arguments", &["import", "a", "b"]),
    c("import not json", &["import", "xyz"]),
    c("import truncated json", &["import", r#"[{"key":"a""#]),
    c("import object", &["import", "{}"]),
    c("import wrong field type", &["import", r#"[{"key":5}]"#]),
    c(
        "import bad base64",
        &[
            "import",
            r#"[{"key":"ok","value":"dg=="},{"key":"bad","value":"!!"}]"#,
        ],
    ),
    c("import @missing file", &["import", "@/nonexistent/file"]),
    c("import null", &["import", "null"]),
];

/// One run's outcome, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    stdout: String,
    stderr: String,
    code: i32,
    store: String,
}

impl Outcome {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "stdout": self.stdout,
            "stderr": self.stderr,
            "code": self.code,
            "store": self.store,
        })
    }

    fn from_json(v: &serde_json::Value) -> Option<Self> {
        Some(Self {
            stdout: v.get("stdout")?.as_str()?.to_owned(),
            stderr: v.get("stderr")?.as_str()?.to_owned(),
            code: i32::try_from(v.get("code")?.as_i64()?).ok()?,
            store: v.get("store")?.as_str()?.to_owned(),
        })
    }
}

/// Bytes as escaped ASCII (lossless, readable).
fn esc(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// Replaces the numbers after `CreateIndex` / `ModifyIndex`, every session ID, the closed
/// port's address and the temporary directory.
fn normalise(text: &str, sessions: &[String], dead: &str, dir: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split("\\n").enumerate() {
        if i > 0 {
            out.push_str("\\n");
        }
        let mut l = line.to_owned();
        for label in ["CreateIndex", "ModifyIndex"] {
            if let Some(rest) = l.strip_prefix(label) {
                let spaces = rest.len() - rest.trim_start().len();
                if rest.trim_start().chars().all(|c| c.is_ascii_digit()) && spaces > 0 {
                    l = format!("{label}{}N", &rest[..spaces]);
                }
            }
        }
        out.push_str(&l);
    }
    for s in sessions {
        out = out.replace(s.as_str(), "<SESSION>");
    }
    out.replace(dead, "<CLOSED-PORT>").replace(dir, "<DIR>")
}

struct Env {
    client: Client,
    rt: tokio::runtime::Runtime,
    addr: String,
    dir: PathBuf,
}

impl Env {
    /// Resets the store to [`FIXTURE`].
    fn reset(&self) {
        self.rt.block_on(async {
            let kv = self.client.kv();
            kv.delete_tree("").await.unwrap();
            for (k, f, v) in FIXTURE {
                assert!(kv.set(*k, Bytes::from_static(v)).flags(*f).await.unwrap());
            }
        });
    }

    fn session(&self) -> String {
        self.rt.block_on(async {
            let s = self.client.session().create().await.unwrap();
            s.id().as_str().to_owned()
        })
    }

    fn acquire(&self, key: &str, session: &str) {
        self.rt.block_on(async {
            let id = consul_kv::SessionId::new(session.to_owned()).unwrap();
            assert!(self
                .client
                .kv()
                .acquire(key, &id)
                .value("held")
                .await
                .unwrap());
        });
    }

    fn modify_index(&self, key: &str) -> u64 {
        self.rt.block_on(async {
            self.client
                .kv()
                .get(key)
                .await
                .unwrap()
                .map(|k| k.modify_index)
                .unwrap_or(0)
        })
    }

    /// The store: key, flags, value, whether locked, lock index.
    fn dump(&self) -> String {
        self.rt.block_on(async {
            let items = self.client.kv().items("").await.unwrap();
            let mut s = String::new();
            for p in items.iter() {
                s.push_str(&format!(
                    "{} flags={} value={} locked={} lock_index={}\n",
                    esc(p.key.as_bytes()),
                    p.flags,
                    base64::engine::general_purpose::STANDARD.encode(p.value_bytes()),
                    p.session.is_some(),
                    p.lock_index
                ));
            }
            s
        })
    }

    /// Runs one case with `program` from a fresh store.
    /// `lead` goes before the case's arguments: `["kv"]` for the `consul` binary.
    fn run_case(&self, program: &Path, lead: &[&str], case: &Case, dead: &str) -> Outcome {
        self.reset();
        let session = self.session();
        let other = self.session();
        if case.pre == Pre::Acquired {
            self.acquire("lock/held", &session);
        }
        let file = |name: &str| self.dir.join(name).display().to_string();
        let subst = |a: &str| {
            let mut a = a.to_owned();
            if let Some(start) = a.find("{IDX:") {
                let end = a[start..].find('}').unwrap() + start;
                let idx = self.modify_index(&a[start + 5..end]);
                a.replace_range(start..=end, &idx.to_string());
            }
            a.replace("{SESSION}", &session)
                .replace("{OTHER}", &other)
                .replace("{PAYLOAD}", &file("payload.bin"))
                .replace("{EXPORT}", &file("export.json"))
                .replace("{CERT}", &file("cert.pem"))
                .replace("{KEY}", &file("key.pem"))
                .replace("{NOTPEM}", &file("payload.bin"))
                .replace("{CADIR}", &file("cadir"))
                .replace("{TOKENFILE}", &file("token"))
                .replace("{AGENT}", &self.addr)
                .replace("{DEAD}", dead)
        };
        let args: Vec<String> = lead
            .iter()
            .chain(case.args.iter())
            .map(|a| subst(a))
            .collect();
        let env: Vec<(String, String)> = case
            .env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), subst(v)))
            .collect();
        let out = crate::run(
            program,
            &args,
            &self.addr,
            &env,
            case.stdin,
            Duration::from_secs(120),
        );
        let sessions = [session, other];
        let dir = self.dir.display().to_string();
        Outcome {
            stdout: normalise(&esc(&out.stdout), &sessions, dead, &dir),
            stderr: normalise(&esc(&out.stderr), &sessions, dead, &dir),
            code: out.status.code().unwrap_or(-1),
            store: normalise(&self.dump(), &sessions, dead, &dir),
        }
    }
}

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cli/golden.json")
}

fn diff(case: &str, want: &Outcome, got: &Outcome) -> Option<String> {
    if want == got {
        return None;
    }
    let mut s = format!("case {case:?}:\n");
    for (what, w, g) in [
        ("stdout", &want.stdout, &got.stdout),
        ("stderr", &want.stderr, &got.stderr),
        ("store", &want.store, &got.store),
    ] {
        if w != g {
            s.push_str(&format!(
                "  {what}: consul    {w:?}\n  {what}: consul-kv {g:?}\n"
            ));
        }
    }
    if want.code != got.code {
        s.push_str(&format!(
            "  exit code: consul {} consul-kv {}\n",
            want.code, got.code
        ));
    }
    Some(s)
}

fn setup(addr: String) -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = Client::builder().address(addr.clone()).build().unwrap();
    let dir = std::env::temp_dir().join(format!("consul-kv-cli-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("payload.bin"), PAYLOAD).unwrap();
    std::fs::write(dir.join("export.json"), EXPORT).unwrap();
    std::fs::write(dir.join("cert.pem"), CERT_PEM).unwrap();
    std::fs::write(dir.join("key.pem"), KEY_PEM).unwrap();
    std::fs::create_dir_all(dir.join("cadir")).unwrap();
    std::fs::write(dir.join("cadir/ca.pem"), CERT_PEM).unwrap();
    std::fs::write(dir.join("token"), "a-token\n").unwrap();
    Env {
        client,
        rt,
        addr,
        dir,
    }
}

#[test]
fn golden_cases_match_the_consul_cli() {
    assert!(CASES.len() >= 40, "at least 40 golden cases");
    let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len(), "case names are unique");
    let dead = format!("127.0.0.1:{}", free_port());

    if std::env::var("CONSUL_KV_TEST_TARGET").is_ok_and(|t| t == "consul") {
        let bin = binary()
            .expect("CONSUL_KV_TEST_TARGET=consul but no Consul binary: run `cargo xtask consul`");
        let mut agent = ConsulAgent::dev(&bin).expect("start consul agent -dev");
        agent.kill_with_this_process();
        agent.wait_ready(Duration::from_secs(60)).unwrap();
        let env = setup(agent.http_addr().to_string());
        let mut failures = Vec::new();
        let mut recorded = BTreeMap::new();
        for case in CASES {
            let want = env.run_case(&bin, &["kv"], case, &dead);
            let got = env.run_case(&ours(), &[], case, &dead);
            if let Some(d) = diff(case.name, &want, &got) {
                failures.push(d);
            }
            recorded.insert(case.name.to_owned(), want.to_json());
        }
        if std::env::var("CONSUL_KV_GOLDEN_RECORD").is_ok_and(|v| v == "1") {
            let text = serde_json::to_string_pretty(&recorded).unwrap();
            std::fs::write(golden_path(), text + "\n").unwrap();
            eprintln!(
                "recorded {} cases into {}",
                CASES.len(),
                golden_path().display()
            );
        }
        let _ = std::fs::remove_dir_all(&env.dir);
        assert!(
            failures.is_empty(),
            "{} of {} golden cases differ from consul kv {}:\n{}",
            failures.len(),
            CASES.len(),
            consul_kv_tests::consul::CONSUL_VERSION,
            failures.join("\n")
        );
        eprintln!(
            "golden: {} cases identical to consul kv {} (real agent)",
            CASES.len(),
            consul_kv_tests::consul::CONSUL_VERSION
        );
        return;
    }

    // The devserver: compare with the recorded outcomes of the real CLI.
    let text = std::fs::read_to_string(golden_path()).expect("tests/cli/golden.json");
    let recorded: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(consul_kv_tests::server::start_with(
        consul_kv_devserver::DevServer::builder(),
    ));
    let env = setup(server.base_url());
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in CASES {
        if case.real_only {
            eprintln!(
                "note: golden case {:?} skipped: needs a real Consul agent",
                case.name
            );
            continue;
        }
        let want = Outcome::from_json(&recorded[case.name])
            .unwrap_or_else(|| panic!("no recorded outcome for {:?}", case.name));
        let got = env.run_case(&ours(), &[], case, &dead);
        if let Some(d) = diff(case.name, &want, &got) {
            failures.push(d);
        }
        compared += 1;
    }
    let _ = std::fs::remove_dir_all(&env.dir);
    rt.block_on(server.shutdown());
    assert!(
        failures.is_empty(),
        "{} of {compared} golden cases differ from the recorded consul kv outputs:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "golden: {compared} cases identical to the recorded consul kv outputs (devserver; \
         CONSUL_KV_TEST_TARGET=consul runs them side by side with the real CLI)"
    );
}
