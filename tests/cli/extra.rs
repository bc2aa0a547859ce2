//! What `consul-kv` adds to `consul kv`: `import --atomic-batches`, `sync`, `watch`, `lock`,
//! against the devserver (or the agent chosen by `CONSUL_KV_TEST_TARGET` /
//! `CONSUL_HTTP_ADDR`), every case under its own prefix.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use consul_kv::{Bytes, Client};
use consul_kv_devserver::{DevServer, DevServerBuilder};
use consul_kv_tests::proxy::{Fault, FaultProxy};
use consul_kv_tests::server::{self, TestServer};

use crate::{ours, run};

struct Ctx {
    rt: tokio::runtime::Runtime,
    server: Option<TestServer>,
    client: Client,
    addr: String,
    dir: PathBuf,
    prefix: String,
}

impl Ctx {
    fn new(case: &str) -> Self {
        Self::with_server(case, None).expect("a server")
    }

    /// With `builder`: a devserver so configured, or `None` (with a note) when the suite runs
    /// against an external server.
    fn with_server(case: &str, builder: Option<DevServerBuilder>) -> Option<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = match builder {
            None => rt.block_on(server::start()),
            Some(b) => rt.block_on(server::start_devserver(case, b))?,
        };
        let addr = server.base_url();
        let client = Client::builder().address(addr.clone()).build().unwrap();
        let id = format!(
            "{}-{}",
            std::process::id(),
            consul_kv_tests::consul::free_port()
        );
        let dir = std::env::temp_dir().join(format!("consul-kv-cli-{case}-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        Some(Self {
            rt,
            server: Some(server),
            client,
            addr,
            dir,
            prefix: format!("cli/{case}/{id}/"),
        })
    }

    fn cli(&self, args: &[&str], stdin: Option<&[u8]>) -> (String, String, i32) {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let out = run(
            &ours(),
            &args,
            &self.addr,
            &[],
            stdin,
            Duration::from_secs(120),
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    fn spawn(&self, args: &[&str]) -> Child {
        Command::new(ours())
            .args(args)
            .env("CONSUL_HTTP_ADDR", &self.addr)
            .env_remove("CONSUL_HTTP_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn set(&self, key: &str, value: &[u8]) {
        let v = Bytes::copy_from_slice(value);
        self.rt
            .block_on(async { self.client.kv().set(key, v).await.unwrap() });
    }

    /// Every key under the prefix: (key, flags, value).
    fn dump(&self) -> Vec<(String, u64, Vec<u8>)> {
        self.rt.block_on(async {
            let items = self.client.kv().items(self.prefix.clone()).await.unwrap();
            items
                .iter()
                .map(|p| (p.key.clone(), p.flags, p.value_bytes().to_vec()))
                .collect()
        })
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let prefix = self.prefix.clone();
        let client = self.client.clone();
        let server = self.server.take();
        self.rt.block_on(async move {
            let _ = client.kv().delete_tree(prefix).await;
            if let Some(s) = server {
                s.shutdown().await;
            }
        });
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn b64(v: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(v)
}

#[test]
fn import_atomic_batches_matches_import_and_writes_everything() {
    let ctx = Ctx::new("import-batches");
    let n = 300;
    let mut entries = Vec::new();
    for i in 0..n {
        let value: Vec<u8> = (0..(i % 50)).map(|j| (i * 7 + j) as u8).collect();
        entries.push(serde_json::json!({
            "key": format!("{}k/{i:04}", ctx.prefix),
            "flags": i % 3,
            "value": b64(&value),
        }));
    }
    let file = ctx.dir.join("export.json");
    std::fs::write(&file, serde_json::to_string(&entries).unwrap()).unwrap();
    let at = format!("@{}", file.display());

    let (out, err, code) = ctx.cli(&["import", "--atomic-batches", &at], None);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(err, "", "no progress bar when stderr is not a terminal");
    let expected: String = (0..n)
        .map(|i| format!("Imported: {}k/{i:04}\n", ctx.prefix))
        .collect();
    assert_eq!(out, expected, "stdout as consul kv import prints it");

    let stored = ctx.dump();
    assert_eq!(stored.len(), n);
    for (i, (key, flags, value)) in stored.iter().enumerate() {
        assert_eq!(key, &format!("{}k/{i:04}", ctx.prefix));
        assert_eq!(*flags, (i % 3) as u64);
        let want: Vec<u8> = (0..(i % 50)).map(|j| (i * 7 + j) as u8).collect();
        assert_eq!(value, &want, "value of {key}");
    }

    // The plain import of the same file prints the same.
    let (out2, _, code2) = ctx.cli(&["import", &at], None);
    assert_eq!(code2, 0);
    assert_eq!(out2, out);
}

#[test]
fn import_atomic_batches_checks_everything_before_writing() {
    let ctx = Ctx::new("import-check");
    let p = &ctx.prefix;
    // An invalid key anywhere: nothing is written.
    let entries = serde_json::json!([
        {"key": format!("{p}a"), "flags": 0, "value": "YQ=="},
        {"key": format!("{p}bad//key"), "flags": 0, "value": "ZA=="},
    ]);
    let (out, err, code) = ctx.cli(&["import", "-atomic-batches", &entries.to_string()], None);
    assert_eq!((out.as_str(), code), ("", 1));
    assert!(err.starts_with("Error! Nothing written: key "), "{err}");
    assert!(err.contains("bad//key"), "{err}");
    assert!(ctx.dump().is_empty());

    // A value that is not base64: nothing is written either.
    let bad = serde_json::json!([
        {"key": format!("{p}x"), "value": "eA=="},
        {"key": format!("{p}y"), "value": "!!"},
    ])
    .to_string();
    let (out, err, code) = ctx.cli(&["import", "--atomic-batches", &bad], None);
    assert_eq!((out.as_str(), code), ("", 1));
    assert_eq!(
        err,
        format!("Error base 64 decoding value for key {p}y: illegal base64 data at input byte 0\n")
    );
    assert!(ctx.dump().is_empty());
}

#[test]
fn import_atomic_batches_is_all_or_nothing_per_batch() {
    // A server that refuses values over 64 bytes, which the client does not know: the second
    // transaction is refused as a whole by the server; the first (and possibly the third,
    // in flight at the same time) commit.
    let Some(ctx) = Ctx::with_server(
        "import-atomic",
        Some(DevServer::builder().kv_max_value_size(64)),
    ) else {
        return;
    };
    let p = &ctx.prefix;
    let big = b64(&[b'x'; 100]);
    let entries = serde_json::json!([
        {"key": format!("{p}a"), "flags": 0, "value": "YQ=="},
        {"key": format!("{p}b"), "flags": 0, "value": "Yg=="},
        {"key": format!("{p}c"), "flags": 0, "value": "Yw=="},
        {"key": format!("{p}d"), "flags": 0, "value": big},
        {"key": format!("{p}e"), "flags": 0, "value": "ZQ=="},
    ]);
    let (out, err, code) = ctx.cli(
        &[
            "import",
            "-atomic-batches",
            "-batch-ops=2",
            &entries.to_string(),
        ],
        None,
    );
    assert_eq!((out.as_str(), code), ("", 1), "{err}");
    assert!(
        err.starts_with(&format!(
            "Error! Failed writing batch 2 of 3 (2 keys from {p}c; "
        )),
        "{err}"
    );
    let keys: Vec<String> = ctx.dump().into_iter().map(|(k, _, _)| k).collect();
    assert!(
        keys.contains(&format!("{p}a")) && keys.contains(&format!("{p}b")),
        "{keys:?}"
    );
    assert!(
        !keys.contains(&format!("{p}c")) && !keys.contains(&format!("{p}d")),
        "batch 2 is all-or-nothing: {keys:?}"
    );
}

#[test]
fn sync_dry_run_apply_and_in_sync() {
    let ctx = Ctx::new("sync");
    let p = ctx.prefix.clone();
    let src = ctx.dir.join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("a"), b"new a").unwrap();
    std::fs::write(src.join("same"), b"unchanged").unwrap();
    std::fs::write(src.join("sub/b"), b"\x00binary\xff").unwrap();
    std::fs::write(src.join("sub/deeper/c d"), b"spaced").unwrap();
    ctx.set(&format!("{p}a"), b"old a");
    ctx.set(&format!("{p}same"), b"unchanged");
    ctx.set(&format!("{p}stale"), b"only in consul");
    let src_s = src.display().to_string();
    let before = ctx.dump();

    // Dry run: the plan, exit 1, nothing written.
    let (out, err, code) = ctx.cli(&["sync", "--delete", "--dry-run", &src_s, &p], None);
    assert_eq!(code, 1, "stderr: {err}");
    assert_eq!(
        out,
        format!(
            "~ {p}a\n- {p}stale\n+ {p}sub/b\n+ {p}sub/deeper/c d\n\
             plan: 2 to add, 1 to change, 1 to delete (dry run: nothing written)\n"
        )
    );
    assert_eq!(ctx.dump(), before, "a dry run changes nothing");

    // Without --delete the extra key stays.
    let (out, _, code) = ctx.cli(&["sync", "-dry-run", &src_s, &p], None);
    assert_eq!(code, 1);
    assert!(!out.contains("stale"));

    // Apply.
    let (out, err, code) = ctx.cli(&["sync", "--delete", &src_s, &p], None);
    assert_eq!(code, 1, "stderr: {err}");
    assert!(
        out.ends_with("applied: 2 added, 1 changed, 1 deleted\n"),
        "{out}"
    );
    let after = ctx.dump();
    let want: Vec<(String, u64, Vec<u8>)> = vec![
        (format!("{p}a"), 0, b"new a".to_vec()),
        (format!("{p}same"), 0, b"unchanged".to_vec()),
        (format!("{p}sub/b"), 0, b"\x00binary\xff".to_vec()),
        (format!("{p}sub/deeper/c d"), 0, b"spaced".to_vec()),
    ];
    assert_eq!(after, want);

    // A second sync has nothing to do.
    let (out, _, code) = ctx.cli(&["sync", "--delete", &src_s, &p], None);
    assert_eq!(code, 0);
    assert_eq!(out, format!("in sync: 4 keys under {p:?} match {src_s}\n"));

    // An export file works as a source too: export, change the store, sync back.
    let (export, _, code) = ctx.cli(&["export", &p], None);
    assert_eq!(code, 0);
    let file = ctx.dir.join("export.json");
    std::fs::write(&file, &export).unwrap();
    ctx.set(&format!("{p}a"), b"drifted");
    ctx.set(&format!("{p}extra"), b"x");
    let file_s = file.display().to_string();
    let (out, _, code) = ctx.cli(&["sync", "--delete", &file_s, &p], None);
    assert_eq!(code, 1);
    assert!(out.starts_with(&format!("~ {p}a\n- {p}extra\n")), "{out}");
    assert_eq!(ctx.dump(), want);
    let (_, _, code) = ctx.cli(&["sync", "--delete", &file_s, &p], None);
    assert_eq!(code, 0);

    // Keys outside the prefix are refused (exit 3), nothing written.
    let (_, err, code) = ctx.cli(&["sync", &file_s, "elsewhere/"], None);
    assert_eq!(code, 3);
    assert!(err.contains("not under the prefix"), "{err}");
}

#[test]
fn sync_leaves_a_key_changed_after_the_plan_alone_and_exits_2() {
    let ctx = Ctx::new("sync-conflict");
    let p = ctx.prefix.clone();
    let src = ctx.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"ours a").unwrap();
    std::fs::write(src.join("b"), b"ours b").unwrap();
    ctx.set(&format!("{p}a"), b"old a");
    ctx.set(&format!("{p}b"), b"old b");

    // The CLI talks through a proxy that holds the answer of its first request (the plan's
    // read of the prefix) for 6 s; meanwhile someone else writes `a`.
    let upstream: std::net::SocketAddr = ctx.addr.trim_start_matches("http://").parse().unwrap();
    let proxy = ctx.rt.block_on(FaultProxy::start(upstream));
    proxy.push([Fault::DelayHeaders(Duration::from_secs(6))]);
    let src_s = src.display().to_string();
    let child = Command::new(ours())
        .args(["sync", &src_s, &p])
        .env("CONSUL_HTTP_ADDR", proxy.base_url())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the plan's read", Duration::from_secs(60), || {
        !proxy.stats().request_lines().is_empty()
    });
    // The server answered the read long ago (the proxy holds the answer): change `a` now.
    std::thread::sleep(Duration::from_secs(1));
    ctx.set(&format!("{p}a"), b"theirs");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {stdout} stderr: {stderr}"
    );
    assert!(
        stdout.starts_with(&format!(
            "~ {p}a\n~ {p}b\napplied: 0 added, 1 changed, 0 deleted\n! {p}a ("
        )),
        "{stdout}"
    );
    assert!(stderr.starts_with("1 conflicts: "), "{stderr}");
    let stored = ctx.dump();
    assert_eq!(stored[0].2, b"theirs", "the concurrent write is kept");
    assert_eq!(stored[1].2, b"ours b", "the rest is applied");
}

#[test]
fn watch_prints_once_and_runs_a_handler_per_change() {
    let ctx = Ctx::new("watch");
    let key = format!("{}k", ctx.prefix);
    ctx.set(&key, b"one");

    // --once: the current value as consul watch prints it, then exit.
    let (out, err, code) = ctx.cli(&["watch", "--once", &key], None);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Key"], key.as_str());
    assert_eq!(v["Value"], b64(b"one"));
    assert!(out.starts_with("{\n    \"Key\": "), "4-space indent: {out}");

    // A missing key is null; an empty prefix too.
    let (out, _, _) = ctx.cli(&["watch", "-once", &format!("{}missing", ctx.prefix)], None);
    assert_eq!(out, "null\n");

    // With a handler: JSON on stdin and CONSUL_INDEX, once per change.
    let log = ctx.dir.join("log");
    let script = format!(
        "cat >> '{l}'; echo \" index=$CONSUL_INDEX\" >> '{l}'",
        l = log.display()
    );
    let mut child = ctx.spawn(&["watch", &ctx.prefix, "--", &script]);
    let lines = |n: usize| {
        std::fs::read_to_string(&log)
            .map(|s| s.lines().count() >= n)
            .unwrap_or(false)
    };
    wait_for("the first handler run", Duration::from_secs(60), || {
        lines(2)
    });
    ctx.set(&key, b"two");
    wait_for("the second handler run", Duration::from_secs(60), || {
        lines(4)
    });
    ctx.set(&format!("{}k2", ctx.prefix), b"three");
    wait_for("the third handler run", Duration::from_secs(60), || {
        lines(6)
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let runs: Vec<serde_json::Value> = lines
        .iter()
        .step_by(2)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs[0][0]["Value"], b64(b"one"));
    assert_eq!(runs[1][0]["Value"], b64(b"two"));
    assert_eq!(runs[2].as_array().unwrap().len(), 2);
    assert_eq!(runs[2][1]["Value"], b64(b"three"));
    let indexes: Vec<u64> = lines
        .iter()
        .skip(1)
        .step_by(2)
        .map(|l| l.trim().trim_start_matches("index=").parse().unwrap())
        .collect();
    assert!(
        indexes.windows(2).all(|w| w[0] < w[1]),
        "CONSUL_INDEX grows with each change: {indexes:?}"
    );
}

fn alive(pid: &str) -> bool {
    Command::new("kill")
        .args(["-0", pid])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs a `lock` whose child ignores (or not) SIGTERM, destroys the lock's session, and checks
/// that the child is gone and the lock process exited.
fn lock_loss_kills_child(case: &str, ignore_term: bool) {
    let ctx = Ctx::new(case);
    let prefix = format!("{}svc", ctx.prefix);
    let pidfile = ctx.dir.join("pid");
    let heldfile = ctx.dir.join("held");
    let trap = if ignore_term { "trap '' TERM; " } else { "" };
    let script = format!(
        "{trap}echo \"$CONSUL_LOCK_HELD\" > '{h}'; echo $$ > '{p}.tmp'; mv '{p}.tmp' '{p}'; exec sleep 600",
        h = heldfile.display(),
        p = pidfile.display()
    );
    let mut lock = ctx.spawn(&["lock", &prefix, "--", &script]);
    wait_for("the child to start", Duration::from_secs(60), || {
        pidfile.exists()
    });
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
    assert!(alive(&pid));
    assert_eq!(std::fs::read_to_string(&heldfile).unwrap().trim(), "true");

    // Lose the lock: destroy the session that holds PREFIX/.lock.
    let lock_key = format!("{prefix}/.lock");
    ctx.rt.block_on(async {
        let k = ctx
            .client
            .kv()
            .get(lock_key.clone())
            .await
            .unwrap()
            .unwrap();
        let session = k.session.clone().expect("the lock key is held");
        assert!(ctx.client.session().destroy(&session).await.unwrap());
    });
    let start = Instant::now();
    loop {
        if lock.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "lock did not exit after losing the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = lock.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Lock lost, killing child"), "{stderr}");
    wait_for("the child to be gone", Duration::from_secs(30), || {
        !alive(&pid)
    });
}

#[test]
fn lock_kills_a_child_whose_lock_was_lost() {
    lock_loss_kills_child("lock-term", false);
}

#[test]
fn lock_kills_a_child_that_ignores_sigterm() {
    lock_loss_kills_child("lock-kill", true);
}

#[test]
fn lock_runs_the_child_and_releases() {
    let ctx = Ctx::new("lock-run");
    let prefix = format!("{}job", ctx.prefix);
    let (out, err, code) = ctx.cli(&["lock", &prefix, "echo held=$CONSUL_LOCK_HELD"], None);
    assert_eq!((out.as_str(), code), ("held=true\n", 0), "{err}");
    // Released and cleaned up: nobody holds the key.
    let held = ctx.rt.block_on(async {
        ctx.client
            .kv()
            .get(format!("{prefix}/.lock"))
            .await
            .unwrap()
            .and_then(|k| k.session.clone())
    });
    assert!(held.is_none());

    // The child's failure: 0 by default, 2 with -child-exit-code.
    let (_, err, code) = ctx.cli(&["lock", &prefix, "exit 3"], None);
    assert_eq!(code, 0);
    assert_eq!(err, "Error running handler: exit status 3\n");
    let (_, _, code) = ctx.cli(&["lock", "-child-exit-code", &prefix, "exit 3"], None);
    assert_eq!(code, 2);

    // A semaphore of two.
    let (out, _, code) = ctx.cli(
        &["lock", "-n=2", &format!("{prefix}-sem"), "--", "echo", "ok"],
        None,
    );
    assert_eq!((out.as_str(), code), ("ok\n", 0));

    // Usage errors as consul lock words them.
    let (_, err, code) = ctx.cli(&["lock", &prefix], None);
    assert_eq!(
        (err.as_str(), code),
        ("Key prefix and child command must be specified\n", 1)
    );
    let (_, err, code) = ctx.cli(&["lock", "-n=0", &prefix, "true"], None);
    assert_eq!(
        (err.as_str(), code),
        ("Lock holder limit must be positive\n", 1)
    );
}

#[test]
fn lock_timeout_gives_up_while_another_holds_it() {
    let ctx = Ctx::new("lock-timeout");
    let prefix = format!("{}busy", ctx.prefix);
    let marker = ctx.dir.join("started");
    let script = format!("touch '{}'; exec sleep 600", marker.display());
    let mut holder = ctx.spawn(&["lock", &prefix, &script]);
    wait_for("the holder's child", Duration::from_secs(60), || {
        marker.exists()
    });
    let (out, err, code) = ctx.cli(&["lock", "-timeout=1s", &prefix, "echo never"], None);
    assert_eq!(out, "");
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Shutdown triggered or timeout during lock acquisition\n"
    );
    // SIGTERM to the holder: it stops its child and releases.
    let _ = Command::new("kill")
        .args(["-TERM", &holder.id().to_string()])
        .status();
    let start = Instant::now();
    while holder.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "holder did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
