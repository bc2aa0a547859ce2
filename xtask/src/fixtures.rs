//! `cargo xtask fixtures`: records real Consul responses into the proto crate's fixtures.
//!
//! It starts the cached Consul agent (`cargo xtask consul`) in `-dev` mode on free loopback
//! ports, runs a fixed script of requests over plain HTTP/1.1, and writes each answer to
//! `crates/consul-kv-proto/tests/fixtures/recorded_<name>.json` as `{source, status, headers,
//! body}`. Headers that change on every run (`Date`) are dropped; everything else is kept as
//! Consul sent it. Reviewers read the diff.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::Result;

/// A response as recorded.
pub(crate) struct Recorded {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// One HTTP/1.1 exchange with `Connection: close`.
pub(crate) fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Recorded> {
    let io = |e: std::io::Error| format!("{method} {path}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(io)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(io)?;
    // A server may answer (413) and close before reading a large body: read the answer anyway.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(io)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{method} {path}: no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut rest = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{method} {path}: bad status line"))?;
    let mut headers = Vec::new();
    let mut chunked = false;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_owned(), v.trim().to_owned());
            if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
                continue;
            }
            if k.eq_ignore_ascii_case("date") {
                continue;
            }
            headers.push((k, v));
        }
    }
    if chunked {
        rest = dechunk(&rest).ok_or_else(|| format!("{method} {path}: bad chunked body"))?;
    }
    Ok(Recorded {
        status,
        headers,
        body: rest,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// A JSON string literal (serde_json's escaping, the workspace's one JSON escaper).
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn write_fixture(dir: &Path, name: &str, source: &str, r: &Recorded) -> Result {
    let body = String::from_utf8(r.body.clone())
        .map_err(|_| format!("{name}: body is not UTF-8; fixtures hold text bodies"))?;
    let mut out = String::from("{\n");
    out.push_str(&format!("  \"source\": {},\n", json_string(source)));
    out.push_str(&format!("  \"status\": {},\n", r.status));
    out.push_str("  \"headers\": {");
    for (i, (k, v)) in r.headers.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        out.push_str(&format!("    {}: {}", json_string(k), json_string(v)));
    }
    out.push_str("\n  },\n");
    out.push_str(&format!("  \"body\": {}\n}}\n", json_string(&body)));
    let path = dir.join(format!("recorded_{name}.json"));
    std::fs::write(&path, out).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "fixtures: {name}: {} ({} body bytes)",
        r.status,
        r.body.len()
    );
    Ok(())
}

/// Starts a dev agent, records the script, and writes the fixtures.
pub(crate) fn run(root: &Path) -> Result {
    let bin = crate::consul::ensure_consul(root)?;
    let (_agent, addr) = crate::agent::start(&bin, "fixtures", None)?;
    let dir = root.join("crates/consul-kv-proto/tests/fixtures");
    let src = |what: &str| {
        format!(
            "recorded from Consul {} by `cargo xtask fixtures`: {what}",
            crate::consul::CONSUL_VERSION
        )
    };
    let rec = |name: &str, method: &str, path: &str, body: &[u8]| -> Result<Recorded> {
        let r = exchange(addr, method, path, body)?;
        write_fixture(&dir, name, &src(&format!("{method} {path}")), &r)?;
        Ok(r)
    };
    rec("put_true", "PUT", "/v1/kv/fixture/a", b"hello")?;
    rec("put_cas_false", "PUT", "/v1/kv/fixture/a?cas=1", b"other")?;
    rec("get", "GET", "/v1/kv/fixture/a", b"")?;
    rec("get_raw", "GET", "/v1/kv/fixture/a?raw", b"")?;
    rec("get_stale", "GET", "/v1/kv/fixture/a?stale", b"")?;
    rec("get_404", "GET", "/v1/kv/fixture/missing", b"")?;
    exchange(addr, "PUT", "/v1/kv/fixture/dir/", b"")?;
    exchange(addr, "PUT", "/v1/kv/fixture/dir/x", b"1")?;
    exchange(addr, "PUT", "/v1/kv/fixture/dir/sub/y", b"2")?;
    rec("items", "GET", "/v1/kv/fixture/?recurse", b"")?;
    rec(
        "keys_separator",
        "GET",
        "/v1/kv/fixture/?keys&separator=%2F",
        b"",
    )?;
    rec("keys_404", "GET", "/v1/kv/nothing-here/?keys", b"")?;
    rec(
        "txn_ok",
        "PUT",
        "/v1/txn",
        br#"[{"KV":{"Verb":"set","Key":"fixture/t","Value":"dA=="}},{"KV":{"Verb":"get","Key":"fixture/t"}}]"#,
    )?;
    rec(
        "txn_409",
        "PUT",
        "/v1/txn",
        br#"[{"KV":{"Verb":"cas","Key":"fixture/t","Value":"dA==","Index":1}},{"KV":{"Verb":"get","Key":"fixture/none"}}]"#,
    )?;
    rec(
        "txn_read_only",
        "PUT",
        "/v1/txn",
        br#"[{"KV":{"Verb":"get","Key":"fixture/t"}}]"#,
    )?;
    let created = rec(
        "session_create",
        "PUT",
        "/v1/session/create",
        br#"{"Name":"fixture","TTL":"30s","Behavior":"delete"}"#,
    )?;
    let text = String::from_utf8_lossy(&created.body).to_string();
    let id = text
        .split('"')
        .nth(3)
        .ok_or_else(|| format!("no session ID in {text:?}"))?
        .to_owned();
    rec(
        "session_info",
        "GET",
        &format!("/v1/session/info/{id}"),
        b"",
    )?;
    rec(
        "session_renew",
        "PUT",
        &format!("/v1/session/renew/{id}"),
        b"",
    )?;
    rec("session_list", "GET", "/v1/session/list", b"")?;
    rec(
        "session_renew_404",
        "PUT",
        "/v1/session/renew/00000000-0000-0000-0000-000000000000",
        b"",
    )?;
    rec(
        "error_conflicting_flags",
        "PUT",
        &format!("/v1/kv/fixture/a?cas=1&acquire={id}"),
        b"",
    )?;
    rec(
        "error_invalid_session",
        "PUT",
        "/v1/kv/fixture/a?acquire=00000000-0000-0000-0000-000000000000",
        b"",
    )?;
    rec("error_parse_uint", "PUT", "/v1/kv/fixture/a?flags=abc", b"")?;
    rec(
        "error_no_path_dc",
        "GET",
        "/v1/kv/fixture/a?dc=nowhere",
        b"",
    )?;
    rec(
        "error_413",
        "PUT",
        "/v1/kv/fixture/big",
        &vec![b'x'; 600_000],
    )?;
    rec("error_405", "POST", "/v1/kv/fixture/a", b"")?;
    rec("delete_cas_false", "DELETE", "/v1/kv/fixture/a?cas=1", b"")?;
    Ok(())
}
