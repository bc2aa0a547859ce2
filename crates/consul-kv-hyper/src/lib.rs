//! The executor for [`consul-kv-proto`](proto): sends its operations over hyper.
//!
//! [`HyperClient`] owns one pooled HTTP/1.1 client (keep-alive, a hard cap on open connections)
//! and runs any [`proto::Operation`]:
//!
//! - **deadlines** on every call: 10 s, or `wait + wait/16 + 8 s` for a blocking read; 5 s to
//!   connect;
//! - **bounded bodies**: 64 MiB, 1 MiB for error statuses; past it [`Error::BodyTooLarge`] and
//!   the connection is dropped;
//! - **safe retries**: reads on connect errors, resets, `429`, `503`, `500 No cluster leader`,
//!   `502`, `504`, with full-jitter backoff and a budget; writes only when Consul certainly did
//!   not apply them; an ambiguous write failure is [`Error::OutcomeUnknown`];
//! - `http://`, `https://` (feature `rustls`, on by default) and `unix://` addresses, and the
//!   `consul` CLI's `CONSUL_*` environment ([`HyperClientBuilder::from_env`]);
//! - a `tracing` span per request (`consul_request`: method, path without query, attempt,
//!   status, elapsed). The ACL token appears in no span, `Debug`, `Display` or error.
//!
//! No hyper type appears in the public API.
//!
//! # Example
//!
//! ```
//! use consul_kv_hyper::{proto::kv::{Get, Set}, HyperClient};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let addr = fake_agent().await;
//! let client = HyperClient::builder().address(addr).token("my-acl-token").build()?;
//! assert!(client.execute(&Set::new("app/mode", "blue")).await?.is_applied());
//! let found = client.execute(&Get::new("app/mode")).await?;
//! assert_eq!(found.value.and_then(|p| p.value).as_deref(), Some(&b"blue"[..]));
//! assert_eq!(found.meta.last_index.get(), 7);
//! # Ok(()) }
//! # /// A stand-in for a Consul agent: answers PUT with `true` and GET with one key.
//! # async fn fake_agent() -> String {
//! #     use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! #     let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! #     let addr = l.local_addr().unwrap().to_string();
//! #     tokio::spawn(async move {
//! #         while let Ok((mut s, _)) = l.accept().await {
//! #             tokio::spawn(async move {
//! #                 let mut buf = vec![0u8; 4096];
//! #                 let Ok(n) = s.read(&mut buf).await else { return };
//! #                 let body: &[u8] = if buf[..n].starts_with(b"PUT") { b"true" } else {
//! #                     br#"[{"Key":"app/mode","Value":"Ymx1ZQ==","Flags":0,"CreateIndex":7,"ModifyIndex":7,"LockIndex":0}]"#
//! #                 };
//! #                 let head = format!("HTTP/1.1 200 OK\r\nConnection: close\r\nX-Consul-Index: 7\r\nContent-Length: {}\r\n\r\n", body.len());
//! #                 let _ = s.write_all(head.as_bytes()).await;
//! #                 let _ = s.write_all(body).await;
//! #                 let _ = s.shutdown().await; // then drain, so that closing sends no RST
//! #                 while let Ok(1..) = s.read(&mut buf).await {}
//! #             });
//! #         }
//! #     });
//! #     addr
//! # }
//! ```
//!
//! Trees larger than the body limit, entry by entry as the body arrives:
//! [`HyperClient::stream`]. Blocking queries that yield each change: [`HyperClient::watch`]. Per-call deadlines and
//! retry policies: [`HyperClient::execute_with`].
//!
//! # Cargo features
//!
//! - `rustls` (on by default): `https://` agents, through rustls with the ring provider and
//!   the platform's root certificates (plus `CONSUL_CACERT` / `CONSUL_CAPATH` and client
//!   certificates). Without it the crate has no TLS code and an `https://` address is a
//!   configuration error; `http://` and `unix://` work either way.

pub use proto;

mod admission;
mod body;
mod builder;
mod client;
mod connect;
mod error;
mod gzip;
mod retry;
mod stream;
#[cfg(feature = "rustls")]
mod tls;
mod watch;

pub use builder::{
    HyperClientBuilder, DEFAULT_ADDRESS, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_STREAM_BODY,
};
pub use client::{CallOptions, HyperClient};
pub use error::{ConfigError, Error, RequestTarget, TransportError};
pub use retry::RetryPolicy;
pub use stream::ListStream;
pub use watch::{HyperWatch, WatchStep};
