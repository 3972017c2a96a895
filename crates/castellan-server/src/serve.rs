//! Serving connections with bounds, so that slow or silent clients cannot hold the server: a request's headers (and
//! the wait for the next request on a kept-alive connection) must arrive within the header timeout, its body within
//! the body timeout, and at most `max_connections` connections are open at once. Without them 1,100 silent
//! connections used up 1,024 file descriptors and `/healthz` stopped answering.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulConnection, GracefulShutdown};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::shaped::Shaped;

/// How long and how many: the bounds every connection is served within.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest wait for a request's headers, counted from when the connection is ready for one: this also closes
    /// kept-alive connections idle for as long.
    pub header_timeout: Duration,
    /// Longest time to receive a request's whole body, counted from the end of its headers.
    pub body_timeout: Duration,
    /// Most connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// How long requests in flight may take to finish once shutdown begins; a `watch/` stream never ends by itself
    /// and would otherwise hold shutdown forever.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Descriptors kept for everything that is not a client connection: the database and its WAL, the log, the
/// listening socket, the runtime.
const RESERVED_DESCRIPTORS: u64 = 64;

/// The process's descriptor limit less [`RESERVED_DESCRIPTORS`], and at least 16.
pub fn default_max_connections() -> usize {
    let limit = descriptor_limit().map_or(1024, |l| l.rlim_cur);
    usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS).max(16)).unwrap_or(usize::MAX)
}

/// The soft and hard limits on open descriptors.
fn descriptor_limit() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct passed by reference.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit)
}

/// Raises the soft limit on open descriptors to the hard one, as servers commonly do at start (the soft default of
/// 1,024 is meant for programs that use `select`).
pub fn raise_descriptor_limit() {
    let Some(limit) = descriptor_limit().filter(|l| l.rlim_cur < l.rlim_max) else { return };
    let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
    // SAFETY: setrlimit only reads the struct passed by reference.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        tracing::warn!("cannot raise the limit on open files above {}", limit.rlim_cur);
    }
}

/// Connections closed at once because `max_connections` were open (exported by `/metrics`).
pub static CONNECTIONS_REFUSED: AtomicU64 = AtomicU64::new(0);

/// Serves `app` on `listener` within `limits` until `shutdown` completes; then stops accepting, lets requests in
/// flight finish and closes idle connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // HTTP/1 only: telling HTTP/2 from HTTP/1 means waiting for the first bytes with no timeout at all, which is
    // where silent connections would sit.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or memory: wait rather than spin, the connections being served will end.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            CONNECTIONS_REFUSED.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let watched = graceful.watch(connection(&builder, stream, peer, app.clone(), limits.body_timeout));
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!("connection ended: {e}");
            }
            // The connection's place is free once it is closed.
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("closing connections still open {:?} after shutdown began", limits.shutdown_grace);
    }
    Ok(())
}

/// Serves one connection: each request learns its peer's address and gets a body that must arrive in time.
fn connection(
    builder: &auto::Builder<TokioExecutor>,
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    body_timeout: Duration,
) -> impl GracefulConnection<Error = Box<dyn std::error::Error + Send + Sync>> + Send + 'static {
    // Small answers go out at once rather than waiting for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let service = app.map_request(move |req: Request<Incoming>| {
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(ConnectInfo(peer));
        Request::from_parts(parts, Body::new(Deadline::new(body, body_timeout)))
    });
    builder.serve_connection(TokioIo::new(Shaped::new(stream)), TowerToHyperService::new(service)).into_owned()
}

/// The error a body gives when it did not arrive within the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received in time")]
pub struct BodyTimedOut;

/// A request body that must arrive by a deadline. The timer is only started when the body is not there at once,
/// so small bodies that come with their headers (a check) cost no timer.
struct Deadline {
    inner: Incoming,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self { inner, deadline: Instant::now() + timeout, sleep: None }
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error`, or an error it was caused by, is [`BodyTimedOut`].
pub fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        cause = e.source();
    }
    false
}
