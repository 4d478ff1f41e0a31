//! The `iip` command (feature `cli`): `serve`, `call`, `bench`, `floor`,
//! `conformance`, `client-conformance`, `attack` and `gateway`. [`main`] parses the
//! arguments and runs one of them.

pub mod floor;
pub mod frame_load;
pub mod loadgen;

/// Writes a line to stderr, ignoring a closed stderr: a server whose
/// terminal went away must not die of a message.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use std::process::ExitCode;
use std::time::Duration;

use crate::client::{ClientConfig, ClientError, Endpoint};
use crate::server::{Request, Server};
use bytes::Bytes;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "iip", version, about = "IIP/1: serve, call, benchmark and check IIP servers")]
struct Cli {
    /// Log lines as text or as JSON objects (one per line), on stderr; the
    /// level comes from RUST_LOG (default: warn).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

/// How a client command reaches a server inside TLS.
#[derive(clap::Args, Debug, Clone, Default)]
struct ClientTls {
    /// Connect inside TLS.
    #[arg(long)]
    tls: bool,
    /// Trust the CA certificates of this PEM file (implies --tls).
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// Accept any server certificate (implies --tls). Unsafe outside tests:
    /// nothing then stops a man in the middle.
    #[arg(long)]
    insecure: bool,
    /// The name the server's certificate must carry (default: the host of the address).
    #[arg(long)]
    server_name: Option<String>,
    /// Present this client certificate (PEM) for mutual TLS; needs --tls-client-key.
    #[arg(long, requires = "tls_client_key")]
    tls_client_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-client-cert (PEM).
    #[arg(long, requires = "tls_client_cert")]
    tls_client_key: Option<std::path::PathBuf>,
}

impl ClientTls {
    /// The endpoint for `addr` (`host:port` or `unix:/path`) with these settings.
    fn endpoint(&self, addr: &str) -> Result<Endpoint, String> {
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
        let config = crate::tls::client_config(trust, identity).map_err(|e| e.to_string())?;
        let host = self.server_name.clone().unwrap_or_else(|| crate::tls::host_of(addr).to_string());
        let name = crate::tls::server_name(&host).map_err(|e| e.to_string())?;
        Ok(endpoint.with_tls(config, name))
    }
}

/// Settings of `iip serve` that override the configuration file and the
/// environment; each defaults to the library's default.
#[derive(clap::Args, Debug, Clone, Default)]
struct ServeSettings {
    /// Seconds a TLS handshake may take [default: 10].
    #[arg(long)]
    tls_handshake_timeout: Option<f64>,
    /// Most channels per connection, channel 0 included [default: 1024].
    #[arg(long)]
    max_channels: Option<u32>,
    /// Most connections at once [default: 10000].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Largest request body in bytes, answered 110 beyond it [default: 67108864].
    #[arg(long)]
    max_message: Option<usize>,
    /// Memory budget of one connection in bytes [default: 67108864].
    #[arg(long)]
    max_connection_bytes: Option<usize>,
    /// Memory budget of the whole server in bytes [default: 268435456].
    #[arg(long)]
    max_server_bytes: Option<usize>,
    /// Bytes per second the server inflates and compresses for all clients
    /// together; a client past its turn waits; 0: no pace [default: 268435456].
    #[arg(long)]
    max_codec_rate: Option<usize>,
    /// Seconds a handler may run before its request is answered 103; 0: no limit [default: 0].
    #[arg(long)]
    handler_timeout: Option<f64>,
    /// Seconds a connection may stay idle (nothing in flight, no frame); 0: no limit [default: 60].
    #[arg(long)]
    idle_timeout: Option<f64>,
    /// Seconds a frame may take to arrive once it has begun; 0: no limit [default: 30].
    #[arg(long)]
    frame_timeout: Option<f64>,
    /// Seconds a write may wait on a peer that reads nothing; 0: no limit [default: 30].
    #[arg(long)]
    write_timeout: Option<f64>,
    /// Seconds a client has to authenticate where --require-auth; 0: no
    /// limit [default: 10].
    #[arg(long)]
    hello_timeout: Option<f64>,
    /// Seconds each failed authentication past the fourth delays the next
    /// check from the same address; 0: no delay [default: 1].
    #[arg(long)]
    auth_failure_interval: Option<f64>,
    /// Seconds a graceful shutdown (SIGINT, SIGTERM) waits for requests in
    /// flight before closing the remaining connections [default: 30].
    #[arg(long)]
    grace: Option<f64>,
    /// Answer /sys/hello with 102 like the deployed server: no extension
    /// of spec chapter 14 (ping, limits, compression, going away, auth).
    #[arg(long)]
    no_extensions: bool,
}

impl ServeSettings {
    /// `config` with every setting given on the command line applied.
    fn apply(&self, mut config: crate::server::ServerConfig) -> crate::server::ServerConfig {
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
struct HelloArgs {
    /// Say no hello: a plain IIP/1 client, as the deployed one.
    #[arg(long)]
    no_hello: bool,
    /// Offer this bearer token in the hello (spec chapter 14).
    #[arg(long)]
    token: Option<String>,
    /// Offer compression with this codec: lz4 or zstd.
    #[arg(long, value_name = "CODEC")]
    compress: Option<String>,
}

impl HelloArgs {
    fn extensions(&self) -> Result<crate::client::ClientExtensions, CliError> {
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
fn describe_agreed(agreed: Option<&crate::proto::extensions::Agreed>) -> String {
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
enum Command {
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
    /// Attack an IIP server (bounded in count and time) while a good client
    /// calls /echo; report per attack whether it survived and the good
    /// client was served. Only for servers you run yourself.
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

/// The TLS server configuration of a certificate and key given on the
/// command line (clap makes them come together), `None` without them.
fn pem_server_config(
    cert: &Option<std::path::PathBuf>,
    key: &Option<std::path::PathBuf>,
    client_ca: Option<&std::path::Path>,
) -> Result<Option<std::sync::Arc<crate::tls::ServerConfig>>, CliError> {
    match (cert, key) {
        (Some(cert), Some(key)) => {
            crate::tls::server_config(cert, key, client_ca).map(Some).map_err(|e| CliError::Usage(e.to_string()))
        }
        _ => Ok(None),
    }
}

/// `None` for 0 (no limit), otherwise that many seconds.
fn seconds_or_off(secs: f64) -> Option<Duration> {
    (secs > 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0 * 365.0)))
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

/// Raises the soft limit on open files to the hard limit, and warns when
/// it still cannot hold `max_connections` connections.
fn raise_fd_limit(max_connections: usize) {
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if (limit as usize) < max_connections.saturating_add(64) => say!(
            "iip: warning: the open-file limit is {limit}, below --max-connections {max_connections} \
             (plus listeners and files); clients past it are refused while descriptors are short"
        ),
        Ok(_) => {}
        Err(err) => say!("iip: warning: cannot read or raise the open-file limit: {err}"),
    }
}

/// The first SIGINT or SIGTERM starts a graceful shutdown; a second one
/// ends the process at once.
async fn stop_on_signals(server: Server) {
    wait_for_signal().await;
    say!("iip: shutting down gracefully (a second signal exits at once)");
    server.shutdown();
    wait_for_signal().await;
    say!("iip: exiting now");
    std::process::exit(130);
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The request body of `iip call`: the text itself, `@FILE`, or `@-` for
/// standard input; errors name the file.
fn body_of(data: Option<String>) -> Result<Bytes, String> {
    match data {
        None => Ok(Bytes::from_static(b"{}")),
        Some(d) => match d.strip_prefix('@') {
            Some("-") => {
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut body)
                    .map_err(|e| format!("cannot read the body from standard input: {e}"))?;
                Ok(Bytes::from(body))
            }
            Some(file) => {
                std::fs::read(file).map(Bytes::from).map_err(|e| format!("cannot read the body file {file}: {e}"))
            }
            None => Ok(Bytes::from(d)),
        },
    }
}

/// Why a command failed, and its exit code.
enum CliError {
    /// The command ran and found a failure (exit code 1).
    Failed(String),
    /// The command could not run as asked (exit code 2).
    Usage(String),
    /// The server could not be reached, closed the connection or timed out
    /// (exit code 3).
    Unreachable(String),
}

impl From<String> for CliError {
    fn from(message: String) -> CliError {
        CliError::Failed(message)
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
            tls_client_ca,
            config,
            print_config,
            metrics,
            fail_route,
            demo_routes,
            auth_tokens,
            require_auth,
            settings,
        } => {
            let file = match &config {
                Some(path) => {
                    crate::server::ServerConfig::from_file(path).map_err(|e| CliError::Usage(e.to_string()))?
                }
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
            let tls = pem_server_config(&tls_cert, &tls_key, tls_client_ca.as_deref())?;
            let inside = if tls.is_some() { " inside TLS" } else { "" };
            let mut builder = Server::echo().config(config);
            if demo_routes {
                builder = builder.route("/delay", delay).route("/burn", burn);
            }
            if let Some(tls) = tls {
                builder = builder.tls(tls);
            }
            if fail_route {
                builder = builder.route("/fail", crate::conformance::fail_handler);
            }
            if !auth_tokens.is_empty() {
                let mut tokens = crate::server::BearerTokens::new();
                for item in &auth_tokens {
                    let (token, identity) = item
                        .split_once('=')
                        .ok_or_else(|| CliError::Usage(format!("--auth-token {item:?}: expected TOKEN=IDENTITY")))?;
                    tokens = tokens.with(token, identity);
                }
                let policy = if require_auth {
                    crate::server::AuthPolicy::Required
                } else {
                    crate::server::AuthPolicy::Optional
                };
                builder = builder.authenticator(tokens, policy);
            }
            let server = builder.build().map_err(|e| CliError::Usage(e.to_string()))?;
            tokio::spawn(stop_on_signals(server.clone()));
            if let Some(path) = listen.strip_prefix("unix:") {
                Ok(serve_unix(&server, path, inside).await?)
            } else {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
                let local = listener.local_addr().map_err(|e| e.to_string())?;
                say!("iip serving on {local}{inside} (SIGINT or SIGTERM stops)");
                server.serve(listener).await.map_err(|e| CliError::Failed(e.to_string()))
            }
        }
        Command::Call { addr, path, data, timeout, raw, verbose, hello, tls } => {
            let body = body_of(data).map_err(CliError::Usage)?;
            let limit = Duration::from_secs_f64(timeout.clamp(0.001, 86_400.0));
            let config = ClientConfig { timeout: limit, extensions: hello.extensions()?, ..ClientConfig::default() };
            // What the call waits for, for the message when time runs out.
            let waiting_for = std::cell::RefCell::new(String::new());
            let work = async {
                let mut unreachable = Vec::new();
                let mut connected = None;
                for target in endpoints(&addr, &tls)? {
                    let shown = target.addr.clone();
                    *waiting_for.borrow_mut() = format!("a connection to {shown} and its hello");
                    let target = match &hello.token {
                        Some(token) => target.with_credentials(crate::proto::extensions::Credentials {
                            scheme: "bearer".into(),
                            credentials: token.clone(),
                        }),
                        None => target,
                    };
                    match target.connect(config).await {
                        Ok(client) => {
                            connected = Some(client);
                            break;
                        }
                        Err(ClientError::Timeout(limit)) => {
                            unreachable.push(format!("{shown}: no answer to the hello within {limit:?}"))
                        }
                        Err(e) => unreachable.push(e.to_string()),
                    }
                }
                let client = connected.ok_or_else(|| CliError::Unreachable(unreachable.join("; ")))?;
                if verbose {
                    say!("{}", describe_agreed(client.agreed()));
                }
                *waiting_for.borrow_mut() = format!("the answer to {path}");
                let channel = client.channel_zero();
                let answer = if raw { channel.call_raw(path, body).await } else { channel.call(path, body).await };
                Ok::<_, CliError>(answer)
            };
            let answer = match tokio::time::timeout(limit, work).await {
                Ok(answer) => answer?,
                Err(_) => {
                    let what = waiting_for.borrow();
                    return Err(CliError::Unreachable(format!(
                        "{addr}: no result within {limit:?}, waiting for {what}"
                    )));
                }
            };
            match answer {
                Ok(bytes) => {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    out.write_all(&bytes)
                        .and_then(|()| out.flush())
                        .map_err(|e| format!("cannot write the answer: {e}"))?;
                    Ok(())
                }
                Err(ClientError::Server { code, message }) => Err(format!("server error {code}: {message}").into()),
                Err(e) => Err(CliError::Unreachable(format!("{addr}: {e}"))),
            }
        }
        Command::Conformance {
            addr,
            profile,
            peer,
            level,
            requirements,
            chapters,
            filter,
            vectors,
            color,
            timeout_ms,
            deadline,
            json,
            junit,
            tls,
        } => {
            let deadline = std::time::Instant::now() + Duration::from_secs_f64(deadline.clamp(0.1, 86_400.0));
            let target = tls.endpoint(&addr).map_err(CliError::Usage)?;
            let mut profile = crate::conformance::Profile::parse(&profile).map_err(CliError::Usage)?;
            if let Some(peer) = peer {
                let declared = crate::conformance::Profile::parse(&format!("peer={peer}")).map_err(CliError::Usage)?;
                profile.peer = declared.peer;
            }
            let selection = crate::conformance::Selection { level: Some(level), requirements, chapters, name: filter };
            let style = report_style(&color)?;
            let run = ConformanceRun { target, profile, selection, vectors, style, json, junit };
            let waits = crate::conformance::Waits { step: Duration::from_millis(timeout_ms), deadline: Some(deadline) };
            conformance(run, waits).await
        }
        Command::Bench { addr, idle: Some(count), duration, .. } => {
            let held =
                crate::cli::loadgen::hold_idle(&addr, count, Duration::from_secs_f64(duration.clamp(0.01, 3600.0)))
                    .await
                    .map_err(|e| e.to_string())?;
            println!("held {held} idle connections");
            Ok(())
        }
        Command::Floor { listen, h2, checked } => {
            let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("{listen}: {e}"))?;
            let kind = match (h2, checked) {
                (true, _) => "HTTP/2 echo",
                (false, true) => "checked IIP echo",
                (false, false) => "unchecked IIP echo",
            };
            say!("iip: {kind} floor on {listen}");
            let served = match (h2, checked) {
                (true, _) => crate::cli::floor::serve_h2_echo(listener).await,
                (false, true) => crate::cli::floor::checked::serve_checked_iip(listener).await,
                (false, false) => crate::cli::floor::serve_unchecked_iip(listener).await,
            };
            served.map_err(|e| CliError::Failed(e.to_string()))
        }
        Command::Bench {
            addr,
            connections,
            balance,
            server_pid,
            channels,
            depth,
            payload,
            path,
            duration,
            requests,
            json,
            idle: None,
            body,
            raw,
            hello,
            tls,
        } => {
            for (name, value) in [("--connections", connections), ("--depth", depth), ("--payload", payload)] {
                if value == 0 {
                    return Err(CliError::Usage(format!("{name} must be at least 1")));
                }
            }
            if requests == Some(0) || duration <= 0.0 {
                return Err(CliError::Usage("--requests and --duration must be above 0".into()));
            }
            say!(
                "iip bench{} {addr}{}: {connections} connection(s) x {} x depth {depth}, {payload} B to {path}, {}",
                if raw { " --raw" } else { "" },
                if tls.tls || tls.insecure || tls.tls_ca.is_some() { " (TLS)" } else { "" },
                if channels == 0 { "channel 0".to_string() } else { format!("{channels} channel(s)") },
                match requests {
                    Some(n) => format!("{n} requests at most, {duration} s at most"),
                    None => format!("{duration} s"),
                }
            );
            let targets = endpoints(&addr, &tls)?;
            let balance = balance.map(|name| match name.as_str() {
                "round-robin" => crate::client::Strategy::RoundRobin,
                "random" => crate::client::Strategy::Random,
                "fewest-pending" => crate::client::Strategy::FewestPending,
                _ => crate::client::Strategy::PowerOfTwoChoices,
            });
            let plan = crate::cli::loadgen::LoadPlan {
                connections: if balance.is_some() { connections } else { connections.max(targets.len()) },
                targets,
                balance,
                channels,
                depth,
                payload,
                path,
                duration: Duration::from_secs_f64(duration.clamp(0.01, 3600.0)),
                requests,
                timeout: Duration::from_secs(10),
                server_pid,
                body: match body {
                    Some(text) => Some(body_of(Some(text)).map_err(CliError::Usage)?),
                    None => None,
                },
                extensions: hello.extensions()?,
            };
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let shown = bar.clone();
            let progress = move |n| shown.set_message(format!("{n} requests"));
            let report = if raw {
                crate::cli::frame_load::run(&plan, progress).await.map_err(|e| e.to_string())?
            } else {
                crate::cli::loadgen::run(&plan, progress).await.map_err(|e| e.to_string())?
            };
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
            } else {
                print!("{report}");
            }
            match report.errors {
                0 => Ok(()),
                n => Err(CliError::Failed(format!("{n} request(s) failed"))),
            }
        }
        Command::Attack { serve: Some(listen), client_cmd, servers, client_limit, json, .. } => {
            use crate::conformance::attack::hostile;
            let command = client_cmd.ok_or_else(|| CliError::Usage("--serve needs --client-cmd".into()))?;
            let servers = if servers.is_empty() { hostile::HostileServer::ALL.to_vec() } else { servers };
            let limit = Duration::from_secs_f64(client_limit.clamp(0.1, 3600.0));
            let results = hostile::run(&listen, &command, &servers, limit, |r| {
                if !json {
                    println!("{r}")
                }
            })
            .await
            .map_err(|e| CliError::Usage(format!("--serve {listen}: {e}")))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?);
            }
            match results.iter().filter(|r| !r.passed()).count() {
                0 => Ok(()),
                n => Err(format!("the client hung on or took without bound from {n} bad server(s)").into()),
            }
        }
        Command::Attack {
            addr,
            only,
            duration,
            recovery,
            idle_connections,
            loris_connections,
            garbage_streams,
            token,
            json,
            http,
            ..
        } => {
            use crate::conformance::attack::AttackKind;
            raise_fd_limit(idle_connections.max(loris_connections));
            let over_http = http.is_some();
            let addr = addr.or(http).ok_or_else(|| CliError::Usage("a server address, --http or --serve".into()))?;
            let mut plan = crate::conformance::attack::AttackPlan::new(addr);
            if let Some(wrong) = only.iter().find(|a| a.over_http() != over_http) {
                let want = if over_http { "an attack on a gateway (http-…)" } else { "an attack on an IIP server" };
                return Err(CliError::Usage(format!("--only {}: not {want}", wrong.name())));
            }
            plan.attacks = match (only.is_empty(), over_http) {
                (false, _) => only,
                (true, true) => AttackKind::HTTP.to_vec(),
                (true, false) => AttackKind::ALL.to_vec(),
            };
            plan.duration = Duration::from_secs_f64(duration.clamp(0.1, 3600.0));
            plan.recovery = Duration::from_secs_f64(recovery.clamp(0.1, 3600.0));
            plan.scale.idle_connections = idle_connections;
            plan.scale.loris_connections = loris_connections;
            plan.scale.garbage_streams = garbage_streams;
            plan.credentials = token
                .map(|token| crate::proto::extensions::Credentials { scheme: "bearer".into(), credentials: token });
            let results = crate::conformance::attack::run(&plan, |r| {
                if !json {
                    println!("{r}")
                }
            })
            .await;
            if json {
                println!("{}", serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?);
            }
            match results.iter().filter(|r| !r.passed()).count() {
                0 => Ok(()),
                n => Err(format!("{n} attack(s) took the server down, failed the good client or went unpaced").into()),
            }
        }
        Command::ClientConformance { listen, client_cmd, json, junit, timeout_ms, color, tls_cert, tls_key } => {
            let tls = pem_server_config(&tls_cert, &tls_key, None)?;
            let timeout = Duration::from_millis(timeout_ms);
            let style = report_style(&color)?;
            match client_cmd {
                Some(command) => client_conformance_unattended(&command, timeout, tls, style, json, junit).await,
                None => Ok(client_conformance(&listen, timeout, tls).await?),
            }
        }
        Command::Gateway {
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
        } => {
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
            tokio::spawn(async move {
                wait_for_signal().await;
                say!("iip: shutting down gracefully (a second signal exits at once)");
                stopper.shutdown();
                wait_for_signal().await;
                std::process::exit(130);
            });
            gateway.serve(listener).await.map_err(|e| CliError::Failed(e.to_string()))
        }
        Command::BookPreprocess { args } => {
            if args.first().map(String::as_str) == Some("supports") {
                return Ok(()); // every renderer: links and tables are plain Markdown
            }
            let mut input = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)
                .map_err(|e| format!("cannot read the book: {e}"))?;
            let book = crate::conformance::book::preprocess(&input)?;
            print!("{book}");
            Ok(())
        }
        Command::PlayActions { addr, actions, timeout, tls } => {
            let target = tls.endpoint(&addr).map_err(CliError::Usage)?;
            let text = std::fs::read(&actions).map_err(|e| CliError::Usage(format!("{}: {e}", actions.display())))?;
            let file: crate::conformance::client_cmd::ActionsFile =
                serde_json::from_slice(&text).map_err(|e| CliError::Usage(format!("{}: {e}", actions.display())))?;
            let timeout = Duration::from_secs_f64(timeout.clamp(0.001, 3600.0));
            Ok(crate::conformance::client_cmd::play_actions(&target, &file, timeout).await?)
        }
    }
}

/// What `iip conformance` was asked to do.
struct ConformanceRun {
    target: Endpoint,
    profile: crate::conformance::Profile,
    selection: crate::conformance::Selection,
    vectors: Option<std::path::PathBuf>,
    style: crate::conformance::report::Style,
    json: Option<std::path::PathBuf>,
    junit: Option<std::path::PathBuf>,
}

async fn conformance(run: ConformanceRun, waits: crate::conformance::Waits) -> Result<(), CliError> {
    use crate::conformance::{load_sessions, run_suite, shipped_cases};
    let cases = match &run.vectors {
        Some(dir) => load_sessions(dir.join("sessions")),
        None => shipped_cases(),
    }
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let cases = run.selection.apply(cases).map_err(CliError::Usage)?;
    // One clear error for a target that cannot be reached or answers
    // nothing, not one per case.
    probe(&run.target, waits.step).await?;
    let results = run_suite(&run.target, &cases, &run.profile, waits).await;
    let judged = report_and_judge(&results, run.style, run.json, run.junit);
    if waits.expired() {
        let not_run = results
            .iter()
            .filter(|r| matches!(&r.verdict, crate::conformance::Verdict::Skipped(why) if why.starts_with("not run")))
            .count();
        return Err(CliError::Failed(format!("the run's deadline passed: {not_run} case(s) not run")));
    }
    judged
}

/// Connects to `target` and calls `/echo` once, plain IIP/1: an error
/// unless the server answers something within `limit`.
async fn probe(target: &Endpoint, limit: Duration) -> Result<(), CliError> {
    let addr = &target.addr;
    let stream = match tokio::time::timeout(limit, target.connect_stream()).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(CliError::Usage(format!("cannot reach the server: {err}"))),
        Err(_) => {
            return Err(CliError::Usage(format!("cannot reach the server: {addr}: no connection within {limit:?}")))
        }
    };
    let config =
        ClientConfig { timeout: limit, extensions: crate::client::ClientExtensions::off(), ..ClientConfig::default() };
    match crate::client::Client::over(stream, config).call("/echo", "probe").await {
        Err(ClientError::Timeout(_)) => {
            Err(CliError::Usage(format!("{addr}: no answer to /echo within {limit:?}; no case was run")))
        }
        Err(err @ ClientError::Closed { .. }) => {
            Err(CliError::Usage(format!("{addr}: /echo was not answered: {err}; no case was run")))
        }
        _ => Ok(()),
    }
}

/// The report's colours for `--color`: auto (on a terminal), always or never.
fn report_style(color: &str) -> Result<crate::conformance::report::Style, CliError> {
    use crate::conformance::report::Style;
    match color {
        "always" => Ok(Style::coloured()),
        "never" => Ok(Style::plain()),
        "auto" if std::io::IsTerminal::is_terminal(&std::io::stdout()) => Ok(Style::coloured()),
        "auto" => Ok(Style::plain()),
        other => Err(CliError::Usage(format!("--color {other}: auto, always or never"))),
    }
}

/// Prints the report, writes the JSON and JUnit files asked for, and fails
/// (exit code 1) when a case failed.
fn report_and_judge(
    results: &[crate::conformance::CaseResult],
    style: crate::conformance::report::Style,
    json: Option<std::path::PathBuf>,
    junit: Option<std::path::PathBuf>,
) -> Result<(), CliError> {
    use crate::conformance::report;
    let requirements = crate::conformance::spec::shipped_requirements().map_err(|e| CliError::Usage(e.to_string()))?;
    print!("{}", report::text_report(results, &requirements, style));
    if let Some(path) = json {
        std::fs::write(&path, report::json_report(results)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = junit {
        std::fs::write(&path, report::junit_report(results, &requirements))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    match report::totals(results).failed {
        0 => Ok(()),
        n => Err(CliError::Failed(format!("{n} case(s) failed"))),
    }
}

async fn client_conformance_unattended(
    command: &str,
    timeout: Duration,
    tls: Option<std::sync::Arc<crate::tls::ServerConfig>>,
    style: crate::conformance::report::Style,
    json: Option<std::path::PathBuf>,
    junit: Option<std::path::PathBuf>,
) -> Result<(), CliError> {
    use crate::conformance::client::load_client_cases;
    use crate::conformance::client_cmd::run_client_suite;
    let cases = load_client_cases(crate::conformance::files::DataDir::embedded("vectors/client-sessions"))
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let results = run_client_suite(command, &cases, timeout, tls).await;
    report_and_judge(&results, style, json, junit)
}

async fn client_conformance(
    listen: &str,
    timeout: Duration,
    tls: Option<std::sync::Arc<crate::tls::ServerConfig>>,
) -> Result<(), String> {
    use crate::conformance::client::{describe_actions, load_client_cases, ScriptedServer};
    let cases = load_client_cases(crate::conformance::files::DataDir::embedded("vectors/client-sessions"))
        .map_err(|e| e.to_string())?;
    let server = match tls {
        Some(tls) => ScriptedServer::bind_tls(listen, timeout, tls).await,
        None => ScriptedServer::bind(listen, timeout).await,
    }
    .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    let (mut passed, mut failed) = (0, 0);
    for (i, (_, case)) in cases.iter().enumerate() {
        println!("case {}/{}: {} [{}]", i + 1, cases.len(), case.name, case.requirements.join(", "));
        println!("  connect to {addr} and {}", describe_actions(&case.actions));
        match server.play(case).await {
            Ok(()) => {
                passed += 1;
                println!("  ok: the client's frames followed the script (check the outcomes above on the client side)");
            }
            Err(f) => {
                failed += 1;
                println!("  FAIL {}", f.to_string().replace('\n', "\n  "));
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} case(s) failed"))
    }
}

/// The endpoints of a comma-separated address list, with the TLS settings.
fn endpoints(addrs: &str, tls: &ClientTls) -> Result<Vec<Endpoint>, CliError> {
    let list: Vec<&str> = addrs.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
    if list.is_empty() {
        return Err(CliError::Usage(format!("{addrs:?}: no server address")));
    }
    list.into_iter().map(|addr| tls.endpoint(addr).map_err(CliError::Usage)).collect()
}

/// Parses the command line and runs the command; the exit code says how it
/// ended (each command documents its own codes).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            say!("iip: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Failed(message)) => {
            say!("iip: {message}");
            ExitCode::FAILURE
        }
        Err(CliError::Usage(message)) => {
            say!("iip: {message}");
            ExitCode::from(2)
        }
        Err(CliError::Unreachable(message)) => {
            say!("iip: {message}");
            ExitCode::from(3)
        }
    }
}
