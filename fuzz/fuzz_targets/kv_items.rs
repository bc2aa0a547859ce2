//! Fuzzes the recurse listing parser.
#![no_main]
mod common;
use consul_kv_proto::{kv::ListItems, Operation};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(r) = common::response(data) {
        let _ = ListItems::new("p/").parse(r);
    }
});
