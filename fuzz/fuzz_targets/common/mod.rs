//! Turns fuzzer bytes into an `http::Response`: 2 bytes of status, then `name: value` header
//! lines up to a blank line, then the body.

use bytes::Bytes;

pub fn response(data: &[u8]) -> Option<http::Response<Bytes>> {
    if data.len() < 2 {
        return None;
    }
    let status = 100 + u16::from_le_bytes([data[0], data[1]]) % 500;
    let rest = &data[2..];
    let split = rest.windows(2).position(|w| w == b"\n\n").unwrap_or(0);
    let (head, body) = rest.split_at(split);
    let body = body.get(2.min(body.len())..).unwrap_or_default();
    let mut b = http::Response::builder().status(status);
    for line in head.split(|&c| c == b'\n') {
        if let Some(colon) = line.iter().position(|&c| c == b':') {
            let (k, v) = line.split_at(colon);
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k),
                http::HeaderValue::from_bytes(v.get(1..).unwrap_or_default()),
            ) {
                b = b.header(k, v);
            }
        }
    }
    b.body(Bytes::copy_from_slice(body)).ok()
}
