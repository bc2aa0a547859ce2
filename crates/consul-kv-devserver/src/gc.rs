//! The tombstone reaper: like Consul's tombstone GC, tombstones older than `tombstone_ttl`
//! are reaped in one write per datacenter, so a long-running devserver does not grow without
//! bound.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::server::Shared;

/// Every `ttl / 16` (at least 10 ms, at most Consul's 30 s granule) notes each datacenter's
/// index; tombstones at or below the index noted `ttl` ago are reaped.
pub(crate) async fn reap_tombstones(
    shared: Arc<Shared>,
    ttl: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let tick = (ttl / 16).clamp(Duration::from_millis(10), Duration::from_secs(30));
    let mut marks: VecDeque<(Instant, Vec<u64>)> = VecDeque::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
        let now = Instant::now();
        marks.push_back((
            now,
            shared
                .dcs()
                .iter()
                .map(|dc| dc.lock().last_index())
                .collect(),
        ));
        let mut due = None;
        while marks
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= ttl)
        {
            due = marks.pop_front().map(|(_, idx)| idx);
        }
        let Some(upto) = due else {
            continue;
        };
        for (dc, max) in shared.dcs().iter().zip(upto) {
            let n = shared.write(dc, |st, ch| st.reap_tombstones_upto(max, ch));
            if n > 0 {
                tracing::debug!(dc = %dc.name, tombstones = n, "tombstones reaped");
            }
        }
    }
}
