//! Client conformance: a scripted server plays the server side of a case
//! while the client under test performs the case's actions.
//!
//! Each case of `vectors/client-sessions/` says what the client is asked to
//! do (`actions`), what it must observe (each call's `expect`), and the
//! server's script (`steps`, the same step language as server cases, seen
//! from the server). [`ScriptedServer`] accepts one connection per case, in
//! order; [`drive_reference_client`] performs the actions with this crate's
//! client, so the suite checks our client first.

use std::time::Duration;

use serde::Deserialize;
use tokio::net::TcpListener;

use crate::conformance::vector::{read_tomls, Blob, VectorError};

use super::run::{run_steps, Failure};
use super::session::{CaseLevel, Step};

/// What a call must come to.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CallOutcome {
    /// The call returns this body.
    Body(Blob),
    /// The call fails with an error answer of this code.
    ErrorCode(i64),
    /// The call fails because the connection closed.
    Closed,
    /// The call fails because its answer grew past the client's answer
    /// limit (`[MSG-13]`); the connection goes on.
    TooLarge,
}

/// A call the client is asked to make.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CallAction {
    /// The path.
    pub path: String,
    /// The body.
    pub body: Blob,
    /// Metadata entries to send where `metadata` is in force (`[EXT-18]`).
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// The call's time limit in milliseconds, sent as its `deadline`
    /// where `metadata` is in force (`[EXT-22]`); the client's own otherwise.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// What the call must come to.
    pub expect: CallOutcome,
}

/// A hello the client is asked to say (spec §12.3): `/sys/hello` on
/// channel 0 as the connection's first request, offering exactly these
/// extensions, then the extensions the answer names are in force.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HelloAction {
    /// Offer `compression` with this one codec (`lz4` or `zstd`).
    #[serde(default)]
    pub compression: Option<String>,
    /// With `compression`: the offer's `min_size`. Default 0.
    #[serde(default)]
    pub min_size: u64,
    /// Offer `going_away`.
    #[serde(default)]
    pub going_away: bool,
    /// Offer `metadata`.
    #[serde(default)]
    pub metadata: bool,
}

impl HelloAction {
    /// The extensions a client must declare to be given this hello: `hello`,
    /// the codec, `going_away` and `metadata` when offered.
    pub fn needs(&self) -> Vec<String> {
        let mut needs = vec!["hello".to_string()];
        needs.extend(self.compression.clone());
        if self.going_away {
            needs.push("going_away".into());
        }
        if self.metadata {
            needs.push("metadata".into());
        }
        needs
    }
}

/// One thing the client is asked to do.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Action {
    /// Say hello (the first action only).
    Hello(HelloAction),
    /// Make a call on the current channel (channel 0 until one is opened).
    Call(CallAction),
    /// Make these calls at once on the current channel (pipelined).
    Concurrent(Vec<CallAction>),
    /// Open a channel and make it the current one.
    Open,
    /// Open a channel, which must fail because the connection closes: the
    /// server's grant breaks a rule, so the client closes (a protocol
    /// error). The case's last action.
    OpenFails,
    /// Delete the current channel and go back to channel 0.
    Delete,
    /// Limit the bodies of answers on the connection to this many bytes
    /// (`[MSG-13]`): before the first call; given only to a client that
    /// declares `answer_limit`.
    AnswerLimit(usize),
}

/// One client case.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientCase {
    /// Short name.
    pub name: String,
    /// What it checks.
    pub description: String,
    /// Requirement ids checked.
    pub requirements: Vec<String>,
    /// How binding it is.
    pub level: CaseLevel,
    /// What the client does.
    pub actions: Vec<Action>,
    /// The server's script.
    pub steps: Vec<Step>,
}

impl ClientCase {
    /// The extensions of chapter 14 a client must declare
    /// (`--extensions`) for this case to be run: those its hello offers.
    pub fn needs(&self) -> Vec<String> {
        let mut needs = match self.actions.first() {
            Some(Action::Hello(hello)) => hello.needs(),
            _ => Vec::new(),
        };
        if self.actions.iter().any(|a| matches!(a, Action::AnswerLimit(_))) {
            needs.push("answer_limit".into());
        }
        needs
    }

    /// Why this case is not run against a client that declares
    /// `declared`, if it is not.
    pub fn skipped_for(&self, declared: &[String]) -> Option<String> {
        let missing: Vec<String> = self.needs().into_iter().filter(|n| !declared.contains(n)).collect();
        (!missing.is_empty()).then(|| format!("the client does not declare {}", missing.join("+")))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    chapter: String,
    case: Vec<ClientCase>,
}

/// Loads the client cases of `dir` (on disk or embedded) as `(chapter,
/// case)` pairs.
pub fn load_client_cases(
    dir: impl Into<crate::conformance::files::DataDir>,
) -> Result<Vec<(String, ClientCase)>, VectorError> {
    let mut cases = Vec::new();
    for (_, file) in read_tomls::<ClientFile>(&dir.into())? {
        cases.extend(file.case.into_iter().map(|c| (file.chapter.clone(), c)));
    }
    Ok(cases)
}

/// A human description of the actions, for implementers driving their own client.
pub fn describe_actions(actions: &[Action]) -> String {
    let call = |c: &CallAction| {
        let body = c.body.to_bytes().unwrap_or_default();
        let outcome = match &c.expect {
            CallOutcome::Body(b) => format!("returns {:?}", String::from_utf8_lossy(&b.to_bytes().unwrap_or_default())),
            CallOutcome::ErrorCode(code) => format!("fails with server error {code}"),
            CallOutcome::Closed => "fails: connection closed".to_string(),
            CallOutcome::TooLarge => "fails: the answer is larger than the client's limit".to_string(),
        };
        let mut with = String::new();
        if !c.metadata.is_empty() {
            let entries: Vec<String> = c.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
            with.push_str(&format!(" and metadata {}", entries.join(" ")));
        }
        if let Some(ms) = c.timeout_ms {
            with.push_str(&format!(" within {ms} ms"));
        }
        format!("call {} with {:?}{with}: {outcome}", c.path, String::from_utf8_lossy(&body))
    };
    actions
        .iter()
        .map(|a| match a {
            Action::Call(c) => call(c),
            Action::Concurrent(cs) => format!("at once: [{}]", cs.iter().map(call).collect::<Vec<_>>().join("; ")),
            Action::Open => "open a channel".into(),
            Action::OpenFails => "open a channel, which fails: the connection closes".into(),
            Action::Delete => "delete the channel".into(),
            Action::AnswerLimit(n) => format!("take answers of at most {n} bytes"),
            Action::Hello(hello) => {
                let mut offers = Vec::new();
                if let Some(codec) = &hello.compression {
                    offers.push(format!("compression {codec} (min_size {})", hello.min_size));
                }
                if hello.going_away {
                    offers.push("going_away".to_string());
                }
                if hello.metadata {
                    offers.push("metadata".to_string());
                }
                format!(
                    "say hello offering {}",
                    if offers.is_empty() { "nothing".into() } else { offers.join(" and ") }
                )
            }
        })
        .collect::<Vec<_>>()
        .join(", then ")
}

/// A server that plays the script of each case to one connection, in order.
pub struct ScriptedServer {
    listener: TcpListener,
    timeout: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl ScriptedServer {
    /// Binds `addr`.
    pub async fn bind(addr: &str, timeout: Duration) -> std::io::Result<ScriptedServer> {
        Ok(ScriptedServer { listener: TcpListener::bind(addr).await?, timeout, tls: None })
    }

    /// Binds `addr` and plays every script inside TLS.
    pub async fn bind_tls(
        addr: &str,
        timeout: Duration,
        tls: std::sync::Arc<crate::tls::ServerConfig>,
    ) -> std::io::Result<ScriptedServer> {
        let tls = Some(tokio_rustls::TlsAcceptor::from(tls));
        Ok(ScriptedServer { listener: TcpListener::bind(addr).await?, timeout, tls })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts the next connection and plays `case`'s script on it.
    pub async fn play(&self, case: &ClientCase) -> Result<(), Failure> {
        let accepted = tokio::time::timeout(self.timeout * 10, self.listener.accept()).await;
        let (stream, _) = match accepted {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(Failure::new(0, "a client connection", e.to_string())),
            Err(_) => return Err(Failure::new(0, "a client connection", "none came")),
        };
        let _ = stream.set_nodelay(true);
        let stream: crate::client::BoxStream = match &self.tls {
            None => Box::new(stream),
            Some(acceptor) => match tokio::time::timeout(self.timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Box::new(tls),
                Ok(Err(e)) => return Err(Failure::new(0, "a TLS handshake", e.to_string())),
                Err(_) => return Err(Failure::new(0, "a TLS handshake", "timed out")),
            },
        };
        run_steps(stream, &case.steps, self.timeout).await
    }
}

/// Performs `case`'s actions with this crate's client against `target`,
/// through the same actions file a client under test gets
/// ([`super::client_cmd::play_actions`]).
pub async fn drive_reference_client(
    target: &crate::client::Endpoint,
    case: &ClientCase,
    timeout: Duration,
) -> Result<(), String> {
    let actions = super::client_cmd::actions_file(case)?;
    super::client_cmd::play_actions(target, &actions, timeout).await
}
