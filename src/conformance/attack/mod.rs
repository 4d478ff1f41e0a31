//! The attack suite behind `iip attack`: hostile clients, each bounded in
//! count and time, run one at a time against any IIP server while a
//! well-behaved client keeps calling `/echo` on a connection of its own.
//! For every attack it reports whether the server survived (a new client is
//! served afterwards), how the good client fared (calls served and failed,
//! p99 latency, how long it was locked out) and what the attacker managed.
//!
//! Every loop here stops by itself: at the attack's deadline, or earlier
//! when the server closes the attacking connections.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

mod good;
mod guess;
mod held;
pub mod hostile;
mod http;
mod tree_memory;

use crate::client::Endpoint;
use crate::proto::extensions::Credentials;
use crate::wire::encode::encode_frame;
use crate::wire::frame::{Frame, FrameLimits};
use crate::wire::status::Status;
use good::good_client;
#[cfg(feature = "cli")]
pub(crate) use good::new_histogram;
pub use good::served_within;

/// The attacks, in the order `iip attack` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AttackKind {
    /// Connections pipelining large `/echo` requests and never reading.
    NeverRead,
    /// Channels each holding a chunked request open, never finished.
    OpenChunked,
    /// Channels each starting a chunked request with one maximal frame.
    BigFirstFrames,
    /// Connections that send nothing, past the connection limit.
    IdleFlood,
    /// Connections sending one byte of a frame per second.
    SlowLoris,
    /// Pipelined `/sys/connection_statis` on many channels, never reading.
    StatsAmplify,
    /// Connections sending random bytes.
    Garbage,
    /// Connections agreeing zstd and pipelining small bodies that inflate
    /// to `bomb_size`, never reading.
    CompressionBomb,
    /// Connections sending one huge hello.
    BigHello,
    /// Connections opening as many channels as they are given and holding them.
    ChannelHoard,
    /// Connections pipelining requests to a route that waits, never reading.
    ParkedRequests,
    /// Connections agreeing `metadata` and pipelining requests that carry
    /// the largest block the server takes and a deadline of a minute to a
    /// route that waits, never reading.
    MetadataParked,
    /// Hellos with wrong bearer tokens, as fast as the server answers, from
    /// another loopback address than the good client's when the server is
    /// on loopback.
    AuthGuessing,
    /// HTTP, against a gateway: the upstream's system paths, which must
    /// all be answered 404.
    HttpSysProbe,
    /// HTTP: requests to a route that waits, held open.
    HttpSlowRequests,
    /// HTTP: connections sending all of a large body but its last byte.
    HttpStalledBodies,
    /// HTTP: connections sending a request head one byte a turn.
    HttpSlowHeads,
    /// HTTP: connections that send nothing, past the connection limit.
    HttpIdleFlood,
}

impl AttackKind {
    /// Every attack.
    pub const ALL: [AttackKind; 13] = [
        AttackKind::NeverRead,
        AttackKind::OpenChunked,
        AttackKind::BigFirstFrames,
        AttackKind::IdleFlood,
        AttackKind::SlowLoris,
        AttackKind::StatsAmplify,
        AttackKind::Garbage,
        AttackKind::CompressionBomb,
        AttackKind::BigHello,
        AttackKind::ChannelHoard,
        AttackKind::ParkedRequests,
        AttackKind::MetadataParked,
        AttackKind::AuthGuessing,
    ];

    /// The attack's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            AttackKind::NeverRead => "never-read",
            AttackKind::OpenChunked => "open-chunked",
            AttackKind::BigFirstFrames => "big-first-frames",
            AttackKind::IdleFlood => "idle-flood",
            AttackKind::SlowLoris => "slow-loris",
            AttackKind::StatsAmplify => "stats-amplify",
            AttackKind::Garbage => "garbage",
            AttackKind::CompressionBomb => "compression-bomb",
            AttackKind::BigHello => "big-hello",
            AttackKind::ChannelHoard => "channel-hoard",
            AttackKind::ParkedRequests => "parked-requests",
            AttackKind::MetadataParked => "metadata-parked",
            AttackKind::AuthGuessing => "auth-guessing",
            AttackKind::HttpSysProbe => "http-sys-probe",
            AttackKind::HttpSlowRequests => "http-slow-requests",
            AttackKind::HttpStalledBodies => "http-stalled-bodies",
            AttackKind::HttpSlowHeads => "http-slow-heads",
            AttackKind::HttpIdleFlood => "http-idle-flood",
        }
    }

    /// The attacks on an HTTP gateway, in the order `iip attack --http` runs them.
    pub const HTTP: [AttackKind; 5] = [
        AttackKind::HttpSysProbe,
        AttackKind::HttpSlowRequests,
        AttackKind::HttpStalledBodies,
        AttackKind::HttpSlowHeads,
        AttackKind::HttpIdleFlood,
    ];

    /// Whether the attack speaks HTTP to a gateway rather than IIP.
    pub fn over_http(self) -> bool {
        AttackKind::HTTP.contains(&self)
    }
}

/// How big each attack is. The defaults are the sizes of the attacks that
/// once took the reference server down.
///
/// Start from `default()` and set the fields to change: the struct is
/// `#[non_exhaustive]`, so a field added later breaks no caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AttackScale {
    /// never-read: connections (default 3).
    pub never_read_connections: usize,
    /// never-read: request body size (default 1 MiB).
    pub never_read_body: usize,
    /// open-chunked: channels (default 30).
    pub chunked_channels: usize,
    /// open-chunked: frames after the first on each channel (default 60).
    pub chunked_frames: usize,
    /// open-chunked: data bytes per frame (default 1 MiB).
    pub chunk_size: usize,
    /// big-first-frames: channels (default 40).
    pub big_channels: usize,
    /// big-first-frames: data bytes of each first frame (default 16 MiB).
    pub big_frame: usize,
    /// idle-flood: connections (default 10,100).
    pub idle_connections: usize,
    /// slow-loris: connections (default 1,000).
    pub loris_connections: usize,
    /// slow-loris: pause between two bytes (default 1 s).
    pub loris_interval: Duration,
    /// stats-amplify: connections (default 4).
    pub stats_connections: usize,
    /// stats-amplify: channels opened on each (default 1,022, with channel 0
    /// the reference server's 1,023-channel limit... less one).
    pub stats_channels: usize,
    /// garbage: streams (default 10,000), up to 16 at a time.
    pub garbage_streams: usize,
    /// compression-bomb: connections (default 49).
    pub bomb_connections: usize,
    /// compression-bomb: what each body inflates to (default 64 MiB).
    pub bomb_size: usize,
    /// big-hello: connections (default 4).
    pub hello_connections: usize,
    /// big-hello: bytes of each hello (default 60 MB).
    pub hello_size: usize,
    /// channel-hoard: connections (default 2,000).
    pub hoard_connections: usize,
    /// channel-hoard: channels asked for on each (default 1,023).
    pub hoard_channels: usize,
    /// parked-requests: connections (default 2,000).
    pub parked_connections: usize,
    /// parked-requests: requests pipelined on each (default 1,024).
    pub parked_requests: usize,
    /// parked-requests: the route that waits (default `/delay?ms=60000`,
    /// which `iip serve --demo-routes` serves; a server without it
    /// answers 102 at once).
    pub parked_path: &'static str,
    /// metadata-parked: connections (default 2,000), each pipelining
    /// `parked_requests` requests to `parked_path`.
    pub metadata_connections: usize,
    /// metadata-parked: the deadline each request carries, in
    /// milliseconds (default 60,000). Until it passes, or the handler
    /// ends, a connection the server stopped reading keeps what it holds:
    /// the server cannot see the peer leave behind bytes it does not read.
    pub metadata_deadline_ms: u32,
    /// auth-guessing: connections guessing at once (default 64).
    pub guess_connections: usize,
    /// http-slow-requests: requests held open (default 40).
    pub http_slow_requests: usize,
    /// http-slow-requests: the upstream route that waits (default
    /// `/delay?ms=60000`, which `iip serve --demo-routes` serves).
    pub http_slow_path: &'static str,
    /// http-stalled-bodies: connections (default 49).
    pub http_bodies: usize,
    /// http-stalled-bodies: each body's declared size (default 60 MiB).
    pub http_body_size: usize,
}

impl Default for AttackScale {
    fn default() -> Self {
        AttackScale {
            never_read_connections: 3,
            never_read_body: 1 << 20,
            chunked_channels: 30,
            chunked_frames: 60,
            chunk_size: 1 << 20,
            big_channels: 40,
            big_frame: 16 << 20,
            idle_connections: 10_100,
            loris_connections: 1_000,
            loris_interval: Duration::from_secs(1),
            stats_connections: 4,
            stats_channels: 1_022,
            garbage_streams: 10_000,
            bomb_connections: 49,
            bomb_size: 64 << 20,
            hello_connections: 4,
            hello_size: 60_000_000,
            hoard_connections: 2_000,
            hoard_channels: 1_023,
            parked_connections: 2_000,
            parked_requests: 1_024,
            parked_path: "/delay?ms=60000",
            metadata_connections: 2_000,
            metadata_deadline_ms: 60_000,
            guess_connections: 64,
            http_slow_requests: 40,
            http_slow_path: "/delay?ms=60000",
            http_bodies: 49,
            http_body_size: 60 << 20,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct AttackPlan {
    /// The server: `host:port`. It must serve `/echo`.
    pub addr: String,
    /// Which attacks, in order.
    pub attacks: Vec<AttackKind>,
    /// How long each attack lasts at most (default 10 s).
    pub duration: Duration,
    /// How long after an attack the server has to serve a new client
    /// before it counts as down (default 10 s).
    pub recovery: Duration,
    /// Sizes.
    pub scale: AttackScale,
    /// What the good client offers in its hello, for a server that
    /// requires authentication (default none).
    pub credentials: Option<Credentials>,
}

impl AttackPlan {
    /// Every attack at its default size against `addr`, 10 s each.
    pub fn new(addr: impl Into<String>) -> AttackPlan {
        AttackPlan {
            addr: addr.into(),
            attacks: AttackKind::ALL.to_vec(),
            duration: Duration::from_secs(10),
            recovery: Duration::from_secs(10),
            scale: AttackScale::default(),
            credentials: None,
        }
    }

    /// Where the good client and the check after each attack connect.
    fn endpoint(&self) -> Endpoint {
        let endpoint = Endpoint::new(self.addr.clone());
        match &self.credentials {
            Some(credentials) => endpoint.with_credentials(credentials.clone()),
            None => endpoint,
        }
    }
}

/// How the well-behaved client fared during one attack.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GoodClient {
    /// Calls answered with the body sent.
    pub served: u64,
    /// Calls that failed, connections refused included.
    pub failed: u64,
    /// 99th percentile latency of served calls, microseconds.
    pub p99_us: Option<u64>,
    /// Time from the attack's start to the good client's first answer,
    /// milliseconds; `None` if it was never served.
    pub first_answer_ms: Option<u64>,
}

/// The outcome of one attack.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AttackResult {
    /// Which attack.
    pub attack: AttackKind,
    /// A new client was served after the attack ended.
    pub survived: bool,
    /// The good client during the attack.
    pub good: GoodClient,
    /// Attacking connections the server closed before the attack ended.
    pub closed_by_server: usize,
    /// Attacking connections opened.
    pub connections: usize,
    /// Bytes the attacker got the server to take.
    pub bytes_sent: u64,
    /// How long the attack ran, milliseconds.
    pub ran_ms: u64,
    /// auth-guessing: wrong credentials the server checked and refused
    /// (answered 112); `None` for the other attacks.
    pub guesses: Option<u64>,
    /// http-sys-probe: system paths answered with anything but 404;
    /// `None` for the other attacks.
    pub leaks: Option<u64>,
}

/// auth-guessing: the most refusals a paced server gives in an attack of
/// `ran_ms`: ten free, then ten a second.
fn guesses_allowed(ran_ms: u64) -> u64 {
    10 + ran_ms.div_ceil(100)
}

impl AttackResult {
    /// Whether the server passed: it survived, and the good client was
    /// served with no call failing, except in the idle flood, whose point
    /// is to fill the connection limit (that lockout is bounded by the idle
    /// timeout, [RES-5]). Guessed credentials must be paced: at most ten
    /// refusals and then ten a second.
    pub fn passed(&self) -> bool {
        let lockout_is_the_attack = matches!(self.attack, AttackKind::IdleFlood | AttackKind::HttpIdleFlood);
        let paced = self.guesses.is_none_or(|n| n <= guesses_allowed(self.ran_ms));
        let sealed = self.leaks.is_none_or(|n| n == 0);
        self.survived && self.good.served > 0 && (self.good.failed == 0 || lockout_is_the_attack) && paced && sealed
    }

    fn verdict(&self) -> &'static str {
        match () {
            _ if self.passed() => "ok",
            _ if !self.survived => "DOWN",
            _ if self.good.served == 0 => "STARVED",
            _ if self.guesses.is_some_and(|n| n > guesses_allowed(self.ran_ms)) => "UNPACED",
            _ if self.leaks.is_some_and(|n| n > 0) => "LEAKED",
            _ => "FAILED",
        }
    }
}

impl fmt::Display for AttackResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.good;
        write!(
            f,
            "{:<17} {:<8} good client {} served, {} failed, p99 {}, first answer {}; attacker: {} connection(s), {} closed by the server, {:.1} MiB sent, {:.1} s",
            self.attack.name(),
            self.verdict(),
            g.served,
            g.failed,
            g.p99_us.map_or("-".into(), |us| format!("{us} µs")),
            g.first_answer_ms.map_or("never".into(), |ms| format!("{ms} ms")),
            self.connections,
            self.closed_by_server,
            self.bytes_sent as f64 / (1u64 << 20) as f64,
            self.ran_ms as f64 / 1000.0,
        )?;
        if let Some(n) = self.guesses {
            write!(f, ", {n} guesses refused")?;
        }
        match self.leaks {
            Some(n) => write!(f, ", {n} system paths answered other than 404"),
            None => Ok(()),
        }
    }
}

/// Runs the plan, one attack after another; `progress` sees each result as
/// it comes.
pub async fn run(plan: &AttackPlan, mut progress: impl FnMut(&AttackResult)) -> Vec<AttackResult> {
    let mut results = Vec::new();
    for &attack in &plan.attacks {
        let result = run_one(plan, attack).await;
        progress(&result);
        results.push(result);
    }
    results
}

/// What an attack's connections did.
#[derive(Debug, Default)]
struct Tally {
    connections: AtomicUsize,
    closed_by_server: AtomicUsize,
    bytes: AtomicU64,
    /// Requests of the attacker's that the server answered (auth-guessing).
    answered: AtomicU64,
    /// System paths a gateway answered other than 404 (http-sys-probe).
    leaked: AtomicU64,
}

async fn run_one(plan: &AttackPlan, attack: AttackKind) -> AttackResult {
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = started + plan.duration;
    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = JoinSet::new();
    // The good client calls from the start, so an attack whose setup takes
    // long is judged while it sets up too.
    let good = match attack.over_http() {
        true => tokio::spawn(http::good_client(plan.addr.clone(), started, stop.clone())),
        false => tokio::spawn(good_client(plan.endpoint(), started, stop.clone())),
    };
    setup(&mut attackers, plan, attack, deadline, &tally).await;
    // The attack window lasts its whole duration even when the server has
    // already closed every attacker: the good client is judged over it.
    tokio::time::sleep_until(deadline.into()).await;
    attackers.shutdown().await;
    stop.store(true, Ordering::Relaxed);
    let good = good.await.unwrap_or_default();
    let ran_ms = started.elapsed().as_millis() as u64;
    let survived = match attack.over_http() {
        true => http::served_within(&plan.addr, plan.recovery).await,
        false => served_within(&plan.endpoint(), plan.recovery).await,
    };
    AttackResult {
        attack,
        survived,
        good,
        closed_by_server: tally.closed_by_server.load(Ordering::Relaxed),
        connections: tally.connections.load(Ordering::Relaxed),
        bytes_sent: tally.bytes.load(Ordering::Relaxed),
        ran_ms,
        guesses: (attack == AttackKind::AuthGuessing).then(|| tally.answered.load(Ordering::Relaxed)),
        leaks: (attack == AttackKind::HttpSysProbe).then(|| http::leaked(&tally)),
    }
}

/// Where an attack's setup starts its tasks (`set`), against what
/// (`plan`), until when (`deadline`), counting into `tally`.
struct Launch<'a> {
    set: &'a mut JoinSet<()>,
    plan: &'a AttackPlan,
    deadline: Instant,
    tally: &'a Arc<Tally>,
}

/// Opens the attack's connections (bounded by `deadline`) and starts its
/// tasks in `set`.
async fn setup(set: &mut JoinSet<()>, plan: &AttackPlan, attack: AttackKind, deadline: Instant, tally: &Arc<Tally>) {
    let s = plan.scale;
    let addr = plan.addr.clone();
    match attack {
        AttackKind::NeverRead => {
            let frame =
                encoded(&[Frame::new(Status::RequestWhole, &b"/echo"[..], 0, vec![b'x'; s.never_read_body.max(1)])]);
            for _ in 0..s.never_read_connections {
                let Some(stream) = connect(&addr, deadline, tally).await else { break };
                let (frame, tally) = (frame.clone(), tally.clone());
                set.spawn(
                    async move { push_until(stream, None, move |_| Some(frame.clone()), deadline, &tally).await },
                );
            }
        }
        AttackKind::OpenChunked => {
            let Some(mut stream) = connect(&addr, deadline, tally).await else { return };
            let Some(channels) = open_channels(&mut stream, s.chunked_channels, deadline).await else { return };
            let data = Bytes::from(vec![b'c'; s.chunk_size.max(1)]);
            let mut rounds = 0..=s.chunked_frames;
            let next = move |_: usize| {
                let round = rounds.next()?;
                let status = if round == 0 { Status::RequestFirst } else { Status::RequestContinue };
                let frames: Vec<Frame> =
                    channels.iter().map(|&c| Frame::new(status, &b"/echo"[..], c, data.clone())).collect();
                Some(encoded(&frames))
            };
            let tally = tally.clone();
            set.spawn(async move { push_until(stream, None, next, deadline, &tally).await });
        }
        AttackKind::BigFirstFrames => {
            let Some(mut stream) = connect(&addr, deadline, tally).await else { return };
            let Some(channels) = open_channels(&mut stream, s.big_channels, deadline).await else { return };
            let data = Bytes::from(vec![b'b'; s.big_frame.max(1)]);
            let mut channels = channels.into_iter();
            let next = move |_: usize| {
                let channel = channels.next()?;
                Some(encoded(&[Frame::new(Status::RequestFirst, &b"/echo"[..], channel, data.clone())]))
            };
            let tally = tally.clone();
            set.spawn(async move { push_until(stream, None, next, deadline, &tally).await });
        }
        AttackKind::IdleFlood => {
            for _ in 0..s.idle_connections {
                let Some(stream) = connect(&addr, deadline, tally).await else { break };
                let tally = tally.clone();
                set.spawn(async move { hold_until(stream, deadline, &tally).await });
            }
        }
        AttackKind::SlowLoris => {
            let frame = encoded(&[Frame::new(Status::RequestWhole, &b"/echo"[..], 0, &b"slow"[..])]);
            for _ in 0..s.loris_connections {
                let Some(stream) = connect(&addr, deadline, tally).await else { break };
                let (frame, tally, pause) = (frame.clone(), tally.clone(), s.loris_interval);
                // One byte a turn, never the last one.
                let next = move |turn: usize| (turn + 1 < frame.len()).then(|| frame.slice(turn..turn + 1));
                set.spawn(async move { push_until(stream, Some(pause), next, deadline, &tally).await });
            }
        }
        AttackKind::StatsAmplify => {
            for _ in 0..s.stats_connections {
                let Some(mut stream) = connect(&addr, deadline, tally).await else { break };
                let Some(channels) = open_channels(&mut stream, s.stats_channels, deadline).await else { break };
                let requests: Vec<Frame> = channels
                    .into_iter()
                    .chain([0])
                    .map(|c| Frame::new(Status::RequestWhole, &b"/sys/connection_statis"[..], c, &b"{}"[..]))
                    .collect();
                let batch = encoded(&requests);
                let tally = tally.clone();
                set.spawn(
                    async move { push_until(stream, None, move |_| Some(batch.clone()), deadline, &tally).await },
                );
            }
        }
        AttackKind::Garbage => {
            let streams = Arc::new(AtomicUsize::new(s.garbage_streams));
            for worker in 0..16u64 {
                let (addr, streams, tally) = (addr.clone(), streams.clone(), tally.clone());
                set.spawn(async move {
                    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (worker + 1));
                    while streams.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
                        let Some(stream) = connect(&addr, deadline, &tally).await else { return };
                        let len = 1 + (rng.next() % 4096) as usize;
                        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                        garbage_once(stream, Bytes::from(bytes), deadline, &tally).await;
                    }
                });
            }
        }
        AttackKind::CompressionBomb
        | AttackKind::BigHello
        | AttackKind::ChannelHoard
        | AttackKind::ParkedRequests
        | AttackKind::MetadataParked => held::setup(Launch { set, plan, deadline, tally }, attack).await,
        AttackKind::AuthGuessing => guess::setup(set, plan, deadline, tally),
        AttackKind::HttpSysProbe
        | AttackKind::HttpSlowRequests
        | AttackKind::HttpStalledBodies
        | AttackKind::HttpSlowHeads
        | AttackKind::HttpIdleFlood => http::setup(Launch { set, plan, deadline, tally }, attack).await,
    }
}

/// A small deterministic random source for garbage streams.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn encoded(frames: &[Frame]) -> Bytes {
    let mut out = BytesMut::new();
    let limits = FrameLimits { max_path: usize::MAX, max_data: u32::MAX };
    for frame in frames {
        // The attacker's own frames: sizes are its choice, not a peer's.
        let _ = encode_frame(frame, &limits, &mut out);
    }
    out.freeze()
}

async fn connect(addr: &str, deadline: Instant, tally: &Tally) -> Option<TcpStream> {
    let left = deadline.saturating_duration_since(Instant::now());
    let stream = tokio::time::timeout(left.min(Duration::from_secs(2)), TcpStream::connect(addr)).await.ok()?.ok()?;
    tally.connections.fetch_add(1, Ordering::Relaxed);
    Some(stream)
}

/// Opens `count` channels on a fresh connection, reading the grants; the
/// ids granted (fewer if the server refuses some).
async fn open_channels(stream: &mut TcpStream, count: usize, deadline: Instant) -> Option<Vec<u32>> {
    let asks: Vec<Frame> =
        (0..count).map(|_| Frame::new(Status::RequestWhole, &b"/sys/new_channel"[..], 0, &b"{}"[..])).collect();
    let work = async {
        stream.write_all(&encoded(&asks)).await.ok()?;
        let mut reader = crate::io::reader::FrameReader::new(&mut *stream, FrameLimits::default());
        let mut ids = Vec::new();
        for _ in 0..count {
            let frame = reader.next().await?.ok()?;
            let grant = serde_json::from_slice::<serde_json::Value>(&frame.data).ok();
            if let Some(id) = grant.and_then(|g| g.get("channel_id")?.as_u64()).and_then(|id| u32::try_from(id).ok()) {
                ids.push(id);
            }
        }
        Some(ids)
    };
    tokio::time::timeout_at(deadline.into(), work).await.ok().flatten()
}

/// Writes what `next` gives (turn by turn, pausing `pause` between turns)
/// until it gives nothing, the deadline passes or the server closes the
/// connection. With `pause` set (a slow sender) it reads and discards what
/// the server sends to notice its close; otherwise it never reads an answer
/// and notices a close by a failed write.
async fn push_until(
    stream: TcpStream,
    pause: Option<Duration>,
    mut next: impl FnMut(usize) -> Option<Bytes>,
    deadline: Instant,
    tally: &Tally,
) {
    let (mut read, mut write) = stream.into_split();
    let closed = async {
        if pause.is_none() {
            return std::future::pending::<()>().await;
        }
        let mut sink = [0u8; 4096];
        loop {
            match read.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let push = async {
        let mut turn = 0;
        while let Some(bytes) = next(turn) {
            if write.write_all(&bytes).await.is_err() {
                return true;
            }
            tally.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            turn += 1;
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
        }
        // Nothing more to send: wait for the deadline or the close.
        std::future::pending::<bool>().await
    };
    let closed_by_server = tokio::select! {
        _ = closed => true,
        by_server = push => by_server,
        _ = tokio::time::sleep_until(deadline.into()) => false,
    };
    if closed_by_server {
        tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads and discards what the server sends until it closes the
/// connection (counted in `tally`) or `until` passes.
async fn count_close_before<R: tokio::io::AsyncRead + Unpin>(read: &mut R, until: Instant, tally: &Tally) {
    let mut buf = [0u8; 4096];
    let closed = async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    if tokio::time::timeout_at(until.into(), closed).await.is_ok() {
        tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
    }
}

/// Holds a silent connection until the deadline or the server closes it.
async fn hold_until(mut stream: TcpStream, deadline: Instant, tally: &Tally) {
    count_close_before(&mut stream, deadline, tally).await;
}

/// Sends one garbage stream and waits (up to 2 s) for the server to close.
async fn garbage_once(mut stream: TcpStream, bytes: Bytes, deadline: Instant, tally: &Tally) {
    if stream.write_all(&bytes).await.is_ok() {
        tally.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
    count_close_before(&mut stream, deadline.min(Instant::now() + Duration::from_secs(2)), tally).await;
}
