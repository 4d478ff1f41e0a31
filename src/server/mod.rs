//! The tokio IIP server: routes, limits, the accept loop and graceful
//! shutdown, over the sans-IO core in [`crate::proto::server`].
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use iip::server::{Request, Server};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
//! let server = Server::builder()
//!     .route("/echo", |req: Request| async move { Ok::<_, std::convert::Infallible>(req.body) })
//!     .build();
//! server.serve(listener).await
//! # }
//! ```

mod connection;
pub mod handler;
pub mod stats;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

pub use handler::{FnHandler, Handler, HandlerError, Request, ServiceHandler};
pub use stats::ServerStats;

use crate::answer::{ErrorAnswer, ErrorCode};
use crate::frame::{Frame, FrameLimits};
use crate::proto::server::{ServerConfig as CoreConfig, ServerConnection};
use crate::status::Status;

/// Settings of a server.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Settings of the per-connection protocol core.
    pub core: CoreConfig,
    /// Most connections at once (`[ANSWER-5]`).
    pub max_connections: usize,
    /// Most requests of one connection being handled at once; past it the
    /// server stops reading that connection until some are answered.
    pub max_in_flight: usize,
    /// How long a handler may run before the request is answered with 103.
    pub handler_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            core: CoreConfig::default(),
            max_connections: 10_000,
            max_in_flight: 1024,
            handler_timeout: None,
        }
    }
}

/// What every connection task shares.
pub(crate) struct Shared {
    config: ServerConfig,
    routes: HashMap<Bytes, Arc<dyn Handler>>,
    stats: ServerStats,
    shutdown: watch::Sender<bool>,
}

/// Builds a [`Server`].
#[derive(Default)]
pub struct ServerBuilder {
    config: ServerConfig,
    routes: HashMap<Bytes, Arc<dyn Handler>>,
}

impl ServerBuilder {
    /// Routes `route` (a path without query) to an async function.
    pub fn route<F, Fut, B, E>(self, route: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<B, E>> + Send + 'static,
        B: Into<Bytes>,
        E: std::fmt::Display,
    {
        self.handler(route, FnHandler(handler))
    }

    /// Routes `route` to a tower service.
    pub fn route_service<S, B>(self, route: &str, service: S) -> Self
    where
        S: tower::Service<Request, Response = B> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: std::fmt::Display,
        B: Into<Bytes>,
    {
        self.handler(route, ServiceHandler(service))
    }

    /// Routes `route` to any [`Handler`]. Routes under `/sys/` are reserved
    /// (`[SYS-1]`) and are ignored here.
    pub fn handler(mut self, route: &str, handler: impl Handler) -> Self {
        if !route.starts_with("/sys/") {
            self.routes.insert(Bytes::copy_from_slice(route.as_bytes()), Arc::new(handler));
        }
        self
    }

    /// Replaces all settings.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Frame limits for reading and for chunking answers.
    pub fn frame_limits(mut self, limits: FrameLimits) -> Self {
        self.config.core.frame_limits = limits;
        self
    }

    /// Most channels per connection, channel 0 included.
    pub fn max_channels(mut self, n: u32) -> Self {
        self.config.core.max_channels = n;
        self
    }

    /// Largest request body.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.config.core.max_message = bytes;
        self
    }

    /// Most connections at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// How long a handler may run.
    pub fn handler_timeout(mut self, limit: Duration) -> Self {
        self.config.handler_timeout = Some(limit);
        self
    }

    /// The server.
    pub fn build(self) -> Server {
        let (shutdown, _) = watch::channel(false);
        Server {
            shared: Arc::new(Shared {
                config: self.config,
                stats: ServerStats::new(self.routes.keys().cloned()),
                routes: self.routes,
                shutdown,
            }),
        }
    }
}

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
        let echo = |req: Request| async move { Ok::<_, std::convert::Infallible>(req.body) };
        Server::builder().route("/echo", echo).route("/echo_benchmark", echo)
    }

    /// The server's statistics.
    pub fn stats(&self) -> &ServerStats {
        &self.shared.stats
    }

    /// Serves `listener` until [`Server::shutdown`] is called; then finishes
    /// the requests already received and closes every connection (`[CLOSE-3]`).
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        let tracker = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(self.shared.config.max_connections));
        let mut shutdown = self.shared.shutdown.subscribe();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of descriptors and the like: keep serving the others.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let shared = self.shared.clone();
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracker.spawn(refuse_connection(stream, shared.config.core.frame_limits));
                continue;
            };
            let conn_shutdown = shared.shutdown.subscribe();
            tracker.spawn(async move {
                connection::serve_connection(stream, peer, shared, conn_shutdown).await;
                drop(permit);
            });
        }
        drop(listener);
        tracker.close();
        tracker.wait().await;
        Ok(())
    }

    /// Begins a graceful shutdown of every `serve` of this server.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// Serves `listener` on a new task; the handle tells the address and
    /// shuts the server down.
    pub fn spawn(self, listener: TcpListener) -> std::io::Result<ServerHandle> {
        let addr = listener.local_addr()?;
        let server = self.clone();
        let task = tokio::spawn(async move { server.serve(listener).await });
        Ok(ServerHandle { addr, server: self, task })
    }
}

/// Refuses a connection over the limit (`[ANSWER-5]`).
async fn refuse_connection(stream: tokio::net::TcpStream, limits: FrameLimits) {
    let (_read, write) = stream.into_split();
    let (sink, writer) = crate::writer::spawn_writer(write, limits);
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
