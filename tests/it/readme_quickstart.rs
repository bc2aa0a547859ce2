//! The README's quick start, verbatim, with `Client::from_env()` reading `CONSUL_HTTP_ADDR`.
//!
//! [`readme_quick_start_is_this_code`] checks that the code below is the README's quick start
//! (comments and hidden `# ` lines aside), so the README cannot drift from what is tested.
//!
//! Environment variables are process-wide and the other cases run in parallel threads (and
//! `server::start()` reads `CONSUL_HTTP_ADDR`), so the quick start runs in a child process: the
//! parent starts a devserver with `dc1` and `dc2`, fills it, and re-runs this test binary
//! filtered to [`quick_start_in_child`] with `CONSUL_HTTP_ADDR` pointing at the devserver. Run
//! directly (without the marker variable), the child case returns at once.

use std::process::Command;

use consul_kv_devserver::DevServer;
use consul_kv_tests::server;

/// Set by the parent for the child run.
const CHILD_VAR: &str = "CONSUL_KV_IT_QUICKSTART_CHILD";

#[tokio::test]
async fn readme_quick_start_runs_verbatim_against_the_devserver() {
    let server = server::start_with(DevServer::builder().datacenter("dc1").datacenter("dc2")).await;
    let setup = crate::client(&server);
    let kv = setup.kv();
    assert!(kv.set("my/prefix/a", "1").await.unwrap());
    assert!(kv.set("my/prefix/b/c", "2").await.unwrap());
    assert!(kv.dc("dc2").set("foo/bar/baz", "in dc2").await.unwrap());

    let base = server.base_url();
    let exe = std::env::current_exe().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(exe);
        cmd.args([
            "readme_quickstart::quick_start_in_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ]);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CONSUL_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("CONSUL_HTTP_ADDR", base).env(CHILD_VAR, "1");
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child ran no test:\n{stdout}"
    );
    assert!(stdout.contains("quick start ok"), "{stdout}");

    // What the quick start left behind: "foo" acquired and released, with an empty value.
    let foo = kv.get("foo").await.unwrap().expect("foo exists");
    assert!(foo.session.is_none());
    assert_eq!(foo.bytes(), b"");
}

/// The quick start itself; a no-op unless started by the case above.
#[rustfmt::skip]
#[tokio::test]
async fn quick_start_in_child() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os(CHILD_VAR).is_none() {
        return Ok(());
    }
    // quick start begins
    let client = consul_kv::Client::from_env()?;          // CONSUL_HTTP_ADDR …, default http://127.0.0.1:8500
    let kv = client.kv();
    assert!(kv.set("foo", "bar").await?);
    let value = kv.get("foo").await?;                     // Option<Key>: Bytes value, flags, indexes, session
    let meta = value.as_ref().unwrap().consul();          // the meta: modify index (CAS id), last index, leader info
    assert!(kv.set("foo", "baz").cas(meta).await?);       // CAS; false when someone wrote in between
    let values = kv.items("my/prefix/").await?;           // every key + value under the prefix, with meta
    let keys = kv.keys("my/prefix/").await?;              // key names (optional .separator("/")), with meta
    assert!(kv.delete("foo").await?);
    let session = client.session().create().await?;      // builder: name, ttl, behavior, lock_delay, node, checks
    assert!(kv.acquire("foo", &session).await?);          // optional .value(..) / .flags(..)
    assert!(kv.release("foo", &session).await?);
    let dc2 = client.kv().dc("dc2").items("foo/bar").await?;
    // quick start ends

    // What the quick start saw.
    assert_eq!(value.as_ref().unwrap().bytes(), b"bar");
    assert!(!kv.set("foo", "stale").cas(meta).await?, "a second CAS with the old meta fails");
    assert_eq!(values.len(), 2);
    assert_eq!(values[0].key, "my/prefix/a");
    assert_eq!(values[1].value_bytes(), b"2");
    // A list's index is the highest ModifyIndex under the prefix (no tombstones there).
    assert_eq!(
        values.consul().last_index().get(),
        values[0].modify_index.max(values[1].modify_index)
    );
    assert_eq!(&*keys, ["my/prefix/a", "my/prefix/b/c"]);
    assert_eq!(dc2.len(), 1);
    assert_eq!(dc2[0].key, "foo/bar/baz");
    assert_eq!(dc2[0].value_bytes(), b"in dc2");
    assert!(client.session().destroy(&session).await?);
    println!("quick start ok");
    Ok(())
}

/// The code lines of `text` (comments, hidden `# ` doc lines and blank lines dropped).
fn code_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or("").trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn readme_quick_start_is_this_code() {
    let readme = include_str!("../../README.md");
    let block = readme
        .split("```rust")
        .nth(1)
        .and_then(|b| b.split_once('\n'))
        .and_then(|(_, b)| b.split("```").next())
        .expect("README.md has a ```rust quick start block");
    let this = include_str!("readme_quickstart.rs");
    let body = this
        .split("// quick start begins")
        .nth(1)
        .and_then(|b| b.split("// quick start ends").next())
        .expect("markers");
    let want = code_lines(block);
    assert!(
        want.len() >= 10,
        "the quick start block was not found: {want:?}"
    );
    assert_eq!(want, code_lines(body));
}
