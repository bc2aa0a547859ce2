//! `PUT /v1/txn`: `agent/txn_endpoint.go`, `agent/consul/txn_endpoint.go`,
//! `agent/consul/state/txn.go`.

use std::collections::HashMap;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use consul_kv_proto::txn::wire::{TxnResponse, TxnResult};
use consul_kv_proto::txn::Verb;
use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use crate::go::quote;
use crate::gojson::{described, field_error, lower_fields};
use crate::reply::{json, text, Meta, Resp};
use crate::request::{Authz, BodyError, Ctx};
use crate::state::TxnKv;

/// Consul's `maxTxnOps` (since 1.14).
pub(crate) const MAX_TXN_OPS: usize = 128;
/// Consul's default `txn_max_req_len`.
const TXN_MAX_REQ_LEN: usize = 512 * 1024;
const TXN_DOCS: &str =
    "https://developer.hashicorp.com/docs/agent/config/config-files#txn_max_req_len";

enum Op {
    Kv(TxnKv),
    Unsupported(&'static str),
}

fn field_err(v: &Value, field: &str, go_type: &str) -> String {
    field_error(v, &format!("KVTxnOp.KV.{field}"), go_type)
}

fn str_field(m: &HashMap<String, Value>, field: &str) -> Result<String, String> {
    match m.get(&field.to_ascii_lowercase()) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(field_err(v, field, "string")),
    }
}

fn u64_field(m: &HashMap<String, Value>, field: &str) -> Result<u64, String> {
    match m.get(&field.to_ascii_lowercase()) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| field_err(&Value::Number(n.clone()), field, "uint64")),
        Some(v) => Err(field_err(v, field, "uint64")),
    }
}

fn decode_op(v: Value) -> Result<Option<Op>, String> {
    let Some(m) = lower_fields(v, "api.TxnOp")? else {
        return Ok(None);
    };
    if let Some(kv) = m.get("kv") {
        let Some(f) = lower_fields(kv.clone(), "api.KVTxnOp")? else {
            return Ok(None);
        };
        let value = match f.get("value") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| match e {
                        base64::DecodeError::InvalidByte(i, _)
                        | base64::DecodeError::InvalidLastSymbol(i, _) => {
                            format!("illegal base64 data at input byte {i}")
                        }
                        _ => format!("illegal base64 data at input byte {}", s.len()),
                    })?,
            )),
            Some(v) => return Err(field_err(v, "Value", "[]uint8")),
        };
        return Ok(Some(Op::Kv(TxnKv {
            verb: str_field(&f, "Verb")?,
            key: str_field(&f, "Key")?,
            value,
            flags: u64_field(&f, "Flags")?,
            index: u64_field(&f, "Index")?,
            session: str_field(&f, "Session")?,
        })));
    }
    for (name, what) in [("node", "Node"), ("service", "Service"), ("check", "Check")] {
        if m.get(name).is_some_and(|v| !v.is_null()) {
            return Ok(Some(Op::Unsupported(what)));
        }
    }
    Ok(None)
}

/// The read-only answer: the response plus the embedded `QueryMeta` fields.
#[derive(Serialize)]
struct ReadResponse<'a> {
    #[serde(flatten)]
    inner: &'a TxnResponse,
    #[serde(rename = "Index")]
    index: u64,
    #[serde(rename = "LastContact")]
    last_contact: u64,
    #[serde(rename = "KnownLeader")]
    known_leader: bool,
}

/// `PUT /v1/txn`.
pub(crate) async fn txn(mut ctx: Ctx) -> Resp {
    let opts = ctx.basic_opts();
    let max_kv = ctx.shared.cfg.kv_max_value_size;
    let max_len = TXN_MAX_REQ_LEN.max(max_kv);
    let body = match ctx.read_body(max_len).await {
        Ok(b) => b,
        Err(BodyError::TooLarge(n)) => {
            let declared = ctx.headers.contains_key(http::header::CONTENT_LENGTH);
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                if declared {
                    format!(
                        "Request body({n} bytes) too large, max size: {max_len} bytes. See {TXN_DOCS}."
                    )
                } else {
                    format!("Request body too large, max size: {max_len} bytes. See {TXN_DOCS}.")
                },
            );
        }
        Err(BodyError::Failed) => {
            return text(
                StatusCode::BAD_REQUEST,
                "Failed to parse body: unexpected EOF",
            )
        }
    };
    let parse_err = |e: String| {
        text(
            StatusCode::BAD_REQUEST,
            format!("Failed to parse body: {e}"),
        )
    };
    let items = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items,
        Ok(Value::Null) => Vec::new(),
        Ok(other) => {
            return parse_err(format!(
                "json: cannot unmarshal {} into Go value of type api.TxnOps",
                described(&other)
            ))
        }
        Err(e) => return parse_err(e.to_string()),
    };
    if items.len() > MAX_TXN_OPS {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Transaction contains too many operations ({} > {MAX_TXN_OPS})",
                items.len()
            ),
        );
    }
    let mut ops = Vec::with_capacity(items.len());
    let mut unsupported = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match decode_op(item) {
            Ok(Some(Op::Kv(op))) => {
                let size = op.value.as_ref().map_or(0, Bytes::len);
                if size > max_kv {
                    return text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "Value for key {} is too large ({size} > {max_kv} bytes)",
                            quote(&op.key)
                        ),
                    );
                }
                ops.push(op);
            }
            Ok(Some(Op::Unsupported(what))) => unsupported.push((i, what)),
            Ok(None) => {}
            Err(e) => return parse_err(e),
        }
    }
    let write = ops
        .iter()
        .any(|o| Verb::from_name(&o.verb).is_some_and(Verb::is_write));
    // The read path goes through `parse()` (consistency, wait); the write path does not.
    let opts = if write {
        opts
    } else {
        match ctx.parse_opts() {
            Ok(o) => o,
            Err(r) => return r,
        }
    };
    let shared = &ctx.shared;
    let dc = match shared.route_dc(&opts, !write).await {
        Ok(dc) => dc,
        Err(r) => return r,
    };
    let allowed = match shared.authz(&opts.token) {
        Ok(a) => a == Authz::Allow,
        Err(r) => return r,
    };
    let result = if unsupported.is_empty() {
        let now = Instant::now();
        shared.write(dc, |st, ch| st.txn(&ops, allowed, write, now, ch))
    } else {
        Err(unsupported
            .into_iter()
            .map(|(i, what)| {
                consul_kv_proto::txn::wire::TxnError::new(
                    i,
                    format!("{what} operations are not supported by the devserver"),
                )
            })
            .collect())
    };
    let (status, resp) = match result {
        Ok(results) => (
            StatusCode::OK,
            TxnResponse::new(
                Some(results.into_iter().map(TxnResult::new).collect()),
                None,
            ),
        ),
        Err(errors) => (StatusCode::CONFLICT, TxnResponse::new(None, Some(errors))),
    };
    if write {
        return json(status, &resp, opts.pretty);
    }
    let meta: Meta = shared.meta(&opts, 0);
    let body = ReadResponse {
        inner: &resp,
        index: 0,
        last_contact: meta.last_contact_ms,
        known_leader: meta.known_leader,
    };
    let mut r = json(status, &body, opts.pretty);
    meta.apply_leader(&mut r);
    r
}
