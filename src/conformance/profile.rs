//! The conformance profile: what the server under test declares beyond
//! `/echo`, which cases it can run, the steps generated from its declared
//! limits, and which Appendix A entries excuse its failures.

use crate::conformance::vector::{to_hex, Blob};
use crate::wire::answer::{ErrorAnswer, ErrorCode};

use super::auth_steps;
use super::budget_steps::{
    self, MAX_DECLARED_BUDGET, MAX_DECLARED_IN_FLIGHT, MAX_DECLARED_SERVER_BUDGET, MIN_DECLARED_BUDGET,
};
use super::session::{Case, CloseExpect, ExpectFrame, Generator, Requires, Step};
use super::timeout_steps;
use crate::conformance::vector::FrameSpec;
use crate::proto::extensions::Credentials;

/// The implementations whose known deviations (Appendix A) a profile can
/// declare with `peer=NAME`.
pub const KNOWN_PEERS: &[&str] = &["go-iip"];

/// Which Appendix A entries document each known peer, by id prefix: a
/// declared peer is excused only by its own entries.
const PEER_ENTRIES: &[(&str, &str)] = &[("go-iip", "COMPAT-")];

/// What the server under test declares beyond `/echo` (the conformance
/// profile, spec chapter 12).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    /// Its channel limit, if it declares one.
    pub max_channels: Option<u32>,
    /// Its request-size limit, if it declares one.
    pub max_message: Option<usize>,
    /// Its connection limit, if it declares one.
    pub max_connections: Option<u32>,
    /// Whether it offers `/fail`.
    pub fail_route: bool,
    /// Whether it offers `/fail_code` (fails with the application code its
    /// body names, [`crate::conformance::fail_code_handler`]).
    pub fail_code_route: bool,
    /// The implementation it is, if it declares one of [`KNOWN_PEERS`]:
    /// failures of cases its Appendix A entries excuse become deviations.
    pub peer: Option<String>,
    /// The extensions of chapter 14 it declares (see [`EXTENSION_ITEMS`]).
    pub extensions: std::collections::BTreeSet<String>,
    /// Its idle timeout in milliseconds (`[RES-5]`), if it declares one.
    pub idle_timeout_ms: Option<u64>,
    /// Its frame read timeout in milliseconds (`[RES-6]`), if it declares one.
    pub frame_timeout_ms: Option<u64>,
    /// The credentials its authenticator accepts (`auth=SCHEME:CREDENTIALS`,
    /// `[EXT-8]`), if it declares an authenticator; a client that offers
    /// none is still served.
    pub auth: Option<Credentials>,
    /// Where the same server listens requiring authentication with those
    /// credentials (`auth-required=HOST:PORT`, `[EXT-9]`), if it declares it.
    pub auth_required: Option<String>,
    /// How it paces failed authentications from one source (`[RES-10]`),
    /// if it declares it: once K checks have failed within N ms, the next
    /// is made no sooner than N ms after the first of them (`auth-pace=K/N`).
    pub auth_pace: Option<(u32, u64)>,
    /// That listener's hello timeout in milliseconds (`[RES-10]`), if it
    /// declares one.
    pub hello_timeout_ms: Option<u64>,
    /// Its budget of bytes held per connection (`[RES-1]`), if it declares one.
    pub connection_budget: Option<usize>,
    /// Its server-wide budget of bytes held (`[RES-4]`), if it declares one.
    pub server_budget: Option<usize>,
    /// How many handlers of one connection it runs at once before it
    /// stops reading (`[RES-3]`, `[EXT-10]`'s `max_in_flight`), if it
    /// declares it.
    pub max_in_flight: Option<usize>,
    /// Where a server of this profile listens whose `/shutdown` route
    /// begins its graceful shutdown, and which listens there again once it
    /// has exited (`shutdown=HOST:PORT`, `[CLOSE-3]`), if it declares one.
    pub shutdown: Option<String>,
}

/// The longest timeout a profile may declare: a case waits it out.
pub const MAX_DECLARED_TIMEOUT_MS: u64 = 60_000;

/// The items a profile may declare (chapter 12's table), by name.
pub const PROFILE_ITEMS: &[&str] = &[
    "max-channels",
    "max-message",
    "max-connections",
    "fail-route",
    "fail-code-route",
    "peer",
    "extensions",
    "idle-timeout-ms",
    "frame-timeout-ms",
    "auth",
    "auth-required",
    "auth-pace",
    "hello-timeout-ms",
    "connection-budget",
    "server-budget",
    "max-in-flight",
    "shutdown",
];

/// What a profile's `extensions=` item may name, joined by `+`: `hello`
/// (it answers `/sys/hello`), `ping`, `limits`, the codecs `lz4` and
/// `zstd` of `compression`, `metadata` (with the routes `/metadata`
/// and `/sleep`, [`crate::conformance::metadata_handler`] and
/// [`crate::conformance::sleep_handler`]), and `going_away`.
pub const EXTENSION_ITEMS: &[&str] = &["hello", "ping", "limits", "lz4", "zstd", "metadata", "going_away"];

impl Profile {
    /// Reads a profile such as `max-channels=4,max-message=1024,fail-route,peer=go-iip`.
    pub fn parse(text: &str) -> Result<Profile, String> {
        let mut profile = Profile::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once('=') {
                Some(("max-channels", n)) => {
                    let n: u32 = n.parse().map_err(|e| format!("{item}: {e}"))?;
                    if n == 0 {
                        return Err(format!("{item}: a server has at least channel 0"));
                    }
                    profile.max_channels = Some(n)
                }
                Some(("max-message", n)) => profile.max_message = Some(n.parse().map_err(|e| format!("{item}: {e}"))?),
                Some(("max-connections", n)) => {
                    let why = "the suite opens all N connections";
                    profile.max_connections = Some(bounded(item, n, 1..=MAX_DECLARED_CONNECTIONS, why)?)
                }
                Some(("auth", value)) => match value.split_once(':') {
                    Some((scheme, credentials)) if !scheme.is_empty() && !credentials.is_empty() => {
                        profile.auth = Some(Credentials { scheme: scheme.into(), credentials: credentials.into() })
                    }
                    _ => return Err(format!("{item}: expected auth=SCHEME:CREDENTIALS")),
                },
                Some(("auth-required", addr)) if !addr.is_empty() => profile.auth_required = Some(addr.into()),
                Some(("shutdown", addr)) if !addr.is_empty() => profile.shutdown = Some(addr.into()),
                Some(("auth-pace", pace)) => {
                    let (k, n) = pace.split_once('/').ok_or_else(|| format!("{item}: expected auth-pace=K/N"))?;
                    let k = bounded(item, k, 1..=MAX_DECLARED_FREE_FAILURES, "the case fails K times")?;
                    let n = bounded(item, n, 100..=MAX_DECLARED_PACE_MS, "the case waits N within one step")?;
                    profile.auth_pace = Some((k, n))
                }
                Some(("connection-budget", n)) => {
                    let why = "the cases park requests of up to the whole budget";
                    profile.connection_budget = Some(bounded(item, n, MIN_DECLARED_BUDGET..=MAX_DECLARED_BUDGET, why)?)
                }
                Some(("max-in-flight", n)) => {
                    let why = "the case runs N handlers at once";
                    profile.max_in_flight = Some(bounded(item, n, 1..=MAX_DECLARED_IN_FLIGHT, why)?)
                }
                Some(("server-budget", n)) => {
                    let why = "the case parks the whole budget";
                    profile.server_budget =
                        Some(bounded(item, n, MIN_DECLARED_BUDGET..=MAX_DECLARED_SERVER_BUDGET, why)?)
                }
                Some((name @ ("idle-timeout-ms" | "frame-timeout-ms" | "hello-timeout-ms"), n)) => {
                    let n = bounded(item, n, 1_000..=MAX_DECLARED_TIMEOUT_MS, "the suite waits it out")?;
                    match name {
                        "idle-timeout-ms" => profile.idle_timeout_ms = Some(n),
                        "hello-timeout-ms" => profile.hello_timeout_ms = Some(n),
                        _ => profile.frame_timeout_ms = Some(n),
                    }
                }
                Some(("peer", name)) if KNOWN_PEERS.contains(&name) => profile.peer = Some(name.to_string()),
                Some(("peer", name)) => {
                    return Err(format!("unknown peer {name:?}; known: {}", KNOWN_PEERS.join(", ")));
                }
                Some(("extensions", names)) => {
                    for name in names.split('+').map(str::trim).filter(|n| !n.is_empty()) {
                        if !EXTENSION_ITEMS.contains(&name) {
                            return Err(format!("unknown extension {name:?}; known: {}", EXTENSION_ITEMS.join(", ")));
                        }
                        profile.extensions.insert(name.to_string());
                    }
                    profile.extensions.insert("hello".into());
                }
                None if item == "fail-route" => profile.fail_route = true,
                None if item == "fail-code-route" => profile.fail_code_route = true,
                _ => return Err(format!("unknown profile item {item:?}; known: {}", PROFILE_ITEMS.join(", "))),
            }
        }
        if profile.auth_required.is_some() && profile.auth.is_none() {
            return Err("auth-required=HOST:PORT: declare the credentials it takes with auth=SCHEME:CREDENTIALS".into());
        }
        if profile.auth_pace.is_some() && profile.auth.is_none() {
            return Err("auth-pace=K/N: declare the credentials it checks with auth=SCHEME:CREDENTIALS".into());
        }
        if profile.server_budget.is_some() && profile.connection_budget.is_none() {
            return Err("server-budget=N: the case parks it under each connection's budget; \
                        declare that with connection-budget=N"
                .into());
        }
        if profile.hello_timeout_ms.is_some() && profile.auth_required.is_none() {
            return Err("hello-timeout-ms=N: the hello timeout runs where authentication is required; \
                        declare that listener with auth-required=HOST:PORT"
                .into());
        }
        Ok(profile)
    }

    /// The profile of the reference server as the suite starts it in-process.
    pub fn reference() -> Profile {
        Profile {
            max_channels: Some(8),
            max_message: Some(32 * 1024 * 1024),
            max_connections: Some(32),
            fail_route: true,
            fail_code_route: true,
            peer: None,
            extensions: EXTENSION_ITEMS.iter().map(|s| s.to_string()).collect(),
            idle_timeout_ms: Some(REFERENCE_IDLE_TIMEOUT_MS),
            frame_timeout_ms: Some(REFERENCE_FRAME_TIMEOUT_MS),
            auth: Some(reference_credentials()),
            auth_pace: Some(reference_auth_pace()),
            // Its address is known once it listens: the harness fills it in.
            auth_required: None,
            hello_timeout_ms: Some(REFERENCE_HELLO_TIMEOUT_MS),
            connection_budget: Some(REFERENCE_CONNECTION_BUDGET),
            server_budget: Some(crate::server::DEFAULT_MAX_SERVER_HELD_BYTES),
            max_in_flight: Some(crate::server::ServerConfig::default().max_in_flight),
            // Known once it listens, as `auth_required`.
            shutdown: None,
        }
    }

    /// `Err(reason)` when a case needs more than this profile declares.
    pub fn satisfies(&self, requires: &Requires) -> Result<(), String> {
        // What the case needs, whether this profile declares it, and the item that would.
        let needs = [
            (requires.max_channels, self.max_channels.is_some(), "max-channels=N"),
            (requires.max_message, self.max_message.is_some(), "max-message=N"),
            (requires.max_connections, self.max_connections.is_some(), "max-connections=N"),
            (requires.idle_timeout, self.idle_timeout_ms.is_some(), "idle-timeout-ms=N"),
            (requires.frame_timeout, self.frame_timeout_ms.is_some(), "frame-timeout-ms=N"),
            (requires.auth == Some(true), self.auth.is_some(), "auth=SCHEME:CREDENTIALS"),
            (requires.auth_required, self.auth_required.is_some(), "auth-required=HOST:PORT"),
            (requires.hello_timeout, self.hello_timeout_ms.is_some(), "hello-timeout-ms=N"),
            (requires.auth_pace, self.auth_pace.is_some(), "auth-pace=K/N"),
            (requires.connection_budget, self.connection_budget.is_some(), "connection-budget=N"),
            (requires.server_budget, self.server_budget.is_some(), "server-budget=N"),
            (requires.max_in_flight, self.max_in_flight.is_some(), "max-in-flight=N"),
            (requires.shutdown, self.shutdown.is_some(), "shutdown=HOST:PORT"),
            (requires.fail_route, self.fail_route, "fail-route"),
            (requires.fail_code_route, self.fail_code_route, "fail-code-route"),
        ];
        if let Some((_, _, item)) = needs.iter().find(|(needed, declared, _)| *needed && !*declared) {
            return Err(format!("needs a server declaring {item}"));
        }
        if requires.auth == Some(false) && self.auth.is_some() {
            return Err("for a server without an authenticator (this one declares auth=)".into());
        }
        if let Some(missing) = requires.extensions.iter().find(|e| !self.extensions.contains(*e)) {
            return Err(format!("needs a server declaring extensions={missing} (chapter 14)"));
        }
        Ok(())
    }

    /// Where the cases needing `requires` connect instead of the target: the
    /// listener requiring authentication, or the one that shuts down.
    pub fn listener_for(&self, requires: &Requires) -> Option<&str> {
        match (requires.auth_required, requires.shutdown) {
            (true, _) => self.auth_required.as_deref(),
            (_, true) => self.shutdown.as_deref(),
            _ => None,
        }
    }

    /// The Appendix A entries among `excused_by` that excuse a failure for
    /// the declared peer (none without a declared peer).
    pub fn excuses(&self, excused_by: &[String]) -> Vec<String> {
        let Some(peer) = &self.peer else { return Vec::new() };
        let own = |entry: &&String| PEER_ENTRIES.iter().any(|(p, prefix)| p == peer && entry.starts_with(prefix));
        excused_by.iter().filter(own).cloned().collect()
    }

    /// `case` with its steps generated for this profile's declarations
    /// when it has a generator; `case` itself otherwise.
    pub fn instantiate(&self, case: &Case) -> Result<Case, String> {
        let Some(generator) = case.generate else { return Ok(case.clone()) };
        let mut case = case.clone();
        let max_message = || self.max_message.ok_or("needs a server declaring max-message=N");
        let idle_timeout = || self.idle_timeout_ms.ok_or("needs a server declaring idle-timeout-ms=N");
        let credentials = || self.auth.as_ref().ok_or("needs a server declaring auth=SCHEME:CREDENTIALS");
        let hello_timeout = || self.hello_timeout_ms.ok_or("needs a server declaring hello-timeout-ms=N");
        let budget = || self.connection_budget.ok_or("needs a server declaring connection-budget=N");
        case.steps = match generator {
            Generator::ChannelLimit => {
                channel_limit_steps(self.max_channels.ok_or("needs a server declaring max-channels=N")?)
            }
            Generator::MessageLimit => message_limit_steps(max_message()?, "/echo"),
            Generator::MessageLimitUncounted => uncounted_message_limit_steps(max_message()?),
            Generator::SysMessageLimit => sys_message_limit_steps(max_message()?),
            Generator::ConnectionLimit => {
                connection_limit_steps(self.max_connections.ok_or("needs a server declaring max-connections=N")?)
            }
            Generator::CompressedMessageLimit => compressed_message_limit_steps(max_message()?, None),
            Generator::MetadataCompressedMessageLimit => {
                compressed_message_limit_steps(max_message()?, Some(LIMIT_CASE_BLOCK))
            }
            Generator::IdleTimeout => timeout_steps::idle_timeout(idle_timeout()?),
            Generator::BusyNotIdle => timeout_steps::busy_not_idle(idle_timeout()?),
            Generator::AnswerUnreadNotIdle => timeout_steps::answer_unread_not_idle(idle_timeout()?),
            Generator::FrameTimeout => timeout_steps::frame_timeout(
                self.frame_timeout_ms.ok_or("needs a server declaring frame-timeout-ms=N")?,
            ),
            Generator::WaitingRequests => waiting_requests_steps(),
            Generator::AuthAccepted => auth_steps::accepted(credentials()?, false),
            Generator::AuthSchemeWithoutCase => auth_steps::accepted(credentials()?, true),
            Generator::AuthRefused => auth_steps::refused(credentials()?),
            Generator::AuthFailurePace => {
                let (failures, interval) = self.auth_pace.ok_or("needs a server declaring auth-pace=K/N")?;
                auth_steps::failure_pace(credentials()?, failures, interval)
            }
            Generator::AuthRequiredAccepts => auth_steps::required_accepts(credentials()?),
            Generator::HelloTimeout => auth_steps::hello_timeout(hello_timeout()?),
            Generator::AuthenticatedNotTimedOut => {
                auth_steps::authenticated_not_timed_out(credentials()?, hello_timeout()?)
            }
            Generator::PausedAtBudget => budget_steps::paused_at_budget(budget()?),
            Generator::LeavingWhilePaused => budget_steps::leaving_while_paused(budget()?),
            Generator::ChunkedPastBudget => budget_steps::chunked_past_budget(budget()?),
            Generator::HandlerLimit => {
                budget_steps::handler_limit(self.max_in_flight.ok_or("needs a server declaring max-in-flight=N")?)
            }
            Generator::ServerFull => {
                let s = self.server_budget.ok_or("needs a server declaring server-budget=N")?;
                let needed = budget_steps::server_full_connections(s, budget()?) + 1;
                if self.max_connections.is_some_and(|m| (m as usize) < needed) {
                    return Err(format!("needs {needed} connections at once; the server declares fewer"));
                }
                budget_steps::server_full(s, budget()?)
            }
        };
        Ok(case)
    }
}

/// The number `value` of profile item `item`, refused outside `range`
/// with `why` the suite needs it there.
fn bounded<T>(item: &str, value: &str, range: std::ops::RangeInclusive<T>, why: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let n: T = value.parse().map_err(|e| format!("{item}: {e}"))?;
    if !range.contains(&n) {
        return Err(format!("{item}: {why}; declare {} to {}", range.start(), range.end()));
    }
    Ok(n)
}

pub(super) fn send(status: u8, path: &str, channel: u32, data: Blob) -> Step {
    let frame = FrameSpec { status, path: Blob::Text(path.into()), channel, data, length: None };
    Step { send: Some(frame), ..Step::default() }
}

pub(super) fn expect(frame: ExpectFrame) -> Step {
    Step { expect: Some(frame), ..Step::default() }
}

/// The status of frame `i` of a request of `frames` frames (`[MSG-1]`).
pub(super) fn frame_status(frames: usize, i: usize) -> u8 {
    match (frames, i) {
        (1, _) => 1,
        (_, 0) => 0,
        _ if i + 1 == frames => 3,
        _ => 2,
    }
}

/// The grant of channel `id` answering `/sys/new_channel` on channel 0.
pub(super) fn granted(id: u32) -> Step {
    let mut json = toml::Table::new();
    json.insert("code".into(), toml::Value::Integer(0));
    json.insert("channel_id".into(), toml::Value::Integer(i64::from(id)));
    expect(ExpectFrame { status: Some(5), channel: Some(0), json: Some(json), ..ExpectFrame::default() })
}

/// `/sys/new_channel` on channel 0, granted channel 1.
pub(super) fn open_channel_1() -> [Step; 2] {
    [send(1, "/sys/new_channel", 0, Blob::Text("{}".into())), granted(1)]
}

/// `/echo` of `text` on `channel`, and its answer.
pub(super) fn echo_on(channel: u32, text: &str) -> (Step, ExpectFrame) {
    let answer = ExpectFrame {
        status: Some(5),
        channel: Some(channel),
        data: Some(Blob::Text(text.into())),
        ..ExpectFrame::default()
    };
    (send(1, "/echo", channel, Blob::Text(text.into())), answer)
}

/// `[CHAN-9]` for a declared limit of `n` channels, channel 0 included:
/// ids 1 to n-1 are granted in order, one more is refused with 106, and a
/// frame on id n (never granted) is a protocol error.
fn channel_limit_steps(n: u32) -> Vec<Step> {
    let new_channel = || send(1, "/sys/new_channel", 0, Blob::Text("{}".into()));
    let mut steps = Vec::new();
    if n > 1 {
        steps.push(Step { repeat: Some(n as usize - 1), ..new_channel() });
    }
    for id in 1..n {
        let mut json = toml::Table::new();
        json.insert("channel_id".into(), toml::Value::Integer(i64::from(id)));
        steps.push(expect(ExpectFrame { status: Some(5), json: Some(json), ..ExpectFrame::default() }));
    }
    steps.push(new_channel());
    steps.push(expect_named_error(ErrorCode::ChannelCreateLimited, 0));
    steps.push(send(1, "/echo", n, Blob::Text("x".into())));
    steps.push(Step { expect_close: Some(CloseExpect::Any), ..Step::default() });
    steps
}

/// `[ANSWER-5]` for a declared limit of `n` connections: after a pause in
/// which the connections of the cases before it end, `n` connections each
/// have a request answered, and one more is refused with 107 on channel 0
/// under `/sys/connection`, then a close frame and the close; then the `n`
/// end their streams and are closed (`[RES-11]`), and a pause lets the
/// server forget them.
fn connection_limit_steps(n: u32) -> Vec<Step> {
    // The first is the case's own connection `a`, which the runner opens.
    let on = |i: u32| (i > 0).then(|| format!("c{i}"));
    let mut steps = vec![Step { sleep_ms: Some(CONNECTIONS_SETTLE_MS), ..Step::default() }];
    for i in 0..n {
        steps.push(Step { on: on(i), ..send(1, "/echo", 0, Blob::Text(format!("c{i}"))) });
        let echo = ExpectFrame {
            status: Some(5),
            channel: Some(0),
            data: Some(Blob::Text(format!("c{i}"))),
            ..ExpectFrame::default()
        };
        steps.push(Step { on: on(i), ..expect(echo) });
    }
    let mut refusal = expect_named_error(ErrorCode::ServerConnectionsLimited, 0);
    if let Some(frame) = refusal.expect.as_mut() {
        frame.path = Some(Blob::Text("/sys/connection".into()));
    }
    steps.push(Step { on: on(n), ..refusal });
    steps.push(Step { on: on(n), expect_close: Some(CloseExpect::WithFrame), ..Step::default() });
    // The connections leave, and the server ends them, before the next case.
    for i in 0..n {
        steps.push(Step {
            on: on(i),
            end_stream: Some(true),
            expect_close: Some(CloseExpect::Clean),
            ..Step::default()
        });
    }
    steps.push(Step { sleep_ms: Some(CONNECTIONS_SETTLE_MS), ..Step::default() });
    steps
}

/// `[RES-1]`, `[RES-3]`: what a request holds while it waits is given
/// back once it is answered. 1,024 windows of 64 requests on channel 0,
/// each body 1,536 bytes, each window answered before the next is sent, so
/// that a server with any budget of a few hundred KiB keeps reading. Every
/// other window is `/sleep` of 2 ms, 62 of 0 ms, whose answers are made
/// before the first one's and wait behind it ([ORDER-1]), and one of 5 ms,
/// answered after those have gone out; the rest are chunked `/echo`
/// requests, answered as they complete. A server
/// that counted any of the bytes or the places of its answered requests
/// for ever would reach its budget (the reference's 64 MiB within the
/// first 25,000 requests) and read no more.
fn waiting_requests_steps() -> Vec<Step> {
    const WINDOWS: usize = 1024;
    const PER_WINDOW: usize = 64;
    const BODY: usize = 1536;
    // A frame of `status` for `path` on channel 0 carrying `data` of `len` bytes.
    let frame = |status: u8, path: &str, data: Blob, len: usize| {
        Blob::Concat(vec![
            Blob::Hex { hex: format!("{status:02x}") },
            Blob::Text(path.into()),
            Blob::Hex { hex: format!("00 00000000 {len:08x}") },
            data,
        ])
    };
    // A body naming `ms` milliseconds in decimal, padded with zeros.
    let millis = |ms: u8| Blob::Concat(vec![Blob::Fill { fill: b'0', count: BODY - 1 }, Blob::Text(ms.to_string())]);
    let answer = |data: Blob, repeat: usize| Step {
        repeat: (repeat > 1).then_some(repeat),
        ..expect(ExpectFrame { status: Some(5), channel: Some(0), data: Some(data), ..ExpectFrame::default() })
    };
    let mut behind = vec![frame(1, "/sleep", millis(2), BODY)];
    behind.extend((2..PER_WINDOW).map(|_| frame(1, "/sleep", millis(0), BODY)));
    behind.push(frame(1, "/sleep", millis(5), BODY));
    let half = BODY / 2;
    let chunk = Blob::Fill { fill: b'c', count: half };
    let chunked: Vec<Blob> = (0..PER_WINDOW)
        .flat_map(|_| [frame(0, "/echo", chunk.clone(), half), frame(3, "/echo", chunk.clone(), half)])
        .collect();
    let waiting = [
        Step { send_raw: Some(Blob::Concat(behind)), ..Step::default() },
        answer(millis(2), 1),
        answer(millis(0), PER_WINDOW - 2),
        answer(millis(5), 1),
    ];
    let assembled = [
        Step { send_raw: Some(Blob::Concat(chunked)), ..Step::default() },
        answer(Blob::Fill { fill: b'c', count: BODY }, PER_WINDOW),
    ];
    let mut steps = Vec::new();
    for _ in 0..WINDOWS / 2 {
        steps.extend(waiting.iter().cloned());
        steps.extend(assembled.iter().cloned());
    }
    steps
}

/// How long the connection-limit case waits before it opens its
/// connections and after it closes them, so that the server has ended
/// those of the case before it, and then its own.
const CONNECTIONS_SETTLE_MS: u64 = 300;

/// The reference server's idle and frame read timeouts as the suite
/// starts it in-process: short enough to wait out, long enough that no
/// other case's connection idles so long.
pub const REFERENCE_IDLE_TIMEOUT_MS: u64 = 5_000;
/// See [`REFERENCE_IDLE_TIMEOUT_MS`].
pub const REFERENCE_FRAME_TIMEOUT_MS: u64 = 3_000;
/// The hello timeout of the reference server that requires
/// authentication, as the suite starts it in-process (`[RES-10]`).
pub const REFERENCE_HELLO_TIMEOUT_MS: u64 = 2_000;
/// The pace of failed authentications of the reference server
/// (`auth-pace=K/N`): its free failures and one more check at once, then
/// one per authentication failure interval.
fn reference_auth_pace() -> (u32, u64) {
    let interval = crate::server::ServerConfig::default().extensions.auth_failure_interval;
    (crate::server::FREE_AUTH_FAILURES + 1, interval.as_millis() as u64)
}

/// The most free failures a profile may declare (`auth-pace=K/N`).
const MAX_DECLARED_FREE_FAILURES: u32 = 16;
/// The longest pace a profile may declare: the case waits it out in one step.
const MAX_DECLARED_PACE_MS: u64 = 2_000;

/// The budget of bytes held per connection of the reference server as the
/// suite starts it in-process: past its 32 MiB messages, with room for
/// what they hold beside them.
pub const REFERENCE_CONNECTION_BUDGET: usize = 40 << 20;
/// The bearer token the reference server's authenticator accepts as the
/// suite starts it in-process, and the identity it proves.
pub const REFERENCE_TOKEN: (&str, &str) = ("conformance-token", "conformance");

/// The credentials of [`REFERENCE_TOKEN`], as the profile declares them.
pub fn reference_credentials() -> Credentials {
    Credentials { scheme: "bearer".into(), credentials: REFERENCE_TOKEN.0.into() }
}

/// How long past a declared timeout a case sleeps before it looks for the
/// close frame, which must then have come: the server's timer, and its
/// turn to run, may be that late.
pub(super) const TIMEOUT_SLACK_MS: u64 = 500;

pub(super) fn sleep(ms: u64) -> Step {
    Step { sleep_ms: Some(ms), ..Step::default() }
}

pub(super) fn echo(text: &str) -> [Step; 2] {
    let answer = ExpectFrame { status: Some(5), data: Some(Blob::Text(text.into())), ..ExpectFrame::default() };
    [send(1, "/echo", 0, Blob::Text(text.into())), expect(answer)]
}

/// A close frame citing `requirement`, then the close.
pub(super) fn closed_citing(requirement: &str) -> [Step; 2] {
    let frame = ExpectFrame { status: Some(8), cites: Some(requirement.into()), ..ExpectFrame::default() };
    [expect(frame), Step { expect_close: Some(CloseExpect::Any), ..Step::default() }]
}

/// How early a timeout's close may come, by the suite's clock: the
/// server's clock starts when it has sent or read what starts it, which
/// the suite sees a little later on a loaded machine.
const TIMEOUT_EARLY_MS: u64 = 300;

/// How late a timeout's close may come, by the suite's clock.
pub(super) const TIMEOUT_LATE_MS: u64 = 1_000;

/// A close frame citing `requirement` when a timeout of `n` ms the server
/// started at the step before has run: nothing before it, and the frame
/// by [`TIMEOUT_LATE_MS`] after it; then the close.
pub(super) fn closed_citing_after(requirement: &str, n: u64) -> [Step; 3] {
    let [mut frame, close] = closed_citing(requirement);
    frame.within_ms = Some(TIMEOUT_EARLY_MS + TIMEOUT_LATE_MS);
    let silence = Step { expect_silence_ms: Some(n.saturating_sub(TIMEOUT_EARLY_MS)), ..Step::default() };
    [silence, frame, close]
}

/// The most connections a profile may declare: the case opens them all.
pub const MAX_DECLARED_CONNECTIONS: u32 = 1024;

/// An expected error answer of `code` whose message is the code's name
/// in the spec's table (`[ANSWER-10]`).
pub(super) fn expect_named_error(code: ErrorCode, channel: u32) -> Step {
    let mut json = toml::Table::new();
    json.insert("code".into(), toml::Value::Integer(code.value()));
    json.insert("message".into(), toml::Value::String(code.name().into()));
    expect(ExpectFrame { status: Some(5), channel: Some(channel), json: Some(json), ..ExpectFrame::default() })
}

/// `[MSG-12]` for a declared limit of `n` bytes: `/sys/new_channel` with a
/// body of n+1 bytes is answered 110 and allocates nothing, so the next
/// grant is channel 1.
fn sys_message_limit_steps(n: usize) -> Vec<Step> {
    let mut steps = message_limit_steps(n, "/sys/new_channel");
    steps.truncate(steps.len() - 2);
    steps.push(send(1, "/sys/new_channel", 0, Blob::Text("{}".into())));
    let mut json = toml::Table::new();
    json.insert("channel_id".into(), toml::Value::Integer(1));
    steps.push(expect(ExpectFrame { status: Some(5), json: Some(json), ..ExpectFrame::default() }));
    steps
}

/// `[SYS-9]` for a declared limit of `n` bytes: a request of n+1 bytes to
/// `/echo`, answered 110, leaves the route's Count as it was.
fn uncounted_message_limit_steps(n: usize) -> Vec<Step> {
    let path_count = || send(1, "/sys/path_count", 0, Blob::Text("/echo".into()));
    let capture = ExpectFrame { status: Some(5), capture: Some("before".into()), ..ExpectFrame::default() };
    let mut steps = vec![path_count(), expect(capture)];
    let mut refused = message_limit_steps(n, "/echo");
    refused.truncate(refused.len() - 2);
    steps.extend(refused);
    let unchanged: toml::Table =
        COUNT_MEMBERS.iter().map(|member| (member.to_string(), toml::Value::Integer(0))).collect();
    steps.push(path_count());
    steps.push(expect(ExpectFrame {
        status: Some(5),
        json_delta: Some(unchanged),
        since: Some("before".into()),
        ..ExpectFrame::default()
    }));
    steps
}

/// The members of a Count object (chapter 9.1).
const COUNT_MEMBERS: [&str; 6] =
    ["PacketsSent", "PacketReceived", "WholePacketSent", "WholePacketReceived", "BytesSent", "BytesReceived"];

/// `[MSG-8]` for a declared limit of `n` bytes: a request of n+1 bytes to
/// `path` (chunked at the default frame limit) is answered 110, and the
/// next request on the connection is served.
fn message_limit_steps(n: usize, path: &str) -> Vec<Step> {
    let mut steps = body_frames(path, &[], n + 1);
    steps.push(expect_named_error(ErrorCode::RequestTooLarge, 0));
    steps.extend(echo("next"));
    steps
}

/// The frames of one request to `path` on channel 0 whose body is
/// `prefix` (a metadata block, a compression marker) and then `len`
/// bytes: a whole frame when it fits the default frame data limit, else
/// chunks of it.
fn body_frames(path: &str, prefix: &[u8], len: usize) -> Vec<Step> {
    let chunk = crate::wire::frame::DEFAULT_MAX_DATA as usize;
    let total = len + prefix.len();
    let frames = total.div_ceil(chunk).max(1);
    (0..frames)
        .map(|i| {
            let last = i + 1 == frames;
            let size = if last { total - chunk * i } else { chunk };
            let status = frame_status(frames, i);
            let fill = b'a' + (i % 26) as u8;
            let data = match i {
                0 if !prefix.is_empty() => Blob::Concat(vec![
                    Blob::Hex { hex: to_hex(prefix) },
                    Blob::Fill { fill, count: size - prefix.len() },
                ]),
                _ => Blob::Fill { fill, count: size },
            };
            send(status, path, 0, data)
        })
        .collect()
}

/// `[EXT-15]`, `[EXT-20]` for a declared limit of `n` bytes, with `lz4`
/// agreed and, if `block` is given, `metadata` too, each request's body
/// starting with that block: a `/sys/new_channel` body of `n` bytes, block
/// included and the marker `00` after it not counted, is within the limit
/// and grants channel 1; one byte more is answered 110, marked, and grants
/// nothing, so the next grant is channel 2. The answers are small, under
/// any threshold, and come back marked `00` with no block.
fn compressed_message_limit_steps(n: usize, block: Option<&[u8]>) -> Vec<Step> {
    let hello = match block {
        Some(_) => r#"{"revision":1,"extensions":{"metadata":{},"compression":{"codecs":["lz4"],"min_size":1048576}}}"#,
        None => r#"{"revision":1,"extensions":{"compression":{"codecs":["lz4"],"min_size":1048576}}}"#,
    };
    let block = block.unwrap_or_default();
    let prefix: Vec<u8> = block.iter().copied().chain([0]).collect();
    let marked = |body: Blob| Blob::Concat(vec![Blob::Hex { hex: "00".into() }, body]);
    let grant = |id: u32| {
        expect(ExpectFrame {
            status: Some(5),
            channel: Some(0),
            data: Some(marked(Blob::Text(format!(r#"{{"code":0,"channel_id":{id}}}"#)))),
            ..ExpectFrame::default()
        })
    };
    let too_large = String::from_utf8_lossy(&ErrorAnswer::named(ErrorCode::RequestTooLarge).to_body()).into_owned();
    let mut steps = vec![
        send(1, "/sys/hello", 0, Blob::Text(hello.into())),
        expect(ExpectFrame {
            status: Some(5),
            path: Some(Blob::Text("/sys/hello".into())),
            json_keys: Some(vec!["revision".into(), "extensions.compression.codec".into()]),
            ..ExpectFrame::default()
        }),
    ];
    steps.extend(body_frames("/sys/new_channel", &prefix, n - block.len()));
    steps.push(grant(1));
    steps.extend(body_frames("/sys/new_channel", &prefix, n - block.len() + 1));
    steps.push(expect(ExpectFrame {
        status: Some(5),
        channel: Some(0),
        data: Some(marked(Blob::Text(too_large))),
        ..ExpectFrame::default()
    }));
    let small = Blob::Concat(vec![Blob::Hex { hex: to_hex(&prefix) }, Blob::Text("{}".into())]);
    steps.push(send(1, "/sys/new_channel", 0, small));
    steps.push(grant(2));
    steps
}

/// The metadata block of the limit case with `metadata` in force: one
/// entry, `request-id` = `r` (16 bytes with its length). Written out by
/// hand, as the vectors are, so that the reference's own encoder is not
/// what judges it.
const LIMIT_CASE_BLOCK: &[u8] = b"\x00\x0e\x0arequest-id\x00\x01r";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_excused_by_its_own_entries_only() {
        let entries = vec!["COMPAT-9".to_string(), "OTHER-2".to_string()];
        assert_eq!(Profile::parse("peer=go-iip").unwrap().excuses(&entries), vec!["COMPAT-9".to_string()]);
        assert!(Profile::default().excuses(&entries).is_empty());
    }
}
