//! Fuzzes key encoding: every valid UTF-8 key round-trips through the encoder.
#![no_main]
use consul_kv_proto::{decode_path, encode_key};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(key) = std::str::from_utf8(data) {
        assert_eq!(decode_path(&encode_key(key)).as_deref(), Some(key));
    }
});
