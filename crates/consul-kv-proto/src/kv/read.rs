//! The KV reads: [`Get`], [`GetRaw`], [`ListItems`] and [`ListKeys`].

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};

use super::*;

/// `GET /v1/kv/<key>`: one key, with its meta. A missing key is `None`, not an error.
///
/// ```
/// use consul_kv_proto::{kv::Get, Operation, RequestContext};
/// let req = Get::new("app/config").dc("dc2").build(&RequestContext::new()).unwrap();
/// assert_eq!(req.uri(), "/v1/kv/app/config?dc=dc2");
/// ```
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Get {
    key: String,
    opts: ReadOptions,
}

impl Get {
    /// Reads `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            opts: ReadOptions::default(),
        }
    }
    read_options_methods!();
}

impl Operation for Get {
    type Output = Indexed<Option<KvPair>>;

    fn build(&self, cx: &RequestContext) -> Result<Request<Bytes>, BuildError> {
        read_request(&self.key, KeyUse::Single, &self.opts, cx, &[])
    }

    fn parse(&self, resp: Response<Bytes>) -> Result<Self::Output, ResponseError> {
        let (meta, missing) = read_response(&resp)?;
        if missing {
            return Ok(Indexed::new(None, meta));
        }
        let mut entries = parse_entries(resp.body())?;
        if entries.len() > 1 {
            return Err(ResponseError::unexpected(format!(
                "expected one entry, got {}",
                entries.len()
            )));
        }
        Ok(Indexed::new(entries.pop(), meta))
    }

    fn kind(&self) -> OpKind {
        OpKind::Read
    }

    fn blocking_wait(&self) -> Option<Duration> {
        self.opts.index.and(self.opts.wait)
    }
}
blocking_read!(Get, Option<KvPair>);

/// `GET /v1/kv/<key>?raw`: the value bytes alone, with meta. A missing key is `None`.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRaw {
    key: String,
    opts: ReadOptions,
}

impl GetRaw {
    /// Reads the raw value of `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            opts: ReadOptions::default(),
        }
    }
    read_options_methods!();
}

impl Operation for GetRaw {
    type Output = Indexed<Option<Bytes>>;

    fn build(&self, cx: &RequestContext) -> Result<Request<Bytes>, BuildError> {
        read_request(&self.key, KeyUse::Single, &self.opts, cx, &[("raw", None)])
    }

    fn parse(&self, resp: Response<Bytes>) -> Result<Self::Output, ResponseError> {
        let (meta, missing) = read_response(&resp)?;
        if missing {
            return Ok(Indexed::new(None, meta));
        }
        Ok(Indexed::new(Some(resp.into_body()), meta))
    }

    fn kind(&self) -> OpKind {
        OpKind::Read
    }

    fn blocking_wait(&self) -> Option<Duration> {
        self.opts.index.and(self.opts.wait)
    }
}
blocking_read!(GetRaw, Option<Bytes>);

/// `GET /v1/kv/<prefix>?recurse`: every entry under a byte prefix (empty = the whole store).
/// No match is an empty list.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItems {
    prefix: String,
    opts: ReadOptions,
}

impl ListItems {
    /// Lists entries under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            opts: ReadOptions::default(),
        }
    }
    read_options_methods!();
}

impl Operation for ListItems {
    type Output = Indexed<Vec<KvPair>>;

    fn build(&self, cx: &RequestContext) -> Result<Request<Bytes>, BuildError> {
        read_request(
            &self.prefix,
            KeyUse::Prefix,
            &self.opts,
            cx,
            &[("recurse", None)],
        )
    }

    fn parse(&self, resp: Response<Bytes>) -> Result<Self::Output, ResponseError> {
        let (meta, missing) = read_response(&resp)?;
        if missing {
            return Ok(Indexed::new(Vec::new(), meta));
        }
        Ok(Indexed::new(parse_entries(resp.body())?, meta))
    }

    fn kind(&self) -> OpKind {
        OpKind::Read
    }

    fn blocking_wait(&self) -> Option<Duration> {
        self.opts.index.and(self.opts.wait)
    }
}
blocking_read!(ListItems, Vec<KvPair>);

/// `GET /v1/kv/<prefix>?keys[&separator=…]`: key names under a prefix. No match is empty.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListKeys {
    prefix: String,
    separator: Option<String>,
    opts: ReadOptions,
}

impl ListKeys {
    /// Lists key names under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            separator: None,
            opts: ReadOptions::default(),
        }
    }

    /// Folds keys at the first `separator` after the prefix (as `ls` does with `/`).
    pub fn separator(mut self, sep: impl Into<String>) -> Self {
        let sep = sep.into();
        self.separator = if sep.is_empty() { None } else { Some(sep) };
        self
    }
    read_options_methods!();
}

impl Operation for ListKeys {
    type Output = Indexed<Vec<String>>;

    fn build(&self, cx: &RequestContext) -> Result<Request<Bytes>, BuildError> {
        let sep = self.separator.as_deref();
        let mut mode: Vec<(&str, Option<&str>)> = vec![("keys", None)];
        if let Some(s) = sep {
            if s.chars().any(char::is_control) {
                return Err(BuildError::option(
                    "separator",
                    "contains a control character",
                ));
            }
            mode.push(("separator", Some(s)));
        }
        read_request(&self.prefix, KeyUse::Prefix, &self.opts, cx, &mode)
    }

    fn parse(&self, resp: Response<Bytes>) -> Result<Self::Output, ResponseError> {
        let (meta, missing) = read_response(&resp)?;
        if missing {
            return Ok(Indexed::new(Vec::new(), meta));
        }
        Ok(Indexed::new(parse_json(resp.body())?, meta))
    }

    fn kind(&self) -> OpKind {
        OpKind::Read
    }

    fn blocking_wait(&self) -> Option<Duration> {
        self.opts.index.and(self.opts.wait)
    }
}
blocking_read!(ListKeys, Vec<String>);
