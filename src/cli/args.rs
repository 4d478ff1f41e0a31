//! The command line of `iip`: the commands, their arguments and the
//! settings they share.

use std::time::Duration;

use clap::{Parser, Subcommand};

use super::{seconds_or_off, CliError};
use crate::client::Endpoint;

#[derive(Parser)]
#[command(name = "iip", version, about = "IIP/1: serve, call, benchmark and check IIP servers")]
pub(crate) struct Cli {
    /// Log lines as text or as JSON objects (one per line), on stderr; the
    /// level comes from RUST_LOG (default: warn).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    pub(crate) log_format: String,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How a client command reaches a server inside TLS.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ClientTls {
    /// Connect inside TLS.
    #[arg(long)]
    pub(crate) tls: bool,
    /// Trust the CA certificates of this PEM file (implies --tls).
    #[arg(long)]
    pub(crate) tls_ca: Option<std::path::PathBuf>,
    /// Accept any server certificate (implies --tls). Unsafe outside tests:
    /// nothing then stops a man in the middle.
    #[arg(long)]
    pub(crate) insecure: bool,
    /// The name the server's certificate must carry (default: the host of the address).
    #[arg(long)]
    pub(crate) server_name: Option<String>,
    /// Write the TLS session keys to the file $SSLKEYLOGFILE names, for
    /// Wireshark to decrypt a capture. For test traffic only: the file
    /// opens every connection it logs.
    #[arg(long)]
    pub(crate) tls_key_log: bool,
    /// Present this client certificate (PEM) for mutual TLS; needs --tls-client-key.
    #[arg(long, requires = "tls_client_key")]
    pub(crate) tls_client_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-client-cert (PEM).
    #[arg(long, requires = "tls_client_cert")]
    pub(crate) tls_client_key: Option<std::path::PathBuf>,
}

impl ClientTls {
    /// The endpoint for `addr` (`host:port` or `unix:/path`) with these settings.
    pub(crate) fn endpoint(&self, addr: &str) -> Result<Endpoint, String> {
        let endpoint = Endpoint::new(addr);
        if !(self.tls || self.insecure || self.tls_ca.is_some()) {
            return Ok(endpoint);
        }
        let trust = match (&self.tls_ca, self.insecure) {
            (Some(ca), false) => crate::tls::ServerTrust::CaFile(ca),
            (None, true) => {
                say!("iip: warning: --insecure: the server's certificate is not checked");
                crate::tls::ServerTrust::Insecure
            }
            (Some(_), true) => return Err("--tls-ca and --insecure exclude each other".into()),
            (None, false) => return Err("--tls needs --tls-ca FILE (or --insecure to skip verification)".into()),
        };
        let identity = self.tls_client_cert.as_deref().zip(self.tls_client_key.as_deref());
        let mut config = crate::tls::client_config(trust, identity).map_err(|e| e.to_string())?;
        if self.tls_key_log {
            config = crate::tls::client_with_key_log(config);
        }
        let host = self.server_name.clone().unwrap_or_else(|| crate::tls::host_of(addr).to_string());
        let name = crate::tls::server_name(&host).map_err(|e| e.to_string())?;
        Ok(endpoint.with_tls(config, name))
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

/// What `iip call` offers in its hello.
#[derive(clap::Args)]
pub(crate) struct HelloArgs {
    /// Say no hello: a plain IIP/1 client, as the deployed one.
    #[arg(long)]
    pub(crate) no_hello: bool,
    /// Offer this bearer token in the hello (spec chapter 14).
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// Offer compression with this codec: lz4 or zstd.
    #[arg(long, value_name = "CODEC")]
    pub(crate) compress: Option<String>,
}

impl HelloArgs {
    pub(crate) fn extensions(&self) -> Result<crate::client::ClientExtensions, CliError> {
        use crate::client::ClientExtensions;
        if self.no_hello {
            return Ok(ClientExtensions::off());
        }
        let compression = match &self.compress {
            None => None,
            Some(name) => Some(
                crate::proto::extensions::Codec::from_name(name)
                    .ok_or_else(|| CliError::Usage(format!("--compress {name}: lz4 or zstd")))?,
            ),
        };
        Ok(ClientExtensions { compression, ..ClientExtensions::default() })
    }
}

/// One line on what a hello agreed, for `iip call -v`.
pub(crate) fn describe_agreed(agreed: Option<&crate::proto::extensions::Agreed>) -> String {
    let Some(agreed) = agreed else {
        return "iip: no extensions: the server answers no hello (plain IIP/1)".into();
    };
    let mut parts = Vec::new();
    if let Some(ping) = &agreed.ping {
        match ping.idle_timeout_ms {
            Some(ms) => parts.push(format!("ping (server idle timeout {ms} ms)")),
            None => parts.push("ping (no idle timeout)".into()),
        }
    }
    if let Some(auth) = &agreed.auth {
        parts.push(format!("auth as {:?}", auth.identity));
    }
    if let Some(l) = &agreed.limits {
        parts.push(format!(
            "limits (channels {}, message {} B, in flight {})",
            l.max_channels, l.max_message, l.max_in_flight
        ));
    }
    if let Some(c) = &agreed.compression {
        parts.push(format!("compression {} from {} B", c.codec, c.min_size));
    }
    if agreed.going_away.is_some() {
        parts.push("going_away".into());
    }
    if parts.is_empty() {
        return "iip: hello answered; no extension agreed".into();
    }
    format!("iip: negotiated {}", parts.join(", "))
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the embedded server: /echo, /echo_benchmark and the /sys/ paths.
    Serve {
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
        /// error text (the conformance profile item `fail-route`).
        #[arg(long)]
        fail_route: bool,
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
    },
    /// Send one request and print the answer.
    ///
    /// The answer body is written to stdout byte for byte. Exit codes: 0 an
    /// answer; 1 an error answer (code and message on stderr); 2 bad
    /// arguments or an unreadable body file; 3 no connection, a closed
    /// connection or a timeout.
    Call {
        /// Server address: host:port or unix:/path; several, comma-separated,
        /// are tried in order until one can be reached.
        addr: String,
        /// Request path, e.g. /echo or /sys/server_count.
        path: String,
        /// Request body; `@FILE` reads a file, `@-` standard input; default `{}`.
        data: Option<String>,
        /// Seconds the whole call may take: connecting, the hello and the
        /// answer; past it the call fails saying what it waited for.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Print an error answer as it came instead of failing.
        #[arg(long)]
        raw: bool,
        /// Print what the hello negotiated (spec chapter 14) to stderr.
        #[arg(short, long)]
        verbose: bool,
        #[command(flatten)]
        hello: HelloArgs,
        #[command(flatten)]
        tls: ClientTls,
    },
    /// Run the conformance suite against a server and report by spec chapter.
    ///
    /// Exit codes: 0 every selected case passed (deviations and skips
    /// allowed); 1 a case failed; 2 the run could not be made (unreachable
    /// target, bad arguments or vectors, a selection that matches nothing).
    Conformance {
        /// Server address: host:port, or unix:/path.
        addr: String,
        /// What the server declares beyond /echo, e.g. `max-channels=8,max-message=1048576,fail-route`.
        #[arg(long, default_value = "")]
        profile: String,
        /// The implementation the server is (known: go-iip): failures its
        /// Appendix A entries excuse are reported as deviations.
        #[arg(long)]
        peer: Option<String>,
        /// must (must cases), should (must and should) or all (compat too).
        #[arg(long, default_value = "all")]
        level: String,
        /// Only cases citing a requirement matching this pattern, e.g. 'CHAN-*' (repeatable).
        #[arg(long = "requirement")]
        requirements: Vec<String>,
        /// Only cases of this chapter, e.g. 6 or 06-channels (repeatable).
        #[arg(long = "chapter")]
        chapters: Vec<String>,
        /// Only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Run the cases of this folder (laid out as vectors/: sessions/*.toml)
        /// instead of the ones built in.
        #[arg(long)]
        vectors: Option<std::path::PathBuf>,
        /// Colour: auto (on a terminal), always or never.
        #[arg(long, default_value = "auto")]
        color: String,
        /// Milliseconds each step may wait.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
        /// Seconds the whole run may take: past it, the case waiting fails
        /// with what it waited for and the rest are not run.
        #[arg(long, default_value_t = 120.0)]
        deadline: f64,
        /// Write a JSON report here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Write a JUnit XML report here.
        #[arg(long)]
        junit: Option<std::path::PathBuf>,
        #[command(flatten)]
        tls: ClientTls,
    },
    /// Serve a benchmark floor to measure against: an unchecked IIP echo (no
    /// validation, no channel state, no ordering; `iip bench` drives it) or,
    /// with --h2, hyper's HTTP/2 echo (h2load drives it). Never for traffic.
    Floor {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9800")]
        listen: std::net::SocketAddr,
        /// Serve hyper's HTTP/2 echo (cleartext, prior knowledge) instead.
        #[arg(long, conflicts_with = "checked")]
        h2: bool,
        /// Serve the checked IIP echo instead: the unchecked echo plus the
        /// work the spec asks of every request (frame, channel and message
        /// checks, routes, an unwind guard, statistics), and nothing else.
        #[arg(long)]
        checked: bool,
    },
    /// Load an IIP server that serves /echo (or --path) and report req/s and latency percentiles.
    Bench {
        /// Server address, e.g. 127.0.0.1:9090; several, comma-separated,
        /// spread the connections over them (or feed --balance).
        addr: String,
        /// TCP connections (at least one per server).
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Call through the client's balancer with this strategy: each
        /// server gets --channels channels and --connections x --channels x
        /// --depth workers share the balancer.
        #[arg(long, value_parser = ["round-robin", "random", "fewest-pending", "p2c"])]
        balance: Option<String>,
        /// Channels per connection (0: channel 0 only).
        #[arg(long, default_value_t = 10)]
        channels: usize,
        /// Requests in flight per channel (pipelining depth).
        #[arg(long, default_value_t = 1)]
        depth: usize,
        /// Request body size in bytes.
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Path to call; must answer with the request body.
        #[arg(long, default_value = "/echo")]
        path: String,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Stop after this many requests.
        #[arg(long)]
        requests: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Also report the CPU time per request of this server process
        /// (Linux, read from /proc).
        #[arg(long)]
        server_pid: Option<u32>,
        /// Instead of load: open this many connections, make one call on
        /// each, hold them idle for --duration seconds, then close them.
        #[arg(long)]
        idle: Option<usize>,
        /// The request body, `@FILE` for a file's content, instead of
        /// --payload generated bytes.
        #[arg(long)]
        body: Option<String>,
        /// Drive the server with bare frames, one task per connection and
        /// no client library: the least CPU per request on this side, so
        /// the server's cost shows (plain TCP, no hello, no --balance; each
        /// read's answers are answered with one write).
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        hello: HelloArgs,
        #[command(flatten)]
        tls: ClientTls,
    },
    /// Attack an IIP server, an HTTP gateway (--http) or a client (--serve
    /// plays bad servers for it), bounded in count and time, while a good
    /// peer works beside the attack; report per attack whether it held.
    /// Only against programs you run yourself.
    Attack {
        /// Server address, e.g. 127.0.0.1:9090.
        #[arg(required_unless_present_any = ["serve", "http"])]
        addr: Option<String>,
        /// Attack the HTTP gateway at this address instead (its upstream
        /// must serve /echo, and /delay for http-slow-requests).
        #[arg(long, value_name = "ADDR", conflicts_with_all = ["addr", "serve"])]
        http: Option<String>,
        /// Instead of attacking a server: play bad servers on this loopback
        /// address (port 0: any) for the client --client-cmd starts.
        #[arg(long, value_name = "ADDR", conflicts_with = "addr", requires = "client_cmd")]
        serve: Option<String>,
        /// With --serve: the client under test, run once per bad server
        /// through the shell with {addr} replaced by the server's address,
        /// e.g. "iip call {addr} /echo x". It passes when it ends within
        /// --client-limit having taken at most 1 GiB.
        #[arg(long, requires = "serve")]
        client_cmd: Option<String>,
        /// With --serve: the bad servers to play (default: all).
        #[arg(long = "server", value_enum, value_delimiter = ',')]
        servers: Vec<crate::conformance::attack::hostile::HostileServer>,
        /// With --serve: seconds the client may run against one bad server.
        #[arg(long, default_value_t = 30.0)]
        client_limit: f64,
        /// Attacks to run (default: all, in order).
        #[arg(long = "only", value_enum, value_delimiter = ',')]
        only: Vec<crate::conformance::attack::AttackKind>,
        /// Seconds each attack lasts at most.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds the server has after an attack to serve a new client.
        #[arg(long, default_value_t = 10.0)]
        recovery: f64,
        /// Connections of the idle flood.
        #[arg(long, default_value_t = 10_100)]
        idle_connections: usize,
        /// Connections of the slow-loris attack.
        #[arg(long, default_value_t = 1_000)]
        loris_connections: usize,
        /// Streams of the garbage attack.
        #[arg(long, default_value_t = 10_000)]
        garbage_streams: usize,
        /// The bearer token the good client offers, for a server that
        /// requires authentication (auth-guessing then has something to guess).
        #[arg(long)]
        token: Option<String>,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Play the server side of the client conformance cases, one connection each.
    ///
    /// With --client-cmd it runs unattended: for each case it starts the
    /// command with {addr} (the scripted server's host:port) and {actions}
    /// (a JSON file of what to do, spec §12.3), and the case passes when the
    /// client's frames follow the script and the command exits 0. Without it,
    /// it listens on --listen and prints what a person should make the client
    /// do, one connection per case.
    ClientConformance {
        /// Address to listen on (without --client-cmd).
        #[arg(long, default_value = "127.0.0.1:9191")]
        listen: String,
        /// The client under test, e.g. 'python3 myclient.py {addr} {actions}'.
        #[arg(long)]
        client_cmd: Option<String>,
        /// Write a JSON report here (with --client-cmd).
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Write a JUnit XML report here (with --client-cmd).
        #[arg(long)]
        junit: Option<std::path::PathBuf>,
        /// Milliseconds each step may wait.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// Colour of the report (with --client-cmd): auto (on a terminal), always or never.
        #[arg(long, default_value = "auto")]
        color: String,
        /// Play the scripts inside TLS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
        /// The extensions of chapter 14 the client under test implements
        /// (with --client-cmd), joined by `+`: `hello` (it can say hello),
        /// `lz4`, `zstd`, `going_away`. Cases whose hello offers more are
        /// skipped; none by default.
        #[arg(long, default_value = "", value_parser = parse_extension_list)]
        extensions: ExtensionList,
    },
    /// An HTTP gateway: HTTP/1.1 and HTTP/2 (h2c) requests become IIP
    /// requests to the upstream servers, answers become HTTP responses.
    Gateway {
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
    },
    /// Print the IIP frames of a capture (pcap or pcapng, each TCP
    /// direction reassembled), of hex text (plain or xxd) or of raw bytes,
    /// read by this crate's decoder: each frame with its stream offset, and
    /// the framing error that ends a stream with the requirement it breaks.
    Decode {
        /// The input file; `-` reads standard input.
        input: std::path::PathBuf,
        /// How to read the input: a capture (by default for .pcap and
        /// .pcapng files), hex text, or the raw bytes of one stream.
        #[arg(long, value_enum)]
        format: Option<DecodeFormat>,
        /// Keep only the TCP connections with this port (captures).
        #[arg(long)]
        port: Option<u16>,
        /// Write JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make a development CA and the certificates TLS needs: a server leaf
    /// for the names given, signed by the CA, and with --client a client
    /// certificate for mutual TLS. Keys are written readable by their
    /// owner alone. For development and tests; production certificates
    /// come from your own CA.
    Cert {
        /// A DNS name the server's certificate holds (repeatable).
        #[arg(long = "name")]
        names: Vec<String>,
        /// An IP address the server's certificate holds (repeatable).
        #[arg(long = "ip")]
        ips: Vec<std::net::IpAddr>,
        /// Also make a client certificate with this common name (mutual TLS).
        #[arg(long)]
        client: Option<String>,
        /// The folder for ca.pem, server.pem, server-key.pem (and client.pem,
        /// client-key.pem); ca-key.pem stays beside them to make more.
        #[arg(long, default_value = "certs")]
        out: std::path::PathBuf,
        /// How many days the certificates are valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// The book's mdBook preprocessor: links every requirement id to its
    /// definition and annotates the hex examples (book/book.toml runs it).
    #[command(hide = true)]
    BookPreprocess {
        /// `supports RENDERER`, as mdBook asks first.
        args: Vec<String>,
    },
    /// Perform a client-conformance actions file (spec §12.3) with this
    /// crate's client; exit 0 when every call came to what it expects.
    #[command(hide = true)]
    PlayActions {
        /// Server address: host:port or unix:/path.
        addr: String,
        /// The actions file.
        actions: std::path::PathBuf,
        /// Seconds each call may wait.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
        #[command(flatten)]
        tls: ClientTls,
    },
}

/// How `iip decode` reads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DecodeFormat {
    /// A pcap or pcapng capture.
    Capture,
    /// Hex digits (white space, `0x` and xxd's offsets and text ignored).
    Hex,
    /// The raw bytes of one stream.
    Raw,
}

/// The `+`-joined names of `--extensions`.
#[derive(Debug, Clone, Default)]
pub struct ExtensionList(pub Vec<String>);

/// Reads `hello+lz4+going_away`; an unknown name is refused, saying which
/// names there are.
fn parse_extension_list(text: &str) -> Result<ExtensionList, String> {
    const KNOWN: [&str; 4] = ["hello", "lz4", "zstd", "going_away"];
    let names: Vec<String> = text.split('+').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect();
    if let Some(unknown) = names.iter().find(|n| !KNOWN.contains(&n.as_str())) {
        return Err(format!("unknown extension {unknown:?}: the client cases know {}", KNOWN.join(", ")));
    }
    Ok(ExtensionList(names))
}
