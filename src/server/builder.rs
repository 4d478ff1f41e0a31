//! [`ServerBuilder`]: a server's routes, layers and settings, checked
//! once when the server is built.

use super::*;

/// Builds a [`Server`]: routes, server-wide layers and settings. Every
/// setting starts at its default (see [`ServerConfig`]).
#[derive(Default)]
pub struct ServerBuilder {
    config: ServerConfig,
    /// Server-wide layers, in the order given.
    layers: Vec<ApplyLayer>,
    routes: HashMap<Bytes, Arc<dyn Handler>>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<crate::tls::ServerConfig>>,
    /// Routes refused so far; [`ServerBuilder::build`] reports them.
    refused: Vec<RouteError>,
    /// The hello authenticator, if any.
    authenticator: Option<(Arc<dyn Authenticator>, AuthPolicy)>,
}

/// A route the builder refused; [`ServerBuilder::build`] returns the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The route lies under `/sys/`, which the spec reserves (`[SYS-1]`).
    #[error("route {0} is reserved: /sys/ routes are the server's own [SYS-1]")]
    Reserved(String),
    /// The route was given twice.
    #[error("route {0} is registered twice")]
    Duplicate(String),
    /// The route is not a path without query: empty, or with a `?`.
    #[error("route {0:?} is not a route: it must be non-empty and have no '?' [FRAME-7]")]
    Malformed(String),
}

impl ServerBuilder {
    /// Routes `route` (a path without query) to an async function. The
    /// function's `Ok` value is the answer body; its `Err` is answered
    /// `{"code":-1,"message":"handler fail:<text>"}` (`[ANSWER-3]`). A route
    /// under `/sys/`, a duplicate or a malformed route makes
    /// [`ServerBuilder::build`] fail. Default: no routes (every path but the
    /// `/sys/` ones is answered 102).
    pub fn route<F, Fut, B, E>(self, route: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<B, E>> + Send + 'static,
        B: Into<Bytes>,
        E: Into<BoxError>,
    {
        self.handler(route, FnHandler(handler))
    }

    /// Routes `route` to a function that answers without waiting
    /// ([`SyncFnHandler`]): it runs in its connection's task with no future
    /// allocated per request, the cheapest way to answer. It must not
    /// block. Its `Err` is answered as [`ServerBuilder::route`]'s is; the
    /// same routes are refused.
    pub fn route_sync<F, B, E>(self, route: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Result<B, E> + Send + Sync + 'static,
        B: Into<Bytes>,
        E: Into<BoxError>,
    {
        self.handler(route, SyncFnHandler(handler))
    }

    /// Routes `route` to a tower service, cloned for every request; its
    /// error is answered as a handler's (`[ANSWER-3]`).
    pub fn route_service<S, B>(self, route: &str, service: S) -> Self
    where
        S: tower::Service<Request, Response = B> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Into<Bytes>,
    {
        self.handler(route, ServiceHandler(service))
    }

    /// Routes `route` to any [`Handler`]. A route under `/sys/` (reserved,
    /// `[SYS-1]`), a route given twice, or one with a `?` is refused: then
    /// [`ServerBuilder::build`] fails naming it.
    pub fn handler(mut self, route: &str, handler: impl Handler) -> Self {
        let key = Bytes::copy_from_slice(route.as_bytes());
        if route.starts_with("/sys/") {
            self.refused.push(RouteError::Reserved(route.to_string()));
        } else if route.is_empty() || route.contains('?') {
            self.refused.push(RouteError::Malformed(route.to_string()));
        } else {
            match self.routes.entry(key) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    self.refused.push(RouteError::Duplicate(route.to_string()))
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(Arc::new(handler));
                }
            }
        }
        self
    }

    /// Wraps every route's handler in a tower layer: timeout, concurrency
    /// limit, rate limit, load shedding, tracing, authentication. Layers
    /// given first are outermost, as with `tower::ServiceBuilder`; they apply
    /// to routes added before or after this call, and never to the `/sys/`
    /// paths, which the server answers itself. An error of a layer is
    /// answered like a handler's (`[ANSWER-3]`). Default: no layer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use iip::server::{Request, Server};
    ///
    /// let server = Server::echo()
    ///     .layer(tower::limit::ConcurrencyLimitLayer::new(64))
    ///     .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(5)))
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<HandlerService> + Send + Sync + 'static,
        L::Service: tower::Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<Request>>::Response: Into<Bytes>,
        <L::Service as tower::Service<Request>>::Error: Into<BoxError>,
        <L::Service as tower::Service<Request>>::Future: Send + 'static,
    {
        self.layers.push(Box::new(move |inner: Arc<dyn Handler>| -> Arc<dyn Handler> {
            Arc::new(ServiceHandler(layer.layer(HandlerService(inner))))
        }));
        self
    }

    /// Replaces every setting with `config` (e.g. one read with
    /// `ServerConfig::from_file`); methods called after it change single
    /// settings again. Default: [`ServerConfig::default`].
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Frame limits for reading and for chunking answers: largest path
    /// (default 2,048 bytes, `[LIMIT-1]`) and largest frame data (default
    /// 16 MiB, `[LIMIT-2]`). A larger frame closes the connection.
    pub fn frame_limits(mut self, limits: FrameLimits) -> Self {
        self.config.core.frame_limits = limits;
        self
    }

    /// Most channels per connection, channel 0 included; a request for one
    /// more is answered 109 (`[CHAN-9]`). Default 1,024.
    pub fn max_channels(mut self, n: u32) -> Self {
        self.config.core.max_channels = n;
        self
    }

    /// Largest request body in bytes; a larger one is answered 110 and the
    /// connection stays open (`[MSG-8]`). Default 64 MiB.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.config.core.max_message = bytes;
        self
    }

    /// Most connections at once; one more is answered 107 and closed
    /// (`[ANSWER-5]`). Default 10,000.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// How long a handler may run; past it the request is answered 103
    /// and the handler is dropped. Default: no limit.
    pub fn handler_timeout(mut self, limit: Duration) -> Self {
        self.config.handler_timeout = Some(limit);
        self
    }

    /// A connection's memory budget in bytes (`[RES-1]`): past it, reading
    /// pauses and chunked requests are refused with 110. Default 64 MiB.
    pub fn max_connection_bytes(mut self, bytes: usize) -> Self {
        self.config.core.max_held_bytes = bytes;
        self
    }

    /// The server-wide memory budget in bytes (`[RES-4]`): while all
    /// connections hold this much, those holding anything read no further.
    /// Default 256 MiB.
    pub fn max_server_bytes(mut self, bytes: usize) -> Self {
        self.config.max_server_held_bytes = bytes;
        self
    }

    /// Bytes per second of compression work (inflating requests,
    /// compressing answers) done for all connections together (`[RES-9]`);
    /// `0` for no pace. Default 256 MiB/s.
    pub fn max_codec_rate(mut self, bytes_per_second: usize) -> Self {
        self.config.max_codec_rate = bytes_per_second;
        self
    }

    /// Idle, frame read and write timeouts (`[RES-5]`–`[RES-7]`); each
    /// closes the connection when it passes (the idle one after a close
    /// frame). Defaults 60 s, 30 s and 30 s; `None` switches one off.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.config.timeouts = timeouts;
        self
    }

    /// How long a graceful shutdown waits for requests already received
    /// to be answered before it closes the remaining connections. Default
    /// 30 s.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.config.grace = grace;
        self
    }

    /// Serves every connection inside TLS with this rustls configuration
    /// (see [`crate::tls::server_config`]): [`Server::serve`] and
    /// [`Server::spawn`] then run a TLS handshake first. Default: plain.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<crate::tls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Which extensions a hello may agree to (spec chapter 14). Default:
    /// every one but authentication; [`ExtensionsConfig::off`] makes a
    /// plain IIP/1 server.
    pub fn extensions(mut self, extensions: ExtensionsConfig) -> Self {
        self.config.extensions = extensions;
        self
    }

    /// Checks the credentials of hellos with `authenticator` (`[EXT-8]`).
    /// With [`AuthPolicy::Required`] nothing but a hello with valid
    /// credentials is served: every other request first is answered 112
    /// and its connection closed (`[EXT-9]`); with [`AuthPolicy::Optional`]
    /// clients that offer no credentials are served unauthenticated. A
    /// handler reads the identity from [`Request::identity`]. Default: no
    /// authenticator. Needs extensions enabled.
    pub fn authenticator(mut self, authenticator: impl Authenticator, policy: AuthPolicy) -> Self {
        self.authenticator = Some((Arc::new(authenticator), policy));
        self
    }

    /// What a failed authentication costs its source address
    /// (`[RES-10]`): past four failures each further one delays the
    /// source's next check by `interval`; a source more than 10 s behind is
    /// refused unchecked. `Duration::ZERO` switches the pace off. Default 1 s.
    pub fn auth_failure_interval(mut self, interval: Duration) -> Self {
        self.config.extensions.auth_failure_interval = interval;
        self
    }

    /// How long a TLS handshake may take before its connection is closed;
    /// default 10 s.
    pub fn tls_handshake_timeout(mut self, limit: Duration) -> Self {
        self.config.tls_handshake_timeout = limit;
        self
    }

    /// The server.
    ///
    /// Fails with the first route refused: one under `/sys/`, one given
    /// twice, or one that is not a path without query.
    pub fn build(self) -> Result<Server, RouteError> {
        if let Some(refused) = self.refused.into_iter().next() {
            return Err(refused);
        }
        let (shutdown, _) = watch::channel(false);
        let mut routes = self.routes;
        for handler in routes.values_mut() {
            // The last layer wraps first, so the first given is outermost.
            for apply in self.layers.iter().rev() {
                *handler = apply(handler.clone());
            }
        }
        let stats = ServerStats::new(routes.keys().cloned());
        // Every application route has its statistics: `ServerStats::new` made them.
        let routes: rustc_hash::FxHashMap<Bytes, Route> = routes
            .into_iter()
            .filter_map(|(route, handler)| {
                let stats = stats.route(&route)?.clone();
                Some((interned(&route), Route { handler, stats }))
            })
            .collect();
        let known_paths = KnownPaths::new(routes.keys().map(|route| &route[..]));
        Ok(Server {
            shared: Arc::new(Shared {
                config: self.config,
                stats,
                memory: Arc::new(MemoryStats::new(self.config.max_server_held_bytes)),
                codec_pace: memory::CodecPace::new(self.config.max_codec_rate),
                routes,
                known_paths,
                #[cfg(feature = "tls")]
                tls: self.tls.map(TlsAcceptor::from),
                #[cfg(not(feature = "tls"))]
                tls: None,
                shutdown,
                force: CancellationToken::new(),
                negotiation: self.config.extensions.negotiation(&self.config),
                auth: {
                    let pace = Arc::new(auth_pace::AuthPace::new(self.config.extensions.auth_failure_interval));
                    match self.authenticator {
                        Some((authenticator, policy)) if self.config.extensions.enabled => {
                            extensions::Authentication { policy, authenticator: Some(authenticator), pace }
                        }
                        _ => extensions::Authentication { policy: AuthPolicy::Off, authenticator: None, pace },
                    }
                },
            }),
        })
    }
}
