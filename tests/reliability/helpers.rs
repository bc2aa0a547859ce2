//! The KV helpers under load: `kv.update` from 32 concurrent updaters on one key ends exact,
//! through faults that Consul answers before applying anything (429, 503, 500 no leader).

use std::time::{Duration, Instant};

use bytes::Bytes;
use consul_kv::KvPair;
use consul_kv_tests::proxy::{Fault, FaultProxy};

use crate::{client, devserver, figure, size};
use consul_kv_tests::workloads::read_counter;

fn increment(current: Option<&KvPair>) -> Option<Bytes> {
    let n: u64 = current
        .and_then(|p| std::str::from_utf8(p.value_bytes()).ok()?.parse().ok())
        .unwrap_or(0);
    Some(Bytes::from((n + 1).to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r21_update_counter_from_32_updaters_ends_exact() {
    let server = devserver().await;
    let proxy = FaultProxy::start(server.addr()).await;
    proxy.set_random(
        10,
        vec![
            Fault::too_many_requests(None),
            Fault::no_leader(),
            Fault::unavailable(),
            Fault::DelayHeaders(Duration::from_millis(20)),
        ],
        21,
    );
    let (tasks, each) = (32usize, size(50, 200));
    let c = client(&proxy.base_url());
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let kv = c.kv();
        handles.push(tokio::spawn(async move {
            for _ in 0..each {
                kv.update("r21/counter", increment)
                    .max_attempts(10_000)
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let took = start.elapsed();
    proxy.clear();
    let total = (tasks * each) as u64;
    let counter = read_counter(&client(&server.http_addr()), "r21")
        .await
        .unwrap_or(0);
    figure(
        &format!("R21 kv.update counter {tasks}×{each}, 10% refused-before-apply faults"),
        &format!("final {counter} of {total}; {:.1} s", took.as_secs_f64()),
        "exact count",
        counter == total,
    );
}
