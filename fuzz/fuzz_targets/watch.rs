//! Fuzzes the blocking-query state machine with a sequence of responses.
#![no_main]
mod common;
use std::time::{Duration, Instant};
use consul_kv_proto::{kv::ListItems, RequestContext, WatchMachine, WatchOptions};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut w = WatchMachine::new(ListItems::new("p/"), WatchOptions::default());
    let cx = RequestContext::new();
    let mut now = Instant::now();
    for chunk in data.split(|&b| b == 0xff) {
        let _ = w.poll_request(now, &cx);
        match common::response(chunk) {
            Some(r) => { let _ = w.handle_response(now, r); }
            None => w.handle_failure(now),
        }
        now = w.poll_timeout().unwrap_or(now) + Duration::from_millis(1);
    }
});
