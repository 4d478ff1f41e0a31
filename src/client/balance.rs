//! Calls spread over several servers: a [`Balancer`] keeps a [`Backend`]
//! (a reconnecting connection) per server, picks one per call by a
//! [`Strategy`], pauses servers that fail a [`HealthCheck`] and brings them
//! back, and follows a DNS name whose addresses change.
//!
//! ```no_run
//! # async fn run() -> Result<(), iip::client::ClientError> {
//! use std::time::Duration;
//! use iip::client::{Balancer, BalancerConfig, Endpoint, Endpoints, HealthCheck, Strategy};
//!
//! let servers = Endpoints::Static(vec![Endpoint::new("10.0.0.1:9090"), Endpoint::new("10.0.0.2:9090")]);
//! let mut config = BalancerConfig::default();
//! config.strategy = Strategy::PowerOfTwoChoices;
//! config.health = HealthCheck::Probe { route: "/echo".into(), interval: Duration::from_secs(1), timeout: Duration::from_millis(500) };
//! let balancer = Balancer::new(servers, config);
//! let answer = balancer.call("/echo", "hello").await?;
//! # Ok(()) }
//! ```
//!
//! A server counts as down while its connection is down; a health check
//! can also pause a server whose connection is up but whose answers fail.
//! When every server is down or paused, calls go to paused servers whose
//! connection is up rather than nowhere, and fail with
//! [`ClientError::Unavailable`] only when no connection is up within the
//! call's timeout.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use tower::discover::{Change, Discover};

use super::backend::random_below;
use super::discovery::{follow, Dns, Membership};
use super::{Backend, BackendConfig, Call, ClientError, Endpoint};
use crate::wire::answer::ErrorCode;

/// How a balancer picks a server for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Each server in turn.
    RoundRobin,
    /// A server at random.
    Random,
    /// The server with the fewest calls not yet answered.
    FewestPending,
    /// The server chosen by a hash of the caller's key (rendezvous
    /// hashing): the same key goes to the same server while it is healthy,
    /// and only the keys of a server that goes away move. Calls without a
    /// key use power of two choices.
    Hash,
    /// Two servers at random, the one with fewer pending calls: what
    /// tower's `balance::p2c` does. The default.
    #[default]
    PowerOfTwoChoices,
}

/// Where the servers are.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Endpoints {
    /// A fixed list.
    Static(Vec<Endpoint>),
    /// Every address a DNS name resolves to, resolved again every
    /// `interval`: servers that appear are added, servers that disappear
    /// are dropped (their calls in flight still finish).
    Dns {
        /// `host:port`.
        name: String,
        /// How often to resolve again. 30 s is usual.
        interval: Duration,
        /// How every server found is reached: its TLS settings (the
        /// certificate name to check, usually the DNS name's host),
        /// credentials and the rest, with the address resolved in place of
        /// its own (which is not used). [`Endpoints::dns`] makes a plain one.
        template: Endpoint,
    },
}

impl Endpoints {
    /// The servers `name` (`host:port`) resolves to, every `interval`,
    /// reached in plain IIP without credentials; set
    /// [`Endpoints::Dns::template`] for TLS or credentials.
    pub fn dns(name: impl Into<String>, interval: Duration) -> Endpoints {
        Endpoints::Dns { name: name.into(), interval, template: Endpoint::new("") }
    }
}

/// How a balancer decides that a server should be paused.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum HealthCheck {
    /// Only a server whose connection is down is skipped. The default.
    #[default]
    ConnectionOnly,
    /// Every `interval`, call `route` on every server with an empty body;
    /// a server that does not answer within `timeout`, or answers 103, 107
    /// or 111, is paused until a probe succeeds. Any other answer, an error
    /// answer included, counts as alive.
    Probe {
        /// The route to call, e.g. `/echo` or a route of the application's.
        route: String,
        /// Time between probes.
        interval: Duration,
        /// How long a probe may take.
        timeout: Duration,
    },
    /// Watch real calls: when at least `min_calls` of the last `window`
    /// calls to a server were made and more than `max_failure_rate` of them
    /// failed in transport (closed, timed out, unreachable) or were shed
    /// (103, 107, 111), the server is paused for `pause`, then tried again.
    FailureRate {
        /// Calls remembered per server.
        window: usize,
        /// Fewest calls in the window before the rate is judged.
        min_calls: usize,
        /// Highest tolerated share of failures, 0.0 to 1.0.
        max_failure_rate: f64,
        /// How long a failing server is paused.
        pause: Duration,
    },
}

/// Settings of a [`Balancer`].
///
/// Start from `default()` and set the fields to change: the struct is
/// `#[non_exhaustive]`, so a field added later breaks no caller.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BalancerConfig {
    /// How a server is picked. Default [`Strategy::PowerOfTwoChoices`].
    pub strategy: Strategy,
    /// When a server is paused. Default [`HealthCheck::ConnectionOnly`].
    pub health: HealthCheck,
    /// Settings of each server's connection (channels, timeouts, back-off).
    pub backend: BackendConfig,
}

/// Whether a member is paused, read on every pick without a lock.
#[derive(Debug, Default)]
struct Health {
    /// Paused by the probe until a probe succeeds.
    probe_failed: AtomicBool,
    /// Paused by the failure rate until this many microseconds after the
    /// member was made; 0 when not paused.
    paused_until: AtomicU64,
    /// Outcomes of the last calls: true for a failure.
    outcomes: Mutex<VecDeque<bool>>,
}

#[derive(Debug)]
pub(super) struct Member {
    backend: Backend,
    health: Health,
    /// The origin of [`Health::paused_until`].
    made: Instant,
}

impl Member {
    pub(super) fn new(endpoint: Endpoint, config: BackendConfig) -> Arc<Member> {
        Arc::new(Member { backend: Backend::new(endpoint, config), health: Health::default(), made: Instant::now() })
    }

    fn micros_since_made(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.made).as_micros()).unwrap_or(u64::MAX)
    }

    fn healthy(&self, now: Instant) -> bool {
        !self.health.probe_failed.load(Ordering::Relaxed)
            && self.health.paused_until.load(Ordering::Relaxed) <= self.micros_since_made(now)
    }

    /// Records one call's outcome for [`HealthCheck::FailureRate`].
    fn record(&self, failed: bool, check: &HealthCheck) {
        let HealthCheck::FailureRate { window, min_calls, max_failure_rate, pause } = check else { return };
        let Ok(mut outcomes) = self.health.outcomes.lock() else { return };
        outcomes.push_back(failed);
        while outcomes.len() > (*window).max(1) {
            outcomes.pop_front();
        }
        let failures = outcomes.iter().filter(|f| **f).count();
        let calls = outcomes.len();
        if calls >= *min_calls && failures as f64 > max_failure_rate * calls as f64 {
            let until = self.micros_since_made(Instant::now() + *pause).max(1);
            self.health.paused_until.store(until, Ordering::Relaxed);
            outcomes.clear();
            tracing::info!(addr = %self.backend.endpoint().addr, "server paused: {failures} of {calls} calls failed");
        }
    }
}

/// Whether an outcome counts against the server's health: a transport
/// failure, or an answer that says the server sheds work.
fn counts_as_failure(result: &Result<Bytes, ClientError>) -> bool {
    match result {
        Ok(_) => false,
        Err(err) => {
            err.is_transport()
                || matches!(
                    err.code(),
                    Some(c) if c == ErrorCode::RequestTimeout.value()
                        || c == ErrorCode::ServerConnectionsLimited.value()
                        || c == ErrorCode::Overloaded.value()
                )
        }
    }
}

#[derive(Debug)]
pub(super) struct Inner {
    /// The servers now, replaced whole by discovery.
    pub(super) members: RwLock<Arc<[Arc<Member>]>>,
    /// Woken when discovery changes the members.
    pub(super) members_changed: tokio::sync::Notify,
    pub(super) config: BalancerConfig,
    turn: AtomicUsize,
}

/// Calls spread over several servers (see the module documentation).
/// Cheap to clone; its tasks stop when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Balancer {
    inner: Arc<Inner>,
    _stop: Arc<DropGuard>,
}

/// One server as a balancer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberStatus {
    /// The server's address.
    pub addr: String,
    /// Whether its connection is up.
    pub up: bool,
    /// Whether a health check has paused it.
    pub paused: bool,
    /// Calls sent to it and not yet answered.
    pub pending: usize,
}

impl Balancer {
    /// A balancer over `endpoints`; it starts connecting to every server at
    /// once, on the current tokio runtime.
    pub fn new(endpoints: Endpoints, config: BalancerConfig) -> Balancer {
        match endpoints {
            Endpoints::Static(list) => {
                let inserts = list.into_iter().enumerate().map(|(i, e)| Ok::<_, Infallible>(Change::Insert(i, e)));
                Balancer::discover(futures::stream::iter(inserts), config)
            }
            Endpoints::Dns { name, interval, template } => {
                Balancer::discover(Dns::new(name, interval, template), config)
            }
        }
    }

    /// A balancer over the servers `source` announces (see
    /// [`super::discovery`]): a `tower::discover::Discover` of
    /// [`Endpoint`]s, such as a stream fed by a service registry. Changes
    /// the source has ready at once are in force when this returns; later
    /// ones are followed by a task on the current tokio runtime, which
    /// stops with the last clone of the balancer.
    pub fn discover<D>(source: D, config: BalancerConfig) -> Balancer
    where
        D: Discover<Service = Endpoint> + Send + 'static,
        D::Key: Send + 'static,
        D::Error: std::fmt::Display,
    {
        let stop = CancellationToken::new();
        let inner = Arc::new(Inner {
            members: RwLock::new(Arc::from(Vec::new())),
            members_changed: tokio::sync::Notify::new(),
            config,
            turn: AtomicUsize::new(0),
        });
        let mut source = Box::pin(source);
        let mut membership = Membership::new();
        let going_on = membership.apply_ready(&inner, &mut source);
        membership.publish(&inner);
        if going_on {
            tokio::spawn(follow(inner.clone(), source, membership, stop.clone()));
        }
        if let HealthCheck::Probe { route, interval, timeout } = inner.config.health.clone() {
            tokio::spawn(probe(inner.clone(), route, interval, timeout, stop.clone()));
        }
        Balancer { inner, _stop: Arc::new(stop.drop_guard()) }
    }

    /// Every server with its state.
    pub fn members(&self) -> Vec<MemberStatus> {
        let now = Instant::now();
        self.snapshot()
            .iter()
            .map(|m| MemberStatus {
                addr: m.backend.endpoint().addr.clone(),
                up: m.backend.is_up(),
                paused: !m.healthy(now),
                pending: m.backend.pending(),
            })
            .collect()
    }

    /// The timeout of a call made without one: the backends' client
    /// timeout (default 30 s).
    pub fn default_timeout(&self) -> Duration {
        self.inner.config.backend.client.timeout
    }

    /// Calls `path` with `body` on a server picked by the strategy:
    /// `call_with(Call::new(path, body))`.
    pub async fn call(&self, path: impl Into<Bytes>, body: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        self.call_with(Call::new(path, body)).await
    }

    /// Makes `call` on a server picked by the strategy, its key
    /// ([`Call::with_key`]) choosing the server under [`Strategy::Hash`]
    /// (ignored by the others), all within its timeout (default: the
    /// backends' client timeout): waiting for a server with a connection,
    /// and the call.
    pub async fn call_with(&self, call: Call) -> Result<Bytes, ClientError> {
        let deadline = Instant::now() + call.timeout_or(self.default_timeout());
        let member = self.pick(call.key().map(|k| &k[..]), deadline).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        let result = member.backend.call_with(call.with_timeout(left)).await;
        member.record(counts_as_failure(&result), &self.inner.config.health);
        result
    }

    fn snapshot(&self) -> Arc<[Arc<Member>]> {
        self.inner.members.read().map(|m| m.clone()).unwrap_or_else(|_| Arc::from(Vec::new()))
    }

    /// A server for the next call: among healthy servers with a connection;
    /// failing that, any with a connection; failing that, waits until a
    /// server comes up or discovery changes the servers (no polling). A
    /// pick that finds a server allocates nothing.
    async fn pick(&self, key: Option<&[u8]>, deadline: Instant) -> Result<Arc<Member>, ClientError> {
        if let Some(member) = self.choose(&self.snapshot(), key) {
            return Ok(member);
        }
        loop {
            // Watch before looking, so that a change between the two wakes us.
            let members_changed = self.inner.members_changed.notified();
            tokio::pin!(members_changed);
            members_changed.as_mut().enable();
            let members = self.snapshot();
            let mut watches: Vec<_> = members.iter().map(|m| m.backend.watch_live()).collect();
            if let Some(member) = self.choose(&members, key) {
                return Ok(member);
            }
            if Instant::now() >= deadline {
                let addrs: Vec<String> = members.iter().map(|m| m.backend.endpoint().addr.clone()).collect();
                let why = if addrs.is_empty() { "no servers known".to_string() } else { addrs.join(", ") };
                return Err(ClientError::Unavailable(format!("no server reachable: {why}")));
            }
            let any_member_changed = async {
                if watches.is_empty() {
                    std::future::pending::<()>().await;
                }
                let changes = watches.iter_mut().map(|w| Box::pin(w.changed()));
                let _ = futures::future::select_all(changes).await;
            };
            tokio::select! {
                _ = &mut members_changed => {}
                _ = any_member_changed => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// The strategy's choice among the candidates of `members`: the healthy
    /// ones with a connection up, or if there are none every one with a
    /// connection up. None when no connection is up (or when one went down
    /// while choosing). Walks the list a few times and allocates nothing.
    fn choose(&self, members: &[Arc<Member>], key: Option<&[u8]>) -> Option<Arc<Member>> {
        let now = Instant::now();
        let (mut up, mut healthy) = (0usize, 0usize);
        for member in members.iter().filter(|m| m.backend.is_up()) {
            up += 1;
            healthy += usize::from(member.healthy(now));
        }
        let only_healthy = healthy > 0;
        let n = if only_healthy { healthy } else { up };
        if n == 0 {
            return None;
        }
        let candidates = || members.iter().filter(move |m| m.backend.is_up() && (!only_healthy || m.healthy(now)));
        let turn = || self.inner.turn.fetch_add(1, Ordering::Relaxed) % n;
        let chosen = match (self.inner.config.strategy, key) {
            _ if n == 1 => candidates().next(),
            (Strategy::RoundRobin, _) => candidates().nth(turn()),
            (Strategy::Random, _) => candidates().nth(random_below(n as u64) as usize),
            // The fewest pending; of equal counts, the first from this turn's start.
            (Strategy::FewestPending, _) => {
                let start = turn();
                candidates().enumerate().min_by_key(|(i, m)| (m.backend.pending(), (i + n - start) % n)).map(|(_, m)| m)
            }
            // The highest score wins; of equal scores, the member listed first.
            (Strategy::Hash, Some(key)) => candidates()
                .enumerate()
                .max_by_key(|(i, m)| (rendezvous_score(key, &m.backend.endpoint().addr), Reverse(*i)))
                .map(|(_, m)| m),
            (Strategy::Hash, None) | (Strategy::PowerOfTwoChoices, _) => {
                let a = random_below(n as u64) as usize;
                let b = (a + 1 + random_below(n as u64 - 1) as usize) % n;
                match (candidates().nth(a), candidates().nth(b)) {
                    (Some(first), Some(second)) if second.backend.pending() < first.backend.pending() => Some(second),
                    (first, second) => first.or(second),
                }
            }
        };
        chosen.cloned()
    }
}

/// The score of `member` (its address as written in the balancer's
/// configuration or as discovery gave it) for `key` under
/// [`Strategy::Hash`]: 64-bit FNV-1a over the key's bytes, one `ff` byte
/// (which no address contains) and the address's bytes, then the
/// splitmix64 finalizer. The member with the highest score serves the key.
/// The function is fixed, so that clients of any build and any language
/// agree (the book's *Load balancing* chapter gives test vectors).
pub fn rendezvous_score(key: &[u8], member: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let fnv = key
        .iter()
        .chain(&[0xff])
        .chain(member.as_bytes())
        .fold(OFFSET, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME));
    let mut x = fnv;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Probes every server every `interval` (see [`HealthCheck::Probe`]).
async fn probe(inner: Arc<Inner>, route: String, interval: Duration, timeout: Duration, stop: CancellationToken) {
    let route = Bytes::from(route);
    loop {
        let members = inner.members.read().map(|m| m.clone()).unwrap_or_else(|_| Arc::from(Vec::new()));
        let probes = members.iter().map(|member| {
            let route = route.clone();
            async move {
                let result =
                    member.backend.call_with(crate::client::Call::new(route, Bytes::new()).with_timeout(timeout)).await;
                let alive = !counts_as_failure(&result);
                if member.health.probe_failed.swap(!alive, Ordering::Relaxed) == alive {
                    tracing::info!(addr = %member.backend.endpoint().addr, alive, "probe changed the server's state");
                }
            }
        });
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = futures::future::join_all(probes) => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
