//! Client conformance without a person: the suite starts the client under
//! test itself, once per case, and tells it what to do in a documented JSON
//! form (spec §12.3).
//!
//! For each case the scripted server listens on a fresh loopback port; the
//! command is run with `{addr}` replaced by that `host:port` and `{actions}`
//! by the path of a JSON file of the case's actions (also given in the
//! environment as `IIP_ADDR` and `IIP_ACTIONS`). The client performs the
//! actions in order on one connection and exits 0 when every call came to
//! what its `expect` says, non-zero otherwise. The case passes when the
//! client's frames followed the server's script and the client exited 0.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::client::{Action, CallAction, CallOutcome, ClientCase, ScriptedServer};
use super::report::{CaseResult, Verdict};
use super::run::Failure;
use super::session::{Case, NamedCase};
use super::vector::to_hex;
use crate::client::ClientExtensions;
use crate::client::{Channel, Client, ClientConfig, ClientError, Endpoint};

/// The actions file: what the client is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ActionsFile {
    /// The case's name.
    pub case: String,
    /// The requirements it checks.
    pub requirements: Vec<String>,
    /// The actions, in order.
    pub actions: Vec<ActionJson>,
}

/// One action: `{"call": {...}}`, `{"concurrent": [{...}, ...]}`, `"open"`
/// (open a channel and make it current), `"open_fails"` (open a channel,
/// which must fail with the connection closed) or `"delete"` (delete the
/// current channel without waiting for an answer, and go back to channel 0).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActionJson {
    /// Make a call on the current channel (channel 0 until one is opened).
    Call(CallJson),
    /// Make these calls at once (pipelined) on the current channel.
    Concurrent(Vec<CallJson>),
    /// Open a channel and make it the current one.
    Open,
    /// Open a channel, which must fail because the connection closes.
    OpenFails,
    /// Delete the current channel and go back to channel 0.
    Delete,
    /// Say hello, offering exactly these extensions (the first action only).
    Hello(HelloJson),
    /// Take answer bodies of at most this many bytes on the connection
    /// (`[MSG-13]`), from before the first call.
    AnswerLimit(usize),
}

/// A hello: `/sys/hello` on channel 0 as the connection's first request,
/// offering `compression` with this one codec and `min_size` if given,
/// and `going_away` if true; nothing else is offered, and nothing else is
/// sent before its answer ([EXT-1]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HelloJson {
    /// The codec to offer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// The offer's `min_size`, with `compression`.
    #[serde(default)]
    pub min_size: u64,
    /// Offer `going_away`.
    #[serde(default)]
    pub going_away: bool,
    /// Offer `metadata`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub metadata: bool,
}

/// A call: path, body in hex, and what it must come to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallJson {
    /// The path.
    pub path: String,
    /// The body, hex (empty: an empty body, which travels as `{}`).
    pub body_hex: String,
    /// Metadata entries, sent where `metadata` is in force (`[EXT-18]`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// The call's time limit in milliseconds, sent as its `deadline` where
    /// `metadata` is in force (`[EXT-22]`); absent: the client's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// What the call must come to.
    pub expect: ExpectJson,
}

/// What a call must come to: `{"body_hex": "…"}` (this answer body),
/// `{"error_code": N}` (an error answer with code N), `"closed"` (the
/// call fails because the connection closed) or `"too_large"` (the call
/// fails because its answer grew past the client's answer limit).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExpectJson {
    /// The answer body, hex.
    BodyHex(String),
    /// An error answer with this code.
    ErrorCode(i64),
    /// The connection closed.
    Closed,
    /// The answer grew past the client's answer limit.
    TooLarge,
}

fn call_json(call: &CallAction) -> Result<CallJson, String> {
    let blob = |b: &crate::conformance::vector::Blob| b.to_bytes().map_err(|e| e.to_string());
    Ok(CallJson {
        path: call.path.clone(),
        body_hex: to_hex(&blob(&call.body)?),
        metadata: call.metadata.clone(),
        timeout_ms: call.timeout_ms,
        expect: match &call.expect {
            CallOutcome::Body(body) => ExpectJson::BodyHex(to_hex(&blob(body)?)),
            CallOutcome::ErrorCode(code) => ExpectJson::ErrorCode(*code),
            CallOutcome::Closed => ExpectJson::Closed,
            CallOutcome::TooLarge => ExpectJson::TooLarge,
        },
    })
}

/// The actions file of `case`.
pub fn actions_file(case: &ClientCase) -> Result<ActionsFile, String> {
    let actions = case
        .actions
        .iter()
        .map(|a| {
            Ok(match a {
                Action::Call(c) => ActionJson::Call(call_json(c)?),
                Action::Concurrent(cs) => ActionJson::Concurrent(cs.iter().map(call_json).collect::<Result<_, _>>()?),
                Action::Open => ActionJson::Open,
                Action::OpenFails => ActionJson::OpenFails,
                Action::Delete => ActionJson::Delete,
                Action::AnswerLimit(n) => ActionJson::AnswerLimit(*n),
                Action::Hello(h) => ActionJson::Hello(HelloJson {
                    compression: h.compression.clone(),
                    min_size: h.min_size,
                    going_away: h.going_away,
                    metadata: h.metadata,
                }),
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(ActionsFile { case: case.name.clone(), requirements: case.requirements.clone(), actions })
}

/// A client case as a [`NamedCase`], for the reports.
pub fn named(chapter: &str, case: &ClientCase) -> NamedCase {
    NamedCase {
        id: format!("client::{}", case.name),
        chapter: chapter.to_string(),
        case: Case {
            name: case.name.clone(),
            description: case.description.clone(),
            requirements: case.requirements.clone(),
            level: case.level,
            requires: Default::default(),
            excused_by: Vec::new(),
            generate: None,
            steps: case.steps.clone(),
        },
    }
}

/// Runs `command` (a shell command line with `{addr}` and `{actions}`)
/// through every case, each against a fresh scripted server; `timeout`
/// bounds each step, and each client run gets ten times that. A case whose
/// hello offers an extension the client does not declare in `extensions`
/// (`hello`, `lz4`, `zstd`, `going_away`, `metadata`) is skipped.
pub async fn run_client_suite(
    command: &str,
    cases: &[(String, ClientCase)],
    timeout: Duration,
    tls: Option<std::sync::Arc<crate::tls::ServerConfig>>,
    extensions: &[String],
) -> Vec<CaseResult> {
    let mut results = Vec::new();
    for (chapter, case) in cases {
        let started = Instant::now();
        let verdict = match case.skipped_for(extensions) {
            Some(why) => Verdict::Skipped(why),
            None => match run_client_case(command, case, timeout, tls.clone()).await {
                Ok(()) => Verdict::Passed,
                Err(failure) => Verdict::Failed(failure),
            },
        };
        results.push(CaseResult { case: named(chapter, case), verdict, elapsed: started.elapsed() });
    }
    results
}

async fn run_client_case(
    command: &str,
    case: &ClientCase,
    timeout: Duration,
    tls: Option<std::sync::Arc<crate::tls::ServerConfig>>,
) -> Result<(), Failure> {
    let setup = |e: std::io::Error| Failure::new(0, "a scripted server and an actions file", e.to_string());
    let server = match tls {
        Some(tls) => ScriptedServer::bind_tls("127.0.0.1:0", timeout, tls).await,
        None => ScriptedServer::bind("127.0.0.1:0", timeout).await,
    }
    .map_err(setup)?;
    let addr = server.local_addr().map_err(setup)?.to_string();
    let actions = actions_file(case).map_err(|e| Failure::new(0, "a valid case", e))?;
    let file = std::env::temp_dir().join(format!("iip-actions-{}-{}.json", std::process::id(), case.name));
    std::fs::write(&file, serde_json::to_vec_pretty(&actions).unwrap_or_default()).map_err(setup)?;
    let line = command.replace("{addr}", &addr).replace("{actions}", &file.display().to_string());
    let mut child = shell(&line)
        .env("IIP_ADDR", &addr)
        .env("IIP_ACTIONS", &file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Failure::new(0, format!("the client command to start: {line}"), e.to_string()))?;
    let stderr = child.stderr.take();
    let script = server.play(case);
    let client = async {
        let waited = tokio::time::timeout(timeout * 10, child.wait()).await;
        let mut said = String::new();
        if let Some(mut err) = stderr {
            let _ = tokio::time::timeout(
                Duration::from_millis(200),
                tokio::io::AsyncReadExt::read_to_string(&mut err, &mut said),
            )
            .await;
        }
        (waited, said)
    };
    // A client that ends (exits, or crashes before connecting) leaves the
    // script `timeout` to finish, not for ever.
    tokio::pin!(script, client);
    let (script, (waited, said)) = tokio::select! {
        played = &mut script => (played, client.await),
        ended = &mut client => {
            let played = match tokio::time::timeout(timeout, &mut script).await {
                Ok(played) => played,
                Err(_) => Err(Failure::new(0, "the client to connect and play the case", "it ended first")),
            };
            (played, ended)
        }
    };
    let _ = std::fs::remove_file(&file);
    script
        .map_err(|f| Failure { expected: format!("the client's frames to follow the script: {}", f.expected), ..f })?;
    let tail: String = said.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
    match waited {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(Failure::new(
            0,
            "the client to observe every expected outcome and exit 0",
            format!("it exited with {status}: {tail}"),
        )),
        Ok(Err(e)) => Err(Failure::new(0, "the client to run", e.to_string())),
        Err(_) => Err(Failure::new(0, "the client to finish", format!("still running after {:?}", timeout * 10))),
    }
}

/// `line` run by the platform's shell.
pub(crate) fn shell(line: &str) -> tokio::process::Command {
    if cfg!(windows) {
        let mut command = tokio::process::Command::new("cmd");
        command.args(["/C", line]);
        command
    } else {
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", line]);
        command
    }
}

fn unhex(text: &str) -> Result<Vec<u8>, String> {
    crate::conformance::vector::parse_hex(text).map_err(|e| e.to_string())
}

async fn perform(channel: &Channel, call: &CallJson) -> Result<(), String> {
    let mut made = crate::client::Call::new(call.path.clone(), unhex(&call.body_hex)?);
    for (key, value) in &call.metadata {
        made = made.with_metadata(key.clone(), value.clone());
    }
    if let Some(ms) = call.timeout_ms {
        made = made.with_timeout(Duration::from_millis(ms));
    }
    let result = channel.call_with(made).await;
    let ok = match (&call.expect, &result) {
        (ExpectJson::BodyHex(want), Ok(got)) => unhex(want)? == got[..],
        (ExpectJson::ErrorCode(want), Err(ClientError::Server { code, .. })) => want == code,
        (ExpectJson::Closed, Err(ClientError::Closed { .. })) => true,
        (ExpectJson::TooLarge, Err(ClientError::AnswerTooLarge { .. })) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("call {}: expected {:?}, got {result:?}", call.path, call.expect))
    }
}

/// What the reference client offers for a case: exactly what its hello
/// action names, or no hello at all (plain IIP/1: the scripted server then
/// expects the very frames the deployed client sends).
fn offered(file: &ActionsFile, timeout: Duration) -> Result<ClientExtensions, String> {
    if file.actions.iter().skip(1).any(|a| matches!(a, ActionJson::Hello(_))) {
        return Err("a hello can only be the first action".into());
    }
    let Some(ActionJson::Hello(hello)) = file.actions.first() else { return Ok(ClientExtensions::off()) };
    let compression = match &hello.compression {
        None => None,
        Some(name) => Some(
            crate::proto::extensions::Codec::from_name(name)
                .filter(|_| cfg!(feature = "compression"))
                .ok_or_else(|| format!("this client cannot offer the codec {name}"))?,
        ),
    };
    Ok(ClientExtensions {
        enabled: true,
        ping: None,
        limits: false,
        compression,
        min_compress: hello.min_size,
        going_away: hello.going_away,
        metadata: hello.metadata,
        hello_timeout: timeout,
    })
}

/// What this crate's client declares for the client cases: the
/// extensions `hello`, `going_away`, `metadata` and the codecs it was
/// built with, and `answer_limit`.
pub fn reference_client_extensions() -> Vec<String> {
    let mut declared = ["hello", "going_away", "metadata", "answer_limit"].map(String::from).to_vec();
    if cfg!(feature = "compression") {
        declared.extend(["lz4".to_string(), "zstd".to_string()]);
    }
    declared
}

/// Performs an actions file with this crate's client against `target`:
/// what `iip play-actions` does, and the model for a client under test.
pub async fn play_actions(target: &Endpoint, file: &ActionsFile, timeout: Duration) -> Result<(), String> {
    let extensions = offered(file, timeout)?;
    let max_answer = file.actions.iter().find_map(|a| match a {
        ActionJson::AnswerLimit(n) => Some(*n),
        _ => None,
    });
    let config = ClientConfig { timeout, extensions, max_answer, ..ClientConfig::default() };
    let client: Client = target.connect(config).await.map_err(|e| e.to_string())?;
    let mut channel = client.channel_zero();
    for action in &file.actions {
        match action {
            // Said by `connect`, before anything else; the limit is the config's.
            ActionJson::Hello(_) | ActionJson::AnswerLimit(_) => {}
            ActionJson::Call(call) => perform(&channel, call).await?,
            ActionJson::Concurrent(calls) => {
                let results = futures::future::join_all(calls.iter().map(|c| perform(&channel, c))).await;
                results.into_iter().collect::<Result<Vec<()>, String>>()?;
            }
            ActionJson::Open => channel = client.open_channel().await.map_err(|e| format!("open: {e}"))?,
            ActionJson::OpenFails => match client.open_channel().await {
                Err(ClientError::Closed { .. }) => {}
                Err(other) => return Err(format!("open: expected the connection to close, got {other}")),
                Ok(opened) => {
                    return Err(format!("open: expected the connection to close, got channel {}", opened.id()))
                }
            },
            ActionJson::Delete => {
                let current = std::mem::replace(&mut channel, client.channel_zero());
                current.delete().await.map_err(|e| format!("delete: {e}"))?;
            }
        }
    }
    Ok(())
}
