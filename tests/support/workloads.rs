//! Workloads shared by the reliability and cluster suites.

use consul_kv::{Cas, Client, Consistency, TxnOutcome};

/// One increment of `<prefix>/counter`: read the counter, then in one transaction CAS it to
/// n+1 and create `<prefix>/log/<n+1>` holding `token`. The log makes an ambiguous outcome
/// decidable: after `OutcomeUnknown`, `log/<n+1>` says whether this increment was applied.
///
/// Returns the value this call produced and how many attempts lost a race or failed.
pub async fn cas_increment(c: &Client, prefix: &str, token: &str) -> (u64, u32) {
    let kv = c.kv();
    let counter = format!("{prefix}/counter");
    let mut conflicts = 0;
    loop {
        let current = match kv.get(&counter).await {
            Ok(v) => v,
            Err(_) => {
                conflicts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let (n, cas) = match &current {
            Some(k) => (
                k.as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
                Cas::from(k.pair()),
            ),
            None => (0, Cas::Absent),
        };
        let next = n + 1;
        let log = format!("{prefix}/log/{next:08}");
        let res = kv
            .txn()
            .cas(&counter, next.to_string(), cas)
            .cas(&log, token.to_owned(), Cas::Absent)
            .await;
        match res {
            Ok(TxnOutcome::Committed(_)) => return (next, conflicts),
            Ok(_) => conflicts += 1,
            Err(e) if e.is_outcome_unknown() || e.is_retryable() || e.is_timeout() => {
                // Decide from the log: applied iff log/<next> holds our token. A consistent
                // read: right after a leader change, a default read on the new leader may not
                // yet see an entry of the old leader's term that it is about to commit, and
                // "absent" would then be wrong (the write applies a moment later: a double
                // increment). Consul answers consistent reads only once it can vouch for them.
                loop {
                    match kv.get(&log).consistency(Consistency::Consistent).await {
                        Ok(Some(k)) if k.bytes() == token.as_bytes() => return (next, conflicts),
                        Ok(_) => break,
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                    }
                }
                conflicts += 1;
            }
            Err(e) => panic!(
                "increment: {e}: {:?}",
                std::error::Error::source(&e).map(ToString::to_string)
            ),
        }
    }
}

/// The number `<prefix>/counter` holds now (a default read), or `None` when the key is missing
/// or holds no number.
///
/// # Panics
/// When the read fails: the suites read the counter only once the server is healthy again.
pub async fn read_counter(c: &Client, prefix: &str) -> Option<u64> {
    c.kv()
        .get(format!("{prefix}/counter"))
        .await
        .expect("reading the counter")
        .and_then(|k| k.as_str().and_then(|s| s.parse().ok()))
}

/// A change as one short line (`+key=value`, `~key=old>new`, `-key`), for comparing a
/// stream of changes with the expected one.
pub fn describe_change(c: &consul_kv::Change) -> String {
    use consul_kv::Change;
    match c {
        Change::Added(p) => format!("+{}={}", p.key, String::from_utf8_lossy(p.value_bytes())),
        Change::Modified { old, new } => format!(
            "~{}={}>{}",
            new.key,
            String::from_utf8_lossy(old.value_bytes()),
            String::from_utf8_lossy(new.value_bytes())
        ),
        Change::Deleted(p) => format!("-{}", p.key),
    }
}
