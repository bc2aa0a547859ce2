//! Bring your own executor: consul-kv-proto driven by `ureq`, a blocking HTTP client, with no
//! tokio and no async anywhere.
//!
//! ```sh
//! cargo run -p consul-kv-devserver -- --listen 127.0.0.1:8500 &
//! cargo run -p consul-kv-proto --example blocking_ureq -- http://127.0.0.1:8500
//! ```
//!
//! The address comes from the first argument, else `CONSUL_HTTP_ADDR`, else
//! `http://127.0.0.1:8500` (a bare `host:port` means `http://`). Every key it writes is under
//! `blocking-ureq-example/`, and it deletes them at the end.
//!
//! The whole executor is [`Executor::call`]: the proto crate builds an `http::Request` and
//! parses an `http::Response`; the executor sends the one and collects the other, with a
//! deadline and a body limit of its own choosing. What this small executor leaves out, and
//! `consul-kv-hyper` does: retries of what is safe to repeat
//! ([`Operation::kind`]), blocking-query deadlines ([`Operation::blocking_wait`] with
//! [`consul_kv_proto::blocking_deadline`]), TLS and unix sockets.

use std::error::Error;
use std::time::Duration;

use bytes::Bytes;
use consul_kv_proto::kv::{Delete, Get, ListItems, ListKeys, Set};
use consul_kv_proto::session::{CreateSession, DestroySession};
use consul_kv_proto::txn::{Txn, TxnOp};
use consul_kv_proto::{Operation, RequestContext, WriteOutcome};

/// The largest response body this executor accepts.
const MAX_BODY: u64 = 64 << 20;
/// The deadline of every call.
const DEADLINE: Duration = Duration::from_secs(10);
/// Where the example writes.
const PREFIX: &str = "blocking-ureq-example/";

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// A blocking executor: a `ureq` agent, the agent's base URL and the request defaults.
struct Executor {
    agent: ureq::Agent,
    base: String,
    cx: RequestContext,
}

impl Executor {
    fn new(address: &str) -> Self {
        let base = if address.contains("://") {
            address.trim_end_matches('/').to_owned()
        } else {
            format!("http://{}", address.trim_end_matches('/'))
        };
        let agent = ureq::Agent::config_builder()
            // Consul's error statuses are answers the proto crate parses into typed errors.
            .http_status_as_error(false)
            .timeout_global(Some(DEADLINE))
            .build()
            .into();
        Self {
            agent,
            base,
            cx: RequestContext::new(),
        }
    }

    /// Runs one operation: build, send, collect the body with a limit, parse.
    fn call<O: Operation>(&self, op: &O) -> Result<O::Output> {
        // 1. Build: a request whose URI holds only the path and query.
        let (mut parts, body) = op.build(&self.cx)?.into_parts();
        // 2. Send: the executor adds scheme and authority.
        parts.uri = format!("{}{}", self.base, parts.uri).parse()?;
        let mut resp = if body.is_empty() {
            self.agent.run(http::Request::from_parts(parts, ()))?
        } else {
            self.agent
                .run(http::Request::from_parts(parts, body.to_vec()))?
        };
        // 3. Collect the body, refusing more than MAX_BODY bytes.
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()?;
        let (parts, _) = resp.into_parts();
        // 4. Parse: typed results, typed errors for every non-success answer.
        Ok(op.parse(http::Response::from_parts(parts, Bytes::from(body)))?)
    }
}

fn check(what: &str, ok: bool) -> Result<()> {
    if ok {
        println!("ok: {what}");
        Ok(())
    } else {
        Err(format!("unexpected result: {what}").into())
    }
}

fn main() -> Result<()> {
    let address = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("CONSUL_HTTP_ADDR").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8500".to_owned());
    let consul = Executor::new(&address);
    let key = format!("{PREFIX}config");

    // set, get, set with CAS.
    let set = consul.call(&Set::new(&key, "v1"))?;
    check("set", set == WriteOutcome::Applied)?;
    let read = consul.call(&Get::new(&key))?;
    let pair = read.value.ok_or("the key just written is missing")?;
    check("get returns the value", pair.value_bytes() == b"v1")?;
    let cas = consul.call(&Set::new(&key, "v2").cas(&pair))?;
    check("set with CAS from the read", cas == WriteOutcome::Applied)?;
    let stale = consul.call(&Set::new(&key, "v3").cas(&pair))?;
    check(
        "set with a stale CAS is rejected",
        stale == WriteOutcome::Rejected,
    )?;

    // items and keys.
    for (k, v) in [("dir/a", "1"), ("dir/b", "2")] {
        let written = consul.call(&Set::new(format!("{PREFIX}{k}"), v))?;
        check(&format!("set {k}"), written.is_applied())?;
    }
    let items = consul.call(&ListItems::new(PREFIX))?;
    check("items lists three entries", items.value.len() == 3)?;
    let keys = consul.call(&ListKeys::new(PREFIX).separator("/"))?;
    check(
        "keys with a separator folds dir/",
        keys.value == [format!("{PREFIX}config"), format!("{PREFIX}dir/")],
    )?;

    // A session: create, acquire, release, destroy.
    let session = consul.call(&CreateSession::new().name("blocking-ureq-example"))?;
    let lock = format!("{PREFIX}lock");
    let acquired = consul.call(&Set::acquire(&lock, session.clone(), "held"))?;
    check("acquire", acquired == WriteOutcome::Applied)?;
    let held = consul
        .call(&Get::new(&lock))?
        .value
        .ok_or("lock key missing")?;
    check(
        "the lock names the session",
        held.session == Some(session.clone()),
    )?;
    let released = consul.call(&Set::release(&lock, session.clone(), "free"))?;
    check("release", released == WriteOutcome::Applied)?;
    check(
        "destroy the session",
        consul.call(&DestroySession::new(session))?,
    )?;

    // A transaction: two writes and a read, all or nothing.
    let txn = Txn::new(vec![
        TxnOp::set(format!("{PREFIX}txn/x"), "1"),
        TxnOp::set(format!("{PREFIX}txn/y"), "2"),
        TxnOp::get(format!("{PREFIX}txn/x")),
    ]);
    let done = consul.call(&txn)?;
    check(
        "transaction committed",
        done.results.len() == 3 && done.results[2].value_bytes() == b"1",
    )?;

    // delete, then clean up the whole prefix.
    let deleted = consul.call(&Delete::new(&key))?;
    check("delete", deleted == WriteOutcome::Applied)?;
    check(
        "the deleted key is gone",
        consul.call(&Get::new(&key))?.value.is_none(),
    )?;
    let cleared = consul.call(&Delete::tree(PREFIX))?;
    check("delete the prefix", cleared.is_applied())?;
    check(
        "the prefix is empty",
        consul.call(&ListKeys::new(PREFIX))?.value.is_empty(),
    )?;
    println!("done: every call went through ureq, no async runtime");
    Ok(())
}
