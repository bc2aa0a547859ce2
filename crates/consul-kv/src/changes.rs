//! Change events: [`Changes`], from [`PrefixWatch::changes`], a stream of [`Change`]s.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use consul_kv_proto::KvPair;
use futures_core::Stream;
use tokio::sync::watch;

use crate::shared_watch::WatchHealth;
use crate::watch::PrefixWatch;

/// One key's change under a watched prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key appeared.
    Added(KvPair),
    /// The key's value, flags or session changed.
    Modified {
        /// The entry before.
        old: KvPair,
        /// The entry now.
        new: KvPair,
    },
    /// The key disappeared; the entry as last seen.
    Deleted(KvPair),
}

impl Change {
    /// The key.
    pub fn key(&self) -> &str {
        match self {
            Self::Added(p) | Self::Deleted(p) | Self::Modified { new: p, .. } => &p.key,
        }
    }

    /// The entry now (`None` for a deletion).
    pub fn new_pair(&self) -> Option<&KvPair> {
        match self {
            Self::Added(p) | Self::Modified { new: p, .. } => Some(p),
            Self::Deleted(_) => None,
        }
    }
}

/// Whether two entries of one key differ in what a reader sees. Equal modify indexes mean the
/// same version; different ones (a rewrite, a server restart, an index reset) are compared by
/// value, flags and session, so a write of identical content is not a change.
fn differs(old: &KvPair, new: &KvPair) -> bool {
    if old.modify_index == new.modify_index && old.create_index == new.create_index {
        return false;
    }
    old.value_bytes() != new.value_bytes() || old.flags != new.flags || old.session != new.session
}

/// The difference between two views of a prefix, in key order.
pub(crate) fn diff(old: &BTreeMap<String, KvPair>, new: &BTreeMap<String, KvPair>) -> Vec<Change> {
    let mut out = Vec::new();
    let mut a = old.iter().peekable();
    let mut b = new.iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some((_, o)), None) => {
                out.push(Change::Deleted((*o).clone()));
                a.next();
            }
            (None, Some((_, n))) => {
                out.push(Change::Added((*n).clone()));
                b.next();
            }
            (Some((ka, o)), Some((kb, n))) => match ka.as_bytes().cmp(kb.as_bytes()) {
                std::cmp::Ordering::Less => {
                    out.push(Change::Deleted((*o).clone()));
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    out.push(Change::Added((*n).clone()));
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if differs(o, n) {
                        out.push(Change::Modified {
                            old: (*o).clone(),
                            new: (*n).clone(),
                        });
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
    out
}

/// A [`Stream`] of [`Change`]s under a prefix, from [`PrefixWatch::changes`].
///
/// **What it yields, exactly.** The stream starts from an empty view: the first answer yields
/// one [`Change::Added`] per existing key. After that, each answer of the blocking query is
/// compared with the view the stream last yielded, key by key, and yields the difference in
/// key order (byte order, as Consul lists): `Added` for a new key, `Deleted` for a key that is
/// gone, `Modified` when the value, flags or session changed. A key whose modify index moved
/// but whose content did not (a write of the same value) yields nothing, nor does a wake-up
/// that changed nothing, a tombstone reap or an index reset.
///
/// Because every answer is a full list, the stream re-syncs by itself: after an outage, a
/// server restart or an index reset it yields exactly the difference between what it last
/// yielded and what the server now holds — nothing twice, nothing missed. Changes that come
/// and go while the stream is not looking (a key added and deleted between two answers, or
/// while the consumer is slow) cancel out.
///
/// Failures are not items: read [`health`](Self::health) or await
/// [`health_receiver`](Self::health_receiver) to know when the stream is blind. The stream
/// ends only when the watch cannot run (an invalid prefix).
///
/// ```no_run
/// # async fn demo(kv: consul_kv::Kv) {
/// use consul_kv::Change;
/// let mut changes = kv.watch_prefix("app/config/").changes();
/// while let Some(change) = changes.next().await {
///     match change {
///         Change::Added(p) => println!("+ {}", p.key),
///         Change::Modified { old, new } => println!("~ {} ({} -> {})", new.key, old.modify_index, new.modify_index),
///         Change::Deleted(p) => println!("- {}", p.key),
///     }
/// }
/// # }
/// ```
#[must_use = "a watch does nothing until it is polled"]
pub struct Changes {
    watch: PrefixWatch,
    view: BTreeMap<String, KvPair>,
    pending: VecDeque<Change>,
}

impl PrefixWatch {
    /// The watch as a stream of per-key [`Change`]s; see [`Changes`].
    pub fn changes(self) -> Changes {
        Changes {
            watch: self,
            view: BTreeMap::new(),
            pending: VecDeque::new(),
        }
    }
}

impl Changes {
    /// The view the stream has yielded so far: every key it reported as present.
    pub fn view(&self) -> impl Iterator<Item = &KvPair> {
        self.view.values()
    }

    /// The health of the underlying query; see [`WatchHealth`].
    pub fn health(&self) -> WatchHealth {
        self.watch.health()
    }

    /// A receiver of the query's [`WatchHealth`]; see
    /// [`KeyWatch::health_receiver`](crate::KeyWatch::health_receiver).
    pub fn health_receiver(&mut self) -> watch::Receiver<WatchHealth> {
        self.watch.health_receiver()
    }

    /// The next change.
    pub async fn next(&mut self) -> Option<Change> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for Changes {
    type Item = Change;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Change>> {
        let this = &mut *self;
        loop {
            if let Some(c) = this.pending.pop_front() {
                return Poll::Ready(Some(c));
            }
            match this.watch.poll_list(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                // Errors are reported through the health, not as changes.
                Poll::Ready(Some(Err(_))) => {}
                Poll::Ready(Some(Ok(list))) => {
                    let new: BTreeMap<String, KvPair> =
                        list.value.into_iter().map(|p| (p.key.clone(), p)).collect();
                    this.pending.extend(diff(&this.view, &new));
                    this.view = new;
                }
            }
        }
    }
}

impl fmt::Debug for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Changes")
            .field("keys", &self.view.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use consul_kv_proto::bytes::Bytes;
    use consul_kv_proto::Operation;

    /// An entry as Consul lists it (parsed from the wire, as the watch gets it).
    fn entry(key: &str, value: &str, index: u64, session: Option<&str>) -> KvPair {
        use base64::Engine as _;
        let v = base64::engine::general_purpose::STANDARD.encode(value);
        let s = session.map_or(String::new(), |s| format!(r#","Session":"{s}""#));
        let body = format!(
            r#"[{{"Key":"{key}","Value":"{v}","Flags":0,"CreateIndex":{index},"ModifyIndex":{index},"LockIndex":0{s}}}]"#
        );
        let resp = consul_kv_proto::http::Response::builder()
            .status(200)
            .header("X-Consul-Index", "100")
            .body(Bytes::from(body))
            .unwrap();
        consul_kv_proto::kv::ListItems::new("")
            .parse(resp)
            .unwrap()
            .value
            .remove(0)
    }

    fn pair(key: &str, value: &str, index: u64) -> KvPair {
        entry(key, value, index, None)
    }

    fn view(pairs: &[KvPair]) -> BTreeMap<String, KvPair> {
        pairs.iter().map(|p| (p.key.clone(), p.clone())).collect()
    }

    #[test]
    fn diff_is_in_key_order_and_ignores_identical_rewrites() {
        let old = view(&[pair("a", "1", 5), pair("b", "2", 6), pair("d", "4", 7)]);
        // b rewritten with the same value at index 9.
        let mut b2 = pair("b", "2", 9);
        b2.create_index = 6;
        let new = view(&[pair("a", "1x", 8), b2, pair("c", "3", 10)]);
        let got: Vec<String> = diff(&old, &new)
            .iter()
            .map(|c| match c {
                Change::Added(p) => format!("+{}", p.key),
                Change::Modified { old, new } => {
                    format!("~{}:{}>{}", new.key, old.modify_index, new.modify_index)
                }
                Change::Deleted(p) => format!("-{}", p.key),
            })
            .collect();
        assert_eq!(got, ["~a:5>8", "+c", "-d"]);
    }

    #[test]
    fn a_reset_with_the_same_content_is_no_change() {
        let old = view(&[pair("a", "1", 50), pair("b", "2", 60)]);
        let new = view(&[pair("a", "1", 3), pair("b", "2", 4)]);
        assert!(diff(&old, &new).is_empty());
        let locked = entry("b", "2", 61, Some("adf4238a-882b-9ddc-4a9d-5b6758e4159e"));
        assert_eq!(diff(&old, &view(&[pair("a", "1", 50), locked])).len(), 1);
    }
}
