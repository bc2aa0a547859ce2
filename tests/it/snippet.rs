//! The snippet, verbatim, with `Client::from_env()` reading `CONSUL_HTTP_ADDR`.
//!
//! Environment variables are process-wide and the other cases run in parallel threads (and
//! `server::start()` reads `CONSUL_HTTP_ADDR`), so the snippet runs in a child process: the
//! parent starts a devserver with `dc1` and `dc2`, seeds it, and re-runs this test binary
//! filtered to [`verbatim_in_child`] with `CONSUL_HTTP_ADDR` pointing at the devserver. Run
//! directly (without the marker variable), the child case returns at once.

use std::process::Command;

use consul_kv_devserver::DevServer;
use consul_kv_tests::server;

/// Set by the parent for the child run.
const CHILD_VAR: &str = "CONSUL_KV_IT_SNIPPET_CHILD";

#[tokio::test]
async fn snippet_runs_verbatim_against_the_devserver() {
    let server = server::start_with(DevServer::builder().datacenter("dc1").datacenter("dc2")).await;
    let seed = crate::client(&server);
    let kv = seed.kv();
    assert!(kv.set("my/prefix/a", "1").await.unwrap());
    assert!(kv.set("my/prefix/b/c", "2").await.unwrap());
    assert!(kv.dc("dc2").set("foo/bar/baz", "in dc2").await.unwrap());

    let base = server.base_url();
    let exe = std::env::current_exe().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(exe);
        cmd.args([
            "snippet::verbatim_in_child",
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
    assert!(stdout.contains("snippet ok"), "{stdout}");

    // What the snippet left behind: "foo" acquired and released, with an empty value.
    let foo = kv.get("foo").await.unwrap().expect("foo exists");
    assert!(foo.session.is_none());
    assert_eq!(foo.bytes(), b"");
}

/// The snippet itself; a no-op unless started by the case above.
#[rustfmt::skip]
#[tokio::test]
async fn verbatim_in_child() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os(CHILD_VAR).is_none() {
        return Ok(());
    }
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

    // What the snippet saw.
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
    println!("snippet ok");
    Ok(())
}
