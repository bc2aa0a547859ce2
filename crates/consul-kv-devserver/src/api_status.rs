//! `/v1/status/leader`, `/v1/status/peers` and `/v1/agent/self`: the few non-KV endpoints
//! clients probe.

use http::StatusCode;

use crate::reply::{json, text, Resp};
use crate::request::{Authz, Ctx};

pub(crate) async fn status_leader(ctx: Ctx) -> Resp {
    let opts = ctx.basic_opts();
    if ctx.shared.dc(&opts.dc).is_none() {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter");
    }
    let leader = if ctx.shared.has_leader() {
        "127.0.0.1:8300"
    } else {
        ""
    };
    json(StatusCode::OK, leader, opts.pretty)
}

pub(crate) async fn status_peers(ctx: Ctx) -> Resp {
    let opts = ctx.basic_opts();
    if ctx.shared.dc(&opts.dc).is_none() {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter");
    }
    json(StatusCode::OK, &["127.0.0.1:8300"], opts.pretty)
}

pub(crate) fn agent_self(ctx: Ctx) -> Resp {
    let opts = ctx.basic_opts();
    match ctx.shared.authz(&opts.token) {
        Err(r) => return r,
        Ok(Authz::Anonymous) => return text(StatusCode::FORBIDDEN, "Permission denied"),
        Ok(Authz::Allow) => {}
    }
    let s = &ctx.shared;
    let dc = s.default_dc().map(|d| d.name.clone()).unwrap_or_default();
    let body = serde_json::json!({
        "Config": {
            "Datacenter": dc,
            "PrimaryDatacenter": dc,
            "NodeName": s.cfg.node_name,
            "NodeID": s.node_id,
            "Revision": "devserver",
            "Server": true,
            "Version": crate::CONSUL_VERSION,
            "DevServer": true,
        },
        "Member": {
            "Name": s.cfg.node_name,
            "Addr": "127.0.0.1",
            "Port": 8301,
            "Tags": { "dc": dc, "role": "consul", "build": crate::CONSUL_VERSION },
            "Status": 1,
        },
        "Meta": {},
        "Stats": {},
    });
    json(StatusCode::OK, &body, opts.pretty)
}
