//! The connector: TCP, TLS (feature `rustls`) or a Unix socket, with a hard per-host
//! connection cap and per-connection bookkeeping for safe retries.
//!
//! Every connection holds one permit of a [`Semaphore`] for its whole life (in the pool or in
//! use), so the number of open sockets never exceeds the cap. The client also admits at most
//! as many requests as the cap at once (queueing the rest within their deadlines), so a
//! request rarely finds every socket taken; if it does, it waits for an idle connection or a
//! permit, whichever comes first.
//!
//! [`Tracked`] wraps each stream and records, for the request in progress, whether any byte of
//! it was written and whether any byte of the answer was read. The client reads this through
//! hyper-util's connection capture to decide whether a failed request can have reached the
//! server. Before writing the first byte of a request on a reused connection it also peeks the
//! socket: if the server has already closed it (EOF) or sent something unsolicited, the write
//! fails with nothing sent, so the request can be repeated on a new connection whatever its
//! method.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
#[cfg(unix)]
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::BoxError;

/// Where connections go.
#[derive(Clone)]
pub(crate) enum Transport {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    #[cfg(feature = "rustls")]
    Tls(crate::tls::TlsConnector),
    /// A Unix domain socket; the request URI's authority is ignored.
    #[cfg(unix)]
    Unix(Arc<PathBuf>),
}

/// A `tower::Service<Uri>` that hyper-util's pool calls for each new connection.
#[derive(Clone)]
pub(crate) struct Connector {
    pub(crate) transport: Transport,
    pub(crate) http: HttpConnector,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) connect_timeout: Duration,
}

impl Connector {
    pub(crate) fn new(
        transport: Transport,
        connect_timeout: Duration,
        max_connections: usize,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(30)));
        // TLS is done by this connector, not by HttpConnector, so it must accept https URIs.
        http.enforce_http(false);
        Self {
            transport,
            http,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            connect_timeout,
        }
    }

    async fn connect(mut self, uri: Uri) -> Result<TokioIo<Tracked>, BoxError> {
        // The client queues requests so that this wait is rare and short; a connect that
        // hyper-util finishes in the background (its request took an idle connection instead)
        // must not wait here for long, so the wait is bounded.
        let permit = tokio::time::timeout(
            self.connect_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connection limit reached"))??;
        let stream = match self.transport.clone() {
            Transport::Tcp => Stream::Tcp(self.tcp(uri).await?),
            #[cfg(feature = "rustls")]
            Transport::Tls(tls) => {
                let tcp = self.tcp(uri).await?;
                let s = tokio::time::timeout(self.connect_timeout, tls.handshake(tcp))
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                Stream::Tls(Box::new(s))
            }
            #[cfg(unix)]
            Transport::Unix(path) => {
                let s = tokio::time::timeout(self.connect_timeout, UnixStream::connect(&*path))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
                Stream::Unix(s)
            }
        };
        Ok(TokioIo::new(Tracked::new(stream, permit)))
    }

    async fn tcp(&mut self, uri: Uri) -> Result<TcpStream, BoxError> {
        use tower_service::Service as _;
        std::future::poll_fn(|cx| self.http.poll_ready(cx)).await?;
        Ok(self.http.call(uri).await?.into_inner())
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Tracked>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// The raw stream under a connection.
pub(crate) enum Stream {
    Tcp(TcpStream),
    #[cfg(feature = "rustls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    /// Checks, without blocking, whether the peer closed the connection or sent something while
    /// it was idle. `Ok(())` means "looks alive".
    ///
    /// This peeks the socket with a system call rather than through tokio, whose readiness
    /// cache may not have seen the peer's FIN yet.
    #[cfg(unix)]
    fn idle_check(&self) -> io::Result<()> {
        // Over TLS, bytes on an idle connection may be a late session ticket: only EOF counts.
        let (sock, data_means_closed) = match self {
            Self::Tcp(s) => (socket2::SockRef::from(s), true),
            #[cfg(feature = "rustls")]
            Self::Tls(s) => (socket2::SockRef::from(s.get_ref().0), false),
            Self::Unix(s) => (socket2::SockRef::from(s), true),
        };
        let mut byte = [MaybeUninit::<u8>::uninit(); 1];
        match sock.peek(&mut byte) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server closed the idle connection",
            )),
            Ok(_) if data_means_closed => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server sent data on an idle connection",
            )),
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(not(unix))]
impl Stream {
    /// Without a portable non-blocking peek, a reused connection is assumed alive.
    fn idle_check(&self) -> io::Result<()> {
        Ok(())
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => $e,
            #[cfg(feature = "rustls")]
            Stream::Tls($s) => $e,
            #[cfg(unix)]
            Stream::Unix($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            #[cfg(feature = "rustls")]
            Self::Tls(s) => s.is_write_vectored(),
            #[cfg(unix)]
            Self::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// Per-connection counters, shared with the client through [`Connected::extra`].
///
/// HTTP/1.1 without pipelining alternates requests and responses, so the first write after
/// response bytes were read starts a new request. The client marks each request whose
/// response it read completely; a request that failed while `started == completed` never
/// wrote a byte.
#[derive(Debug, Default)]
pub(crate) struct ConnStats {
    /// Requests that began writing on this connection.
    started: AtomicU64,
    /// Requests whose whole response was read (maintained by the client).
    completed: AtomicU64,
    /// Bytes of the latest started request written to the socket.
    req_written: AtomicU64,
    /// Bytes read since the latest request started.
    req_read: AtomicU64,
    /// The client gave up on a response of this connection (its body was too large or broke
    /// off): the connection must not carry another request, even if hyper found it reusable.
    doomed: AtomicBool,
}

/// What a failed request's connection says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestTrace {
    /// The connection had served an earlier request.
    pub(crate) reused: bool,
    /// No byte of this request reached the socket.
    pub(crate) nothing_sent: bool,
    /// No byte of an answer came back.
    pub(crate) nothing_received: bool,
}

impl ConnStats {
    /// Reads the counters after a request on this connection failed.
    pub(crate) fn trace(&self) -> RequestTrace {
        let started = self.started.load(Ordering::SeqCst);
        let completed = self.completed.load(Ordering::SeqCst);
        let nothing_sent = started <= completed || self.req_written.load(Ordering::SeqCst) == 0;
        RequestTrace {
            reused: completed >= 1,
            nothing_sent,
            nothing_received: nothing_sent || self.req_read.load(Ordering::SeqCst) == 0,
        }
    }

    /// Records that a request's whole response was read.
    pub(crate) fn complete(&self) {
        self.completed.fetch_add(1, Ordering::SeqCst);
    }

    /// Refuses any further request on this connection: its next write fails with nothing sent
    /// (so the request is repeated on a new connection) and the connection is dropped.
    ///
    /// Reads do not capture their connection up front (that costs every request); when one
    /// fails after its head arrived, this is how its connection is kept from serving again.
    pub(crate) fn doom(&self) {
        self.doomed.store(true, Ordering::SeqCst);
    }
}

/// The handle stored in [`Connected::extra`].
#[derive(Clone, Debug)]
pub(crate) struct StatsHandle(pub(crate) Arc<ConnStats>);

/// A stream that keeps its connection permit and counts request/response bytes.
pub(crate) struct Tracked {
    inner: Stream,
    stats: Arc<ConnStats>,
    /// `true` between a read and the next write: the next write starts a new request.
    at_request_boundary: bool,
    _permit: OwnedSemaphorePermit,
}

impl Tracked {
    fn new(inner: Stream, permit: OwnedSemaphorePermit) -> Self {
        Self {
            inner,
            stats: Arc::new(ConnStats::default()),
            at_request_boundary: true,
            _permit: permit,
        }
    }

    /// Called before every write with the first bytes to be written: at a request boundary,
    /// starts a new request's counters and, on a reused connection, checks that the server has
    /// not closed it. The check (a `peek` system call) is skipped for `GET` and `HEAD`: a read
    /// that meets a closed connection fails with nothing received and is repeated at once on a
    /// new one, so only a write needs to know before it sends.
    fn before_write(&mut self, head: &[u8]) -> io::Result<()> {
        if self.at_request_boundary {
            self.at_request_boundary = false;
            self.stats.req_written.store(0, Ordering::SeqCst);
            self.stats.req_read.store(0, Ordering::SeqCst);
            let n = self.stats.started.fetch_add(1, Ordering::SeqCst) + 1;
            if self.stats.doomed.load(Ordering::SeqCst) {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the connection was dropped after a failed response",
                ));
            }
            if n > 1 && !(head.starts_with(b"GET ") || head.starts_with(b"HEAD ")) {
                self.inner.idle_check()?;
            }
        }
        Ok(())
    }

    fn wrote(&self, r: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = r {
            self.stats
                .req_written
                .fetch_add(*n as u64, Ordering::SeqCst);
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.stats.req_read.fetch_add(n as u64, Ordering::SeqCst);
            this.at_request_boundary = true;
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.before_write(buf) {
            return Poll::Ready(Err(e));
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(&r);
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let head = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if let Err(e) = this.before_write(head) {
            return Poll::Ready(Err(e));
        }
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Connection for Tracked {
    fn connected(&self) -> Connected {
        Connected::new().extra(StatsHandle(Arc::clone(&self.stats)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (Tracked, TcpStream, Arc<Semaphore>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        let sem = Arc::new(Semaphore::new(1));
        let permit = Arc::clone(&sem).acquire_owned().await.unwrap();
        (
            Tracked::new(Stream::Tcp(c.unwrap()), permit),
            s.unwrap().0,
            sem,
        )
    }

    /// Waits (up to 30 s) until the peer's close has reached `c`'s socket, so that a test does
    /// not depend on how fast a loaded machine delivers the FIN.
    async fn until_peer_closed(c: &Tracked) {
        for _ in 0..3000 {
            if c.inner.idle_check().is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the peer's close never arrived");
    }

    #[tokio::test]
    async fn counts_each_request_and_refuses_to_write_on_a_closed_reused_connection() {
        let (mut c, mut s, sem) = pair().await;
        assert_eq!(sem.available_permits(), 0);
        let t = c.stats.trace();
        assert!(!t.reused && t.nothing_sent && t.nothing_received);
        c.write_all(b"req1").await.unwrap();
        let t = c.stats.trace();
        assert!(!t.reused && !t.nothing_sent && t.nothing_received);
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(b"resp").await.unwrap();
        c.read_exact(&mut buf).await.unwrap();
        assert!(!c.stats.trace().nothing_received);
        c.stats.complete();
        // The next request has not written yet.
        let t = c.stats.trace();
        assert!(t.reused && t.nothing_sent && t.nothing_received, "{t:?}");
        // The server closes the idle connection; the next request must fail with nothing sent.
        drop(s);
        until_peer_closed(&c).await;
        let err = c.write_all(b"req2").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        let t = c.stats.trace();
        assert!(t.reused && t.nothing_sent && t.nothing_received, "{t:?}");
        drop(c);
        assert_eq!(
            sem.available_permits(),
            1,
            "the permit is freed with the connection"
        );
    }

    #[tokio::test]
    async fn a_read_skips_the_idle_check_and_counts_as_unanswered() {
        let (mut c, mut s, _sem) = pair().await;
        // The server reads each request whole: unread bytes would turn its close into a reset.
        let put = b"PUT /a HTTP/1.1\r\n\r\n";
        c.write_all(put).await.unwrap();
        s.read_exact(&mut vec![0; put.len()]).await.unwrap();
        let mut b = [0u8; 1];
        s.write_all(b"r").await.unwrap();
        c.read_exact(&mut b).await.unwrap();
        c.stats.complete();
        drop(s);
        until_peer_closed(&c).await;
        // No peek for a GET: it is written, and with nothing received the executor treats
        // the connection as stale and repeats the read on a new one.
        // (A peek would refuse this write with `ConnectionAborted`; the kernel takes it.)
        c.write_all(b"GET /a HTTP/1.1\r\n\r\n")
            .await
            .expect("a GET is written without the idle check");
        let t = c.stats.trace();
        assert!(t.reused && !t.nothing_sent && t.nothing_received, "{t:?}");
        // A write is still checked first, and refused with nothing sent.
        c.stats.complete();
        let (mut c2, mut s2, _sem2) = pair().await;
        let get = b"GET /b HTTP/1.1\r\n\r\n";
        c2.write_all(get).await.unwrap();
        s2.read_exact(&mut vec![0; get.len()]).await.unwrap();
        s2.write_all(b"r").await.unwrap();
        c2.read_exact(&mut b).await.unwrap();
        c2.stats.complete();
        drop(s2);
        until_peer_closed(&c2).await;
        let err = c2
            .write_all(b"DELETE /b HTTP/1.1\r\n\r\n")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert!(c2.stats.trace().nothing_sent);
    }

    #[tokio::test]
    async fn a_live_reused_connection_writes() {
        let (mut c, mut s, _sem) = pair().await;
        c.write_all(b"a").await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        s.write_all(b"b").await.unwrap();
        c.read_exact(&mut b).await.unwrap();
        c.stats.complete();
        c.write_all(b"c").await.unwrap();
        let t = c.stats.trace();
        assert!(t.reused && !t.nothing_sent);
    }
}
