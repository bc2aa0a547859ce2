//! [`Kv::tree`]: a whole prefix decoded as one struct, nested keys as nested fields.
//!
//! The keys under the prefix form a tree split at `/`: `config/app/db/port` under
//! `config/app/` is the field `port` of the field `db`. Each value is read as JSON when it
//! parses as JSON and as a string otherwise, so `5432` fills a `u16`, `true` a `bool`,
//! `{"a":1}` a struct and `hello` a `String`. A `String` field takes the raw text of any value
//! (`5432` gives `"5432"`). A folder whose names are all numbers (`servers/0`, `servers/1`)
//! also fills a `Vec`, in numeric order. Folder keys (ending in `/`, without a value) only
//! make folders exist. Errors name the key (or folder) that did not fit.

use std::collections::BTreeMap;
use std::fmt;
use std::future::IntoFuture;
use std::marker::PhantomData;

use consul_kv_proto::{Consistency, KvPair};
use serde::de::value::StringDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::Deserializer;
use serde_json::Value;

use crate::kv::{Items, Kv};
use crate::scope::BoxFuture;
use crate::typed::JsonError;

/// What did not fit in a [`Kv::tree`] decode (the detail of [`JsonError::Tree`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeMismatch {
    key: Option<String>,
    message: String,
}

impl TreeMismatch {
    /// serde's description, e.g. `invalid type: string "abc", expected u16`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TreeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TreeMismatch {}

impl de::Error for TreeMismatch {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            key: None,
            message: msg.to_string(),
        }
    }
}

impl TreeMismatch {
    fn at(mut self, key: &str) -> Self {
        if self.key.is_none() {
            self.key = Some(key.to_owned());
        }
        self
    }
}

/// One node of the key tree.
#[derive(Debug)]
enum Node {
    /// A key with a value.
    Leaf { key: String, raw: bytes::Bytes },
    /// A folder: `path` is its full key, ending in `/`.
    Dir {
        path: String,
        children: BTreeMap<String, Self>,
    },
}

impl Node {
    fn dir(path: String) -> Self {
        Self::Dir {
            path,
            children: BTreeMap::new(),
        }
    }

    /// Builds the tree of `pairs` under `prefix` (which ends in `/`, or is empty).
    fn build<'a>(
        prefix: &str,
        pairs: impl IntoIterator<Item = &'a KvPair>,
    ) -> Result<Self, TreeMismatch> {
        let mut root = Self::dir(prefix.to_owned());
        for p in pairs {
            let Some(rel) = p.key.strip_prefix(prefix) else {
                continue;
            };
            if rel.is_empty() {
                continue; // the prefix's own folder key
            }
            let (dirs, leaf) = match rel.strip_suffix('/') {
                Some(folder) if p.value_bytes().is_empty() => (folder, None),
                _ => match rel.rsplit_once('/') {
                    Some((d, name)) => (d, Some(name)),
                    None => ("", Some(rel)),
                },
            };
            let mut node = &mut root;
            if !dirs.is_empty() {
                for seg in dirs.split('/') {
                    let Self::Dir { path, children } = node else {
                        match unreachable_leaf(&p.key)? {}
                    };
                    let child_path = format!("{path}{seg}/");
                    node = children
                        .entry(seg.to_owned())
                        .or_insert_with(|| Self::dir(child_path));
                    if let Self::Leaf { key, .. } = node {
                        return Err(TreeMismatch {
                            key: Some(key.clone()),
                            message: format!("{key:?} is a value and also a folder of {:?}", p.key),
                        });
                    }
                }
            }
            if let Some(name) = leaf {
                let Self::Dir { children, .. } = node else {
                    match unreachable_leaf(&p.key)? {}
                };
                if let Some(Self::Dir { path, .. }) = children.get(name) {
                    return Err(TreeMismatch {
                        key: Some(p.key.clone()),
                        message: format!("{:?} is a value and also the folder {path:?}", p.key),
                    });
                }
                children.insert(
                    name.to_owned(),
                    Self::Leaf {
                        key: p.key.clone(),
                        raw: p.value.clone().unwrap_or_default(),
                    },
                );
            }
        }
        Ok(root)
    }

    fn leaf_value(raw: &[u8]) -> Value {
        if raw.is_empty() {
            return Value::Null;
        }
        match serde_json::from_slice::<Value>(raw) {
            Ok(v) => v,
            Err(_) => Value::String(String::from_utf8_lossy(raw).into_owned()),
        }
    }
}

/// Guards against a leaf where the walk above only ever leaves folders.
fn unreachable_leaf(key: &str) -> Result<std::convert::Infallible, TreeMismatch> {
    Err(TreeMismatch {
        key: Some(key.to_owned()),
        message: format!("{key:?} is below a value"),
    })
}

/// Decodes the entries of `pairs` under `prefix` as one `T` (see the [module](self) docs).
pub(crate) fn decode_tree<'a, T: DeserializeOwned>(
    prefix: &str,
    pairs: impl IntoIterator<Item = &'a KvPair>,
) -> Result<T, JsonError> {
    let folder = folder_of(prefix);
    let fail = |e: TreeMismatch| JsonError::Tree {
        prefix: prefix.to_owned(),
        key: e.key.clone().unwrap_or_else(|| folder.clone()),
        source: e,
    };
    let root = Node::build(&folder, pairs).map_err(fail)?;
    T::deserialize(root).map_err(fail)
}

/// `prefix` as a folder: with a trailing `/` unless empty.
fn folder_of(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

macro_rules! leaf_or_any {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TreeMismatch> {
                match self {
                    Node::Leaf { key, raw } => Node::leaf_value(&raw)
                        .$method(visitor)
                        .map_err(|e| TreeMismatch { key: Some(key), message: e.to_string() }),
                    dir @ Node::Dir { .. } => dir.deserialize_any(visitor),
                }
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Node {
    type Error = TreeMismatch;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TreeMismatch> {
        match self {
            Self::Leaf { key, raw } => {
                Self::leaf_value(&raw)
                    .deserialize_any(visitor)
                    .map_err(|e| TreeMismatch {
                        key: Some(key),
                        message: e.to_string(),
                    })
            }
            Self::Dir { path, children } => visitor
                .visit_map(DirAccess {
                    children: children.into_iter(),
                    value: None,
                })
                .map_err(|e| e.at(&path)),
        }
    }

    leaf_or_any! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_map deserialize_ignored_any
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TreeMismatch> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TreeMismatch> {
        match self {
            Self::Leaf { key, raw } => {
                let text = match Self::leaf_value(&raw) {
                    Value::String(s) => s,
                    _ => match String::from_utf8(raw.to_vec()) {
                        Ok(s) => s,
                        Err(_) => {
                            return Err(TreeMismatch {
                                key: Some(key),
                                message: "the value is not UTF-8 text".to_owned(),
                            })
                        }
                    },
                };
                visitor.visit_string(text)
            }
            dir @ Self::Dir { .. } => dir.deserialize_any(visitor),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TreeMismatch> {
        self.deserialize_string(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TreeMismatch> {
        match &self {
            Self::Leaf { raw, .. } if raw.is_empty() || &raw[..] == b"null" => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TreeMismatch> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TreeMismatch> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TreeMismatch> {
        match self {
            Self::Leaf { key, raw } => {
                Self::leaf_value(&raw)
                    .deserialize_seq(visitor)
                    .map_err(|e| TreeMismatch {
                        key: Some(key),
                        message: e.to_string(),
                    })
            }
            Self::Dir { path, children } => {
                let mut numbered = Vec::with_capacity(children.len());
                for (name, node) in children {
                    match name.parse::<u64>() {
                        Ok(i) => numbered.push((i, node)),
                        Err(_) => {
                            return Err(TreeMismatch {
                                key: Some(path),
                                message: format!(
                                    "a list folder holds only numbered keys, not {name:?}"
                                ),
                            })
                        }
                    }
                }
                numbered.sort_by_key(|(i, _)| *i);
                visitor
                    .visit_seq(DirSeq {
                        items: numbered.into_iter(),
                    })
                    .map_err(|e| e.at(&path))
            }
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, TreeMismatch> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, TreeMismatch> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TreeMismatch> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TreeMismatch> {
        match self {
            Self::Leaf { key, raw } => Self::leaf_value(&raw)
                .deserialize_enum(name, variants, visitor)
                .map_err(|e| TreeMismatch {
                    key: Some(key),
                    message: e.to_string(),
                }),
            Self::Dir { path, .. } => Err(TreeMismatch {
                key: Some(path),
                message: format!("a folder cannot be the enum {name}"),
            }),
        }
    }
}

struct DirAccess {
    children: std::collections::btree_map::IntoIter<String, Node>,
    value: Option<Node>,
}

impl<'de> MapAccess<'de> for DirAccess {
    type Error = TreeMismatch;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TreeMismatch> {
        match self.children.next() {
            None => Ok(None),
            Some((name, node)) => {
                self.value = Some(node);
                let de: StringDeserializer<TreeMismatch> = name.into_deserializer();
                seed.deserialize(de).map(Some)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, TreeMismatch> {
        match self.value.take() {
            Some(node) => seed.deserialize(node),
            None => Err(de::Error::custom("a value was asked for before its key")),
        }
    }
}

struct DirSeq {
    items: std::vec::IntoIter<(u64, Node)>,
}

impl<'de> SeqAccess<'de> for DirSeq {
    type Error = TreeMismatch;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, TreeMismatch> {
        match self.items.next() {
            None => Ok(None),
            Some((_, node)) => seed.deserialize(node).map(Some),
        }
    }
}

impl Kv {
    /// Reads every key under `prefix` and decodes the whole tree as one `T`: nested keys are
    /// nested fields, values are read as JSON, falling back to strings (see the rules below).
    /// A prefix without `/` at the end is read as a folder (`"config/app"` means
    /// `"config/app/"`).
    ///
    /// - `config/app/db/port` = `5432` fills `App { db: Db { port: u16 } }`;
    /// - a value that parses as JSON is used as JSON (`true`, `1.5`, `{"a":1}`, `[1,2]`), any
    ///   other as a string; a `String` field takes the raw text of any value;
    /// - a folder of numbered keys (`hosts/0`, `hosts/1`) fills a `Vec`;
    /// - folder keys (ending in `/`, without a value) are skipped; use `Option` or
    ///   `#[serde(default)]` for keys that may be missing.
    ///
    /// ```no_run
    /// # async fn demo(kv: consul_kv::Kv) -> Result<(), Box<dyn std::error::Error>> {
    /// #[derive(serde::Deserialize)]
    /// struct App { name: String, db: Db, replicas: Vec<String> }
    /// #[derive(serde::Deserialize)]
    /// struct Db { host: String, port: u16, tls: bool }
    ///
    /// kv.put_all([
    ///     ("config/app/name", "web"),
    ///     ("config/app/db/host", "db.internal"),
    ///     ("config/app/db/port", "5432"),
    ///     ("config/app/db/tls", "true"),
    ///     ("config/app/replicas/0", "r1"),
    ///     ("config/app/replicas/1", "r2"),
    /// ])
    /// .await?;
    /// let app: App = kv.tree("config/app/").await?;
    /// assert_eq!(app.db.port, 5432);
    /// # Ok(()) }
    /// ```
    pub fn tree<T: DeserializeOwned>(&self, prefix: impl Into<String>) -> TreeRequest<T> {
        TreeRequest {
            kv: self.clone(),
            prefix: prefix.into(),
            consistency: Consistency::Default,
            _t: PhantomData,
        }
    }
}

impl Items {
    /// Decodes these entries (e.g. from [`Kv::watch_prefix`], for live reload) as one `T`,
    /// with the rules of [`Kv::tree`].
    ///
    /// # Errors
    /// [`JsonError::Tree`], naming the key that did not fit.
    pub fn tree<T: DeserializeOwned>(&self, prefix: &str) -> Result<T, JsonError> {
        decode_tree(prefix, self.entries())
    }
}

/// A [`Kv::tree`] request. Resolves to `T`.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct TreeRequest<T> {
    kv: Kv,
    prefix: String,
    consistency: Consistency,
    _t: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + Send + 'static> TreeRequest<T> {
    /// The consistency of the read.
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// Sends the request.
    ///
    /// # Errors
    /// [`JsonError::Tree`] naming the key that did not fit; [`JsonError::Consul`].
    pub async fn send(self) -> Result<T, JsonError> {
        let folder = folder_of(&self.prefix);
        let items = self
            .kv
            .items(folder.clone())
            .consistency(self.consistency)
            .await?;
        decode_tree(&folder, items.entries())
    }
}

impl<T: DeserializeOwned + Send + 'static> IntoFuture for TreeRequest<T> {
    type Output = Result<T, JsonError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consul_kv_proto::kv::wire::KvEntry;
    use serde::Deserialize;

    fn pairs(kv: &[(&str, Option<&str>)]) -> Vec<KvPair> {
        kv.iter()
            .map(|(k, v)| {
                let w = KvEntry::new(*k, v.map(str::as_bytes));
                let json = serde_json::to_vec(&[w]).unwrap();
                let resp = consul_kv_proto::http::Response::builder()
                    .status(200)
                    .header("X-Consul-Index", "1")
                    .body(bytes::Bytes::from(json))
                    .unwrap();
                use consul_kv_proto::Operation as _;
                consul_kv_proto::kv::ListItems::new("")
                    .parse(resp)
                    .unwrap()
                    .value
                    .remove(0)
            })
            .collect()
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct App {
        name: String,
        db: Db,
        #[serde(default)]
        replicas: Vec<String>,
        limit: Option<u32>,
        missing: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Db {
        port: u16,
        tls: bool,
        host: String,
        extra: serde_json::Value,
    }

    #[test]
    fn nested_keys_fill_nested_fields() {
        let p = pairs(&[
            ("config/app/", None),
            ("config/app/name", Some("12345")),
            ("config/app/db/", None),
            ("config/app/db/port", Some("5432")),
            ("config/app/db/tls", Some("true")),
            ("config/app/db/host", Some("db.internal")),
            ("config/app/db/extra", Some(r#"{"a":[1,2]}"#)),
            ("config/app/replicas/1", Some("r1")),
            ("config/app/replicas/0", Some("\"r0\"")),
            ("config/app/replicas/10", Some("r10")),
            ("config/app/limit", Some("7")),
        ]);
        let app: App = decode_tree("config/app", &p).unwrap();
        assert_eq!(
            app,
            App {
                name: "12345".into(),
                db: Db {
                    port: 5432,
                    tls: true,
                    host: "db.internal".into(),
                    extra: serde_json::json!({"a": [1, 2]}),
                },
                replicas: vec!["r0".into(), "r1".into(), "r10".into()],
                limit: Some(7),
                missing: None,
            }
        );
    }

    #[test]
    fn errors_name_the_key() {
        let p = pairs(&[
            ("c/name", Some("x")),
            ("c/db/port", Some("not a number")),
            ("c/db/tls", Some("true")),
            ("c/db/host", Some("h")),
            ("c/db/extra", Some("1")),
        ]);
        let err = decode_tree::<App>("c/", &p).unwrap_err();
        assert_eq!(err.key(), Some("c/db/port"), "{err:?}");
        let p = pairs(&[("c/name", Some("x")), ("c/db/port", Some("1"))]);
        let err = decode_tree::<App>("c/", &p).unwrap_err();
        assert_eq!(err.key(), Some("c/db/"), "{err:?}");
        assert!(std::error::Error::source(&err)
            .unwrap()
            .to_string()
            .contains("tls"));
        let p = pairs(&[("c/db", Some("1")), ("c/db/port", Some("1"))]);
        let err = decode_tree::<App>("c/", &p).unwrap_err();
        assert!(matches!(err, JsonError::Tree { .. }), "{err:?}");
    }
}
