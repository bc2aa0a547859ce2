//! [`IntoValue`]: what a KV value can be written from.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

/// Anything a KV value can be made from: text or bytes, owned or borrowed.
///
/// Values are bytes ([`Bytes`]) and are never forced to UTF-8. Owned buffers (`Vec<u8>`,
/// `String`, `Bytes`) are taken without a copy; borrowed ones (`&str`, `&String`, `&[u8]`,
/// `&Vec<u8>`, `&Bytes`) are copied once (a `&Bytes` only bumps a reference count).
///
/// `Bytes` alone only converts from `&'static str`, so `set("k", &name)` with a `String` would
/// not compile; every write in this workspace takes `impl IntoValue` instead.
///
/// ```
/// use bytes::Bytes;
/// use consul_kv_proto::IntoValue;
///
/// let name = String::from("blue");
/// assert_eq!((&name).into_value(), Bytes::from("blue"));
/// assert_eq!(name.as_str().into_value(), Bytes::from("blue"));
/// assert_eq!(vec![0xff_u8, 0].into_value(), Bytes::from(vec![0xff_u8, 0]));
/// assert_eq!((&[1_u8, 2][..]).into_value(), Bytes::from(vec![1_u8, 2]));
/// ```
pub trait IntoValue {
    /// The value as bytes.
    fn into_value(self) -> Bytes;
}

impl IntoValue for Bytes {
    fn into_value(self) -> Bytes {
        self
    }
}

impl IntoValue for &Bytes {
    fn into_value(self) -> Bytes {
        self.clone()
    }
}

impl IntoValue for BytesMut {
    fn into_value(self) -> Bytes {
        self.freeze()
    }
}

impl IntoValue for Vec<u8> {
    fn into_value(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoValue for &Vec<u8> {
    fn into_value(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoValue for Box<[u8]> {
    fn into_value(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoValue for &[u8] {
    fn into_value(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> IntoValue for [u8; N] {
    fn into_value(self) -> Bytes {
        Bytes::copy_from_slice(&self)
    }
}

impl<const N: usize> IntoValue for &[u8; N] {
    fn into_value(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoValue for String {
    fn into_value(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoValue for &String {
    fn into_value(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl IntoValue for &str {
    fn into_value(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl IntoValue for Cow<'_, str> {
    fn into_value(self) -> Bytes {
        match self {
            Cow::Borrowed(s) => s.into_value(),
            Cow::Owned(s) => s.into_value(),
        }
    }
}

impl IntoValue for Cow<'_, [u8]> {
    fn into_value(self) -> Bytes {
        match self {
            Cow::Borrowed(s) => s.into_value(),
            Cow::Owned(s) => s.into_value(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_gives_the_same_bytes() {
        let s = String::from("héllo");
        let want = Bytes::from("héllo");
        assert_eq!(s.clone().into_value(), want);
        assert_eq!((&s).into_value(), want);
        assert_eq!(s.as_str().into_value(), want);
        assert_eq!(s.as_bytes().into_value(), want);
        assert_eq!(s.as_bytes().to_vec().into_value(), want);
        assert_eq!((&s.as_bytes().to_vec()).into_value(), want);
        assert_eq!(want.clone().into_value(), want);
        assert_eq!((&want).into_value(), want);
        assert_eq!(Cow::Borrowed(s.as_str()).into_value(), want);
        assert_eq!(BytesMut::from(&b"h\xc3\xa9llo"[..]).into_value(), want);
        assert_eq!(b"\xff\x00".into_value(), Bytes::from_static(b"\xff\x00"));
    }
}
