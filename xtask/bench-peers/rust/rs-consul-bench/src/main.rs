//! The rs-consul contender: `rs-consul-bench --target URL --workload W ...`.
//!
//! Uses `Consul::new(Config { address, .. })` as its README shows; its default hyper builder
//! keeps no idle connections (`pool_max_idle_per_host(0)`), and that is what users get.
//! rs-consul has no `?keys` call, so `keys` is reported as unsupported.

use std::time::Duration;

use consul_kv_bench_harness::{cli_main, finish, Contender, OpError, Watcher};
use rs_consul::{
    Config, Consul, ConsulError, CreateOrUpdateKeyRequest, ReadKeyRequest, ReadKeyResponse,
};
use std::sync::Arc;

struct RsConsul(Arc<Consul>);

fn not_found(e: &ConsulError) -> bool {
    matches!(e, ConsulError::UnexpectedResponseCode(s, _) if s.as_u16() == 404)
}

fn entry(r: &ReadKeyResponse) -> (usize, u64) {
    (
        r.value.as_ref().map_or(0, String::len),
        r.modify_index as u64,
    )
}

impl Contender for RsConsul {
    type Watcher = RsWatch;

    async fn get(&self, key: &str) -> Result<Option<(usize, u64)>, OpError> {
        match self
            .0
            .read_key(ReadKeyRequest::builder().key(key).build())
            .await
        {
            Ok(m) => Ok(m.response.first().map(entry)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(OpError::failed(e)),
        }
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<bool, OpError> {
        let req = CreateOrUpdateKeyRequest::builder().key(key).build();
        self.0
            .create_or_update_key(req, value.to_vec())
            .await
            .map(|(ok, _)| ok)
            .map_err(OpError::failed)
    }

    async fn cas(&self, key: &str, value: &[u8], index: u64) -> Result<bool, OpError> {
        let req = CreateOrUpdateKeyRequest::builder()
            .key(key)
            .check_and_set(index as i64)
            .build();
        self.0
            .create_or_update_key(req, value.to_vec())
            .await
            .map(|(ok, _)| ok)
            .map_err(OpError::failed)
    }

    async fn items(&self, prefix: &str) -> Result<usize, OpError> {
        let req = ReadKeyRequest::builder().key(prefix).recurse(true).build();
        match self.0.read_key(req).await {
            Ok(m) => Ok(m.response.len()),
            Err(e) if not_found(&e) => Ok(0),
            Err(e) => Err(OpError::failed(e)),
        }
    }

    async fn keys(&self, _prefix: &str) -> Result<usize, OpError> {
        Err(OpError::Unsupported(
            "rs-consul 0.15 has no keys-only listing (?keys)".into(),
        ))
    }

    async fn watch(&self, key: &str) -> Result<RsWatch, OpError> {
        Ok(RsWatch {
            client: self.0.clone(),
            key: key.to_owned(),
            index: None,
        })
    }
}

struct RsWatch {
    client: Arc<Consul>,
    key: String,
    index: Option<u64>,
}

impl Watcher for RsWatch {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, OpError> {
        let req = ReadKeyRequest::builder()
            .key(&self.key)
            .maybe_index(self.index)
            .wait(Duration::from_secs(30))
            .build();
        match self.client.read_key(req).await {
            Ok(m) => {
                self.index = Some(m.index);
                Ok(m.response
                    .into_iter()
                    .next()
                    .and_then(|r| r.value)
                    .map(String::into_bytes))
            }
            Err(e) => Err(OpError::failed(e)),
        }
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    finish(cli_main("rs-consul", &args, |p| {
        Ok(RsConsul(Arc::new(Consul::new(Config {
            address: p.target.clone(),
            token: None,
            ..Config::default()
        }))))
    }))
}
