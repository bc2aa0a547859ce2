//! A distributed semaphore: [`Semaphore`], from
//! [`Client::semaphore`](crate::Client::semaphore), in the Go client's layout.

use std::collections::BTreeMap;
use std::fmt;
use std::future::IntoFuture;

use bytes::Bytes;
use consul_kv_proto::kv as op;
use consul_kv_proto::{Behavior, Cas, Consistency, KvPair, SessionId, WriteOutcome};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::holding::{holder_setters, HolderConfig, Holding, LockError, LockLost, LockStatus};
use crate::kv::Kv;
use crate::scope::BoxFuture;
use crate::session::SessionKeeper;
use crate::Result;

/// The flags the Go client's `api.Semaphore` stores on its keys (`SemaphoreFlagValue`).
pub const SEMAPHORE_FLAG: u64 = 0xe0f6_9a2b_aa41_4de0;

/// The name of the coordination key under the prefix (Go's `DefaultSemaphoreKey`).
pub const SEMAPHORE_LOCK_KEY: &str = ".lock";

/// The `.lock` value, exactly as Go's `semaphoreLock` marshals it:
/// `{"Limit":2,"Holders":{"<session>":true}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct LockValue {
    #[serde(rename = "Limit")]
    limit: usize,
    #[serde(rename = "Holders", default, deserialize_with = "null_as_empty")]
    holders: BTreeMap<String, bool>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, bool>, D::Error> {
    Ok(Option::<BTreeMap<String, bool>>::deserialize(d)?.unwrap_or_default())
}

/// The prefix, the `.lock` key and the contender keys of one semaphore.
#[derive(Debug, Clone)]
struct Layout {
    /// The prefix without a trailing `/`.
    prefix: String,
    limit: usize,
}

impl Layout {
    fn lock_key(&self) -> String {
        format!("{}/{SEMAPHORE_LOCK_KEY}", self.prefix)
    }

    fn contender_key(&self, session: &SessionId) -> String {
        format!("{}/{session}", self.prefix)
    }

    fn list_prefix(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// Decodes the `.lock` entry among `pairs` and prunes holders whose contender key is gone.
    /// Returns the entry (for its CAS index) and the decoded value.
    fn read_lock<'a>(
        &self,
        pairs: &'a [KvPair],
    ) -> std::result::Result<(Option<&'a KvPair>, LockValue), LockError> {
        let key = self.lock_key();
        let entry = pairs.iter().find(|p| p.key == key);
        let mut value = match entry {
            Some(p) if p.flags != crate::SEMAPHORE_FLAG => {
                return Err(LockError::Conflict {
                    key,
                    flags: p.flags,
                });
            }
            Some(KvPair { value: Some(v), .. }) if !v.is_empty() => serde_json::from_slice(v)
                .map_err(|source| LockError::Corrupt {
                    key: key.clone(),
                    source,
                })?,
            _ => LockValue {
                limit: self.limit,
                holders: BTreeMap::new(),
            },
        };
        // Go's pruneDeadHolders: a holder is alive while some key under the prefix is held by
        // its session (its contender key; behavior `delete` removes it with the session).
        value.holders.retain(|holder, _| {
            pairs
                .iter()
                .any(|p| p.session.as_ref().is_some_and(|s| s.as_str() == holder))
        });
        Ok((entry, value))
    }
}

/// Configures and acquires a [`Semaphore`] slot; from
/// [`Client::semaphore`](crate::Client::semaphore).
#[must_use = "a semaphore builder does nothing until it is awaited"]
#[derive(Debug, Clone)]
pub struct SemaphoreBuilder {
    config: HolderConfig,
    layout: Layout,
}

impl SemaphoreBuilder {
    pub(crate) fn new(kv: Kv, prefix: String, limit: usize) -> Self {
        Self {
            config: HolderConfig::new(kv, Bytes::new(), "Consul API Semaphore"),
            layout: Layout {
                prefix: prefix.trim_end_matches('/').to_owned(),
                limit,
            },
        }
    }

    holder_setters!();

    /// Waits until a slot is held.
    ///
    /// Creates a session (behavior `delete`), keeps it alive, creates the contender key
    /// `<prefix>/<session>`, then adds the session to the holders in `<prefix>/.lock` by CAS
    /// once fewer than `limit` live holders are listed, waiting with blocking reads meanwhile.
    ///
    /// # Errors
    /// [`LockError::Conflict`] when `.lock` has foreign flags, [`LockError::LimitConflict`]
    /// when it was written with another limit, [`LockError::InvalidLimit`] for a limit of 0
    /// or an empty prefix, and the errors of [`LockBuilder::acquire`](crate::LockBuilder::acquire).
    pub async fn acquire(self) -> std::result::Result<Semaphore, LockError> {
        self.config
            .acquire_retrying(|| self.clone().run(false))
            .await
    }

    /// Tries once: `Some` when a slot was free and is now held, `None` when all are taken.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub async fn try_acquire(self) -> std::result::Result<Option<Semaphore>, LockError> {
        self.run(true).await
    }

    async fn run(self, once: bool) -> std::result::Result<Option<Semaphore>, LockError> {
        if self.layout.limit == 0 || self.layout.prefix.is_empty() {
            return Err(LockError::InvalidLimit);
        }
        let (session, keeper) = self.config.create_session(Behavior::Delete).await?;
        match self.contend(&session, &keeper, once).await {
            Ok(true) => Ok(Some(Semaphore::start(
                self.config,
                self.layout,
                session,
                keeper,
            ))),
            Ok(false) => {
                let _ = keeper.stop().await;
                Ok(None)
            }
            Err(e) => {
                let _ = keeper.stop().await;
                Err(e)
            }
        }
    }

    async fn contend(
        &self,
        session: &SessionId,
        keeper: &SessionKeeper,
        once: bool,
    ) -> std::result::Result<bool, LockError> {
        let c = &self.config;
        let l = &self.layout;
        let contender = l.contender_key(session);
        let made = op::Set::acquire(contender.clone(), session.clone(), c.value.clone())
            .flags(SEMAPHORE_FLAG)
            .with_options(c.kv.scope.write_options());
        if !c.kv.client.exec.execute(&made).await?.is_applied() {
            return Err(LockError::Contender { key: contender });
        }
        let list_prefix = l.list_prefix();
        let mut index = None;
        loop {
            let read = tokio::select! {
                r = c.read_prefix(&list_prefix, index, c.wait) => r?,
                lost = keeper.lost() => return Err(LockError::SessionLost(lost)),
            };
            let (entry, mut value) = l.read_lock(&read.value)?;
            if value.limit != l.limit {
                return Err(LockError::LimitConflict {
                    existing: value.limit,
                    requested: l.limit,
                });
            }
            if value.holders.contains_key(session.as_str()) {
                // An earlier CAS whose answer was lost did apply.
                return Ok(true);
            }
            if value.holders.len() >= l.limit {
                if once {
                    return Ok(false);
                }
                index = Some(read.meta.last_index);
                continue;
            }
            value.holders.insert(session.as_str().to_owned(), true);
            let body = serde_json::to_vec(&value).map_err(|source| LockError::Corrupt {
                key: l.lock_key(),
                source,
            })?;
            let cas = entry.map_or(Cas::Absent, Cas::from);
            let set = op::Set::new(l.lock_key(), body)
                .flags(SEMAPHORE_FLAG)
                .cas(cas)
                .with_options(c.kv.scope.write_options());
            match c.kv.client.exec.execute(&set).await {
                Ok(WriteOutcome::Applied) => return Ok(true),
                // Another contender changed `.lock` first: read again.
                Ok(_) => index = None,
                Err(e) if e.is_outcome_unknown() => index = None,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl IntoFuture for SemaphoreBuilder {
    type Output = std::result::Result<Semaphore, LockError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.acquire())
    }
}

/// A held slot of a distributed semaphore with `limit` holders, compatible with the Go
/// client's `api.Semaphore`:
///
/// - each contender holds a key `<prefix>/<session>` (flag [`SEMAPHORE_FLAG`]) with a session
///   of behavior `delete`, so the key disappears with the session;
/// - `<prefix>/.lock` (flag [`SEMAPHORE_FLAG`]) holds `{"Limit":n,"Holders":{"<session>":true}}`,
///   changed only by CAS; holders whose contender key is gone are pruned by the next writer.
///
/// Like [`Lock`](crate::Lock): renewed and monitored in the background, [`lost`](Self::lost)
/// reports a loss, [`release`](Self::release) is explicit, and **`Drop` does no I/O** (the
/// session expires by its TTL, its contender key is deleted, and the next contender prunes the
/// stale holder).
pub struct Semaphore {
    config: HolderConfig,
    layout: Layout,
    holding: Holding,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("prefix", &self.layout.prefix)
            .field("limit", &self.layout.limit)
            .field("session", &self.holding.session)
            .field("status", &*self.holding.status.borrow())
            .finish_non_exhaustive()
    }
}

impl Semaphore {
    fn start(
        config: HolderConfig,
        layout: Layout,
        session: SessionId,
        keeper: SessionKeeper,
    ) -> Self {
        let items = op::ListItems::new(layout.list_prefix())
            .with_options(config.kv.scope.read_options())
            .consistency(Consistency::Consistent);
        let held = {
            let layout = layout.clone();
            let session = session.clone();
            move |pairs: &Vec<KvPair>| {
                layout
                    .read_lock(pairs)
                    .is_ok_and(|(_, v)| v.holders.contains_key(session.as_str()))
            }
        };
        let holding = Holding::start(&config.kv, items, held, session, keeper);
        Self {
            config,
            layout,
            holding,
        }
    }

    /// The prefix (without a trailing `/`).
    pub fn prefix(&self) -> &str {
        &self.layout.prefix
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.layout.limit
    }

    /// The session holding the slot.
    pub fn session(&self) -> &SessionId {
        &self.holding.session
    }

    /// Whether the slot is still held, as far as this client knows.
    pub fn is_held(&self) -> bool {
        self.holding.is_held()
    }

    /// Resolves when the slot is lost; pending forever while held. Cancel-safe.
    pub async fn lost(&self) -> LockLost {
        self.holding.lost().await
    }

    /// A channel that reports [`LockStatus::Lost`] when the slot is lost.
    pub fn subscribe(&self) -> watch::Receiver<LockStatus> {
        self.holding.status.clone()
    }

    /// Gives the slot back: removes the session from the holders (by CAS), deletes the
    /// contender key and destroys the session.
    ///
    /// # Errors
    /// An [`Error`](crate::Error) when a request fails; the session is destroyed in any case (or expires by
    /// its TTL), which deletes the contender key, and the next contender prunes the holder.
    pub async fn release(mut self) -> Result<()> {
        self.holding.stop_monitor();
        let result = self.remove_holder().await;
        self.holding.stop(result.is_ok()).await?;
        result
    }

    async fn remove_holder(&self) -> Result<()> {
        let c = &self.config;
        let l = &self.layout;
        let lock_key = l.lock_key();
        for _ in 0..100 {
            let get = op::Get::new(lock_key.clone()).with_options(c.kv.scope.read_options());
            let Some(entry) = c.kv.client.exec.execute(&get).await?.value else {
                break;
            };
            let Some(mut value) = entry
                .value
                .as_deref()
                .and_then(|v| serde_json::from_slice::<LockValue>(v).ok())
            else {
                break;
            };
            if value
                .holders
                .remove(self.holding.session.as_str())
                .is_none()
            {
                break;
            }
            let body = serde_json::to_vec(&value).unwrap_or_default();
            let set = op::Set::new(lock_key.clone(), body)
                .flags(SEMAPHORE_FLAG)
                .cas(&entry)
                .with_options(c.kv.scope.write_options());
            if c.kv.client.exec.execute(&set).await?.is_applied() {
                break;
            }
        }
        let delete = op::Delete::new(l.contender_key(&self.holding.session))
            .with_options(c.kv.scope.write_options());
        c.kv.client.exec.execute(&delete).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_value_matches_go_json() {
        let mut v = LockValue {
            limit: 2,
            holders: BTreeMap::new(),
        };
        v.holders.insert("b".into(), true);
        v.holders.insert("a".into(), true);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"Limit":2,"Holders":{"a":true,"b":true}}"#
        );
        let back: LockValue = serde_json::from_str(r#"{"Limit":3,"Holders":null}"#).unwrap();
        assert_eq!(back.limit, 3);
        assert!(back.holders.is_empty());
    }

    #[test]
    fn flags_match_go() {
        assert_eq!(SEMAPHORE_FLAG, 0xe0f69a2baa414de0);
        assert_eq!(crate::LOCK_FLAG, 0x2ddccbc058a50c18);
    }
}
