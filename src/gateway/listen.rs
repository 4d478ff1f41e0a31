//! The gateway's connections: accepted under a connection limit, with one
//! descriptor kept in reserve so that a client arriving when descriptors
//! have run out is told 503 rather than left waiting; each closed
//! gracefully once it has had no request for the idle timeout, and all of
//! them on shutdown.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use super::GatewayBody;

/// The answer to a client the gateway cannot take: a plain HTTP/1.1 503,
/// then the close.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 36\r\nconnection: close\r\n\r\nthe gateway serves too many clients\n";

/// Requests in progress on one connection, and since when it has had none.
#[derive(Debug)]
pub(crate) struct Activity {
    active: AtomicUsize,
    /// Whether a request has begun on the connection.
    spoke: std::sync::atomic::AtomicBool,
    idle_since: Mutex<Instant>,
    changed: Notify,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            active: AtomicUsize::new(0),
            spoke: std::sync::atomic::AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
            changed: Notify::new(),
        })
    }

    /// A request began; it ends when the guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.spoke.store(true, Ordering::Release);
        self.changed.notify_waiters();
        ActiveGuard(self.clone())
    }

    /// Returns once the connection has had no request for `limit`, or
    /// for `first` before its first request.
    async fn idle_for(&self, limit: Duration, first: Duration) {
        loop {
            let changed = self.changed.notified();
            if self.active.load(Ordering::Acquire) == 0 {
                let limit = if self.spoke.load(Ordering::Acquire) { limit } else { first.min(limit) };
                let since = *self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
                let at = since + limit;
                if Instant::now() >= at {
                    return;
                }
                let _ = tokio::time::timeout_at(at.into(), changed).await;
            } else {
                changed.await;
            }
        }
    }
}

/// One request in progress, until its response body has been sent.
#[derive(Debug)]
pub(crate) struct ActiveGuard(Arc<Activity>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
        self.0.changed.notify_waiters();
    }
}

/// A response body that keeps its request counted as in progress until it
/// has been sent or dropped.
pub(crate) struct Guarded {
    inner: GatewayBody,
    _guard: ActiveGuard,
}

impl Guarded {
    pub(crate) fn wrap(inner: GatewayBody, guard: ActiveGuard) -> GatewayBody {
        http_body_util::BodyExt::boxed_unsync(Guarded { inner, _guard: guard })
    }
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One descriptor held back for the moment the process runs out: it is
/// let go to accept the waiting client, answer it 503 and close it.
pub(crate) struct Reserve(Option<std::fs::File>);

impl Reserve {
    pub(crate) fn new() -> Reserve {
        Reserve(std::fs::File::open("/dev/null").ok())
    }

    /// After an accept failed with `err`: if descriptors ran out, answers
    /// one waiting client 503 with the reserve's descriptor.
    pub(crate) async fn refuse_one(&mut self, listener: &TcpListener, err: &std::io::Error) {
        // EMFILE and ENFILE: the process's or the system's limit.
        if !matches!(err.raw_os_error(), Some(24) | Some(23)) {
            return;
        }
        self.0 = None;
        if let Ok(Ok((stream, _))) = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await {
            refuse(stream, Duration::from_millis(100)).await;
        }
        *self = Reserve::new();
    }
}

/// Writes the 503, ends the stream and reads what the client sent for up
/// to `linger` before closing, so that its request is not answered with a
/// reset that would discard the 503.
pub(crate) async fn refuse(mut stream: TcpStream, linger: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    metrics::counter!("iip_gateway_refused_connections_total").increment(1);
    let work = async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(linger, work).await;
}

/// A second handle on a client's socket, which watches for the client
/// leaving while hyper reads nothing (a request in progress): the end of
/// its stream drops the connection and every request of it, so that
/// their upstream channels serve others once the abandoned answers are in.
pub(crate) struct LeaveWatch(Option<TcpStream>);

impl LeaveWatch {
    /// `stream`, and a watch on the same socket (none if it cannot be had).
    pub(crate) fn split(stream: TcpStream) -> std::io::Result<(TcpStream, LeaveWatch)> {
        let std = stream.into_std()?;
        let watch = std.try_clone().and_then(TcpStream::from_std).ok();
        Ok((TcpStream::from_std(std)?, LeaveWatch(watch)))
    }

    /// Returns once the client has ended its stream while a request of it
    /// is in progress. Bytes it sent that hyper has not read yet (a
    /// pipelined request, a TLS record) are looked at again every 50 ms.
    async fn left(&self, activity: &Activity) {
        let Some(watch) = &self.0 else { return std::future::pending().await };
        let mut probe = [0u8; 1];
        loop {
            let changed = activity.changed.notified();
            if activity.active.load(Ordering::Acquire) == 0 {
                changed.await;
                continue;
            }
            match watch.peek(&mut probe).await {
                Ok(0) | Err(_) => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// How long a connection may go without a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdleLimits {
    /// Between requests.
    pub(crate) idle: Duration,
    /// Before the first one.
    pub(crate) first: Duration,
}

/// Serves one connection until it ends: closed gracefully once it has had
/// no request for as long as `limits` allow or when `stop` turns true, and
/// dropped at once when the client leaves with requests in progress.
pub(crate) async fn serve_until_idle<C>(
    connection: C,
    activity: Arc<Activity>,
    leave: LeaveWatch,
    limits: IdleLimits,
    mut stop: watch::Receiver<bool>,
) where
    C: std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + GracefulConnection,
{
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(err) = ended {
                    tracing::debug!(%err, "gateway connection ended with an error");
                }
                return;
            }
            _ = leave.left(&activity) => {
                metrics::counter!("iip_gateway_abandoned_total").increment(1);
                return;
            }
            _ = activity.idle_for(limits.idle, limits.first), if !draining => {
                connection.as_mut().begin_graceful_shutdown();
                draining = true;
            }
            _ = stop.wait_for(|s| *s), if !draining => {
                connection.as_mut().begin_graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// A connection that can be asked to finish what it has begun and close.
pub(crate) trait GracefulConnection {
    fn begin_graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, E> GracefulConnection for hyper_util::server::conn::auto::Connection<'static, I, S, E>
where
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<GatewayBody>>,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, GatewayBody>,
{
    fn begin_graceful_shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}
