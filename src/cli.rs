//! The command line of `iip`.

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

use bytes::Bytes;
use clap::{Parser, Subcommand};
use iip::client::{ClientConfig, ClientError, Endpoint};
use iip::server::{Request, Server, Timeouts};

#[derive(Parser)]
#[command(name = "iip", version, about = "IIP/1: serve, call, benchmark and check IIP servers")]
struct Cli {
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
            (Some(ca), false) => iip::tls::ServerTrust::CaFile(ca),
            (None, true) => {
                say!("iip: warning: --insecure: the server's certificate is not checked");
                iip::tls::ServerTrust::Insecure
            }
            (Some(_), true) => return Err("--tls-ca and --insecure exclude each other".into()),
            (None, false) => return Err("--tls needs --tls-ca FILE (or --insecure to skip verification)".into()),
        };
        let identity = self.tls_client_cert.as_deref().zip(self.tls_client_key.as_deref());
        let config = iip::tls::client_config(trust, identity).map_err(|e| e.to_string())?;
        let host = self.server_name.clone().unwrap_or_else(|| iip::tls::host_of(addr).to_string());
        let name = iip::tls::server_name(&host).map_err(|e| e.to_string())?;
        Ok(endpoint.with_tls(config, name))
    }
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
        /// Seconds a TLS handshake may take.
        #[arg(long, default_value_t = 10.0)]
        tls_handshake_timeout: f64,
        /// Most channels per connection, channel 0 included.
        #[arg(long, default_value_t = 1024)]
        max_channels: u32,
        /// Most connections at once.
        #[arg(long, default_value_t = 10_000)]
        max_connections: usize,
        /// Largest request body in bytes (answered 110 beyond it).
        #[arg(long, default_value_t = 64 * 1024 * 1024)]
        max_message: usize,
        /// Memory budget of one connection in bytes.
        #[arg(long, default_value_t = iip::proto::server::DEFAULT_MAX_HELD_BYTES)]
        max_connection_bytes: usize,
        /// Memory budget of the whole server in bytes.
        #[arg(long, default_value_t = iip::server::DEFAULT_MAX_SERVER_HELD_BYTES)]
        max_server_bytes: usize,
        /// Seconds a connection may stay idle (nothing in flight, no frame); 0: no limit.
        #[arg(long, default_value_t = 60.0)]
        idle_timeout: f64,
        /// Seconds a frame may take to arrive once it has begun; 0: no limit.
        #[arg(long, default_value_t = 30.0)]
        frame_timeout: f64,
        /// Seconds a write may wait on a peer that reads nothing; 0: no limit.
        #[arg(long, default_value_t = 30.0)]
        write_timeout: f64,
        /// Seconds a graceful shutdown (SIGINT, SIGTERM) waits for requests
        /// in flight before closing the remaining connections.
        #[arg(long, default_value_t = 30.0)]
        grace: f64,
    },
    /// Send one request and print the answer.
    Call {
        /// Server address, e.g. 127.0.0.1:9090.
        addr: String,
        /// Request path, e.g. /echo or /sys/server_count.
        path: String,
        /// Request body; `@FILE` reads a file; default `{}`.
        data: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Print an error answer as it came instead of failing.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        tls: ClientTls,
    },
    /// Run the conformance suite against a server and report by spec chapter.
    Conformance {
        /// Server address, e.g. 127.0.0.1:9090.
        addr: String,
        /// What the server declares beyond /echo, e.g. `max-channels=8,fail-route`.
        #[arg(long, default_value = "")]
        profile: String,
        /// Only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Milliseconds each step may wait.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
        /// Write a JSON report here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Write a JUnit XML report here.
        #[arg(long)]
        junit: Option<std::path::PathBuf>,
        #[command(flatten)]
        tls: ClientTls,
    },
    /// Load an IIP server that serves /echo (or --path) and report req/s and latency percentiles.
    Bench {
        /// Server address, e.g. 127.0.0.1:9090.
        addr: String,
        /// TCP connections.
        #[arg(long, default_value_t = 1)]
        connections: usize,
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
        /// Instead of load: open this many connections, make one call on
        /// each, hold them idle for --duration seconds, then close them.
        #[arg(long)]
        idle: Option<usize>,
        #[command(flatten)]
        tls: ClientTls,
    },
    /// Attack an IIP server (bounded in count and time) while a good client
    /// calls /echo; report per attack whether it survived and the good
    /// client was served. Only for servers you run yourself.
    Attack {
        /// Server address, e.g. 127.0.0.1:9090.
        addr: String,
        /// Attacks to run (default: all, in order).
        #[arg(long = "only", value_enum, value_delimiter = ',')]
        only: Vec<iip::attack::AttackKind>,
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
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Play the server side of the client conformance cases, one connection each.
    ClientConformance {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9191")]
        listen: String,
        /// Milliseconds each step may wait.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// Play the scripts inside TLS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
    },
}

/// Serves a Unix domain socket at `path`, replacing a stale socket file.
#[cfg(unix)]
async fn serve_unix(
    server: &Server,
    path: &str,
    tls: Option<std::sync::Arc<iip::tls::ServerConfig>>,
    inside: &str,
) -> Result<(), String> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }) {
        let _ = std::fs::remove_file(path);
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| format!("cannot listen on unix:{path}: {e}"))?;
    say!("iip serving on unix:{path}{inside} (SIGINT or SIGTERM stops)");
    let result = server.serve_listener(listener, tls.map(iip::tls::TlsAcceptor::from)).await;
    let _ = std::fs::remove_file(path);
    result.map_err(|e| e.to_string())
}

#[cfg(not(unix))]
async fn serve_unix(
    _: &Server,
    path: &str,
    _: Option<std::sync::Arc<iip::tls::ServerConfig>>,
    _: &str,
) -> Result<(), String> {
    Err(format!("cannot listen on unix:{path}: Unix sockets need a Unix system"))
}

/// `None` for 0 (no limit), otherwise that many seconds.
fn seconds_or_off(secs: f64) -> Option<Duration> {
    (secs > 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0 * 365.0)))
}

/// `/delay?ms=N`: answers the body after N milliseconds (at most 60 s), for
/// trying timeouts and shutdowns by hand.
async fn delay(req: Request) -> Result<Bytes, std::convert::Infallible> {
    let ms = req
        .query_str()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=").and_then(|v| v.parse::<u64>().ok())))
        .unwrap_or(0)
        .min(60_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(req.body)
}

/// Raises the soft limit on open files to the hard limit, and warns when
/// it still cannot hold `max_connections` connections.
fn raise_fd_limit(max_connections: usize) {
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if (limit as usize) < max_connections.saturating_add(64) => say!(
            "iip: warning: the open-file limit is {limit}, below --max-connections {max_connections} \
             (plus listeners and files); clients past it get 107 while descriptors are short"
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

fn body_of(data: Option<String>) -> std::io::Result<Bytes> {
    match data {
        None => Ok(Bytes::from_static(b"{}")),
        Some(d) => match d.strip_prefix('@') {
            Some(file) => std::fs::read(file).map(Bytes::from),
            None => Ok(Bytes::from(d)),
        },
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
            tls_client_ca,
            tls_handshake_timeout,
            max_channels,
            max_connections,
            max_message,
            max_connection_bytes,
            max_server_bytes,
            idle_timeout,
            frame_timeout,
            write_timeout,
            grace,
        } => {
            raise_fd_limit(max_connections);
            let tls = match (&tls_cert, &tls_key) {
                (Some(cert), Some(key)) => {
                    Some(iip::tls::server_config(cert, key, tls_client_ca.as_deref()).map_err(|e| e.to_string())?)
                }
                _ => None,
            };
            let timeouts = Timeouts {
                idle: seconds_or_off(idle_timeout),
                frame: seconds_or_off(frame_timeout),
                write: seconds_or_off(write_timeout),
            };
            let server = Server::echo()
                .route("/delay", delay)
                .max_channels(max_channels)
                .max_connections(max_connections)
                .max_message(max_message)
                .max_connection_bytes(max_connection_bytes)
                .max_server_bytes(max_server_bytes)
                .timeouts(timeouts)
                .grace(Duration::from_secs_f64(grace.clamp(0.0, 86_400.0)))
                .tls_handshake_timeout(Duration::from_secs_f64(tls_handshake_timeout.clamp(0.001, 3600.0)))
                .build();
            tokio::spawn(stop_on_signals(server.clone()));
            let inside = if tls.is_some() { " inside TLS" } else { "" };
            if let Some(path) = listen.strip_prefix("unix:") {
                serve_unix(&server, path, tls, inside).await
            } else {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
                let local = listener.local_addr().map_err(|e| e.to_string())?;
                say!("iip serving on {local}{inside} (SIGINT or SIGTERM stops)");
                match tls {
                    Some(tls) => server.serve_tls(listener, tls).await,
                    None => server.serve(listener).await,
                }
                .map_err(|e| e.to_string())
            }
        }
        Command::Call { addr, path, data, timeout, raw, tls } => {
            let body = body_of(data).map_err(|e| format!("cannot read the body: {e}"))?;
            let config =
                ClientConfig { timeout: Duration::from_secs_f64(timeout.max(0.001)), ..ClientConfig::default() };
            let client = tls.endpoint(&addr)?.connect(config).await.map_err(|e| e.to_string())?;
            let channel = client.channel_zero();
            let answer = if raw { channel.call_raw(path, body).await } else { channel.call(path, body).await };
            match answer {
                Ok(bytes) => {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&bytes);
                    if !bytes.ends_with(b"\n") {
                        let _ = out.write_all(b"\n");
                    }
                    Ok(())
                }
                Err(ClientError::Server { code, message }) => Err(format!("server error {code}: {message}")),
                Err(e) => Err(e.to_string()),
            }
        }
        Command::Conformance { addr, profile, filter, timeout_ms, json, junit, tls } => {
            let target = tls.endpoint(&addr)?;
            conformance(&target, &profile, filter.as_deref(), Duration::from_millis(timeout_ms), json, junit).await
        }
        Command::Bench { addr, idle: Some(count), duration, .. } => {
            let held = iip::loadgen::hold_idle(&addr, count, Duration::from_secs_f64(duration.clamp(0.01, 3600.0)))
                .await
                .map_err(|e| e.to_string())?;
            println!("held {held} idle connections");
            Ok(())
        }
        Command::Bench {
            addr,
            connections,
            channels,
            depth,
            payload,
            path,
            duration,
            requests,
            json,
            idle: None,
            tls,
        } => {
            let plan = iip::loadgen::LoadPlan {
                target: tls.endpoint(&addr)?,
                connections,
                channels,
                depth,
                payload,
                path,
                duration: Duration::from_secs_f64(duration.clamp(0.01, 3600.0)),
                requests,
                timeout: Duration::from_secs(10),
            };
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let shown = bar.clone();
            let report = iip::loadgen::run(&plan, move |n| shown.set_message(format!("{n} requests")))
                .await
                .map_err(|e| e.to_string())?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
            } else {
                print!("{report}");
            }
            Ok(())
        }
        Command::Attack {
            addr,
            only,
            duration,
            recovery,
            idle_connections,
            loris_connections,
            garbage_streams,
            json,
        } => {
            raise_fd_limit(idle_connections.max(loris_connections));
            let mut plan = iip::attack::AttackPlan::new(addr);
            if !only.is_empty() {
                plan.attacks = only;
            }
            plan.duration = Duration::from_secs_f64(duration.clamp(0.1, 3600.0));
            plan.recovery = Duration::from_secs_f64(recovery.clamp(0.1, 3600.0));
            plan.scale.idle_connections = idle_connections;
            plan.scale.loris_connections = loris_connections;
            plan.scale.garbage_streams = garbage_streams;
            let results = iip::attack::run(&plan, |r| {
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
                n => Err(format!("{n} attack(s) took the server down or starved the good client")),
            }
        }
        Command::ClientConformance { listen, timeout_ms, tls_cert, tls_key } => {
            let tls = match (&tls_cert, &tls_key) {
                (Some(cert), Some(key)) => Some(iip::tls::server_config(cert, key, None).map_err(|e| e.to_string())?),
                _ => None,
            };
            client_conformance(&listen, Duration::from_millis(timeout_ms), tls).await
        }
    }
}

async fn conformance(
    target: &Endpoint,
    profile: &str,
    filter: Option<&str>,
    timeout: Duration,
    json: Option<std::path::PathBuf>,
    junit: Option<std::path::PathBuf>,
) -> Result<(), String> {
    use iip::conformance::{report, run_suite, shipped_cases, spec_dir, Profile};
    let profile = Profile::parse(profile)?;
    let requirements = iip::spec::requirements(&spec_dir()).map_err(|e| e.to_string())?;
    let mut cases = shipped_cases().map_err(|e| e.to_string())?;
    if let Some(f) = filter {
        cases.retain(|c| c.id.contains(f));
    }
    let results = run_suite(target, &cases, &profile, timeout).await;
    print!("{}", report::text_report(&results, &requirements));
    if let Some(path) = json {
        std::fs::write(&path, report::json_report(&results)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = junit {
        std::fs::write(&path, report::junit_report(&results, &requirements))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    match report::totals(&results).failed {
        0 => Ok(()),
        n => Err(format!("{n} case(s) failed")),
    }
}

async fn client_conformance(
    listen: &str,
    timeout: Duration,
    tls: Option<std::sync::Arc<iip::tls::ServerConfig>>,
) -> Result<(), String> {
    use iip::conformance::client::{describe_actions, load_client_cases, ScriptedServer};
    let cases =
        load_client_cases(&iip::conformance::vectors_dir().join("client-sessions")).map_err(|e| e.to_string())?;
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

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            say!("iip: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            say!("iip: {message}");
            ExitCode::FAILURE
        }
    }
}
