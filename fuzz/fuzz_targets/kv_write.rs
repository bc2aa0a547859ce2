//! Fuzzes the PUT/DELETE true/false parsers.
#![no_main]
mod common;
use consul_kv_proto::{kv::{Delete, Set}, Operation};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(r) = common::response(data) {
        let _ = Set::new("k", "v").parse(r.clone());
        let _ = Delete::new("k").parse(r);
    }
});
