//! Fuzzes the key listing parser.
#![no_main]
mod common;
use consul_kv_proto::{kv::ListKeys, Operation};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(r) = common::response(data) {
        let _ = ListKeys::new("p/").separator("/").parse(r);
    }
});
