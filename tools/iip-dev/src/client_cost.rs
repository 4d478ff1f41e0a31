//! `iip-dev client-cost`: what a call costs the calling process, for each
//! way of calling, in one run against the same echo servers.
//!
//! Rows, each the same callers for the same time, one after another:
//! - *bare frames*: `iip bench --raw`'s generator (one connection, one
//!   channel per caller, frames written and read with no client library),
//!   the floor a client can reach;
//! - *channels*: one `Client`, a `Channel` per caller;
//! - *backend*: one reconnecting `Backend` with a channel per caller;
//! - *balancer over 1* and *over 2*: a `Balancer` (power of two choices)
//!   whose members are such backends, over one server and over two.
//!
//! CPU times come from `/proc/*/task/*/schedstat`: this process's for the
//! client, the servers' for the server. The servers are child processes of
//! this command, so that their work is not the client's; they end with it.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iip::cli::loadgen::{cpu_time, LoadPlan};
use iip::client::{
    Backend, BackendConfig, Balancer, BalancerConfig, Channel, Client, ClientConfig, ClientError, ClientExtensions,
    Endpoint, Endpoints,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// What `client-cost` runs.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Seconds each row is measured, after a warm-up of a tenth of it.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Callers at once, each calling one call after another.
    #[arg(long, default_value_t = 100)]
    callers: usize,
    /// Bytes of each echo's body.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Rounds of every row, one row after another; the table gives each
    /// row's median, steadier on a shared machine than one round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// One measured row.
struct Row {
    label: &'static str,
    calls: u64,
    errors: u64,
    seconds: f64,
    client_us: f64,
    server_us: f64,
}

/// An echo server in a child process of this command.
struct ServerProcess {
    child: Child,
    addr: String,
    pid: u32,
}

/// Serves `/echo` on `listen` and prints the address it listens on;
/// ends when its standard input closes (its parent ended).
pub async fn echo_server(listen: &str) -> Result<(), String> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let handle =
        iip::server::Server::echo().build().map_err(|e| e.to_string())?.spawn(listener).map_err(|e| e.to_string())?;
    println!("{}", handle.local_addr());
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    handle.shutdown().await.map_err(|e| e.to_string())
}

async fn start_server() -> Result<ServerProcess, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut child = Command::new(exe)
        .args(["echo-server", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start an echo server: {e}"))?;
    let pid = child.id().ok_or("the echo server ended at once")?;
    let stdout = child.stdout.take().ok_or("the echo server has no output")?;
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), BufReader::new(stdout).read_line(&mut line))
        .await
        .map_err(|_| "the echo server said nothing within 10 s")?
        .map_err(|e| format!("reading the echo server's address: {e}"))?;
    let addr = line.trim().to_string();
    if addr.is_empty() {
        return Err("the echo server ended without listening".into());
    }
    Ok(ServerProcess { child, addr, pid })
}

/// How a row's callers call.
#[derive(Clone)]
enum Target {
    Channels(Arc<Vec<Channel>>),
    Backend(Backend),
    Balancer(Balancer),
}

impl Target {
    async fn call(&self, caller: usize, body: Bytes) -> Result<Bytes, ClientError> {
        match self {
            Target::Channels(channels) => channels[caller % channels.len()].call("/echo", body).await,
            Target::Backend(backend) => backend.call("/echo", body).await,
            Target::Balancer(balancer) => balancer.call("/echo", body).await,
        }
    }
}

/// The callers of `target` for `time`: calls answered with the body sent,
/// and calls failed.
async fn load(target: &Target, callers: usize, body: &Bytes, time: Duration) -> (u64, u64) {
    let (calls, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let until = Instant::now() + time;
    let workers: Vec<_> = (0..callers)
        .map(|caller| {
            let (target, body, calls, errors) = (target.clone(), body.clone(), calls.clone(), errors.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    match target.call(caller, body.clone()).await {
                        Ok(answer) if answer == body => calls.fetch_add(1, Ordering::Relaxed),
                        _ => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    (calls.load(Ordering::Relaxed), errors.load(Ordering::Relaxed))
}

/// CPU time of this process and of `servers` together.
fn cpu_now(servers: &[&ServerProcess]) -> (Duration, Duration) {
    let client = cpu_time(None).unwrap_or_default();
    let server = servers.iter().map(|s| cpu_time(Some(s.pid)).unwrap_or_default()).sum();
    (client, server)
}

async fn measure(label: &'static str, target: Target, servers: &[&ServerProcess], options: &Options) -> Row {
    let body = Bytes::from(vec![b'x'; options.payload.max(1)]);
    let time = Duration::from_secs_f64(options.seconds.max(0.1));
    load(&target, options.callers, &body, time / 10).await;
    let (client_before, server_before) = cpu_now(servers);
    let started = Instant::now();
    let (calls, errors) = load(&target, options.callers, &body, time).await;
    let seconds = started.elapsed().as_secs_f64();
    let (client_after, server_after) = cpu_now(servers);
    let per_call =
        |before: Duration, after: Duration| after.saturating_sub(before).as_secs_f64() * 1e6 / calls.max(1) as f64;
    Row {
        label,
        calls,
        errors,
        seconds,
        client_us: per_call(client_before, client_after),
        server_us: per_call(server_before, server_after),
    }
}

async fn bare_frames(server: &ServerProcess, options: &Options) -> Result<Row, String> {
    let plan = |seconds: f64| LoadPlan {
        targets: vec![Endpoint::new(server.addr.clone())],
        connections: 1,
        balance: None,
        channels: options.callers,
        depth: 1,
        payload: options.payload.max(1),
        path: "/echo".into(),
        duration: Duration::from_secs_f64(seconds),
        requests: None,
        timeout: Duration::from_secs(10),
        server_pid: Some(server.pid),
        body: None,
        extensions: ClientExtensions::off(),
        metadata: Default::default(),
    };
    iip::cli::frame_load::run(&plan(options.seconds / 10.0), |_| {}).await.map_err(|e| e.to_string())?;
    let report = iip::cli::frame_load::run(&plan(options.seconds), |_| {}).await.map_err(|e| e.to_string())?;
    Ok(Row {
        label: "bare frames",
        calls: report.requests,
        errors: report.errors,
        seconds: report.seconds,
        client_us: report.client_cpu_us_per_request.unwrap_or(f64::NAN),
        server_us: report.server_cpu_us_per_request.unwrap_or(f64::NAN),
    })
}

/// Measures every row `rounds` times and prints the medians.
pub async fn run(options: Options) -> Result<(), String> {
    if options.callers == 0 || options.rounds == 0 {
        return Err("--callers and --rounds must be at least 1".into());
    }
    let first = start_server().await?;
    let second = start_server().await?;
    let mut rounds = Vec::new();
    for _ in 0..options.rounds {
        let rows = round(&first, &second, &options).await?;
        if let Some(row) = rows.iter().find(|r| r.calls == 0 || r.errors > 0) {
            return Err(format!("{}: {} calls answered, {} failed", row.label, row.calls, row.errors));
        }
        rounds.push(rows);
    }
    print_table(&medians(&rounds), &options);
    drop((first.child, second.child));
    Ok(())
}

/// Each row's median over the rounds, field by field.
fn medians(rounds: &[Vec<Row>]) -> Vec<Row> {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    (0..rounds[0].len())
        .map(|i| {
            let field = |f: fn(&Row) -> f64| median(rounds.iter().map(|rows| f(&rows[i])).collect());
            Row {
                label: rounds[0][i].label,
                calls: field(|r| r.calls as f64 / r.seconds.max(1e-9)) as u64,
                errors: 0,
                seconds: 1.0,
                client_us: field(|r| r.client_us),
                server_us: field(|r| r.server_us),
            }
        })
        .collect()
}

/// One round: every row once.
async fn round(first: &ServerProcess, second: &ServerProcess, options: &Options) -> Result<Vec<Row>, String> {
    let client = {
        let mut cfg = ClientConfig::default();
        cfg.extensions = ClientExtensions::off();
        cfg
    };
    let backend_config = {
        let mut cfg = BackendConfig::default();
        cfg.client = client;
        cfg.channels = options.callers;
        cfg
    };
    let up = Duration::from_secs(10);
    let failed = |e: ClientError| e.to_string();

    let mut rows = vec![bare_frames(first, options).await?];

    let connection = Client::connect_with(first.addr.as_str(), client).await.map_err(failed)?;
    let mut channels = Vec::with_capacity(options.callers);
    for _ in 0..options.callers {
        channels.push(connection.open_channel().await.map_err(failed)?);
    }
    rows.push(measure("channels", Target::Channels(Arc::new(channels)), &[first], options).await);
    drop(connection);

    let backend = Backend::new(Endpoint::new(first.addr.clone()), backend_config);
    backend.ready(up).await.map_err(failed)?;
    rows.push(measure("backend", Target::Backend(backend), &[first], options).await);

    for (label, servers) in [("balancer over 1", vec![first]), ("balancer over 2", vec![first, second])] {
        let endpoints = servers.iter().map(|s| Endpoint::new(s.addr.clone())).collect();
        let balancer = Balancer::new(Endpoints::Static(endpoints), {
            let mut cfg = BalancerConfig::default();
            cfg.backend = backend_config;
            cfg
        });
        let deadline = Instant::now() + up;
        while balancer.members().iter().any(|m| !m.up) {
            if Instant::now() > deadline {
                return Err(format!("{label}: the servers did not come up: {:?}", balancer.members()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        rows.push(measure(label, Target::Balancer(balancer), &servers, options).await);
    }
    Ok(rows)
}

fn print_table(rows: &[Row], options: &Options) {
    let bare = rows.first().map_or(f64::NAN, |r| r.client_us);
    let backend = rows.iter().find(|r| r.label == "backend").map_or(f64::NAN, |r| r.client_us);
    println!(
        "| client ({} callers, {} B echo, median of {} rounds of {} s) | calls/s | client CPU per call | ÷ bare frames | ÷ backend | server CPU per call |",
        options.callers, options.payload, options.rounds, options.seconds
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {:.2} µs | {:.2} | {:.2} | {:.2} µs |",
            row.label,
            row.calls,
            row.client_us,
            row.client_us / bare,
            row.client_us / backend,
            row.server_us,
        );
    }
}
