//! `iip serve`: the embedded server with its echo routes, from a
//! configuration file, the environment and flags.

use std::time::Duration;

use bytes::Bytes;

use super::signals::stop_on_signals;
use super::{pem_server_config, raise_fd_limit, seconds_or_off, CliError};
use crate::server::{Request, Server};

/// The arguments of `iip serve`.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on: host:port, or unix:/path for a Unix domain socket.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: String,
    /// Serve inside TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Require client certificates signed by these CAs (PEM): mutual TLS.
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
    /// Write the TLS session keys to the file $SSLKEYLOGFILE names, for
    /// Wireshark to decrypt a capture. For test traffic only: the file
    /// opens every connection it logs.
    #[arg(long, requires = "tls_cert")]
    tls_key_log: bool,
    /// Read settings from this TOML file (keys as in `--print-config`);
    /// `IIP_SERVER_…` variables override it, flags override both.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Print the settings in effect (file, environment and flags
    /// applied) as TOML, and exit.
    #[arg(long)]
    print_config: bool,
    /// Serve the server's metrics as Prometheus text on this address
    /// (`http://ADDR/metrics`).
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
    /// Also route /fail, which fails every request with its body as the
    /// error text, and /fail_code, which fails with the application code
    /// and message its body names, `CODE MESSAGE` (the conformance profile
    /// items `fail-route` and `fail-code-route`).
    #[arg(long)]
    fail_route: bool,
    /// Also route /metadata (answers the request's metadata entries as a
    /// JSON object) and /sleep (answers its body after the milliseconds the
    /// body names, at most 60 s): the conformance profile's
    /// `extensions=metadata` routes.
    #[arg(long)]
    metadata_routes: bool,
    /// Also route /shutdown, which answers its body and then begins a
    /// graceful shutdown, as SIGTERM does: the conformance profile's
    /// `shutdown=` listener (run in a loop that starts it again). Any
    /// client can stop the server: never on a server others reach.
    #[arg(long)]
    shutdown_route: bool,
    /// Also route /delay?ms=N (answers after N ms, at most 60 s) and
    /// /burn?us=N (spins a core for N µs, at most 1 s): for trying
    /// timeouts, shutdowns and load by hand. Any client can make them
    /// hold requests and burn CPU: never on a server others reach.
    #[arg(long)]
    demo_routes: bool,
    /// Accept this bearer token in hellos, as TOKEN=IDENTITY (repeatable;
    /// spec chapter 14). Clients that offer no token are served as nobody
    /// unless --require-auth.
    #[arg(long = "auth-token", value_name = "TOKEN=IDENTITY")]
    auth_tokens: Vec<String>,
    /// Serve nothing but clients whose hello carries a good token: any
    /// other request is answered 112 and the connection closed.
    #[arg(long, requires = "auth_tokens")]
    require_auth: bool,
    #[command(flatten)]
    settings: ServeSettings,
}

impl ServeArgs {
    pub(super) async fn run(self) -> Result<(), CliError> {
        let ServeArgs {
            listen,
            tls_cert,
            tls_key,
            tls_client_ca,
            tls_key_log,
            config,
            print_config,
            metrics,
            fail_route,
            metadata_routes,
            shutdown_route,
            demo_routes,
            auth_tokens,
            require_auth,
            settings,
        } = self;
        let file = match &config {
            Some(path) => crate::server::ServerConfig::from_file(path).map_err(|e| CliError::Usage(e.to_string()))?,
            None => crate::server::ServerConfig::default(),
        };
        let config = settings.apply(file.with_env().map_err(|e| CliError::Usage(e.to_string()))?);
        if print_config {
            print!("{}", config.to_toml());
            return Ok(());
        }
        raise_fd_limit(config.max_connections);
        if let Some(addr) = metrics {
            crate::gateway::install_prometheus(addr)?;
            say!("iip: metrics as Prometheus text on http://{addr}/metrics");
        }
        let tls = pem_server_config(&tls_cert, &tls_key, tls_client_ca.as_deref())?.map(|tls| {
            if tls_key_log {
                crate::tls::server_with_key_log(tls)
            } else {
                tls
            }
        });
        let inside = if tls.is_some() { " inside TLS" } else { "" };
        let mut builder = Server::echo().config(config);
        if demo_routes {
            builder = builder.route("/delay", delay).route("/burn", burn);
        }
        if let Some(tls) = tls {
            builder = builder.tls(tls);
        }
        if fail_route {
            builder = builder
                .route("/fail", crate::conformance::fail_handler)
                .route("/fail_code", crate::conformance::fail_code_handler);
        }
        if metadata_routes {
            builder = builder
                .route("/metadata", crate::conformance::metadata_handler)
                .route("/sleep", crate::conformance::sleep_handler);
        }
        let shutdown_trigger = shutdown_route.then(|| std::sync::Arc::new(tokio::sync::Notify::new()));
        if let Some(trigger) = &shutdown_trigger {
            builder = builder.route_sync("/shutdown", crate::conformance::shutdown_handler(trigger.clone()));
        }
        if !auth_tokens.is_empty() {
            let mut tokens = crate::server::BearerTokens::new();
            for item in &auth_tokens {
                let (token, identity) = item
                    .split_once('=')
                    .ok_or_else(|| CliError::Usage(format!("--auth-token {item:?}: expected TOKEN=IDENTITY")))?;
                tokens = tokens.with(token, identity);
            }
            let policy =
                if require_auth { crate::server::AuthPolicy::Required } else { crate::server::AuthPolicy::Optional };
            builder = builder.authenticator(tokens, policy);
        }
        let server = builder.build().map_err(|e| CliError::Usage(e.to_string()))?;
        let stopper = server.clone();
        tokio::spawn(stop_on_signals(move || stopper.shutdown()));
        if let Some(trigger) = shutdown_trigger {
            let stopper = server.clone();
            tokio::spawn(async move {
                trigger.notified().await;
                stopper.shutdown();
            });
        }
        if let Some(path) = listen.strip_prefix("unix:") {
            Ok(serve_unix(&server, path, inside).await?)
        } else {
            let listener =
                tokio::net::TcpListener::bind(&listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let local = listener.local_addr().map_err(|e| e.to_string())?;
            say!("iip serving on {local}{inside} (SIGINT or SIGTERM stops)");
            server.serve(listener).await.map_err(|e| CliError::Failed(e.to_string()))
        }
    }
}

/// Settings of `iip serve` that override the configuration file and the
/// environment; each defaults to the library's default.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ServeSettings {
    /// Seconds a TLS handshake may take [default: 10].
    #[arg(long)]
    pub(crate) tls_handshake_timeout: Option<f64>,
    /// Most channels per connection, channel 0 included [default: 1024].
    #[arg(long)]
    pub(crate) max_channels: Option<u32>,
    /// Most connections at once [default: 10000].
    #[arg(long)]
    pub(crate) max_connections: Option<usize>,
    /// Largest request body in bytes, answered 110 beyond it [default: 67108864].
    #[arg(long)]
    pub(crate) max_message: Option<usize>,
    /// Memory budget of one connection in bytes [default: 67108864].
    #[arg(long)]
    pub(crate) max_connection_bytes: Option<usize>,
    /// Memory budget of the whole server in bytes [default: 268435456].
    #[arg(long)]
    pub(crate) max_server_bytes: Option<usize>,
    /// Bytes per second the server inflates and compresses for all clients
    /// together; a client past its turn waits; 0: no pace [default: 268435456].
    #[arg(long)]
    pub(crate) max_codec_rate: Option<usize>,
    /// Seconds a handler may run before its request is answered 103; 0: no limit [default: 0].
    #[arg(long)]
    pub(crate) handler_timeout: Option<f64>,
    /// Seconds a connection may stay idle (nothing in flight, no frame); 0: no limit [default: 60].
    #[arg(long)]
    pub(crate) idle_timeout: Option<f64>,
    /// Seconds a frame may take to arrive once it has begun; 0: no limit [default: 30].
    #[arg(long)]
    pub(crate) frame_timeout: Option<f64>,
    /// Seconds a write may wait on a peer that reads nothing; 0: no limit [default: 30].
    #[arg(long)]
    pub(crate) write_timeout: Option<f64>,
    /// Seconds a client has to authenticate where --require-auth; 0: no
    /// limit [default: 10].
    #[arg(long)]
    pub(crate) hello_timeout: Option<f64>,
    /// Seconds each failed authentication past the fourth delays the next
    /// check from the same address; 0: no delay [default: 1].
    #[arg(long)]
    pub(crate) auth_failure_interval: Option<f64>,
    /// Seconds a graceful shutdown (SIGINT, SIGTERM) waits for requests in
    /// flight before closing the remaining connections [default: 30].
    #[arg(long)]
    pub(crate) grace: Option<f64>,
    /// Answer /sys/hello with 102 like the deployed server: no extension
    /// of spec chapter 14 (ping, limits, compression, going away, auth).
    #[arg(long)]
    pub(crate) no_extensions: bool,
}

impl ServeSettings {
    /// `config` with every setting given on the command line applied.
    pub(crate) fn apply(&self, mut config: crate::server::ServerConfig) -> crate::server::ServerConfig {
        let seconds = |s: f64| Duration::from_secs_f64(s.clamp(0.0, 366.0 * 86_400.0));
        let set = |target: &mut usize, value: Option<usize>| *target = value.unwrap_or(*target);
        if let Some(n) = self.max_channels {
            config.core.max_channels = n;
        }
        set(&mut config.max_connections, self.max_connections);
        set(&mut config.core.max_message, self.max_message);
        set(&mut config.core.max_held_bytes, self.max_connection_bytes);
        set(&mut config.max_server_held_bytes, self.max_server_bytes);
        set(&mut config.max_codec_rate, self.max_codec_rate);
        if let Some(s) = self.tls_handshake_timeout {
            config.tls_handshake_timeout = seconds(s.max(0.001));
        }
        if let Some(s) = self.grace {
            config.grace = seconds(s);
        }
        let optional = |target: &mut Option<Duration>, value: Option<f64>| {
            if let Some(s) = value {
                *target = seconds_or_off(s);
            }
        };
        optional(&mut config.handler_timeout, self.handler_timeout);
        optional(&mut config.timeouts.idle, self.idle_timeout);
        optional(&mut config.timeouts.frame, self.frame_timeout);
        optional(&mut config.timeouts.write, self.write_timeout);
        optional(&mut config.timeouts.hello, self.hello_timeout);
        if let Some(s) = self.auth_failure_interval {
            config.extensions.auth_failure_interval = seconds(s);
        }
        if self.no_extensions {
            config.extensions.enabled = false;
        }
        config
    }
}

/// Serves a Unix domain socket at `path` (inside TLS if the server was
/// built with it), replacing a stale socket file.
#[cfg(unix)]
async fn serve_unix(server: &Server, path: &str, inside: &str) -> Result<(), String> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }) {
        let _ = std::fs::remove_file(path);
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| format!("cannot listen on unix:{path}: {e}"))?;
    say!("iip serving on unix:{path}{inside} (SIGINT or SIGTERM stops)");
    let result = server.serve_unix(listener).await;
    let _ = std::fs::remove_file(path);
    result.map_err(|e| e.to_string())
}

#[cfg(not(unix))]
async fn serve_unix(_: &Server, path: &str, _: &str) -> Result<(), String> {
    Err(format!("cannot listen on unix:{path}: Unix sockets need a Unix system"))
}

/// `/delay?ms=N`: answers the body after N milliseconds (at most 60 s), for
/// trying timeouts and shutdowns by hand.
async fn delay(req: Request) -> Result<Bytes, std::convert::Infallible> {
    let ms = query_number(&req, "ms=").unwrap_or(0).min(60_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(req.body)
}

/// `/burn?us=N`: spins on the CPU for N microseconds (default 20, at most
/// one second), then answers the body: a CPU-heavy handler for `iip bench`.
async fn burn(req: Request) -> Result<Bytes, std::convert::Infallible> {
    let us = query_number(&req, "us=").unwrap_or(20).min(1_000_000);
    let until = std::time::Instant::now() + Duration::from_micros(us);
    let mut spins = 0u64;
    while std::time::Instant::now() < until {
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
    Ok(req.body)
}

/// The number after `key` (e.g. `ms=`) in the request's query.
fn query_number(req: &Request, key: &str) -> Option<u64> {
    req.query_str()?.split('&').find_map(|kv| kv.strip_prefix(key).and_then(|v| v.parse::<u64>().ok()))
}
