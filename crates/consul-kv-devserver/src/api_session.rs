//! `/v1/session/*`: `agent/session_endpoint.go`, `agent/consul/session_endpoint.go`.
//!
//! Request bodies are decoded like Go's `encoding/json` into `structs.Session`: field names
//! match case-insensitively, unknown fields are ignored, `null` leaves a string unchanged and
//! empties a list, and `LockDelay` follows `Session.UnmarshalJSON`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use consul_kv_proto::session::wire::{CreateResponse, ServiceCheck};
use http::StatusCode;
use serde_json::Value;

use crate::blocking::{self, Run, Target};
use crate::go;
use crate::gojson::{field_error, lower_fields};
use crate::reply::{json, text, Resp};
use crate::request::{Authz, BodyError, Ctx};
use crate::state::{Behavior, SessionRec};

/// The agent's only check.
pub(crate) const SERF_HEALTH: &str = "serfHealth";
const LOCK_DELAY_MIN_THRESHOLD: i128 = 1000;
const TTL_MIN: i128 = 10_000_000_000;
const TTL_MAX: i128 = 24 * 3600 * 1_000_000_000;

fn internal(msg: impl Into<String>) -> Resp {
    text(StatusCode::INTERNAL_SERVER_ERROR, msg)
}

fn bad(msg: impl Into<String>) -> Resp {
    text(StatusCode::BAD_REQUEST, msg)
}

fn type_err(v: &Value, field: &str, go_type: &str) -> String {
    field_error(v, &format!("Session.{field}"), go_type)
}

fn string_field(m: &HashMap<String, Value>, field: &str, out: &mut String) -> Result<(), String> {
    match m.get(&field.to_ascii_lowercase()) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => {
            s.clone_into(out);
            Ok(())
        }
        Some(v) => Err(type_err(v, field, "string")),
    }
}

fn strings_field(
    m: &HashMap<String, Value>,
    field: &str,
    out: &mut Option<Vec<String>>,
) -> Result<(), String> {
    match m.get(&field.to_ascii_lowercase()) {
        None => Ok(()),
        Some(Value::Null) => {
            *out = None;
            Ok(())
        }
        Some(Value::Array(items)) => {
            let mut v = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => v.push(s.clone()),
                    other => return Err(type_err(other, field, "string")),
                }
            }
            *out = Some(v);
            Ok(())
        }
        Some(v) => Err(type_err(v, field, "[]string")),
    }
}

/// What a create body asks for.
#[derive(Debug)]
struct CreateArgs {
    name: String,
    node: String,
    checks: Option<Vec<String>>,
    node_checks: Option<Vec<String>>,
    service_checks: Option<Vec<ServiceCheck>>,
    lock_delay: i128,
    behavior: String,
    ttl: String,
}

fn decode_create(body: &[u8], args: &mut CreateArgs) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Some(m) = lower_fields(v, "structs.Session")? else {
        return Ok(());
    };
    string_field(&m, "Name", &mut args.name)?;
    string_field(&m, "Node", &mut args.node)?;
    string_field(&m, "Behavior", &mut args.behavior)?;
    string_field(&m, "TTL", &mut args.ttl)?;
    strings_field(&m, "Checks", &mut args.checks)?;
    strings_field(&m, "NodeChecks", &mut args.node_checks)?;
    match m.get("servicechecks") {
        None => {}
        Some(Value::Null) => args.service_checks = None,
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                let Some(c) = lower_fields(item.clone(), "structs.ServiceCheck")? else {
                    continue;
                };
                let mut id = String::new();
                string_field(&c, "ID", &mut id)?;
                let mut sc = ServiceCheck::new(id);
                string_field(&c, "Namespace", &mut sc.namespace)?;
                out.push(sc);
            }
            args.service_checks = Some(out);
        }
        Some(v) => return Err(type_err(v, "ServiceChecks", "[]structs.ServiceCheck")),
    }
    // Session.UnmarshalJSON.
    if let Some(ld) = m.get("lockdelay") {
        let dur: Option<i128> = match ld {
            Value::Null => None,
            Value::String(s) => Some(go::parse_duration(s)?),
            Value::Number(n) => Some(n.as_f64().map_or(0, |f| f as i128)),
            _ => Some(0),
        };
        if let Some(mut d) = dur {
            if d < LOCK_DELAY_MIN_THRESHOLD {
                d = d.saturating_mul(1_000_000_000);
            }
            args.lock_delay = d;
        }
    }
    Ok(())
}

/// `PUT /v1/session/create`.
pub(crate) async fn create(mut ctx: Ctx) -> Resp {
    let opts = ctx.basic_opts();
    if let Err(r) = ctx.check_ent_meta() {
        return r;
    }
    let node_name = ctx.shared.cfg.node_name.clone();
    let mut args = CreateArgs {
        name: String::new(),
        node: node_name.clone(),
        checks: Some(vec![SERF_HEALTH.to_owned()]),
        node_checks: Some(vec![SERF_HEALTH.to_owned()]),
        service_checks: None,
        lock_delay: 15_000_000_000,
        behavior: "release".to_owned(),
        ttl: String::new(),
    };
    let body = match ctx.read_body(ctx.shared.cfg.kv_max_value_size).await {
        Ok(b) => b,
        Err(BodyError::TooLarge(n)) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body({n} bytes) too large"),
            )
        }
        Err(BodyError::Failed) => return bad("Request decode failed: unexpected EOF"),
    };
    if !body.is_empty() {
        if let Err(e) = decode_create(&body, &mut args) {
            return bad(format!("Request decode failed: {e}"));
        }
    }
    // fixupEmptySessionChecks.
    if args.checks.as_ref().is_none_or(Vec::is_empty) {
        args.node_checks = None;
    } else if args.checks.as_deref() == Some(&[SERF_HEALTH.to_owned()][..])
        || args.node_checks.as_ref().is_none_or(Vec::is_empty)
    {
        args.checks = None;
    }

    let shared = &ctx.shared;
    let dc = match shared.route_dc(&opts, false).await {
        Ok(dc) => dc,
        Err(r) => return r,
    };
    let az = match shared.authz(&opts.token) {
        Ok(a) => a,
        Err(r) => return r,
    };
    // Session.Apply.
    if args.node.is_empty() {
        return internal("Must provide Node");
    }
    if az == Authz::Anonymous {
        return text(StatusCode::FORBIDDEN, "Permission denied");
    }
    let behavior = match args.behavior.as_str() {
        "" | "release" => Behavior::Release,
        "delete" => Behavior::Delete,
        other => return internal(format!("Invalid Behavior setting '{other}'")),
    };
    let mut ttl_dur = None;
    if !args.ttl.is_empty() {
        let ttl = match go::parse_duration(&args.ttl) {
            Ok(t) => t,
            Err(e) => return internal(format!("Session TTL '{}' invalid: {e}", args.ttl)),
        };
        if ttl != 0 && !(TTL_MIN..=TTL_MAX).contains(&ttl) {
            return internal(format!(
                "Invalid Session TTL '{ttl}', must be between [10s=24h0m0s]"
            ));
        }
        if ttl > 0 {
            ttl_dur = Some(Duration::from_nanos(u64::try_from(ttl).unwrap_or(0)));
        }
    }
    // The state store's session checks (validateSessionChecksTxn).
    if args.node != node_name {
        return internal("apply failed: Missing node registration");
    }
    let node_checks = args
        .checks
        .iter()
        .flatten()
        .chain(args.node_checks.iter().flatten());
    for check in node_checks {
        if check != SERF_HEALTH {
            return internal(format!(
                "apply failed: Missing check '{check}' registration"
            ));
        }
    }
    // The agent's node has no services, so no service check exists.
    if let Some(check) = args.service_checks.iter().flatten().next() {
        return internal(format!(
            "apply failed: Missing check '{}' registration",
            check.id
        ));
    }
    let rec = SessionRec {
        id: shared.uuid(),
        name: args.name,
        node: args.node,
        lock_delay: Duration::from_nanos(u64::try_from(args.lock_delay.max(0)).unwrap_or(u64::MAX)),
        behavior,
        ttl: args.ttl,
        ttl_dur,
        node_checks: args.node_checks,
        service_checks: args.service_checks,
        create_index: 0,
        modify_index: 0,
        expires: None,
    };
    let now = Instant::now();
    let id = shared.write(dc, |st, ch| st.session_create(rec, now, ch));
    json(StatusCode::OK, &CreateResponse { id }, opts.pretty)
}

fn session_id<'a>(ctx: &'a Ctx, prefix: &str) -> &'a str {
    ctx.path.strip_prefix(prefix).unwrap_or("")
}

/// `PUT /v1/session/destroy/<id>`.
pub(crate) async fn destroy(ctx: Ctx) -> Resp {
    let opts = ctx.basic_opts();
    if let Err(r) = ctx.check_ent_meta() {
        return r;
    }
    let id = session_id(&ctx, "/v1/session/destroy/").to_owned();
    if id.is_empty() {
        return bad("Missing session");
    }
    let shared = &ctx.shared;
    let dc = match shared.route_dc(&opts, false).await {
        Ok(dc) => dc,
        Err(r) => return r,
    };
    let az = match shared.authz(&opts.token) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if az == Authz::Anonymous && dc.lock().session(&id).is_some() {
        return text(StatusCode::FORBIDDEN, "Permission denied");
    }
    let now = Instant::now();
    shared.write(dc, |st, ch| st.session_destroy(&id, now, ch));
    json(StatusCode::OK, &true, opts.pretty)
}

/// `PUT /v1/session/renew/<id>`.
pub(crate) async fn renew(ctx: Ctx) -> Resp {
    let opts = ctx.basic_opts();
    if let Err(r) = ctx.check_ent_meta() {
        return r;
    }
    let id = session_id(&ctx, "/v1/session/renew/").to_owned();
    if id.is_empty() {
        return bad("Missing session");
    }
    let shared = &ctx.shared;
    let dc = match shared.route_dc(&opts, false).await {
        Ok(dc) => dc,
        Err(r) => return r,
    };
    let az = match shared.authz(&opts.token) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if az == Authz::Anonymous && dc.lock().session(&id).is_some() {
        return text(StatusCode::FORBIDDEN, "Permission denied");
    }
    let renewed = dc.lock().session_renew(&id, Instant::now());
    match renewed {
        Some(s) => json(StatusCode::OK, &[s.to_wire()], opts.pretty),
        None => text(
            StatusCode::NOT_FOUND,
            format!("Session id '{id}' not found"),
        ),
    }
}

enum Which<'a> {
    Info(&'a str),
    Node(&'a str),
    List,
}

async fn read(ctx: &Ctx, which: Which<'_>) -> Resp {
    let opts = match ctx.parse_opts() {
        Ok(o) => o,
        Err(r) => return r,
    };
    if let Err(r) = ctx.check_ent_meta() {
        return r;
    }
    match which {
        Which::Info("") => return bad("Missing session"),
        Which::Node("") => return bad("Missing node name"),
        _ => {}
    }
    let shared = &ctx.shared;
    let dc = match shared.route_dc(&opts, true).await {
        Ok(dc) => dc,
        Err(r) => return r,
    };
    let allowed = match shared.authz(&opts.token) {
        Ok(a) => a == Authz::Allow,
        Err(r) => return r,
    };
    let info = matches!(which, Which::Info(_));
    let run = blocking::query(
        &dc.registry,
        Target::Sessions,
        opts.index,
        shared.read_deadline(&opts),
        info,
        || {
            let st = dc.lock();
            let value: Vec<_> = match &which {
                Which::Info(id) => st.session(id).map(|s| s.to_wire()).into_iter().collect(),
                Which::Node(n) => st
                    .sessions()
                    .filter(|s| s.node == *n)
                    .map(|s| s.to_wire())
                    .collect(),
                Which::List => st.sessions().map(|s| s.to_wire()).collect(),
            };
            let value = if allowed { value } else { Vec::new() };
            Run {
                index: st.sessions_index(),
                not_found: value.is_empty(),
                value,
            }
        },
    )
    .await;
    let mut r = json(StatusCode::OK, &run.value, opts.pretty);
    shared.meta(&opts, run.index).apply(&mut r);
    r
}

/// `GET /v1/session/info/<id>`.
pub(crate) async fn info(ctx: Ctx) -> Resp {
    let id = session_id(&ctx, "/v1/session/info/");
    read(&ctx, Which::Info(id)).await
}

/// `GET /v1/session/node/<node>`.
pub(crate) async fn node(ctx: Ctx) -> Resp {
    let node = session_id(&ctx, "/v1/session/node/");
    read(&ctx, Which::Node(node)).await
}

/// `GET /v1/session/list`.
pub(crate) async fn list(ctx: Ctx) -> Resp {
    read(&ctx, Which::List).await
}
