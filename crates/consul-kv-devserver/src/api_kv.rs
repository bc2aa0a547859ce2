//! `/v1/kv/<key>`: `agent/kvs_endpoint.go` and `agent/consul/kvs_endpoint.go`.

use std::collections::HashSet;
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;

use crate::blocking::{self, Run, Target};
use crate::go;
use crate::profile::ConsulVersion;
use crate::reply::{empty, json, set_header, text, Body, BodyAborted, Resp};
use crate::request::{Authz, BodyError, Ctx, Opts};
use crate::state::KvWrite;

/// `KVSEndpoint`.
pub(crate) async fn kv(ctx: Ctx) -> Resp {
    if let Err(r) = ctx.check_ent_meta() {
        return r;
    }
    let opts = match ctx.parse_opts() {
        Ok(o) => o,
        Err(r) => return r,
    };
    let key = ctx.path.strip_prefix("/v1/kv/").unwrap_or("").to_owned();
    if !key.is_empty() {
        if let Some(r) = ctx.shared.cfg.consul_version.refuse_key(&key) {
            return r;
        }
    }
    match ctx.method.as_str() {
        "GET" => get(ctx, opts, key).await,
        "PUT" => put(ctx, opts, key).await,
        _ => delete(ctx, opts, key).await,
    }
}

fn missing_key() -> Resp {
    text(StatusCode::BAD_REQUEST, "Missing key name")
}

/// `conflictingFlags`.
fn conflicting(ctx: &Ctx, flags: &[&str]) -> Option<Resp> {
    if flags.iter().filter(|f| ctx.query.has(f)).count() > 1 {
        return Some(text(
            StatusCode::BAD_REQUEST,
            format!("Conflicting flags: {}", ctx.query.encode()),
        ));
    }
    None
}

fn too_large(n: u64, max: usize, version: ConsulVersion) -> Resp {
    let docs = version.kv_limit_docs();
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request body({n} bytes) too large, max size: {max} bytes. See {docs}."),
    )
}

/// What the devserver accepts at most in a chunked `PUT` under a release that checks only
/// `Content-Length` (1.14 stores a chunked value over `kv_max_value_size`; the cap keeps the
/// devserver's memory bounded).
const CHUNKED_CAP: usize = 64 << 20;

async fn get(ctx: Ctx, opts: Opts, key: String) -> Resp {
    let keys = ctx.query.has("keys");
    let recurse = ctx.query.has("recurse");
    if !keys && !recurse && key.is_empty() {
        return missing_key();
    }
    let shared = &ctx.shared;
    let dc = match shared.route_dc(&opts, true).await {
        Ok(dc) => dc,
        Err(r) => return r,
    };
    let az = match shared.authz(&opts.token) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let allowed = az == Authz::Allow;
    let deadline = shared.read_deadline(&opts);

    if keys {
        // The legacy spelling first; `separator` wins.
        let mut sep = String::new();
        if ctx.query.has("seperator") {
            sep = ctx.query.get("seperator").to_owned();
        }
        if ctx.query.has("separator") {
            sep = ctx.query.get("separator").to_owned();
        }
        let run = blocking::query(
            &dc.registry,
            Target::Prefix(key.clone()),
            opts.index,
            deadline,
            false,
            || {
                let st = dc.lock();
                let (index, entries) = st.list(&key);
                let mut out = Vec::new();
                if allowed {
                    let mut seen = HashSet::new();
                    for (k, _) in entries {
                        if sep.is_empty() {
                            out.push(k.clone());
                            continue;
                        }
                        let after = &k[key.len()..];
                        match after.find(sep.as_str()) {
                            Some(i) => {
                                let folded = &k[..key.len() + i + sep.len()];
                                if seen.insert(folded.to_owned()) {
                                    out.push(folded.to_owned());
                                }
                            }
                            None => out.push(k.clone()),
                        }
                    }
                }
                Run {
                    index,
                    not_found: false,
                    value: out,
                }
            },
        )
        .await;
        let meta = shared.meta(&opts, run.index);
        let mut r = if run.value.is_empty() && !key.is_empty() {
            empty(StatusCode::NOT_FOUND)
        } else {
            json(StatusCode::OK, &run.value, opts.pretty)
        };
        meta.apply(&mut r);
        return r;
    }

    if recurse {
        let run = blocking::query(
            &dc.registry,
            Target::Prefix(key.clone()),
            opts.index,
            deadline,
            false,
            || {
                let st = dc.lock();
                let (index, entries) = st.list(&key);
                let value = if !allowed || entries.is_empty() {
                    Listing::Small(Vec::new())
                } else if entries.len() > STREAM_ENTRIES && !opts.pretty {
                    Listing::Large {
                        version: st.kv_tables_index(),
                    }
                } else {
                    Listing::Small(entries.iter().map(|(k, e)| e.to_wire(k, true)).collect())
                };
                Run {
                    index,
                    not_found: false,
                    value,
                }
            },
        )
        .await;
        let meta = shared.meta(&opts, run.index);
        let mut r = match run.value {
            Listing::Small(v) if v.is_empty() => empty(StatusCode::NOT_FOUND),
            Listing::Small(v) => json(StatusCode::OK, &v, opts.pretty),
            Listing::Large { version } => {
                let mut r = empty(StatusCode::OK);
                *r.body_mut() = streamed_list(ctx.shared.clone(), dc.name.clone(), key, version);
                set_header(&mut r, "content-type", "application/json");
                r
            }
        };
        meta.apply(&mut r);
        return r;
    }

    if !allowed {
        return text(StatusCode::FORBIDDEN, "Permission denied");
    }
    let legacy = shared.cfg.legacy_missing_key_wakeups;
    let target = if legacy {
        Target::AnyKv
    } else {
        Target::Key(key.clone())
    };
    let run = blocking::query(&dc.registry, target, opts.index, deadline, !legacy, || {
        let st = dc.lock();
        let (index, e) = st.get(&key);
        Run {
            index,
            not_found: e.is_none(),
            value: e.map(|e| (e.to_wire(&key, true), e.value.clone())),
        }
    })
    .await;
    let meta = shared.meta(&opts, run.index);
    let mut r = match run.value {
        None => empty(StatusCode::NOT_FOUND),
        Some((_, value)) if ctx.query.has("raw") => {
            let mut r = empty(StatusCode::OK);
            *r.body_mut() = Body::from(value.unwrap_or_default());
            set_header(&mut r, "content-type", "text/plain");
            set_header(&mut r, "x-content-type-options", "nosniff");
            set_header(&mut r, "content-security-policy", "sandbox");
            r
        }
        Some((entry, _)) => json(StatusCode::OK, &[entry], opts.pretty),
    };
    meta.apply(&mut r);
    r
}

async fn put(mut ctx: Ctx, opts: Opts, key: String) -> Resp {
    if key.is_empty() {
        return missing_key();
    }
    if let Some(r) = conflicting(&ctx, &["cas", "acquire", "release"]) {
        return r;
    }
    let mut flags = 0;
    if ctx.query.has("flags") {
        match go::parse_uint(ctx.query.get("flags")) {
            Ok(f) => flags = f,
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }
    let mut op = KvWrite::Set;
    if ctx.query.has("cas") {
        match go::parse_uint(ctx.query.get("cas")) {
            Ok(c) => op = KvWrite::Cas(c),
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }
    if ctx.query.has("acquire") {
        op = KvWrite::Lock(ctx.query.get("acquire").to_owned());
    }
    if ctx.query.has("release") {
        op = KvWrite::Unlock(ctx.query.get("release").to_owned());
    }
    let max = ctx.shared.cfg.kv_max_value_size;
    let version = ctx.shared.cfg.consul_version;
    let received = if version.limits_received_bytes() {
        max
    } else {
        CHUNKED_CAP.max(max)
    };
    let value = match ctx.read_body_within(max, received).await {
        Ok(v) => v,
        Err(BodyError::TooLarge(n)) => return too_large(n, max, version),
        Err(BodyError::Failed) => return text(StatusCode::BAD_REQUEST, "Request body read failed"),
    };
    let shared = &ctx.shared;
    let dc = match shared.route_dc(&opts, false).await {
        Ok(dc) => dc,
        Err(r) => return r,
    };
    match shared.authz(&opts.token) {
        Ok(Authz::Allow) => {}
        Ok(Authz::Anonymous) => return text(StatusCode::FORBIDDEN, "Permission denied"),
        Err(r) => return r,
    }
    let plain = op == KvWrite::Set;
    let value = (!value.is_empty()).then_some(value);
    let now = Instant::now();
    let res = shared.write(dc, |st, ch| st.kv_apply(op, &key, flags, value, now, ch));
    match res {
        Ok(ok) => json(StatusCode::OK, &(plain || ok), opts.pretty),
        // The agent wraps state-store errors of a Raft apply.
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("raft apply failed: {e}"),
        ),
    }
}

async fn delete(ctx: Ctx, opts: Opts, key: String) -> Resp {
    if let Some(r) = conflicting(&ctx, &["recurse", "cas"]) {
        return r;
    }
    let mut op = KvWrite::Delete;
    if ctx.query.has("recurse") {
        op = KvWrite::DeleteTree;
    } else if key.is_empty() {
        return missing_key();
    }
    if ctx.query.has("cas") {
        match go::parse_uint(ctx.query.get("cas")) {
            Ok(c) => op = KvWrite::DeleteCas(c),
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }
    let shared = &ctx.shared;
    let dc = match shared.route_dc(&opts, false).await {
        Ok(dc) => dc,
        Err(r) => return r,
    };
    match shared.authz(&opts.token) {
        Ok(Authz::Allow) => {}
        Ok(Authz::Anonymous) => return text(StatusCode::FORBIDDEN, "Permission denied"),
        Err(r) => return r,
    }
    let cas = matches!(op, KvWrite::DeleteCas(_));
    let now = Instant::now();
    let res = shared.write(dc, |st, ch| {
        st.kv_apply(op, &key, 0, None::<Bytes>, now, ch)
    });
    match res {
        Ok(ok) => json(StatusCode::OK, &(!cas || ok), opts.pretty),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Lists longer than this are streamed (see [`streamed_list`]); shorter ones are sent in one
/// buffer with a `Content-Length`, as before.
const STREAM_ENTRIES: usize = 1024;

/// About how many bytes of JSON each chunk of a streamed list holds.
const CHUNK_BYTES: usize = 64 << 10;

/// A `?recurse` answer: built whole, or streamed.
enum Listing {
    Small(Vec<consul_kv_proto::kv::wire::KvEntry>),
    /// Too long to build whole: streamed while the KV tables stay at `version`.
    Large {
        version: u64,
    },
}

/// The JSON array of every entry under `prefix`, made chunk by chunk as the connection takes
/// it: the server never holds the whole answer, nor a copy of the tree. Each chunk is read
/// under the datacenter lock from where the last one stopped. Consul answers from one
/// consistent snapshot; to never send a mix of two trees, the answer is aborted (the
/// connection closed mid-body, which a client sees as a truncated answer and may retry) if a
/// KV write lands between two chunks.
fn streamed_list(
    shared: std::sync::Arc<crate::server::Shared>,
    dc: String,
    prefix: String,
    version: u64,
) -> Body {
    let mut after: Option<String> = None;
    let mut started = false;
    let mut done = false;
    Body::chunks(Box::new(move || {
        if done {
            return None;
        }
        let Some(handle) = shared.dc(&dc) else {
            done = true;
            return Some(Err(BodyAborted("the datacenter is gone")));
        };
        let st = handle.lock();
        if st.kv_tables_index() != version {
            done = true;
            return Some(Err(BodyAborted("the tree changed while it was being sent")));
        }
        let mut buf = Vec::with_capacity(CHUNK_BYTES + 1024);
        if !started {
            buf.push(b'[');
        }
        let mut last = None;
        for (k, e) in st.list_after(&prefix, after.as_deref()) {
            if started {
                buf.push(b',');
            }
            started = true;
            if serde_json::to_writer(&mut buf, &e.to_wire(k, true)).is_err() {
                done = true;
                return Some(Err(BodyAborted("an entry could not be encoded")));
            }
            last = Some(k);
            if buf.len() >= CHUNK_BYTES {
                break;
            }
        }
        match last {
            Some(k) => after = Some(k.clone()),
            None => {
                // Past the last entry: close the array.
                done = true;
                buf.push(b']');
            }
        }
        Some(Ok(Bytes::from(buf)))
    }))
}
