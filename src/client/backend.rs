//! A server reached through a connection that comes back by itself.
//!
//! A [`Backend`] keeps one connection to one server with a few channels
//! open on it. When the connection dies (the server restarts, the network
//! drops it), calls in flight fail at once with
//! [`ClientError::Closed`], whose `sent` flag says whether the request may
//! have reached the server; a task reconnects with exponential back-off and
//! jitter and reopens the channels, and calls made meanwhile wait for it
//! within their timeout. Nothing is retried silently: retrying is the
//! caller's choice (see [`super::retry`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), iip::client::ClientError> {
//! use iip::client::{Backend, BackendConfig, Endpoint};
//!
//! let backend = Backend::new(Endpoint::new("127.0.0.1:9090"), BackendConfig::default());
//! let answer = backend.call("/echo", "hello").await?; // waits for the first connection
//! # Ok(()) }
//! ```

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Call, Channel, Client, ClientConfig, ClientError, Endpoint};

/// Exponential back-off with jitter between reconnection attempts.
///
/// Start from `default()` and set the fields to change: the struct is
/// `#[non_exhaustive]`, so a field added later breaks no caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// The wait after the first failed attempt. Default 50 ms.
    pub initial: Duration,
    /// The longest wait. Default 5 s.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(50), max: Duration::from_secs(5) }
    }
}

impl Backoff {
    /// The wait after `failures` failed attempts in a row (1 for the first):
    /// `initial × 2^(failures-1)`, at most `max`, then a random point in its
    /// upper half, so that clients of a restarted server do not all come
    /// back at the same instant.
    pub fn delay(&self, failures: u32) -> Duration {
        let doubled = self.initial.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let ceiling = doubled.min(self.max);
        let half = ceiling / 2;
        half + Duration::from_nanos(random_below(half.as_nanos().min(u64::MAX as u128) as u64 + 1))
    }
}

/// A random number below `n` (`n` > 0), from the standard library's
/// per-process random hasher keys and a counter: good enough for jitter and
/// for picking servers, not for secrets.
pub(crate) fn random_below(n: u64) -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish() % n.max(1)
}

/// Settings of a [`Backend`].
///
/// Start from `default()` and set the fields to change: the struct is
/// `#[non_exhaustive]`, so a field added later breaks no caller.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct BackendConfig {
    /// Settings of each connection: frame limits and the default call
    /// timeout (30 s), which also bounds how long a call waits for a
    /// connection.
    pub client: ClientConfig,
    /// Channels opened on each connection; calls go to them in turn, so
    /// that up to this many are handled concurrently by the server
    /// (`[ORDER-3]`); 0 uses channel 0 alone. Default 4.
    pub channels: usize,
    /// How long one connection attempt (with its TLS handshake and channel
    /// grants) may take. Default 5 s.
    pub connect_timeout: Duration,
    /// The wait between failed attempts. Default 50 ms doubling to 5 s.
    pub backoff: Backoff,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            client: ClientConfig::default(),
            channels: 4,
            connect_timeout: Duration::from_secs(5),
            backoff: Backoff::default(),
        }
    }
}

/// Where a backend's connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendStatus {
    /// Connected, channels open.
    Up,
    /// Not connected: connecting for the first time, or reconnecting after
    /// `last_error`.
    Down {
        /// Why the last connection or attempt ended; empty before the first attempt.
        last_error: String,
    },
}

#[derive(Debug)]
pub(crate) struct Live {
    client: Client,
    channels: Vec<Channel>,
    next: AtomicUsize,
}

impl Live {
    fn channel(&self) -> Channel {
        match self.channels.len() {
            0 => self.client.channel_zero(),
            n => self.channels[self.next.fetch_add(1, Ordering::Relaxed) % n].clone(),
        }
    }
}

#[derive(Debug)]
struct Inner {
    endpoint: Endpoint,
    config: BackendConfig,
    live: watch::Sender<Option<Arc<Live>>>,
    last_error: Mutex<String>,
    pending: AtomicUsize,
    connections: AtomicU64,
}

/// One server behind a connection that is re-established when it dies.
/// Cheap to clone; the reconnecting task stops when the last clone is
/// dropped.
#[derive(Debug, Clone)]
pub struct Backend {
    inner: Arc<Inner>,
    _stop: Arc<DropGuard>,
}

impl Backend {
    /// A backend for `endpoint`; it starts connecting at once, on the
    /// current tokio runtime.
    pub fn new(endpoint: Endpoint, config: BackendConfig) -> Backend {
        let (live, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            endpoint,
            config,
            live,
            last_error: Mutex::new(String::new()),
            pending: AtomicUsize::new(0),
            connections: AtomicU64::new(0),
        });
        let stop = CancellationToken::new();
        tokio::spawn(keep_connected(inner.clone(), stop.clone()));
        Backend { inner, _stop: Arc::new(stop.drop_guard()) }
    }

    /// The server's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// Whether a connection is up now.
    pub fn is_up(&self) -> bool {
        self.inner.live.borrow().as_ref().is_some_and(|live| live.client.is_connected())
    }

    /// A receiver that sees every change of the connection (up, down), for
    /// a balancer waiting for any server to come up.
    pub(crate) fn watch_live(&self) -> watch::Receiver<Option<Arc<Live>>> {
        self.inner.live.subscribe()
    }

    /// Where the connection stands.
    pub fn status(&self) -> BackendStatus {
        if self.is_up() {
            BackendStatus::Up
        } else {
            BackendStatus::Down { last_error: self.last_error() }
        }
    }

    /// Calls made through this backend and not yet answered.
    pub fn pending(&self) -> usize {
        self.inner.pending.load(Ordering::Relaxed)
    }

    /// Connections established so far (1 + reconnections).
    pub fn connections(&self) -> u64 {
        self.inner.connections.load(Ordering::Relaxed)
    }

    /// Waits until a connection is up, at most `timeout`.
    pub async fn ready(&self, timeout: Duration) -> Result<(), ClientError> {
        self.live(Instant::now() + timeout).await.map(drop)
    }

    /// Calls `path` with `body`: `call_with(Call::new(path, body))`.
    pub async fn call(&self, path: impl Into<Bytes>, body: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        self.call_with(Call::new(path, body)).await
    }

    /// Makes `call` on the next channel. Waits for a connection if there
    /// is none, all within the call's timeout (default: the client's):
    /// without one in time it fails with [`ClientError::Unavailable`] (not
    /// sent); a connection that dies before the answer fails it with
    /// [`ClientError::Closed`].
    pub async fn call_with(&self, call: Call) -> Result<Bytes, ClientError> {
        let deadline = Instant::now() + call.timeout_or(self.inner.config.client.timeout);
        self.inner.pending.fetch_add(1, Ordering::Relaxed);
        let _pending = PendingGuard(&self.inner.pending);
        let live = self.live(deadline).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        live.channel().call_with(call.with_timeout(left)).await
    }

    async fn live(&self, deadline: Instant) -> Result<Arc<Live>, ClientError> {
        let mut watch = self.inner.live.subscribe();
        let waited = tokio::time::timeout_at(
            deadline,
            watch.wait_for(|live| live.as_ref().is_some_and(|live| live.client.is_connected())),
        )
        .await;
        match waited {
            Ok(Ok(live)) => live.clone().ok_or_else(|| self.unavailable()),
            _ => Err(self.unavailable()),
        }
    }

    fn last_error(&self) -> String {
        self.inner.last_error.lock().map(|e| e.clone()).unwrap_or_default()
    }

    fn unavailable(&self) -> ClientError {
        let last = self.last_error();
        let why = if last.is_empty() { "not connected yet".to_string() } else { last };
        ClientError::Unavailable(format!("{}: {why}", self.inner.endpoint.addr))
    }
}

struct PendingGuard<'a>(&'a AtomicUsize);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The reconnecting task: connect, open channels, publish, wait for the
/// connection to end, back off, again; until `stop`.
async fn keep_connected(inner: Arc<Inner>, stop: CancellationToken) {
    let mut failures = 0u32;
    loop {
        let attempt = tokio::time::timeout(inner.config.connect_timeout, connect(&inner.endpoint, &inner.config));
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            outcome = attempt => outcome,
        };
        let error = match outcome {
            Ok(Ok(live)) => {
                failures = 0;
                inner.connections.fetch_add(1, Ordering::Relaxed);
                let live = Arc::new(live);
                inner.live.send_replace(Some(live.clone()));
                tracing::debug!(addr = %inner.endpoint.addr, "backend connected");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = live.client.retired() => {}
                }
                inner.live.send_replace(None);
                let reason = "the connection closed".to_string();
                tracing::debug!(addr = %inner.endpoint.addr, "backend connection lost");
                set_error(&inner, reason);
                // Reconnect at once after a loss; back off only after failures.
                continue;
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("connecting took longer than {:?}", inner.config.connect_timeout),
        };
        set_error(&inner, error);
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(inner.config.backoff.delay(failures)) => {}
        }
    }
}

fn set_error(inner: &Inner, error: String) {
    if let Ok(mut last) = inner.last_error.lock() {
        *last = error;
    }
}

async fn connect(endpoint: &Endpoint, config: &BackendConfig) -> Result<Live, ClientError> {
    let client = endpoint.connect(config.client).await?;
    let mut channels = Vec::with_capacity(config.channels);
    for _ in 0..config.channels {
        channels.push(client.open_channel().await?);
    }
    Ok(Live { client, channels, next: AtomicUsize::new(0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_with_jitter_in_the_upper_half() {
        let backoff = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(1) };
        for (failures, ceiling_ms) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (40, 1000)] {
            for _ in 0..50 {
                let delay = backoff.delay(failures);
                let ceiling = Duration::from_millis(ceiling_ms);
                assert!(delay >= ceiling / 2 && delay <= ceiling, "{failures}: {delay:?} outside {ceiling:?}");
            }
        }
        let spread: std::collections::HashSet<Duration> = (0..50).map(|_| backoff.delay(3)).collect();
        assert!(spread.len() > 10, "no jitter: {spread:?}");
    }
}
