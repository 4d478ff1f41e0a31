//! The conformance suite: session vectors, a runner that plays them against
//! any IIP server, reports, and a scripted server for testing clients.

pub mod attack;
mod auth_steps;
mod budget_steps;
pub mod client;
pub mod client_cmd;
pub mod report;
mod timeout_steps;

pub mod files;
mod profile;
pub mod run;
pub mod session;
pub mod spec;
pub mod vector;

use std::path::PathBuf;
use std::time::Instant;

pub use report::{CaseResult, Verdict};
pub use run::{run_case, Failure, Profile, Waits};
pub use run::{KNOWN_PEERS, PROFILE_ITEMS};
pub use session::{load_sessions, Case, CaseLevel, NamedCase};

/// Where the shipped vectors live (this crate's `vectors/`).
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Where the shipped spec lives (this crate's `spec/`).
pub fn spec_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec")
}

/// The `/fail` route of the profile item `fail-route`: fails every request
/// with its body as the error text (`[ANSWER-3]`).
pub async fn fail_handler(req: crate::server::Request) -> Result<bytes::Bytes, crate::server::HandlerError> {
    Err(crate::server::HandlerError::new(crate::wire::answer::message_text(&req.body)))
}

/// The `/fail_code` route of the profile item `fail-code-route`: fails
/// every request with the application code and message its body names,
/// `CODE MESSAGE` in decimal and UTF-8 (`[ANSWER-6]`); a code the
/// application may not use, or a body that names none, fails as
/// [`HandlerError::application`](crate::server::HandlerError::application)
/// says.
pub async fn fail_code_handler(req: crate::server::Request) -> Result<bytes::Bytes, crate::server::HandlerError> {
    let text = crate::wire::answer::message_text(&req.body);
    let (code, message) = text.split_once(' ').unwrap_or((text.as_str(), ""));
    Err(match code.parse::<u32>() {
        Ok(code) => crate::server::HandlerError::application(code, message),
        Err(_) => crate::server::HandlerError::new(format!("no code in {text:?}")),
    })
}

/// The `/metadata` route of the profile item `extensions=metadata`:
/// answers a JSON object of the request's metadata entries, each key to
/// its value as received (`[EXT-21]`); `{}` without metadata.
pub async fn metadata_handler(req: crate::server::Request) -> Result<bytes::Bytes, crate::server::HandlerError> {
    let entries: serde_json::Map<String, serde_json::Value> =
        req.metadata().iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(v))).collect();
    Ok(bytes::Bytes::from(serde_json::Value::Object(entries).to_string()))
}

/// The `/sleep` route of the profile item `extensions=metadata`: waits
/// the milliseconds its body names (decimal digits, at most 60,000; 0 for
/// anything else), then answers its body (`[EXT-22]`).
pub async fn sleep_handler(req: crate::server::Request) -> Result<bytes::Bytes, crate::server::HandlerError> {
    let ms = std::str::from_utf8(req.body()).ok().and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_millis(ms.min(60_000))).await;
    Ok(req.into_body())
}

/// The `/shutdown` route of a profile's `shutdown=` listener: answers the
/// request's body, and `trigger` then begins the server's graceful
/// shutdown (`[CLOSE-3]`).
pub fn shutdown_handler(
    trigger: std::sync::Arc<tokio::sync::Notify>,
) -> impl Fn(crate::server::Request) -> Result<bytes::Bytes, std::convert::Infallible> + Send + Sync + 'static {
    move |req| {
        trigger.notify_one();
        Ok(req.into_body())
    }
}

/// Serves the profile's `shutdown=` listener for the reference: at the
/// address of `listener`, the reference server as [`reference_server`]
/// builds it (inside TLS with `tls`) with [`shutdown_handler`]'s
/// `/shutdown`; once a shutdown has closed every connection, a new one
/// listens there again. Returns only when it cannot listen again.
pub async fn serve_reference_shutdowns(
    listener: tokio::net::TcpListener,
    tls: Option<std::sync::Arc<crate::tls::ServerConfig>>,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let mut listener = Some(listener);
    loop {
        let listener = match listener.take() {
            Some(listener) => listener,
            None => listen_again(addr).await?,
        };
        let trigger = std::sync::Arc::new(tokio::sync::Notify::new());
        let mut builder = reference_builder(crate::server::AuthPolicy::Optional)
            .route_sync("/shutdown", shutdown_handler(trigger.clone()));
        if let Some(tls) = &tls {
            builder = builder.tls(tls.clone());
        }
        let server = builder.build().map_err(std::io::Error::other)?;
        server.serve_with_shutdown(listener, trigger.notified()).await?;
    }
}

/// Binds `addr` again, for up to a second while the port is still taken.
async fn listen_again(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let mut tries = 0;
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            done => return done,
        }
    }
}

/// The reference server configured as [`Profile::reference`] declares:
/// `/echo`, `/echo_benchmark`, `/fail`, `/metadata`, `/sleep`, 8
/// channels, 32 MiB requests, 32 connections, and an authenticator that
/// accepts the bearer token `conformance-token` and serves clients
/// that offer no credentials too.
pub fn reference_server() -> Result<crate::server::Server, crate::server::RouteError> {
    reference_builder(crate::server::AuthPolicy::Optional).build()
}

/// The same server requiring authentication (`[EXT-9]`), with the hello
/// timeout [`Profile::reference`] declares: the listener a profile names
/// with `auth-required=HOST:PORT`.
pub fn reference_auth_required_server() -> Result<crate::server::Server, crate::server::RouteError> {
    reference_builder(crate::server::AuthPolicy::Required).build()
}

fn reference_builder(policy: crate::server::AuthPolicy) -> crate::server::ServerBuilder {
    let profile = Profile::reference();
    let millis = |ms: Option<u64>| ms.map(std::time::Duration::from_millis);
    let (token, identity) = profile::REFERENCE_TOKEN;
    let hello = match policy {
        crate::server::AuthPolicy::Required => millis(profile.hello_timeout_ms),
        _ => None,
    };
    crate::server::Server::echo()
        .route("/fail", fail_handler)
        .route("/fail_code", fail_code_handler)
        .route("/metadata", metadata_handler)
        .route("/sleep", sleep_handler)
        .max_channels(profile.max_channels.unwrap_or(8))
        .max_message(profile.max_message.unwrap_or(32 << 20))
        .max_connections(profile.max_connections.unwrap_or(32) as usize)
        .max_connection_bytes(profile.connection_budget.unwrap_or(profile::REFERENCE_CONNECTION_BUDGET))
        .timeouts(crate::proto::timers::Timeouts {
            idle: millis(profile.idle_timeout_ms),
            frame: millis(profile.frame_timeout_ms),
            hello,
            ..Default::default()
        })
        .authenticator(crate::server::BearerTokens::new().with(token, identity), policy)
}

/// Runs every case of `cases` against `addr`, one after another, each
/// wait bounded by `waits`. Once the run's deadline has passed, the case
/// that was waiting fails with what it waited for, and the cases after it
/// are skipped as not run.
pub async fn run_suite(
    target: &crate::client::Endpoint,
    cases: &[NamedCase],
    profile: &Profile,
    waits: impl Into<Waits>,
) -> Vec<CaseResult> {
    let waits = waits.into();
    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        let started = Instant::now();
        let verdict = match waits.expired() {
            true => Verdict::Skipped("not run: the run's deadline had passed".into()),
            false => run_one(target, case, profile, waits).await,
        };
        results.push(CaseResult { case: case.clone(), verdict, elapsed: started.elapsed() });
    }
    results
}

/// Runs one case for `profile`: skipped when the profile lacks what it
/// needs, a deviation when it fails and the declared peer's Appendix A
/// entries excuse it.
pub async fn run_one(
    target: &crate::client::Endpoint,
    case: &NamedCase,
    profile: &Profile,
    waits: impl Into<Waits>,
) -> Verdict {
    let instance = match profile.satisfies(&case.case.requires).and_then(|()| profile.instantiate(&case.case)) {
        Ok(instance) => instance,
        Err(why) => return Verdict::Skipped(why),
    };
    // A case for the listener that requires authentication, or for the
    // one that shuts down, runs there, inside the same TLS, if any.
    let elsewhere;
    let target = match profile.listener_for(&case.case.requires) {
        Some(addr) => {
            elsewhere = crate::client::Endpoint { addr: addr.to_string(), ..target.clone() };
            &elsewhere
        }
        None => target,
    };
    match run_case(target, &instance, waits).await {
        Ok(()) => Verdict::Passed,
        Err(failure) => match profile.excuses(&case.case.excused_by) {
            excused if excused.is_empty() => Verdict::Failed(failure),
            excused => Verdict::Deviation { compat: excused, failure },
        },
    }
}

/// Which cases to run: by level, by requirement id (`CHAN-*`), by chapter
/// (`06`, or a file name), by name; every criterion given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `must`: must cases only; `should`: must and should; `all` (or
    /// `None`): every case, compat included.
    pub level: Option<String>,
    /// Requirement id patterns; `*` matches any run of characters. A case
    /// is selected when one of its requirements matches one pattern.
    pub requirements: Vec<String>,
    /// Chapter numbers or file stems (`06`, `06-channels`).
    pub chapters: Vec<String>,
    /// A part of the case id (`file::name`).
    pub name: Option<String>,
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![format!("level {}", self.level.as_deref().unwrap_or("all"))];
        if !self.requirements.is_empty() {
            parts.push(format!("requirement {}", self.requirements.join(" or ")));
        }
        if !self.chapters.is_empty() {
            parts.push(format!("chapter {}", self.chapters.join(" or ")));
        }
        if let Some(name) = &self.name {
            parts.push(format!("name containing {name:?}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

impl Selection {
    /// Checks the level name.
    pub fn validate(&self) -> Result<(), String> {
        match self.level.as_deref() {
            None | Some("must" | "should" | "all") => Ok(()),
            Some(other) => Err(format!("unknown level {other:?}: must, should or all")),
        }
    }

    /// Whether `case` is selected.
    pub fn selects(&self, case: &NamedCase) -> bool {
        let level_ok = match self.level.as_deref() {
            Some("must") => case.case.level == CaseLevel::Must,
            Some("should") => matches!(case.case.level, CaseLevel::Must | CaseLevel::Should),
            _ => true,
        };
        let stem = case.id.split("::").next().unwrap_or_default();
        level_ok
            && (self.requirements.is_empty()
                || self.requirements.iter().any(|p| case.case.requirements.iter().any(|id| glob_match(p, id))))
            && (self.chapters.is_empty()
                || self.chapters.iter().any(|c| stem == c || stem.starts_with(&format!("{c:0>2}-"))))
            && self.name.as_ref().is_none_or(|n| case.id.contains(n.as_str()))
    }

    /// The selected cases; an error when nothing is selected.
    pub fn apply(&self, cases: Vec<NamedCase>) -> Result<Vec<NamedCase>, String> {
        self.validate()?;
        let chosen: Vec<NamedCase> = cases.into_iter().filter(|c| self.selects(c)).collect();
        if chosen.is_empty() {
            return Err(format!("no case matches the selection ({self})"));
        }
        Ok(chosen)
    }
}

/// Loads the server cases shipped with this crate (embedded at build time).
pub fn shipped_cases() -> Result<Vec<NamedCase>, crate::conformance::vector::VectorError> {
    load_sessions(crate::conformance::files::DataDir::embedded("vectors/sessions"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("CHAN-*", "CHAN-10"));
        assert!(glob_match("*-1", "MSG-1"));
        assert!(!glob_match("*-1", "MSG-10"));
        assert!(glob_match("C*-1*", "CLOSE-12"));
        assert!(glob_match("FRAME-3", "FRAME-3"));
        assert!(!glob_match("FRAME-3", "FRAME-30"));
        assert!(!glob_match("AB*BA", "ABA"));
    }

    #[test]
    fn selections() {
        let cases = shipped_cases().unwrap();
        let all = cases.len();
        let pick = |s: Selection| s.apply(cases.clone()).map(|c| c.len());
        assert_eq!(pick(Selection::default()), Ok(all));
        let chan = pick(Selection { requirements: vec!["CHAN-*".into()], ..Selection::default() }).unwrap();
        let chapter6 = pick(Selection { chapters: vec!["6".into()], ..Selection::default() }).unwrap();
        assert!(chan > 0 && chapter6 > 0 && chan < all && chapter6 < all);
        assert_eq!(pick(Selection { chapters: vec!["06-channels".into()], ..Selection::default() }), Ok(chapter6));
        let must = pick(Selection { level: Some("must".into()), ..Selection::default() }).unwrap();
        let should = pick(Selection { level: Some("should".into()), ..Selection::default() }).unwrap();
        assert!(must < should && should <= all);
        assert!(pick(Selection { requirements: vec!["NOPE-*".into()], ..Selection::default() }).is_err());
        assert!(pick(Selection { level: Some("may".into()), ..Selection::default() }).is_err());
    }
}
