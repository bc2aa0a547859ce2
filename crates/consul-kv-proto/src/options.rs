//! Request options: the client's defaults ([`RequestContext`]), the options every request
//! takes ([`WriteOptions`]) and those of a read ([`ReadOptions`], [`Consistency`]).

use std::time::Duration;

use crate::duration::format_wait;
use crate::encode::Query;
use crate::error::BuildError;
use crate::meta::Index;
use crate::token::Token;

/// The consistency mode of a read (Consul's `features/consistency`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// No parameter: the leader answers ("strongly consistent in almost all cases").
    #[default]
    Default,
    /// `?consistent`: the leader verifies its leadership with a quorum first.
    Consistent,
    /// `?stale`: any server answers, possibly behind the leader.
    Stale,
}

/// What the executor knows that every request needs: the client's defaults.
///
/// Values set on an operation's options win over these.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Default ACL token.
    pub token: Option<Token>,
    /// Default datacenter (`?dc=`); `None` lets the agent pick its own.
    pub datacenter: Option<String>,
    /// Default namespace (`?ns=`, Consul Enterprise).
    pub namespace: Option<String>,
    /// Default admin partition (`?partition=`, Consul Enterprise).
    pub partition: Option<String>,
}

impl RequestContext {
    /// An empty context: no token and the agent's own datacenter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the default token.
    pub fn with_token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// Sets the default datacenter.
    pub fn with_datacenter(mut self, dc: impl Into<String>) -> Self {
        self.datacenter = Some(dc.into());
        self
    }
}

/// Options shared by every request: datacenter, namespace, partition and token.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// `?dc=`.
    pub datacenter: Option<String>,
    /// `?ns=` (Consul Enterprise).
    pub namespace: Option<String>,
    /// `?partition=` (Consul Enterprise).
    pub partition: Option<String>,
    /// Per-call ACL token; overrides the context's.
    pub token: Option<Token>,
}

/// Options of a read: everything in [`WriteOptions`] plus consistency and blocking.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Datacenter, namespace, partition and token.
    pub common: WriteOptions,
    /// The consistency mode.
    pub consistency: Consistency,
    /// Block until the result's index passes this one.
    pub index: Option<Index>,
    /// How long to block (only sent together with `index`).
    pub wait: Option<Duration>,
}

fn check_option(name: &'static str, v: &str) -> Result<(), BuildError> {
    if v.is_empty() {
        return Err(BuildError::option(name, "empty"));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(BuildError::option(name, "contains a control character"));
    }
    Ok(())
}

impl WriteOptions {
    pub(crate) fn write_query(&self, cx: &RequestContext, q: &mut Query) -> Result<(), BuildError> {
        let fields = [
            (
                "dc",
                "datacenter",
                self.datacenter.as_ref().or(cx.datacenter.as_ref()),
            ),
            (
                "ns",
                "namespace",
                self.namespace.as_ref().or(cx.namespace.as_ref()),
            ),
            (
                "partition",
                "partition",
                self.partition.as_ref().or(cx.partition.as_ref()),
            ),
        ];
        for (param, name, value) in fields {
            if let Some(v) = value {
                check_option(name, v)?;
                q.pair(param, v);
            }
        }
        Ok(())
    }

    pub(crate) fn token<'a>(&'a self, cx: &'a RequestContext) -> Option<&'a Token> {
        self.token.as_ref().or(cx.token.as_ref())
    }
}

impl Consistency {
    /// Adds `?consistent` or `?stale` (nothing for the default mode).
    pub(crate) fn write_query(self, q: &mut Query) {
        match self {
            Self::Default => {}
            Self::Consistent => {
                q.flag("consistent");
            }
            Self::Stale => {
                q.flag("stale");
            }
        }
    }
}

impl ReadOptions {
    pub(crate) fn write_query(&self, cx: &RequestContext, q: &mut Query) -> Result<(), BuildError> {
        self.common.write_query(cx, q)?;
        self.consistency.write_query(q);
        if let Some(index) = self.index {
            q.num("index", index.get());
            if let Some(wait) = self.wait {
                q.pair("wait", &format_wait(wait));
            }
        }
        Ok(())
    }
}
