//! The consulrs contender: `consulrs-bench --target URL --workload W ...`.
//!
//! Uses `ConsulClient::new(ConsulClientSettingsBuilder::default().address(..).build())` and
//! the `kv::read / set / keys` functions as its README shows. `kv::set` takes a
//! `&'static [u8]` value, so the values this program writes are leaked once and reused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use consul_kv_bench_harness::{cli_main, finish, Contender, OpError, Watcher};
use consulrs::api::features::{Blocking, Features};
use consulrs::api::kv::requests::{ReadKeyRequest, SetKeyRequest};
use consulrs::client::{ConsulClient, ConsulClientSettingsBuilder};
use consulrs::error::ClientError;
use consulrs::kv;

struct ConsulRs {
    client: Arc<ConsulClient>,
    values: Mutex<HashMap<Vec<u8>, &'static [u8]>>,
}

impl ConsulRs {
    /// `kv::set` wants a `'static` value: leak each distinct value once.
    fn value(&self, v: &[u8]) -> &'static [u8] {
        let mut map = self.values.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(v) {
            return s;
        }
        let s: &'static [u8] = Box::leak(v.to_vec().into_boxed_slice());
        map.insert(v.to_vec(), s);
        s
    }
}

fn not_found(e: &ClientError) -> bool {
    matches!(e, ClientError::APIError { code: 404, .. })
}

impl Contender for ConsulRs {
    type Watcher = RsWatch;

    async fn get(&self, key: &str) -> Result<Option<(usize, u64)>, OpError> {
        match kv::read(&*self.client, key, None).await {
            Ok(r) => Ok(r.response.into_iter().next().map(|p| {
                let len = match p.value {
                    Some(v) => {
                        let bytes: Result<Vec<u8>, _> = v.try_into();
                        bytes.map_or(0, |b| b.len())
                    }
                    None => 0,
                };
                (len, p.modify_index)
            })),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(OpError::failed(e)),
        }
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<bool, OpError> {
        kv::set(&*self.client, key, self.value(value), None)
            .await
            .map(|r| r.response)
            .map_err(OpError::failed)
    }

    async fn cas(&self, key: &str, value: &[u8], index: u64) -> Result<bool, OpError> {
        let mut opts = SetKeyRequest::builder();
        opts.cas(index);
        kv::set(&*self.client, key, self.value(value), Some(&mut opts))
            .await
            .map(|r| r.response)
            .map_err(OpError::failed)
    }

    async fn items(&self, prefix: &str) -> Result<usize, OpError> {
        let mut opts = ReadKeyRequest::builder();
        opts.recurse(true);
        match kv::read(&*self.client, prefix, Some(&mut opts)).await {
            Ok(r) => {
                // Decode every value, as a caller reading the items would.
                let mut n = 0;
                for p in r.response {
                    if let Some(v) = p.value {
                        let _bytes: Vec<u8> = v.try_into().map_err(OpError::failed)?;
                    }
                    n += 1;
                }
                Ok(n)
            }
            Err(e) if not_found(&e) => Ok(0),
            Err(e) => Err(OpError::failed(e)),
        }
    }

    async fn keys(&self, prefix: &str) -> Result<usize, OpError> {
        match kv::keys(&*self.client, prefix, None).await {
            Ok(r) => Ok(r.response.len()),
            Err(e) if not_found(&e) => Ok(0),
            Err(e) => Err(OpError::failed(e)),
        }
    }

    async fn watch(&self, key: &str) -> Result<RsWatch, OpError> {
        Ok(RsWatch {
            client: self.client.clone(),
            key: key.to_owned(),
            index: None,
        })
    }
}

struct RsWatch {
    client: Arc<ConsulClient>,
    key: String,
    index: Option<u64>,
}

impl Watcher for RsWatch {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, OpError> {
        let mut opts = ReadKeyRequest::builder();
        if let Some(index) = self.index {
            opts.features(
                Features::builder()
                    .blocking(Blocking {
                        index,
                        wait: Some("30s".into()),
                    })
                    .build()
                    .map_err(OpError::failed)?,
            );
        }
        let r = kv::read(&*self.client, &self.key, Some(&mut opts))
            .await
            .map_err(OpError::failed)?;
        self.index = r.index.as_deref().and_then(|i| i.parse().ok());
        match r.response.into_iter().next().and_then(|p| p.value) {
            Some(v) => Ok(Some(v.try_into().map_err(OpError::failed)?)),
            None => Ok(None),
        }
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    finish(cli_main("consulrs", &args, |p| {
        let settings = ConsulClientSettingsBuilder::default()
            .address(p.target.clone())
            .build()
            .map_err(|e| e.to_string())?;
        let client = ConsulClient::new(settings).map_err(|e| e.to_string())?;
        Ok(ConsulRs {
            client: Arc::new(client),
            values: Mutex::new(HashMap::new()),
        })
    }))
}
