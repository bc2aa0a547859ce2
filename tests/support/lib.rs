//! Test support for the consul-kv workspace.
