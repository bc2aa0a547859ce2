//! The KV writes: [`Set`] (with CAS, acquire and release) and [`Delete`].

use bytes::Bytes;
use http::{Method, Request, Response};

use super::*;

/// The condition of a [`Set`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetMode {
    /// Unconditional upsert. Keeps any session holding the key.
    Plain,
    /// Check-and-set.
    Cas(Cas),
    /// Acquire the key's lock for a session (`?acquire=`). **Replaces the value and flags.**
    Acquire(SessionId),
    /// Release the key's lock (`?release=`). **Replaces the value and flags.**
    Release(SessionId),
}

/// `PUT /v1/kv/<key>`: write raw bytes, optionally with CAS, acquire or release.
///
/// The value is sent as the body with `Content-Type: application/octet-stream`; an empty value
/// is stored as `null`. Acquire and release replace the stored value and flags with this
/// request's value and flags, as Consul does.
///
/// ```
/// use consul_kv_proto::{kv::{Cas, Set}, Index, Operation, RequestContext};
/// let op = Set::new("app/a b", "v").cas(Cas::ModifyIndex(Index::new(42)));
/// let req = op.build(&RequestContext::new()).unwrap();
/// assert_eq!(req.method(), "PUT");
/// assert_eq!(req.uri(), "/v1/kv/app/a%20b?cas=42");
/// ```
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    key: String,
    value: Bytes,
    flags: u64,
    mode: SetMode,
    opts: WriteOptions,
}

impl Set {
    /// Writes `value` to `key`.
    pub fn new(key: impl Into<String>, value: impl IntoValue) -> Self {
        Self {
            key: key.into(),
            value: value.into_value(),
            flags: 0,
            mode: SetMode::Plain,
            opts: WriteOptions::default(),
        }
    }

    /// Acquires `key` for `session`, writing `value`.
    pub fn acquire(key: impl Into<String>, session: SessionId, value: impl IntoValue) -> Self {
        Self::new(key, value).mode(SetMode::Acquire(session))
    }

    /// Releases `key` held by `session`, writing `value`.
    pub fn release(key: impl Into<String>, session: SessionId, value: impl IntoValue) -> Self {
        Self::new(key, value).mode(SetMode::Release(session))
    }

    /// Sets the flags (Consul resets them to 0 on a write without flags).
    pub fn flags(mut self, flags: u64) -> Self {
        self.flags = flags;
        self
    }

    /// Makes this a check-and-set.
    pub fn cas(self, cas: impl Into<Cas>) -> Self {
        self.mode(SetMode::Cas(cas.into()))
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: SetMode) -> Self {
        self.mode = mode;
        self
    }

    /// The value to write.
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    /// Replaces the value.
    pub fn with_value(mut self, value: impl IntoValue) -> Self {
        self.value = value.into_value();
        self
    }
    write_options_methods!();
}

impl Operation for Set {
    type Output = WriteOutcome;

    fn build(&self, cx: &RequestContext) -> Result<Request<Bytes>, BuildError> {
        check_key(&self.key, KeyUse::Single)?;
        let mut q = Query::new();
        if self.flags != 0 {
            q.num("flags", self.flags);
        }
        match &self.mode {
            SetMode::Plain => {}
            SetMode::Cas(c) => {
                q.num("cas", c.raw());
            }
            SetMode::Acquire(s) => {
                q.pair("acquire", s.as_str());
            }
            SetMode::Release(s) => {
                q.pair("release", s.as_str());
            }
        }
        self.opts.write_query(cx, &mut q)?;
        request(
            Method::PUT,
            kv_path(&self.key) + &q.finish(),
            self.opts.token(cx),
            Some((self.value.clone(), "application/octet-stream")),
        )
    }

    fn parse(&self, resp: Response<Bytes>) -> Result<Self::Output, ResponseError> {
        expect_status(&resp, &[])?;
        parse_bool_body(resp.body()).map(WriteOutcome::from)
    }

    fn kind(&self) -> OpKind {
        OpKind::Write
    }
}

/// What a [`Delete`] removes.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// One key; `true` even when it did not exist.
    Key,
    /// Every key with the byte prefix (`foo` also removes `food`).
    Tree,
    /// One key, only if its modify index is still this one (`true` if it does not exist).
    Cas(Index),
}

/// `DELETE /v1/kv/<key>`: one key, a prefix, or with CAS.
///
/// ```
/// use consul_kv_proto::{kv::Delete, Operation, RequestContext};
/// let req = Delete::tree("tmp/").build(&RequestContext::new()).unwrap();
/// assert_eq!(req.uri(), "/v1/kv/tmp/?recurse");
/// ```
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    key: String,
    mode: DeleteMode,
    opts: WriteOptions,
}

impl Delete {
    /// Deletes one key.
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            mode: DeleteMode::Key,
            opts: WriteOptions::default(),
        }
    }

    /// Deletes every key under `prefix` (empty: the whole store).
    pub fn tree(prefix: impl Into<String>) -> Self {
        Self::new(prefix).mode(DeleteMode::Tree)
    }

    /// Deletes only if the modify index is still `index`. There is no `cas=0` delete: Consul
    /// never deletes with it, so the type does not allow it.
    pub fn cas(self, index: impl Into<Index>) -> Self {
        self.mode(DeleteMode::Cas(index.into()))
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: DeleteMode) -> Self {
        self.mode = mode;
        self
    }
    write_options_methods!();
}

impl From<&KvPair> for Index {
    /// The pair's modify index (`1` for a `get-or-empty` echo).
    fn from(p: &KvPair) -> Self {
        Self::new(p.modify_index)
    }
}

impl Operation for Delete {
    type Output = WriteOutcome;

    fn build(&self, cx: &RequestContext) -> Result<Request<Bytes>, BuildError> {
        let mut q = Query::new();
        match self.mode {
            DeleteMode::Key => check_key(&self.key, KeyUse::Single)?,
            DeleteMode::Tree => {
                check_key(&self.key, KeyUse::Prefix)?;
                q.flag("recurse");
            }
            DeleteMode::Cas(i) => {
                check_key(&self.key, KeyUse::Single)?;
                q.num("cas", i.get());
            }
        }
        self.opts.write_query(cx, &mut q)?;
        request(
            Method::DELETE,
            kv_path(&self.key) + &q.finish(),
            self.opts.token(cx),
            None,
        )
    }

    fn parse(&self, resp: Response<Bytes>) -> Result<Self::Output, ResponseError> {
        expect_status(&resp, &[])?;
        parse_bool_body(resp.body()).map(WriteOutcome::from)
    }

    fn kind(&self) -> OpKind {
        OpKind::Write
    }
}
