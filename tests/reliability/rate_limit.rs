//! R11 against a rate-limiting server: the devserver's Consul 1.15+ limiter refuses reads with
//! `429` and writes with `503` before applying them. Concurrent CAS increments through it must
//! end exact: every refused write is repeated by the client, none is applied twice.

use std::time::Duration;

use consul_kv::{Client, RetryPolicy};
use consul_kv_devserver::{DevServer, RateLimit};

use crate::{figure, size};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_cas_counter_through_the_server_rate_limiter() {
    let tasks = 8;
    let per_task = size(8, 40);
    let server = DevServer::builder()
        .rate_limit(RateLimit::new(200.0, 50.0))
        .start()
        .await
        .expect("devserver");
    let client = Client::builder()
        .address(server.http_addr())
        .timeout(Duration::from_secs(5))
        .retry(
            RetryPolicy::default()
                .max_attempts(60)
                .base(Duration::from_millis(20))
                .cap(Duration::from_millis(400))
                .budget(Duration::from_secs(60)),
        )
        .build()
        .expect("client");
    let key = "reliability/r11-rate-limit/counter";
    assert!(client.kv().set(key, "0").await.expect("seed"));

    let mut handles = Vec::new();
    for _ in 0..tasks {
        let kv = client.kv();
        handles.push(tokio::spawn(async move {
            let mut errors = 0u32;
            let mut done = 0;
            while done < per_task {
                let current = match kv.get(key).await {
                    Ok(Some(k)) => k,
                    Ok(None) => panic!("the counter vanished"),
                    Err(_) => {
                        errors += 1;
                        continue;
                    }
                };
                let n: u64 = current
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .expect("a number");
                match kv.set(key, (n + 1).to_string()).cas(&current).await {
                    Ok(true) => done += 1,
                    Ok(false) => {}
                    Err(_) => errors += 1,
                }
            }
            errors
        }));
    }
    let mut errors = 0;
    for h in handles {
        errors += h.await.expect("task");
    }
    let final_value: u64 = client
        .kv()
        .get(key)
        .await
        .expect("read")
        .and_then(|k| k.as_str().and_then(|s| s.parse().ok()))
        .expect("a number");
    let expected = (tasks * per_task) as u64;
    let refused = server.rate_limited();
    figure(
        "R11 CAS counter through the server rate limiter (50 writes/s, 200 reads/s)",
        &format!(
            "final {final_value} of {expected}; {refused} requests refused with 429/503 and \
             repeated by the client; {errors} errors surfaced"
        ),
        "exact count (nothing applied twice), refusals > 0, 0 errors",
        final_value == expected && refused > 0 && errors == 0,
    );
    server.shutdown().await.expect("shutdown");
}
