//! Fuzzes the transaction parser (200 and 409 bodies).
#![no_main]
mod common;
use consul_kv_proto::{txn::{Txn, TxnOp}, Operation};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(r) = common::response(data) {
        let _ = Txn::new(vec![TxnOp::get("k")]).parse(r);
    }
});
