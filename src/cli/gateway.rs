//! `iip gateway`: HTTP/1.1 and HTTP/2 in front of IIP servers.

use std::time::Duration;

use super::args::ClientTls;
use super::signals::stop_on_signals;
use super::{pem_server_config, raise_fd_limit, CliError};

/// The arguments of `iip gateway`.
#[derive(clap::Args)]
pub(crate) struct GatewayArgs {
    /// Address to serve HTTP on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: std::net::SocketAddr,
    /// Upstream IIP servers, comma-separated (host:port or unix:/path), used in turn.
    #[arg(long, value_delimiter = ',', required = true)]
    upstream: Vec<String>,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, default_value_t = 64 << 20)]
    max_body: usize,
    /// Largest request head / header list in bytes (431 beyond).
    #[arg(long, default_value_t = 16 << 10)]
    max_header_bytes: usize,
    /// Seconds a client may take to send its body (408 beyond).
    #[arg(long, default_value_t = 30.0)]
    request_timeout: f64,
    /// Seconds an upstream may take to answer (504 beyond).
    #[arg(long, default_value_t = 30.0)]
    upstream_timeout: f64,
    /// The gateway's health route.
    #[arg(long, default_value = "/healthz")]
    health_path: String,
    /// Most channels per upstream connection: each request in flight has
    /// one to itself, so a slow one delays no other.
    #[arg(long, default_value_t = 256)]
    channels: usize,
    /// Most requests waiting for a channel when all are busy (503 beyond).
    #[arg(long, default_value_t = 1024)]
    max_waiting: usize,
    /// Bytes held for all clients together: request bodies as read, answer
    /// frames not yet written (a body past it is answered 503).
    #[arg(long, default_value_t = 256 << 20)]
    max_held_bytes: usize,
    /// Seconds a client connection may stay open with no request in progress.
    #[arg(long, default_value_t = 60.0)]
    idle_timeout: f64,
    /// Seconds a graceful shutdown (SIGINT, SIGTERM) waits for requests in flight.
    #[arg(long, default_value_t = 30.0)]
    grace: f64,
    /// Serve the gateway's metrics as Prometheus text on this address (/metrics).
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
    /// Serve HTTPS (HTTP/2 by ALPN, or HTTP/1.1) with this certificate chain (PEM).
    #[arg(long, requires = "https_key")]
    https_cert: Option<std::path::PathBuf>,
    /// The private key of --https-cert (PEM).
    #[arg(long, requires = "https_cert")]
    https_key: Option<std::path::PathBuf>,
    /// Forward this upstream system path, e.g. /sys/server_count
    /// (repeatable); every other /sys/ path is answered 404, and
    /// /sys/new_channel, /sys/delete_channel and /sys/hello never go upstream.
    #[arg(long = "forward-sys", value_name = "PATH")]
    forward_sys: Vec<String>,
    /// Most client connections at once (503 and close beyond).
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Seconds an HTTP/1.1 client may take to send a request head,
    /// also while a kept-alive connection waits for its next one.
    #[arg(long, default_value_t = 10.0)]
    header_timeout: f64,
    /// Reach the upstream servers inside TLS (--tls, --tls-ca, --insecure…).
    #[command(flatten)]
    tls: ClientTls,
}

impl GatewayArgs {
    pub(super) async fn run(self) -> Result<(), CliError> {
        let GatewayArgs {
            http,
            upstream,
            max_body,
            max_header_bytes,
            request_timeout,
            upstream_timeout,
            health_path,
            channels,
            grace,
            metrics,
            https_cert,
            https_key,
            forward_sys,
            max_connections,
            header_timeout,
            max_waiting,
            max_held_bytes,
            idle_timeout,
            tls,
        } = self;
        // Two descriptors a client: its socket and the watch for its leaving.
        raise_fd_limit(max_connections.saturating_mul(2));
        let https = pem_server_config(&https_cert, &https_key, None)?;
        let scheme = if https.is_some() { "https" } else { "http" };
        let upstreams = upstream.iter().map(|addr| tls.endpoint(addr)).collect::<Result<Vec<_>, _>>()?;
        if let Some(addr) = metrics {
            crate::gateway::install_prometheus(addr)?;
        }
        let seconds = |s: f64| Duration::from_secs_f64(s.clamp(0.001, 86_400.0));
        let config = crate::gateway::GatewayConfig {
            max_body,
            max_header_bytes,
            request_timeout: seconds(request_timeout),
            upstream_timeout: seconds(upstream_timeout),
            health_path,
            channels_per_upstream: channels,
            grace: seconds(grace),
            tls: https,
            forward_sys,
            max_connections,
            header_timeout: seconds(header_timeout),
            max_waiting,
            max_held_bytes,
            idle_timeout: seconds(idle_timeout),
        };
        let gateway = crate::gateway::Gateway::new(upstreams, config);
        let listener =
            tokio::net::TcpListener::bind(http).await.map_err(|e| format!("cannot listen on {http}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        say!("iip gateway on {scheme}://{local} to {} (SIGINT or SIGTERM stops)", upstream.join(", "));
        let stopper = gateway.clone();
        tokio::spawn(stop_on_signals(move || stopper.shutdown()));
        gateway.serve(listener).await.map_err(|e| CliError::Failed(e.to_string()))
    }
}
