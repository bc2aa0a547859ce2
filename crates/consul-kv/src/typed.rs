//! Typed values: JSON in and out of keys ([`Kv::get_json`], [`Kv::set_json`],
//! [`Kv::items_json`], [`Key::json`]), with decode errors that name the key.
//!
//! An empty value (Consul stores it as `null`) reads as JSON `null`, so it decodes into an
//! `Option` as `None`.

use std::future::IntoFuture;
use std::marker::PhantomData;

use bytes::Bytes;
use consul_kv_proto::{Cas, Consistency, KvPair};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::kv::{Key, Kv};
use crate::meta::IntoCas;
use crate::scope::BoxFuture;
use crate::tree::TreeMismatch;
use crate::Error;

/// Why a typed read or write failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// A value is not the JSON the type expects.
    #[error("value of key {key:?} does not decode")]
    Decode {
        /// The key.
        key: String,
        /// serde_json's error (line, column, what was expected).
        #[source]
        source: serde_json::Error,
    },
    /// The value could not be encoded as JSON (e.g. a map with non-string keys).
    #[error("value for key {key:?} does not encode as JSON")]
    Encode {
        /// The key.
        key: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The keys under a prefix do not fit the type of [`Kv::tree`].
    #[error("keys under {prefix:?} do not fit the type (at {key:?})")]
    Tree {
        /// The prefix.
        prefix: String,
        /// The key (or the folder, ending in `/`) where decoding failed.
        key: String,
        /// What did not fit.
        #[source]
        source: TreeMismatch,
    },
    /// A Consul call failed.
    #[error("a Consul call failed")]
    Consul(#[from] Error),
}

impl JsonError {
    /// The key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Decode { key, .. } | Self::Encode { key, .. } | Self::Tree { key, .. } => {
                Some(key)
            }
            Self::Consul(_) => None,
        }
    }

    /// Whether repeating the call may succeed (only for Consul call failures).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Consul(e) if e.is_retryable())
    }

    /// The HTTP status Consul answered with, when it answered with an error.
    pub fn status(&self) -> Option<consul_kv_proto::http::StatusCode> {
        match self {
            Self::Consul(e) => e.status(),
            _ => None,
        }
    }
}

/// Decodes `value` (of `key`) as JSON; an empty value is `null`.
pub(crate) fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, JsonError> {
    let value = if value.is_empty() { b"null" } else { value };
    serde_json::from_slice(value).map_err(|source| JsonError::Decode {
        key: key.to_owned(),
        source,
    })
}

impl Key {
    /// Decodes the value as JSON (an empty value is `null`).
    ///
    /// ```
    /// # fn demo(key: consul_kv::Key) -> Result<(), consul_kv::JsonError> {
    /// let port: u16 = key.json()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`JsonError::Decode`], naming the key.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, JsonError> {
        decode(&self.key, self.bytes())
    }
}

/// One entry of [`Kv::items_json`]: the key, its decoded value, and what a CAS needs.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonItem<T> {
    /// The key.
    pub key: String,
    /// The decoded value.
    pub value: T,
    /// The flags.
    pub flags: u64,
    /// The modify index (the CAS id).
    pub modify_index: u64,
}

impl<T> JsonItem<T> {
    /// A CAS on this entry's modify index, for [`SetJsonRequest::cas`].
    pub fn cas(&self) -> Cas {
        consul_kv_proto::Index::new_nonzero(self.modify_index).map_or(Cas::Absent, Cas::ModifyIndex)
    }
}

impl Kv {
    /// Reads one key and decodes its value as JSON into `T`; `None` when the key does not
    /// exist.
    ///
    /// ```no_run
    /// # async fn demo(kv: consul_kv::Kv) -> Result<(), consul_kv::JsonError> {
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Limits { rps: u32, burst: u32 }
    ///
    /// kv.set_json("app/limits", &Limits { rps: 100, burst: 20 }).await?;
    /// let limits: Option<Limits> = kv.get_json("app/limits").await?;
    /// assert_eq!(limits.map(|l| l.rps), Some(100));
    ///
    /// // With check-and-set, as for `set`:
    /// if let Some(key) = kv.get("app/limits").await? {
    ///     let mut l: Limits = key.json()?;
    ///     l.burst += 10;
    ///     let applied = kv.set_json("app/limits", &l).cas(key.consul()).await?;
    ///     println!("applied: {applied}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn get_json<T: DeserializeOwned>(&self, key: impl Into<String>) -> GetJsonRequest<T> {
        GetJsonRequest {
            kv: self.clone(),
            key: key.into(),
            consistency: Consistency::Default,
            _t: PhantomData,
        }
    }

    /// Encodes `value` as JSON and writes it to `key`; resolves to `true` when applied. Takes
    /// [`cas`](SetJsonRequest::cas) and [`flags`](SetJsonRequest::flags) like [`Kv::set`].
    pub fn set_json<T: Serialize + ?Sized>(
        &self,
        key: impl Into<String>,
        value: &T,
    ) -> SetJsonRequest {
        let key = key.into();
        let body = serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|source| JsonError::Encode {
                key: key.clone(),
                source,
            });
        SetJsonRequest {
            kv: self.clone(),
            key,
            body,
            cas: None,
            flags: None,
        }
    }

    /// Every entry under a byte prefix, each value decoded as JSON into `T`, in key order.
    /// Folder keys (ending in `/`, without a value) are skipped.
    ///
    /// ```no_run
    /// # async fn demo(kv: consul_kv::Kv) -> Result<(), consul_kv::JsonError> {
    /// #[derive(serde::Deserialize)]
    /// struct Feature { enabled: bool }
    /// for item in kv.items_json::<Feature>("features/").await? {
    ///     println!("{}: {}", item.key, item.value.enabled);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn items_json<T: DeserializeOwned>(
        &self,
        prefix: impl Into<String>,
    ) -> ItemsJsonRequest<T> {
        ItemsJsonRequest {
            kv: self.clone(),
            prefix: prefix.into(),
            consistency: Consistency::Default,
            _t: PhantomData,
        }
    }
}

/// A [`Kv::get_json`] request. Resolves to `Option<T>`.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct GetJsonRequest<T> {
    kv: Kv,
    key: String,
    consistency: Consistency,
    _t: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + Send + 'static> GetJsonRequest<T> {
    /// The consistency of the read.
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// Sends the request.
    ///
    /// # Errors
    /// [`JsonError::Decode`] naming the key; [`JsonError::Consul`].
    pub async fn send(self) -> Result<Option<T>, JsonError> {
        let found = self.kv.get(self.key).consistency(self.consistency).await?;
        found.map(|k| k.json()).transpose()
    }
}

impl<T: DeserializeOwned + Send + 'static> IntoFuture for GetJsonRequest<T> {
    type Output = Result<Option<T>, JsonError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A [`Kv::set_json`] request. Resolves to `bool`, like [`Kv::set`].
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct SetJsonRequest {
    kv: Kv,
    key: String,
    body: Result<Bytes, JsonError>,
    cas: Option<Cas>,
    flags: Option<u64>,
}

impl SetJsonRequest {
    /// Makes this a check-and-set, as [`cas`](crate::kv::SetRequest::cas) on [`Kv::set`]: a
    /// `&ConsulMeta`, `&Key`, `Option<&Key>`, `&KvPair`, an `Index`, or `Cas::Absent`
    /// (create only).
    pub fn cas(mut self, cas: impl IntoCas) -> Self {
        self.cas = Some(cas.into_cas());
        self
    }

    /// The flags stored with the value.
    pub fn flags(mut self, flags: u64) -> Self {
        self.flags = Some(flags);
        self
    }

    /// Sends the request.
    ///
    /// # Errors
    /// [`JsonError::Encode`] (nothing sent); [`JsonError::Consul`].
    pub async fn send(self) -> Result<bool, JsonError> {
        let body = self.body?;
        let mut set = self.kv.set(self.key, body);
        if let Some(cas) = self.cas {
            set = set.cas(cas);
        }
        if let Some(flags) = self.flags {
            set = set.flags(flags);
        }
        Ok(set.await?)
    }
}

impl IntoFuture for SetJsonRequest {
    type Output = Result<bool, JsonError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A [`Kv::items_json`] request. Resolves to `Vec<JsonItem<T>>`.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct ItemsJsonRequest<T> {
    kv: Kv,
    prefix: String,
    consistency: Consistency,
    _t: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + Send + 'static> ItemsJsonRequest<T> {
    /// The consistency of the read.
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// Sends the request.
    ///
    /// # Errors
    /// [`JsonError::Decode`] naming the first key that does not decode; [`JsonError::Consul`].
    pub async fn send(self) -> Result<Vec<JsonItem<T>>, JsonError> {
        let items = self
            .kv
            .items(self.prefix)
            .consistency(self.consistency)
            .await?;
        items
            .into_iter()
            .filter(|p| !is_folder(p))
            .map(|p| {
                Ok(JsonItem {
                    value: decode(&p.key, p.value_bytes())?,
                    key: p.key,
                    flags: p.flags,
                    modify_index: p.modify_index,
                })
            })
            .collect()
    }
}

impl<T: DeserializeOwned + Send + 'static> IntoFuture for ItemsJsonRequest<T> {
    type Output = Result<Vec<JsonItem<T>>, JsonError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A folder key: ends in `/` and holds no value.
pub(crate) fn is_folder(p: &KvPair) -> bool {
    p.key.ends_with('/') && p.value_bytes().is_empty()
}
