//! [`ConsulMeta`]: what Consul said about a read, and the CAS id it carries; [`IntoCas`]: what
//! `.cas(..)` accepts.

use std::time::Duration;

use consul_kv_proto::{Cas, Index, KvPair, QueryMeta};

use crate::kv::Key;

/// The meta of a read: what aioconsul's API calls `value.consul`.
///
/// It carries the index to block on, the leader information of the answering server and, for a
/// single key, the key's modify index: the CAS id. Pass it to `.cas(..)` on a write and the write
/// only applies if nobody wrote the key in between.
///
/// ```
/// use consul_kv::{Cas, ConsulMeta, Index, QueryMeta};
///
/// // A meta as `kv.get(..)` returns it for a key last modified at index 42.
/// let meta = ConsulMeta::for_key(QueryMeta::with_index(Index::new(42)), Index::new(42));
/// assert_eq!(Cas::from(&meta), Cas::ModifyIndex(Index::new(42)));
/// assert_eq!(meta.last_index().get(), 42);
/// assert!(meta.known_leader());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulMeta {
    /// The key's modify index when the meta came with one key (`kv.get`); `None` for lists.
    pub modify_index: Option<Index>,
    /// The `X-Consul-*` headers of the read.
    pub query: QueryMeta,
}

impl ConsulMeta {
    /// The meta of a list read (`items`, `keys`, sessions).
    pub fn for_list(query: QueryMeta) -> Self {
        Self {
            modify_index: None,
            query,
        }
    }

    /// The meta of a single key read with its modify index.
    pub fn for_key(query: QueryMeta, modify_index: Index) -> Self {
        Self {
            modify_index: Some(modify_index),
            query,
        }
    }

    /// `X-Consul-Index`: the index to block on for the next change.
    pub fn last_index(&self) -> Index {
        self.query.last_index
    }

    /// `X-Consul-KnownLeader`: whether the answering server knew a leader.
    pub fn known_leader(&self) -> bool {
        self.query.known_leader
    }

    /// `X-Consul-LastContact`: how long since the answering server heard from the leader.
    pub fn last_contact(&self) -> Duration {
        self.query.last_contact
    }

    /// The key's modify index, for a single key.
    pub fn modify_index(&self) -> Option<Index> {
        self.modify_index
    }

    /// The CAS id, as aioconsul's API defines it: the key's modify index for a single key, else
    /// the read's last index.
    pub fn cas_index(&self) -> Index {
        self.modify_index.unwrap_or(self.query.last_index)
    }
}

impl From<&ConsulMeta> for Cas {
    /// A CAS on [`ConsulMeta::cas_index`].
    fn from(meta: &ConsulMeta) -> Self {
        Self::ModifyIndex(meta.cas_index())
    }
}

impl From<&ConsulMeta> for Index {
    /// [`ConsulMeta::cas_index`]: the CAS id for `delete(..).cas(..)`, and the index to block on
    /// with `.index(..)`.
    fn from(meta: &ConsulMeta) -> Self {
        meta.cas_index()
    }
}

/// What a check-and-set write accepts as its condition (`kv.set(..).cas(..)`,
/// `kv.txn().cas(..)`): whatever a read returned, or an explicit [`Cas`].
///
/// | argument | condition |
/// |---|---|
/// | `Option<&Key>`, `Option<&KvPair>` | `None`: create only ([`Cas::Absent`]); `Some`: that version |
/// | [`&Key`](Key), [`&KvPair`](KvPair) | the entry's modify index |
/// | [`&ConsulMeta`](ConsulMeta) | [`ConsulMeta::cas_index`] |
/// | [`Index`] | that modify index |
/// | [`Cas`] | as given |
///
/// ```
/// use consul_kv::{Cas, Index, IntoCas, Key};
///
/// let absent: Option<&Key> = None; // what `kv.get(..).await?.as_ref()` gives for a missing key
/// assert_eq!(absent.into_cas(), Cas::Absent);
/// assert_eq!(Index::new(7).into_cas(), Cas::ModifyIndex(Index::new(7)));
/// ```
pub trait IntoCas {
    /// The CAS condition.
    fn into_cas(self) -> Cas;
}

impl IntoCas for Cas {
    fn into_cas(self) -> Cas {
        self
    }
}

impl IntoCas for Index {
    fn into_cas(self) -> Cas {
        Cas::ModifyIndex(self)
    }
}

impl IntoCas for &KvPair {
    fn into_cas(self) -> Cas {
        Cas::from(self)
    }
}

impl IntoCas for Option<&KvPair> {
    fn into_cas(self) -> Cas {
        Cas::from(self)
    }
}

impl IntoCas for &Key {
    fn into_cas(self) -> Cas {
        Cas::from(self)
    }
}

impl IntoCas for Option<&Key> {
    fn into_cas(self) -> Cas {
        self.map_or(Cas::Absent, Cas::from)
    }
}

impl IntoCas for &ConsulMeta {
    fn into_cas(self) -> Cas {
        Cas::from(self)
    }
}
