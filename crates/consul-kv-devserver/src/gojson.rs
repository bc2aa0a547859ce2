//! Go's `encoding/json` as Consul's request decoding shows it: struct fields match
//! case-insensitively (a later duplicate wins), and type errors carry Go's texts.

use std::collections::HashMap;

use serde_json::Value;

/// The JSON kind as Go names it in `cannot unmarshal X`.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A JSON object with lower-cased field names (Go matches struct fields case-insensitively;
/// a later duplicate wins, as in Go). `None` for `null`.
pub(crate) fn lower_fields(
    v: Value,
    go_type: &str,
) -> Result<Option<HashMap<String, Value>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(
            m.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        )),
        other => Err(format!(
            "json: cannot unmarshal {} into Go value of type {go_type}",
            kind(&other)
        )),
    }
}

/// Go's `UnmarshalTypeError` text for a struct field (`path` as Go prints it, such as
/// `Session.Name` or `KVTxnOp.KV.Flags`); numbers are quoted with their value.
pub(crate) fn field_error(v: &Value, path: &str, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field {path} of type {go_type}",
        described(v)
    )
}

/// The kind, with the value for a number (`number 5`), as Go's decoder reports literals.
pub(crate) fn described(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("number {n}"),
        other => kind(other).to_owned(),
    }
}
