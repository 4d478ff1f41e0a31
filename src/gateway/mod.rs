//! The HTTP gateway behind `iip gateway`: HTTP/1.1 and HTTP/2 (h2c with
//! prior knowledge) on hyper in front of IIP servers, so that browsers,
//! curl, load balancers and health checkers reach IIP services.
//!
//! A request to `/some/route?q` becomes an IIP request on that path, query
//! kept, with the HTTP body as its data (an empty body travels as `{}`,
//! `[MSG-9]`); the IIP answer body becomes the HTTP 200 body, streamed frame
//! by frame when the answer is chunked. An error answer becomes the HTTP
//! status of [`mapping::status_for_code`] with the IIP code in the
//! `x-iip-code` header and the error answer as the body. Trace context,
//! `x-request-id`, `iip-meta-` headers and `iip-timeout` travel upstream as
//! metadata ([`mapping::from_headers`]).
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use iip::client::Endpoint;
//! use iip::gateway::{Gateway, GatewayConfig};
//! let gateway = Gateway::new(vec![Endpoint::new("127.0.0.1:9090")], GatewayConfig::default());
//! gateway.serve(tokio::net::TcpListener::bind("127.0.0.1:8080").await?).await
//! # }
//! ```

mod budget;
mod listen;
pub mod mapping;
mod upstream;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::client::{ClientConfig, ClientError, Endpoint};
use crate::wire::answer::{ErrorAnswer, ErrorCode};

use budget::{BodyRefused, Budget};
use listen::{Activity, Guarded, LeaveWatch, Reserve};
pub use upstream::Upstreams;
use upstream::{Lease, Unavailable};

/// Settings of a gateway.
///
/// Start from `default()` and set the fields to change: the struct is
/// `#[non_exhaustive]`, so a field added later breaks no caller.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Largest HTTP request body; larger is answered 413. Default 64 MiB.
    pub max_body: usize,
    /// Largest HTTP/1.1 request head (request line and headers) and HTTP/2
    /// header list; larger is answered 431. Default 16 KiB.
    pub max_header_bytes: usize,
    /// How long a client may take to send its request body; slower is
    /// answered 408. Default 30 s.
    pub request_timeout: Duration,
    /// How long the upstream may take to begin its answer (and between
    /// frames of a chunked one); slower is answered 504. It is also the
    /// longest deadline sent upstream (`iip-timeout` asks for less) and
    /// the deadline of a request without one ([`mapping::TIMEOUT_HEADER`]).
    /// Default 30 s.
    pub upstream_timeout: Duration,
    /// The gateway's own health route, answered 200 while an upstream server
    /// can be reached and 503 otherwise. Default `/healthz`.
    pub health_path: String,
    /// Most channels on each upstream connection. A request has a channel
    /// to itself while it is in flight, so a slow one delays no other;
    /// channels are opened as requests need them and kept for the next.
    /// Default 256.
    pub channels_per_upstream: usize,
    /// Most requests waiting for a channel when every one is busy; one
    /// past it is answered 503 at once, and one that waits longer than
    /// `upstream_timeout` is answered 504. Default 1,024.
    pub max_waiting: usize,
    /// Bytes the gateway holds for all clients together: request bodies
    /// as they are read, answer frames taken from an upstream and not yet
    /// written to the client. A request body that would pass it is
    /// answered 503 as it arrives; an answer frame past it waits for
    /// earlier ones to be written. Default 256 MiB.
    pub max_held_bytes: usize,
    /// How long a client connection may stay open with no request in
    /// progress before the gateway closes it (HTTP/2: with GOAWAY).
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// How long a graceful shutdown waits for requests in flight. Default 30 s.
    pub grace: Duration,
    /// Serve HTTPS with this rustls configuration (ALPN offers `h2` and
    /// `http/1.1`); plain HTTP when `None`, the default.
    pub tls: Option<Arc<crate::tls::ServerConfig>>,
    /// The upstream's system paths (`/sys/…`) that are forwarded, e.g.
    /// `/sys/server_count`; every other one is answered 404, so that the
    /// upstream's statistics and peer addresses stay inside. The channels
    /// the gateway uses are its own: `/sys/new_channel`,
    /// `/sys/delete_channel` and `/sys/hello` are never forwarded, even if
    /// named here. Default: none.
    pub forward_sys: Vec<String>,
    /// Most client connections served at once; one past it is answered 503
    /// and closed. Default 10,000.
    pub max_connections: usize,
    /// How long an HTTP/1.1 client may take to send a request head, the
    /// first and each next on a kept-alive connection; slower is closed. A
    /// connection (HTTP/1.1 or HTTP/2) that begins no request within this
    /// long of opening is closed too. Default 10 s.
    pub header_timeout: Duration,
}

/// System paths the gateway never forwards: they act on the upstream
/// connection, which other clients share.
const NEVER_FORWARDED: [&str; 3] = ["/sys/new_channel", "/sys/delete_channel", "/sys/hello"];

impl GatewayConfig {
    /// Whether a request for `path` (query excluded) goes upstream.
    pub fn forwards(&self, path: &str) -> bool {
        !path.starts_with("/sys/")
            || (!NEVER_FORWARDED.contains(&path) && self.forward_sys.iter().any(|allowed| allowed == path))
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_body: 64 << 20,
            max_header_bytes: 16 << 10,
            request_timeout: Duration::from_secs(30),
            upstream_timeout: Duration::from_secs(30),
            health_path: "/healthz".into(),
            channels_per_upstream: 256,
            max_waiting: 1024,
            max_held_bytes: 256 << 20,
            idle_timeout: Duration::from_secs(60),
            grace: Duration::from_secs(30),
            tls: None,
            forward_sys: Vec::new(),
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// How long a client's TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of a gateway response: whole or streamed.
pub type GatewayBody = UnsyncBoxBody<Bytes, std::io::Error>;

struct State {
    upstreams: Upstreams,
    config: GatewayConfig,
    budget: Budget,
}

/// An HTTP gateway to IIP servers.
#[derive(Clone)]
pub struct Gateway {
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
}

impl Gateway {
    /// A gateway to the IIP servers at `upstreams`, used in turn.
    pub fn new(upstreams: Vec<Endpoint>, config: GatewayConfig) -> Gateway {
        let mut client = ClientConfig { timeout: config.upstream_timeout, ..ClientConfig::default() };
        // Deadlines and trace context travel upstream where the server
        // takes them ([EXT-17]).
        client.extensions.metadata = true;
        let upstreams = Upstreams::new(upstreams, client, config.channels_per_upstream, config.max_waiting);
        let budget = Budget::new(config.max_held_bytes);
        Gateway { state: Arc::new(State { upstreams, config, budget }), shutdown: watch::channel(false).0 }
    }

    /// Bytes held for clients now (see [`GatewayConfig::max_held_bytes`]).
    pub fn held_bytes(&self) -> usize {
        self.state.budget.held()
    }

    /// Begins a graceful shutdown: no new connections; requests in flight
    /// finish within the grace period.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Serves HTTP/1.1 and h2c on `listener` until [`Gateway::shutdown`].
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .max_buf_size(self.state.config.max_header_bytes.max(8192))
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.state.config.header_timeout);
        builder.http2().max_header_list_size(self.state.config.max_header_bytes as u32);
        let tasks = tokio_util::task::TaskTracker::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(self.state.config.max_connections));
        let mut reserve = Reserve::new();
        let mut stop = self.shutdown.subscribe();
        let tls = self.state.config.tls.as_ref().map(|config| {
            let mut config = (**config).clone();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|s| *s) => break,
            };
            let (stream, _) = match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::warn!(%err, "gateway accept failed");
                    reserve.refuse_one(&listener, &err).await;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tasks.spawn(listen::refuse(stream, Duration::from_secs(1)));
                continue;
            };
            let _ = stream.set_nodelay(true);
            let Ok((stream, leave)) = LeaveWatch::split(stream) else { continue };
            let (state, activity) = (self.state.clone(), Activity::new());
            let on_request = activity.clone();
            // Boxed: hyper moves each stream's future several times as it
            // spawns it, and the answer's whole state machine is large.
            let service =
                hyper::service::service_fn(move |req| Box::pin(handle(state.clone(), on_request.begin(), req)));
            let (acceptor, builder, stop) = (tls.clone(), builder.clone(), self.shutdown.subscribe());
            let idle =
                listen::IdleLimits { idle: self.state.config.idle_timeout, first: self.state.config.header_timeout };
            tasks.spawn(async move {
                match acceptor {
                    None => {
                        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                        listen::serve_until_idle(connection, activity, leave, idle, stop).await;
                    }
                    // The handshake runs in the connection's own task, bounded in time.
                    Some(acceptor) => {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                                listen::serve_until_idle(connection, activity, leave, idle, stop).await;
                            }
                            Ok(Err(err)) => tracing::debug!(%err, "gateway TLS handshake failed"),
                            Err(_) => tracing::debug!("gateway TLS handshake timed out"),
                        }
                    }
                }
                drop(slot);
            });
        }
        drop(listener);
        tasks.close();
        if tokio::time::timeout(self.state.config.grace, tasks.wait()).await.is_err() {
            tracing::warn!("gateway grace period over: closing the remaining connections");
        }
        Ok(())
    }
}

fn whole(status: StatusCode, body: impl Into<Bytes>) -> Response<GatewayBody> {
    let body = Full::new(body.into()).map_err(|never: Infallible| match never {}).boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

fn record(started: Instant, status: StatusCode) {
    metrics::counter!("iip_gateway_requests_total", "status" => status.as_u16().to_string()).increment(1);
    metrics::histogram!("iip_gateway_request_duration_seconds").record(started.elapsed().as_secs_f64());
}

async fn handle(
    state: Arc<State>,
    active: listen::ActiveGuard,
    req: Request<Incoming>,
) -> Result<Response<GatewayBody>, Infallible> {
    let started = Instant::now();
    let response = respond(&state, req).await;
    record(started, response.status());
    Ok(response.map(|body| Guarded::wrap(body, active)))
}

async fn respond(state: &State, req: Request<Incoming>) -> Response<GatewayBody> {
    let config = &state.config;
    let arrived = Instant::now();
    if req.uri().path() == config.health_path {
        return match state.upstreams.any_reachable().await {
            true => whole(StatusCode::OK, "ok\n"),
            false => whole(StatusCode::SERVICE_UNAVAILABLE, "no upstream IIP server can be reached\n"),
        };
    }
    if !config.forwards(req.uri().path()) {
        return whole(StatusCode::NOT_FOUND, "no such route\n");
    }
    let path = req.uri().path_and_query().map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    if path.len() > crate::wire::frame::DEFAULT_MAX_PATH {
        return whole(
            StatusCode::URI_TOO_LONG,
            format!("the path is longer than {} bytes\n", crate::wire::frame::DEFAULT_MAX_PATH),
        );
    }
    // Trace context, request id, deadline and `iip-meta-` entries become
    // the call's metadata ([EXT-21]); the deadline counts from arrival.
    let from_headers = match mapping::from_headers(req.headers()) {
        Ok(found) => found,
        Err(bad) => return whole(StatusCode::BAD_REQUEST, format!("{bad}\n")),
    };
    let deadline = arrived + from_headers.timeout.map_or(config.upstream_timeout, |t| t.min(config.upstream_timeout));
    let request_id = from_headers.request_id;
    // hyper's size hint is the declared `content-length`.
    let declared = hyper::body::Body::size_hint(req.body()).exact();
    let too_large =
        || whole(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {} bytes\n", config.max_body));
    // A declared length past the limit is refused before any of it is read.
    if declared.is_some_and(|n| n > config.max_body as u64) {
        return too_large();
    }
    let body = match state.budget.read_body(req.into_body(), config.max_body, config.request_timeout).await {
        Ok(body) => body,
        Err(BodyRefused::TimedOut) => {
            return whole(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time\n")
        }
        Err(BodyRefused::TooLarge) => return too_large(),
        Err(BodyRefused::Full) => {
            metrics::counter!("iip_gateway_refused_bodies_total").increment(1);
            return whole(StatusCode::SERVICE_UNAVAILABLE, "the gateway holds too many bodies; try again\n");
        }
        Err(BodyRefused::Unreadable(err)) => {
            return whole(StatusCode::BAD_REQUEST, format!("the request body could not be read: {err}\n"))
        }
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let lease = match state.upstreams.lease(left).await {
        Ok(lease) => lease,
        Err(Unavailable::Upstream(err)) => return upstream_error(err),
        Err(Unavailable::Busy) => {
            metrics::counter!("iip_gateway_busy_total").increment(1);
            return whole(StatusCode::SERVICE_UNAVAILABLE, "every upstream channel is busy; try again\n");
        }
        Err(Unavailable::TimedOut(_)) => {
            metrics::counter!("iip_gateway_busy_total").increment(1);
            return whole(StatusCode::GATEWAY_TIMEOUT, "no upstream channel came free in time\n");
        }
    };
    let mut call = crate::client::Call::new(path, body.bytes.clone()).with_deadline(deadline);
    for (key, value) in from_headers.metadata.iter() {
        call = call.with_metadata(key, value);
    }
    let answer = lease.channel().call_stream_with(call);
    let held = Held { lease, _body: body, budget: state.budget.clone() };
    let mut response = forward(Box::pin(answer), held, config.upstream_timeout).await;
    if let Some(id) = request_id {
        response.headers_mut().insert(mapping::REQUEST_ID_HEADER, id);
    }
    response
}

/// What a request holds while its answer comes: its channel, and its body
/// until the answer has begun.
struct Held {
    lease: Lease,
    _body: budget::HeldBody,
    budget: Budget,
}

fn upstream_error(err: ClientError) -> Response<GatewayBody> {
    metrics::counter!("iip_gateway_upstream_errors_total").increment(1);
    match err {
        ClientError::Timeout(_) => {
            whole(StatusCode::GATEWAY_TIMEOUT, "the upstream IIP server did not answer in time\n")
        }
        // Refused while connecting, e.g. 107 from a server at its connection limit.
        ClientError::Server { code, message } => {
            let body = ErrorAnswer { code, message }.to_body();
            error_response(code, body)
        }
        // Past the message limit the upstream advertised ([EXT-10]): what
        // it would have answered, 110, without sending the body.
        ClientError::Refused(crate::proto::client::RequestError::OverLimit { what: "request body bytes", .. }) => {
            let answer = ErrorAnswer::named(ErrorCode::RequestTooLarge);
            error_response(answer.code, answer.to_body())
        }
        // Headers whose metadata the upstream would not take ([EXT-20]).
        ClientError::Refused(err @ crate::proto::client::RequestError::Metadata(_)) => {
            whole(StatusCode::BAD_REQUEST, format!("the request's metadata cannot be sent: {err}\n"))
        }
        other => whole(StatusCode::BAD_GATEWAY, format!("upstream IIP server unavailable: {other}\n")),
    }
}

/// The response for an error answer `body` of `code`: the mapped status,
/// the code in `x-iip-code`, the error answer as JSON.
fn error_response(code: i64, body: Bytes) -> Response<GatewayBody> {
    let mut response = whole(mapping::status_for_code(code), body);
    response.headers_mut().insert(mapping::CODE_HEADER, http::HeaderValue::from(code));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

type AnswerStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, ClientError>> + Send>>;

/// The next frame of the answer, counted in the budget until it has been
/// written; a timeout error when the upstream or the budget keeps it
/// waiting for `limit`.
async fn next_counted(
    answer: &mut AnswerStream,
    budget: &Budget,
    limit: Duration,
) -> Option<Result<Bytes, ClientError>> {
    let next = tokio::time::timeout(limit, answer.next()).await.unwrap_or(Some(Err(ClientError::Timeout(limit))));
    match next? {
        Ok(data) => Some(budget.count(data, limit).await.ok_or(ClientError::Timeout(limit))),
        Err(err) => Some(Err(err)),
    }
}

/// Turns the upstream answer into the HTTP response. The first frame comes
/// by the request's deadline or the call ends with a timeout error (the
/// call carries the deadline, at most `limit` away), which is 504
/// (`[EXT-22]`). An answer that ends with its first frame is whole: an
/// error answer maps to its HTTP status. Any other streams as 200, frame
/// by frame as it arrives, each within `limit` of the one before, never
/// held whole; an error after its first frame ends the HTTP body unfinished.
/// The request's channel is held until the answer has been taken whole,
/// or the client has gone (its answer is then dropped as it arrives, and
/// the channel serves again once it has).
async fn forward(mut answer: AnswerStream, held: Held, limit: Duration) -> Response<GatewayBody> {
    let Held { lease, _body, budget } = held;
    let first = match answer.next().await {
        Some(Ok(first)) => match budget.count(first, limit).await {
            Some(first) => first,
            None => return upstream_error(ClientError::Timeout(limit)),
        },
        Some(Err(err)) => return upstream_error(err),
        None => return upstream_error(ClientError::Closed { reason: "no answer".into(), sent: true }),
    };
    // The request has been sent: its body is no longer held.
    drop(_body);
    // A whole answer's stream has ended already; no timer is needed to
    // learn it. A second frame that is there already is taken with it.
    let second = match answer.next().now_or_never() {
        Some(None) => {
            return match ErrorAnswer::parse(&first) {
                Some(error) => error_response(error.code, first),
                None => whole(StatusCode::OK, first),
            };
        }
        Some(Some(Err(err))) => return upstream_error(err),
        Some(Some(Ok(second))) => Some(second),
        None => None,
    };
    // A chunked answer: stream it, frame by frame, never held whole.
    let state = (answer, lease, budget, second);
    let rest = futures::stream::unfold(state, move |(mut answer, lease, budget, waiting)| async move {
        let item = match waiting {
            Some(data) => budget.count(data, limit).await.ok_or(ClientError::Timeout(limit)),
            None => next_counted(&mut answer, &budget, limit).await?,
        };
        Some((item, (answer, lease, budget, None)))
    });
    let frames = futures::stream::once(std::future::ready(Ok(first)))
        .chain(rest)
        .map(|item| item.map(Frame::data).map_err(|e| std::io::Error::other(e.to_string())));
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
    *response.status_mut() = StatusCode::OK;
    response
}

/// Installs a Prometheus exporter of the gateway's metrics (and any other
/// `metrics` of the process) serving text at `http://ADDR/metrics`.
pub fn install_prometheus(addr: std::net::SocketAddr) -> Result<(), String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))
}
