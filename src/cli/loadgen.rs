//! The load generator behind `iip bench`: connections × channels × pipelining
//! depth of workers calling one path with a fixed payload, for a duration or
//! a request count, with latencies in an HDR histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::conformance::attack::new_histogram;
use serde::Serialize;

use crate::client::{
    BackendConfig, Balancer, BalancerConfig, Channel, Client, ClientConfig, ClientError, Endpoints, Strategy,
};

/// What a worker calls: a channel of its own, or the shared balancer.
#[derive(Clone)]
enum Caller {
    Channel(Channel),
    Balancer(Balancer),
}

impl Caller {
    async fn call(&self, path: Bytes, body: Bytes) -> Result<Bytes, ClientError> {
        match self {
            Caller::Channel(channel) => channel.call(path, body).await,
            Caller::Balancer(balancer) => balancer.call(path, body).await,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The servers: addresses and transport. Connection i goes to server
    /// i mod n, unless `balance` is set.
    pub targets: Vec<crate::client::Endpoint>,
    /// TCP connections (per server with `balance`).
    pub connections: usize,
    /// Call through a [`Balancer`] with this strategy instead of fixed
    /// channels: each server gets `channels` channels, and
    /// `connections × channels × depth` workers call the balancer.
    pub balance: Option<Strategy>,
    /// Channels per connection; 0 uses channel 0 only.
    pub channels: usize,
    /// Requests in flight per channel (pipelining depth).
    pub depth: usize,
    /// Body size in bytes.
    pub payload: usize,
    /// Path to call.
    pub path: String,
    /// Stop after this long.
    pub duration: Duration,
    /// Stop after this many requests, if set.
    pub requests: Option<u64>,
    /// Per-call timeout.
    pub timeout: Duration,
    /// A server process whose CPU time per request to report (Linux).
    pub server_pid: Option<u32>,
}

/// What came of it.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Requests answered correctly.
    pub requests: u64,
    /// Calls that failed (error answer, timeout, closed, wrong body).
    pub errors: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Megabytes (10^6) of payload per second, both directions.
    pub megabytes_per_second: f64,
    /// Latency percentiles in microseconds: p50, p90, p99, p99.9, max.
    pub latency_us: Percentiles,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// CPU time this load generator spent per answered request, µs
    /// (Linux: summed over its threads from `/proc`).
    pub client_cpu_us_per_request: Option<f64>,
    /// CPU time the server process (`--server-pid`) spent per answered
    /// request, µs.
    pub server_cpu_us_per_request: Option<f64>,
}

/// The CPU time of every thread of process `pid` (this process for
/// `None`), from `/proc/PID/task/*/schedstat` (nanoseconds on the CPU);
/// `None` where `/proc` does not tell.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}/task"),
        None => "/proc/self/task".to_string(),
    };
    let mut total = 0u64;
    for task in std::fs::read_dir(dir).ok()?.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()).unwrap_or(0);
    }
    (total > 0).then(|| Duration::from_nanos(total))
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest.
    pub max: u64,
}

/// Runs the plan; `progress` is called with the requests done so far about
/// ten times a second.
pub async fn run(plan: &LoadPlan, progress: impl Fn(u64) + Send + Sync + 'static) -> Result<LoadReport, ClientError> {
    let config = ClientConfig { timeout: plan.timeout, ..ClientConfig::default() };
    let mut callers: Vec<Caller> = Vec::new();
    if let Some(strategy) = plan.balance {
        let backend = BackendConfig { client: config, channels: plan.channels, ..BackendConfig::default() };
        let balancer = Balancer::new(
            Endpoints::Static(plan.targets.clone()),
            BalancerConfig { strategy, backend, ..BalancerConfig::default() },
        );
        // Every server first: the figures should not include connecting.
        for _ in &plan.targets {
            balancer.call(plan.path.clone(), "warm up").await?;
        }
        while balancer.members().iter().any(|m| !m.up) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        callers = vec![Caller::Balancer(balancer); plan.connections.max(1) * plan.channels.max(1)];
    } else {
        for i in 0..plan.connections.max(1) {
            let client = plan.targets[i % plan.targets.len().max(1)].connect(config).await?;
            if plan.channels == 0 {
                callers.push(Caller::Channel(client.channel_zero()));
            }
            for _ in 0..plan.channels {
                callers.push(Caller::Channel(client.open_channel().await?));
            }
        }
    }
    let payload = Bytes::from((0..plan.payload.max(1)).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>());
    let done = Arc::new(AtomicU64::new(0));
    let issued = Arc::new(AtomicU64::new(0));
    let (client_cpu, server_cpu) = (cpu_time(None), plan.server_pid.and_then(|pid| cpu_time(Some(pid))));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let mut workers = Vec::new();
    for caller in &callers {
        for _ in 0..plan.depth.max(1) {
            let (channel, payload, path) = (caller.clone(), payload.clone(), Bytes::from(plan.path.clone()));
            let (done, issued, limit) = (done.clone(), issued.clone(), plan.requests);
            workers.push(tokio::spawn(async move {
                let mut histogram = new_histogram();
                let (mut errors, mut first_error) = (0u64, None);
                while Instant::now() < deadline && limit.is_none_or(|n| issued.fetch_add(1, Ordering::Relaxed) < n) {
                    let sent = Instant::now();
                    let result = channel.call(path.clone(), payload.clone()).await;
                    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                    match result {
                        Ok(body) if body == payload => {
                            let _ = histogram.record(micros.min(60_000_000));
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(body) => {
                            errors += 1;
                            first_error.get_or_insert(format!(
                                "wrong body: {} bytes instead of {}",
                                body.len(),
                                payload.len()
                            ));
                        }
                        Err(err) => {
                            errors += 1;
                            first_error.get_or_insert(err.to_string());
                            // A dead connection ends its worker; a balancer goes on.
                            if matches!(err, ClientError::Closed { .. }) && matches!(channel, Caller::Channel(_)) {
                                break;
                            }
                        }
                    }
                }
                (histogram, errors, first_error)
            }));
        }
    }
    let ticker = {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                progress(done.load(Ordering::Relaxed));
            }
        })
    };
    let mut histogram = new_histogram();
    let (mut errors, mut first_error) = (0u64, None);
    for worker in workers {
        if let Ok((h, e, f)) = worker.await {
            let _ = histogram.add(&h);
            errors += e;
            if first_error.is_none() {
                first_error = f;
            }
        }
    }
    ticker.abort();
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let answered = done.load(Ordering::Relaxed).max(1) as f64;
    let per_request = |before: Option<Duration>, after: Option<Duration>| {
        Some(after?.saturating_sub(before?).as_secs_f64() * 1e6 / answered)
    };
    let client_cpu_us_per_request = per_request(client_cpu, cpu_time(None));
    let server_cpu_us_per_request = per_request(server_cpu, plan.server_pid.and_then(|pid| cpu_time(Some(pid))));
    let requests = done.load(Ordering::Relaxed);
    Ok(LoadReport {
        requests,
        errors,
        seconds,
        requests_per_second: requests as f64 / seconds,
        megabytes_per_second: (requests as f64 * payload.len() as f64 * 2.0) / seconds / 1e6,
        latency_us: Percentiles {
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        },
        first_error,
        client_cpu_us_per_request,
        server_cpu_us_per_request,
    })
}

/// Opens `count` connections to `addr`, makes one `/echo` call on each so
/// the server has fully taken it, holds them for `hold`, then closes them.
/// Returns how many were held.
pub async fn hold_idle(addr: &str, count: usize, hold: Duration) -> Result<usize, ClientError> {
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        let client = Client::connect(addr).await?;
        client.call("/echo", "x").await?;
        clients.push(client);
    }
    eprintln!("holding {} idle connections for {:.1} s", clients.len(), hold.as_secs_f64());
    tokio::time::sleep(hold).await;
    Ok(clients.len())
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.latency_us;
        writeln!(f, "requests   {} ok, {} errors in {:.2} s", self.requests, self.errors, self.seconds)?;
        writeln!(f, "throughput {:.0} req/s, {:.2} MB/s", self.requests_per_second, self.megabytes_per_second)?;
        writeln!(
            f,
            "latency    p50 {} µs  p90 {} µs  p99 {} µs  p99.9 {} µs  max {} µs",
            l.p50, l.p90, l.p99, l.p999, l.max
        )?;
        match (self.client_cpu_us_per_request, self.server_cpu_us_per_request) {
            (Some(client), Some(server)) => {
                writeln!(f, "cpu        {client:.2} µs per request here, {server:.2} µs in the server")?
            }
            (Some(client), None) => writeln!(f, "cpu        {client:.2} µs per request here")?,
            _ => {}
        }
        if let Some(e) = &self.first_error {
            writeln!(f, "first error: {e}")?;
        }
        Ok(())
    }
}
