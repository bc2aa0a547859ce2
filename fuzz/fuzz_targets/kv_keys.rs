//! Fuzzes the key listing parser.
#![no_main]
mod common;
use consul_kv_proto::{kv::Keys, Operation};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(r) = common::response(data) {
        let _ = Keys::new("p/").separator("/").parse(r);
    }
});
