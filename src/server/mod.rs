//! The tokio IIP server: routes, limits, the accept loop and graceful
//! shutdown, over the sans-IO core in [`crate::proto::server`].
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use iip::server::{Request, Server};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
//! let server = Server::builder()
//!     .route("/echo", |req: Request| async move { Ok::<_, std::convert::Infallible>(req.into_body()) })
//!     .build()
//!     .map_err(std::io::Error::other)?;
//! server.serve(listener).await
//! # }
//! ```

mod accept;
mod auth_pace;
mod builder;
/// Failed authentications a source may have before its checks are paced
/// ([`ServerBuilder::auth_failure_interval`], `[RES-10]`): what the
/// reference declares in its conformance profile.
#[cfg(feature = "conformance")]
pub(crate) use auth_pace::FREE_FAILURES as FREE_AUTH_FAILURES;
pub use builder::{RouteError, ServerBuilder};
#[cfg(feature = "config")]
pub mod config;
mod connection;
pub mod extensions;
pub mod handler;
pub mod memory;
pub mod metrics;
mod offload;
pub mod stats;
pub mod tally;
pub mod transport;
mod turn_clock;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

#[cfg(feature = "config")]
pub use config::ConfigError;
pub use extensions::{AuthError, Authenticator, BearerTokens, ExtensionsConfig};
pub use handler::{
    BoxError, FnHandler, Handler, HandlerError, HandlerService, Reply, Request, ServiceHandler, SyncFnHandler,
};
pub use memory::MemoryStats;
pub use stats::ServerStats;
pub use transport::{AnyStream, IntoHalves, Listen, Peer};

pub use crate::proto::extensions::AuthPolicy;
pub use crate::proto::timers::Timeouts;

use crate::proto::server::{ServerConfig as CoreConfig, ServerConnection};
use crate::wire::answer::{ErrorAnswer, ErrorCode};
use crate::wire::frame::{Frame, FrameLimits};
use crate::wire::known_paths::{interned, KnownPaths};
use crate::wire::status::Status;

/// Settings of a server. With the `config` feature it loads from TOML with
/// environment overrides (see [`ServerConfig::from_toml`]); every key is
/// optional and durations are seconds.
///
/// Start from `default()` and set the fields to change: the struct is
/// `#[non_exhaustive]`, so a field added later breaks no caller.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Settings of the per-connection protocol core.
    pub core: CoreConfig,
    /// Most connections at once (`[ANSWER-5]`). Default 10,000.
    pub max_connections: usize,
    /// Most requests of one connection being handled at once; past it the
    /// server stops reading that connection until some are answered.
    /// Default 1,024.
    pub max_in_flight: usize,
    /// How long a handler may run before the request is answered with 103.
    /// Default: no limit.
    #[serde(with = "crate::seconds::optional")]
    pub handler_timeout: Option<Duration>,
    /// A route whose handlers spend more than this in `poll` per request
    /// (their CPU time, measured on one request in eight, as a moving
    /// average) has its handlers spawned onto the runtime's workers, so that
    /// one connection can use every core; under half of it they run inline
    /// again, in the connection's task, which is cheapest for cheap
    /// handlers. `0`: always inline. Default 10 µs.
    #[serde(with = "crate::seconds::optional")]
    pub offload_after: Option<Duration>,
    /// Idle, frame read and write timeouts of every connection
    /// (`[RES-5]`–`[RES-7]`). Defaults 60 s, 30 s, 30 s.
    pub timeouts: Timeouts,
    /// The server-wide memory budget in bytes (`[RES-4]`): while all
    /// connections together hold this much, a connection that already holds
    /// answers or requests reads nothing more, and chunked requests are
    /// refused with 110. Default 256 MiB.
    pub max_server_held_bytes: usize,
    /// Bytes per second that all connections together may have the server
    /// inflate and compress for them (`[RES-9]`): a connection whose
    /// bodies took more than its share reads nothing more until its turn
    /// has come, so that a few KB of compressed bodies cannot occupy the
    /// cores. `0` switches the pace off. Default 256 MiB/s.
    pub max_codec_rate: usize,
    /// How long a graceful shutdown waits for requests already received to
    /// be answered before it closes the remaining connections. Default 30 s.
    #[serde(with = "crate::seconds::required")]
    pub grace: Duration,
    /// How long a TLS handshake may take before its connection is closed
    /// (a slow handshake holds a connection slot). Default 10 s.
    #[serde(with = "crate::seconds::required")]
    pub tls_handshake_timeout: Duration,
    /// The extensions negotiated with `/sys/hello` (spec chapter 14).
    /// Default: all on but authentication (see [`ExtensionsConfig`]).
    pub extensions: ExtensionsConfig,
}

/// The default server-wide memory budget: 256 MiB.
pub const DEFAULT_MAX_SERVER_HELD_BYTES: usize = 256 * 1024 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            core: CoreConfig::default(),
            max_connections: 10_000,
            max_in_flight: 1024,
            handler_timeout: None,
            offload_after: Some(Duration::from_micros(10)),
            timeouts: Timeouts::default(),
            max_server_held_bytes: DEFAULT_MAX_SERVER_HELD_BYTES,
            max_codec_rate: 256 * 1024 * 1024,
            grace: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            extensions: ExtensionsConfig::default(),
        }
    }
}

/// The TLS acceptor of a listener: rustls's with the `tls` feature; without
/// it no value exists and every connection is plain.
#[cfg(feature = "tls")]
type TlsAcceptor = tokio_rustls::TlsAcceptor;
/// Without the `tls` feature no listener runs TLS.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
enum TlsAcceptor {}

/// What every connection task shares.
pub(crate) struct Shared {
    config: ServerConfig,
    /// Each application route's handler and statistics, found with one lookup.
    /// Keys are interned ([`interned`]): a route's name given to a handler
    /// or written in an answer's frames is shared with no reference count.
    routes: rustc_hash::FxHashMap<Bytes, Route>,
    /// The routes' names, which each connection's reader gives as frame
    /// paths without slicing its buffer.
    known_paths: KnownPaths,
    stats: ServerStats,
    memory: Arc<MemoryStats>,
    /// The pace of compression work done for peers (`[RES-9]`).
    codec_pace: memory::CodecPace,
    /// Set by [`ServerBuilder::tls`]: TCP and Unix connections run inside TLS.
    tls: Option<TlsAcceptor>,
    shutdown: watch::Sender<bool>,
    /// Cancelled when the grace period of a shutdown is over: every
    /// connection closes at once.
    force: CancellationToken,
    /// What a hello can agree to, from `config.extensions`.
    negotiation: crate::proto::extensions::ServerExtensions,
    /// The authenticator of hellos, and whether it is required.
    auth: extensions::Authentication,
}

/// An application route as connections find it: its handler (layers
/// applied) and its statistics.
#[derive(Clone)]
pub(crate) struct Route {
    handler: Arc<dyn Handler>,
    stats: Arc<stats::RouteStats>,
}

/// Wraps one route's handler in a layer.
type ApplyLayer = Box<dyn Fn(Arc<dyn Handler>) -> Arc<dyn Handler> + Send + Sync>;

/// An IIP server: routes and settings, ready to serve a listener.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl Server {
    /// A builder with default settings and no routes.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The embedded server of `iip serve`: `/echo` and `/echo_benchmark`
    /// answer the request body.
    pub fn echo() -> ServerBuilder {
        let echo = |req: Request| Ok::<_, std::convert::Infallible>(req.body);
        Server::builder().route_sync("/echo", echo).route_sync("/echo_benchmark", echo)
    }

    /// The server's statistics.
    pub fn stats(&self) -> &ServerStats {
        &self.shared.stats
    }

    /// The server's memory accounting: bytes held now, the highest figures
    /// seen, the budget (`[RES-1]`).
    pub fn memory(&self) -> &MemoryStats {
        &self.shared.memory
    }

    /// Serves `listener` until [`Server::shutdown`] is called; then finishes
    /// the requests already received and closes every connection
    /// (`[CLOSE-3]`). Connections still open when the grace period ends are
    /// closed at once. Inside TLS if the builder was given
    /// [`ServerBuilder::tls`].
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        self.serve_listener(listener).await
    }

    /// Serves `listener` until `signal` completes, then shuts down
    /// gracefully as [`Server::shutdown`] does, and returns when every
    /// connection has closed (or the grace period ended).
    ///
    /// ```no_run
    /// # async fn run(server: iip::server::Server, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    /// server.serve_with_shutdown(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
    /// # }
    /// ```
    pub async fn serve_with_shutdown(
        &self,
        listener: TcpListener,
        signal: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let serving = self.serve(listener);
        tokio::pin!(serving);
        tokio::select! {
            result = &mut serving => return result,
            _ = signal => self.shutdown(),
        }
        serving.await
    }

    /// Serves TCP connections inside TLS, as [`Server::serve`] does plain
    /// ones. A handshake that does not finish within the handshake timeout
    /// (default 10 s) closes its connection; a failed one is logged at
    /// debug level and closes only its connection.
    #[cfg(feature = "tls")]
    pub async fn serve_tls(&self, listener: TcpListener, tls: Arc<crate::tls::ServerConfig>) -> std::io::Result<()> {
        self.serve_accepting(listener, Some(TlsAcceptor::from(tls))).await
    }

    /// Serves a Unix domain socket, as [`Server::serve`] does TCP.
    #[cfg(unix)]
    pub async fn serve_unix(&self, listener: tokio::net::UnixListener) -> std::io::Result<()> {
        self.serve_listener(listener).await
    }

    /// Serves any listener (see [`Listen`]), inside TLS if the builder was
    /// given [`ServerBuilder::tls`].
    pub async fn serve_listener<L: Listen>(&self, listener: L) -> std::io::Result<()> {
        self.serve_accepting(listener, self.shared.tls.clone()).await
    }

    async fn serve_accepting<L: Listen>(&self, listener: L, tls: Option<TlsAcceptor>) -> std::io::Result<()> {
        let tracker = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(self.shared.config.max_connections));
        let mut shutdown = self.shared.shutdown.subscribe();
        let mut acceptor = accept::Acceptor::new(listener);
        loop {
            let accepted = tokio::select! {
                accepted = acceptor.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let shared = self.shared.clone();
            let tls = tls.clone();
            match accepted {
                accept::Accepted::Stream(stream, peer) => {
                    // Over the limit, the connection is refused with 107 (`[ANSWER-5]`).
                    let permit = slots.clone().try_acquire_owned().ok();
                    let span = tracing::debug_span!("connection", %peer);
                    tracker.spawn(
                        async move {
                            upgrade_and_serve(stream, peer, shared, tls, permit.is_some()).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                // Out of descriptors: the acceptor took one client with its
                // reserve descriptor; refuse it rather than leave it hanging.
                accept::Accepted::Refuse(stream, peer) => {
                    tracker.spawn(upgrade_and_serve(stream, peer, shared, tls, false));
                }
            }
        }
        drop(acceptor);
        tracker.close();
        if tokio::time::timeout(self.shared.config.grace, tracker.wait()).await.is_err() {
            tracing::warn!(remaining = tracker.len(), "grace period over: closing the remaining connections");
            self.shared.force.cancel();
            tracker.wait().await;
        }
        Ok(())
    }

    /// Serves one connection the caller accepted, over any byte stream,
    /// until it closes or the server shuts down. It counts toward no
    /// connection limit; `peer` names it in statistics and to handlers.
    pub async fn serve_connection<S>(&self, stream: S, peer: Peer)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (read, write) = AnyStream(stream).into_halves();
        let shutdown = self.shared.shutdown.subscribe();
        connection::serve_connection(read, write, peer, self.shared.clone(), shutdown).await;
    }

    /// Begins a graceful shutdown of every `serve` of this server.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// Serves `listener` on a new task; the handle tells the address and
    /// shuts the server down.
    pub fn spawn(self, listener: TcpListener) -> std::io::Result<ServerHandle> {
        let tls = self.shared.tls.clone();
        self.spawn_listener(listener, tls)
    }

    /// Serves `listener` inside TLS on a new task.
    #[cfg(feature = "tls")]
    pub fn spawn_tls(self, listener: TcpListener, tls: Arc<crate::tls::ServerConfig>) -> std::io::Result<ServerHandle> {
        self.spawn_listener(listener, Some(TlsAcceptor::from(tls)))
    }

    fn spawn_listener(self, listener: TcpListener, tls: Option<TlsAcceptor>) -> std::io::Result<ServerHandle> {
        let addr = listener.local_addr()?;
        let server = self.clone();
        let task = tokio::spawn(async move { server.serve_accepting(listener, tls).await });
        Ok(ServerHandle { addr, server: self, task })
    }
}

/// Runs the TLS handshake if there is one (within the handshake timeout),
/// then serves the connection, or refuses it with 107 when `admitted` is
/// false (`[ANSWER-5]`).
async fn upgrade_and_serve<Io: IntoHalves>(
    stream: Io,
    peer: Peer,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    admitted: bool,
) {
    match tls {
        None => serve_or_refuse(stream, peer, shared, admitted).await,
        #[cfg(not(feature = "tls"))]
        Some(never) => match never {},
        #[cfg(feature = "tls")]
        Some(acceptor) => {
            let limit = shared.config.tls_handshake_timeout;
            match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_or_refuse(stream, peer, shared, admitted).await,
                Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_or_refuse<Io: IntoHalves>(stream: Io, peer: Peer, shared: Arc<Shared>, admitted: bool) {
    let (read, write) = stream.into_halves();
    if admitted {
        let shutdown = shared.shutdown.subscribe();
        connection::serve_connection(read, write, peer, shared, shutdown).await;
    } else {
        drop(read);
        refuse_connection(write, shared.config).await;
    }
}

/// Refuses a connection over the limit (`[ANSWER-5]`).
async fn refuse_connection<W: tokio::io::AsyncWrite + Unpin + Send + 'static>(write: W, config: ServerConfig) {
    let limits = config.core.frame_limits;
    let (sink, writer) = crate::io::writer::spawn_writer(write, limits, config.timeouts.write);
    let answer = ErrorAnswer::new(ErrorCode::ServerConnectionsLimited, "server connections limited").to_body();
    let frames = vec![
        Frame::new(Status::ResponseWhole, Bytes::from_static(b"/sys/connection"), 0, answer),
        ServerConnection::close_frame("server connections limited"),
    ];
    let _ = sink.send(frames).await;
    drop(sink);
    let _ = writer.await;
}

/// A server running on its own task.
pub struct ServerHandle {
    addr: SocketAddr,
    server: Server,
    task: JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Shuts down gracefully and waits until every connection has closed.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.server.shutdown();
        self.task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}
