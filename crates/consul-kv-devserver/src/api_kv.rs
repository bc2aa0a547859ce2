//! `/v1/kv/<key>`: `agent/kvs_endpoint.go` and `agent/consul/kvs_endpoint.go`.

use std::collections::HashSet;
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;

use crate::blocking::{self, Run, Target};
use crate::go;
use crate::reply::{empty, json, set_header, text, Resp};
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

fn too_large(n: u64, max: usize) -> Resp {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "Request body({n} bytes) too large, max size: {max} bytes. See \
             https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size."
        ),
    )
}

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
                let value: Vec<_> = if allowed {
                    entries.iter().map(|(k, e)| e.to_wire(k, true)).collect()
                } else {
                    Vec::new()
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
        let mut r = if run.value.is_empty() {
            empty(StatusCode::NOT_FOUND)
        } else {
            json(StatusCode::OK, &run.value, opts.pretty)
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
            *r.body_mut() = http_body_util::Full::new(value.unwrap_or_default());
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
    let value = match ctx.read_body(max).await {
        Ok(v) => v,
        Err(BodyError::TooLarge(n)) => return too_large(n, max),
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
