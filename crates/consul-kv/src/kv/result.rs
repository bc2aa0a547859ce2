//! What KV reads return: [`Key`] (one key with its meta), [`RawValue`], [`Items`] and [`Keys`].
//!
//! Each carries the [`ConsulMeta`] of the read (`.consul()`, aioconsul's name for it): the
//! index to block on and, for one key, the CAS id.

use std::ops::Deref;

use bytes::Bytes;
use consul_kv_proto::{Cas, Index, KvPair, QueryMeta};

use crate::meta::ConsulMeta;

/// What every list result ([`Items`], [`Keys`], [`SessionList`](crate::SessionList)) has: a
/// constructor from the read, the meta, `into_vec`, `Deref` to the slice, and iteration.
macro_rules! list_result_impls {
    ($ty:ident, $item:ty, $field:ident) => {
        impl $ty {
            pub(crate) fn new($field: Vec<$item>, query: consul_kv_proto::QueryMeta) -> Self {
                Self {
                    $field,
                    meta: $crate::ConsulMeta::for_list(query),
                }
            }

            /// The meta of the read.
            pub fn consul(&self) -> &$crate::ConsulMeta {
                &self.meta
            }

            /// The entries, owned.
            pub fn into_vec(self) -> Vec<$item> {
                self.$field
            }
        }

        impl std::ops::Deref for $ty {
            type Target = [$item];
            fn deref(&self) -> &[$item] {
                &self.$field
            }
        }

        impl IntoIterator for $ty {
            type Item = $item;
            type IntoIter = std::vec::IntoIter<$item>;
            fn into_iter(self) -> Self::IntoIter {
                self.$field.into_iter()
            }
        }

        impl<'a> IntoIterator for &'a $ty {
            type Item = &'a $item;
            type IntoIter = std::slice::Iter<'a, $item>;
            fn into_iter(self) -> Self::IntoIter {
                self.$field.iter()
            }
        }
    };
}
pub(crate) use list_result_impls;

/// One key as read by [`Kv::get`](crate::Kv::get): the [`KvPair`] (value bytes, flags, indexes, session) and
/// the [`ConsulMeta`] of the read.
///
/// Derefs to [`KvPair`], so `key.value`, `key.flags`, `key.session` work directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pair: KvPair,
    meta: ConsulMeta,
}

impl Key {
    /// Pairs a [`KvPair`] with the meta of the read that returned it.
    pub fn new(pair: KvPair, query: QueryMeta) -> Self {
        let meta = match Index::new_nonzero(pair.modify_index) {
            Some(i) => ConsulMeta::for_key(query, i),
            None => ConsulMeta::for_list(query),
        };
        Self { pair, meta }
    }

    /// The meta: the modify index (the CAS id), the last index and the leader information.
    /// Pass it to `.cas(..)`.
    pub fn consul(&self) -> &ConsulMeta {
        &self.meta
    }

    /// The pair.
    pub fn pair(&self) -> &KvPair {
        &self.pair
    }

    /// The value as bytes (empty when Consul stores none).
    pub fn bytes(&self) -> &[u8] {
        self.pair.value_bytes()
    }

    /// The pair, without the meta.
    pub fn into_pair(self) -> KvPair {
        self.pair
    }

    /// The pair and the meta.
    pub fn into_parts(self) -> (KvPair, ConsulMeta) {
        (self.pair, self.meta)
    }
}

impl Deref for Key {
    type Target = KvPair;
    fn deref(&self) -> &KvPair {
        &self.pair
    }
}

impl From<&Key> for Cas {
    /// A CAS on the key's modify index.
    fn from(k: &Key) -> Self {
        Self::from(&k.pair)
    }
}

impl From<&Key> for Index {
    /// The key's modify index.
    fn from(k: &Key) -> Self {
        Self::from(&k.pair)
    }
}

/// The raw value of one key, from [`Kv::raw`](crate::Kv::raw), with the meta. Derefs to the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    value: Bytes,
    meta: ConsulMeta,
}

impl RawValue {
    pub(crate) fn new(value: Bytes, query: QueryMeta) -> Self {
        Self {
            value,
            meta: ConsulMeta::for_list(query),
        }
    }

    /// The meta of the read.
    pub fn consul(&self) -> &ConsulMeta {
        &self.meta
    }

    /// The value.
    pub fn bytes(&self) -> &Bytes {
        &self.value
    }

    /// The value.
    pub fn into_bytes(self) -> Bytes {
        self.value
    }
}

impl Deref for RawValue {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.value
    }
}

/// Every entry under a prefix, from [`Kv::items`](crate::Kv::items), with the meta of the read.
///
/// Derefs to `[KvPair]` and iterates over the pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Items {
    entries: Vec<KvPair>,
    meta: ConsulMeta,
}

list_result_impls!(Items, KvPair, entries);

impl Items {
    /// The entry for `key`, if listed.
    pub fn get(&self, key: &str) -> Option<&KvPair> {
        self.entries.iter().find(|p| p.key == key)
    }

    /// The entries, in Consul's order (sorted by key).
    pub fn entries(&self) -> &[KvPair] {
        &self.entries
    }
}

/// Key names under a prefix, from [`Kv::keys`](crate::Kv::keys), with the meta of the read.
///
/// Derefs to `[String]` and iterates over the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    keys: Vec<String>,
    meta: ConsulMeta,
}

list_result_impls!(Keys, String, keys);

impl Keys {
    /// Whether `key` is listed.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }
}
