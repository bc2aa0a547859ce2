//! Fuzzes the single-key and raw GET parsers.
#![no_main]
mod common;
use consul_kv_proto::{kv::{Get, GetRaw}, Operation};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(r) = common::response(data) {
        let _ = Get::new("k").parse(r.clone());
        let _ = GetRaw::new("k").parse(r);
    }
});
