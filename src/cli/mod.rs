//! The `iip` command (feature `cli`): `serve`, `call`, `bench`, `floor`,
//! `conformance`, `client-conformance`, `attack` and `gateway`. [`main`] parses the
//! arguments and runs one of them.

/// Writes a line to stderr, ignoring a closed stderr: a server whose
/// terminal went away must not die of a message.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod args;
mod cert;
mod conformance;
mod decode;
pub mod floor;
pub mod frame_load;
pub mod loadgen;

use args::{describe_agreed, Cli, ClientTls, Command, DecodeFormat};
use conformance::{
    client_conformance, client_conformance_unattended, conformance, report_style, ConformanceRun, Reports,
};

use std::process::ExitCode;
use std::time::Duration;

use crate::client::{ClientConfig, ClientError, Endpoint};
use crate::server::{Request, Server};
use bytes::Bytes;
use clap::Parser;

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
            tls_key_log,
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
        Command::ClientConformance {
            listen,
            client_cmd,
            json,
            junit,
            timeout_ms,
            color,
            tls_cert,
            tls_key,
            extensions,
        } => {
            let tls = pem_server_config(&tls_cert, &tls_key, None)?;
            let timeout = Duration::from_millis(timeout_ms);
            let style = report_style(&color)?;
            let reports = Reports { style, json, junit };
            match client_cmd {
                Some(command) => client_conformance_unattended(&command, timeout, tls, reports, &extensions.0).await,
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
        Command::Decode { input, format, port, json } => {
            let data = if input.as_os_str() == "-" {
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut data).map(|_| data)
            } else {
                std::fs::read(&input)
            }
            .map_err(|e| format!("{}: {e}", input.display()))?;
            let capture_name = input.extension().is_some_and(|e| e == "pcap" || e == "pcapng");
            let streams = match format.unwrap_or(if capture_name { DecodeFormat::Capture } else { DecodeFormat::Hex }) {
                DecodeFormat::Capture => decode::capture_streams(&data, port)?,
                DecodeFormat::Hex => {
                    let text = String::from_utf8(data).map_err(|_| "the hex input is not text".to_string())?;
                    vec![decode::Stream {
                        label: input.display().to_string(),
                        bytes: decode::parse_hex(&text)?,
                        gap_at: None,
                    }]
                }
                DecodeFormat::Raw => {
                    vec![decode::Stream { label: input.display().to_string(), bytes: data, gap_at: None }]
                }
            };
            if json {
                println!("{}", decode::report_json(&streams));
            } else {
                print!("{}", decode::report(&streams));
            }
            Ok(())
        }
        Command::Cert { names, ips, client, out, days } => {
            let request = cert::CertRequest { dir: out.clone(), names, ips, client, days };
            for path in cert::make(&request)? {
                println!("{}", path.display());
            }
            let dir = out.display();
            say!(
                "iip: serve with --tls-cert {dir}/server.pem --tls-key {dir}/server-key.pem; \
                 clients trust it with --tls --tls-ca {dir}/ca.pem"
            );
            Ok(())
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
