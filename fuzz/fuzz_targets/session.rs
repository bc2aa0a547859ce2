//! Fuzzes the session parsers.
#![no_main]
mod common;
use consul_kv_proto::session::{CreateSession, ListSessions, ReadSession, RenewSession};
use consul_kv_proto::{Operation, SessionId};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let (Some(r), Ok(id)) = (common::response(data), SessionId::new("s")) {
        let _ = CreateSession::new().parse(r.clone());
        let _ = RenewSession::new(id.clone()).parse(r.clone());
        let _ = ReadSession::new(id).parse(r.clone());
        let _ = ListSessions::new().parse(r);
    }
});
