//! The listener: accepts TCP connections and serves each with hyper's HTTP/1.1, handing
//! every request to the router.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::router;
use crate::server::{sweep, Shared};

/// Accepts connections until `shutdown` flips (or its sender drops).
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let sweeper = tokio::spawn(sweep(Arc::clone(&shared), shutdown.clone()));
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((stream, peer)) => {
                    tracing::trace!(%peer, "connection accepted");
                    conns.spawn(serve(Arc::clone(&shared), stream));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.abort_all();
    while conns.join_next().await.is_some() {}
    sweeper.abort();
}

async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let shared = Arc::clone(&shared);
        async move {
            let read_only = matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD);
            let resp = router::handle(Arc::clone(&shared), req).await;
            // With `--data`, a write is answered only once its log record is on disk.
            if let (false, Some(wal)) = (read_only, shared.wal.get()) {
                if !wal.wait_durable().await {
                    return Ok(crate::wal::not_durable());
                }
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        // hyper closes a connection whose next request head does not arrive within 30 s once a
        // timer is set; Consul 1.14 keeps idle keep-alive connections open (checked: a request
        // after 65 s idle is answered), and clients with many idle watchers rely on it.
        .header_read_timeout(None)
        .title_case_headers(true)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
