//! The server's side of the IIP/1 extensions (spec chapter 14): which it
//! accepts ([`ExtensionsConfig`]), the pluggable [`Authenticator`], and the
//! answer to a connection's `/sys/hello`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::proto::extensions::hello::AuthAgreed;
use crate::proto::extensions::{Agreed, AuthPolicy, Codec, Credentials, HelloRequest, Limits, ServerExtensions};
use crate::wire::answer::{ErrorAnswer, ErrorCode};

use super::auth_pace::{AuthPace, Turn, MAX_WAIT};
use super::transport::Peer;
use super::ServerConfig;

/// Which extensions the server accepts (the `[extensions]` table of a
/// configuration file; every key optional). Each is switchable; with
/// `enabled` false the server is a plain IIP/1 server and answers
/// `/sys/hello` with 102, as the deployed implementation does.
///
/// Start from `default()` and set the fields to change: the struct is
/// `#[non_exhaustive]`, so a field added later breaks no caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ExtensionsConfig {
    /// Answer `/sys/hello` at all. Default true.
    pub enabled: bool,
    /// Accept `ping` and answer `/sys/ping` (`[EXT-6]`). Default true.
    pub ping: bool,
    /// Advertise the server's limits (`[EXT-10]`). Default true.
    pub limits: bool,
    /// Accept LZ4 compression (`[EXT-11]`). Default true when built with
    /// the `compression` feature.
    pub lz4: bool,
    /// Accept zstd compression. Default true when built with `compression`.
    pub zstd: bool,
    /// The smallest body the server compresses; the agreed threshold is
    /// the larger of this and the client's. Default 1,024 bytes.
    pub min_compress: u64,
    /// Accept `going_away` (`[EXT-16]`): on a graceful shutdown such a
    /// client is told to stop sending and given half the grace period to
    /// finish, while the server goes on reading. Default true.
    pub going_away: bool,
    /// What a failed authentication costs its source address
    /// (`[RES-10]`): past four failures, each further one delays that
    /// source's next check by this long, and a source more than 10 s behind
    /// is refused without a check. Failures are logged as a summary once a
    /// minute. `0` switches the pace off. Default 1 s.
    #[serde(with = "crate::seconds::required")]
    pub auth_failure_interval: Duration,
    /// Accept `metadata` (`[EXT-17]`): request bodies start with a block
    /// of keys and values, whose `deadline` the server keeps
    /// (`[EXT-22]`). Default true.
    pub metadata: bool,
    /// The largest metadata block taken, in bytes (`[EXT-17]`); a longer
    /// one closes the connection (`[EXT-20]`). Default 8,192.
    pub metadata_max_size: u16,
}

impl Default for ExtensionsConfig {
    fn default() -> Self {
        let built_in = !Codec::built_in().is_empty();
        ExtensionsConfig {
            enabled: true,
            ping: true,
            limits: true,
            lz4: built_in,
            zstd: built_in,
            min_compress: 1024,
            going_away: true,
            auth_failure_interval: Duration::from_secs(1),
            metadata: true,
            metadata_max_size: crate::proto::extensions::metadata::DEFAULT_MAX_SIZE,
        }
    }
}

impl ExtensionsConfig {
    /// Every extension off: a plain IIP/1 server.
    pub fn off() -> ExtensionsConfig {
        ExtensionsConfig { enabled: false, ..ExtensionsConfig::default() }
    }

    /// What the sans-IO negotiation accepts under `config`, with the
    /// server's limits and idle timeout filled in.
    pub(crate) fn negotiation(&self, config: &ServerConfig) -> ServerExtensions {
        let idle_timeout_ms = config.timeouts.idle.map(|d| d.as_millis() as u64);
        let core = &config.core;
        let limits = Limits {
            max_channels: core.max_channels,
            max_message: core.max_message.min(core.max_held_bytes) as u64,
            max_in_flight: config.max_in_flight as u64,
            max_in_flight_per_channel: config.max_in_flight as u64,
            max_frame_data: core.frame_limits.max_data,
            max_path: core.frame_limits.max_path as u32,
            idle_timeout_ms,
        };
        let codecs = [(Codec::Lz4, self.lz4), (Codec::Zstd, self.zstd)];
        ServerExtensions {
            enabled: self.enabled,
            ping: self.ping,
            limits: self.limits.then_some(limits),
            codecs: codecs.into_iter().filter(|(c, on)| *on && Codec::built_in().contains(c)).map(|(c, _)| c).collect(),
            min_compress: self.min_compress,
            going_away: self.going_away,
            idle_timeout_ms,
            metadata: self.metadata.then_some(self.metadata_max_size),
        }
    }
}

/// Why an authenticator refused credentials; the client gets code 112
/// with the message `unauthenticated` whatever the reason (the reason goes
/// to the server's log only, so that it tells an attacker nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// Checks the credentials of a hello (`[EXT-8]`). Runs on the connection's
/// task, before anything else of that connection; it may await (a database,
/// an identity provider).
pub trait Authenticator: Send + Sync + 'static {
    /// The identity the credentials prove, or why they prove none.
    fn authenticate(&self, peer: &Peer, credentials: &Credentials) -> BoxFuture<'static, Result<String, AuthError>>;
}

/// An [`Authenticator`] of fixed bearer tokens: scheme `bearer`, each
/// token mapped to an identity.
#[derive(Clone, Default)]
pub struct BearerTokens {
    tokens: HashMap<String, String>,
}

impl std::fmt::Debug for BearerTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerTokens").field("tokens", &self.tokens.len()).finish()
    }
}

impl BearerTokens {
    /// No tokens yet: every credential is refused.
    pub fn new() -> BearerTokens {
        BearerTokens::default()
    }

    /// Accepts `token` as `identity`.
    pub fn with(mut self, token: impl Into<String>, identity: impl Into<String>) -> BearerTokens {
        self.tokens.insert(token.into(), identity.into());
        self
    }
}

impl Authenticator for BearerTokens {
    fn authenticate(&self, _peer: &Peer, credentials: &Credentials) -> BoxFuture<'static, Result<String, AuthError>> {
        // Scheme names are compared without regard to ASCII case ([EXT-8]).
        let bearer = credentials.scheme.eq_ignore_ascii_case("bearer");
        let result = match (bearer, self.tokens.get(&credentials.credentials)) {
            (true, Some(identity)) => Ok(identity.clone()),
            (true, None) => Err(AuthError("unknown bearer token".into())),
            (false, _) => Err(AuthError(format!("unsupported scheme {:?}", credentials.scheme))),
        };
        Box::pin(std::future::ready(result))
    }
}

/// How often a hello whose source has checks running asks for its turn again.
const BUSY_RECHECK: Duration = Duration::from_millis(10);

/// The authenticator and how it is applied.
#[derive(Clone)]
pub(crate) struct Authentication {
    pub(crate) policy: AuthPolicy,
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    /// What failures cost their sources, shared by all connections.
    pub(crate) pace: Arc<AuthPace>,
}

/// How a hello ends.
#[derive(Debug)]
pub(crate) enum HelloOutcome {
    /// Answered with what was agreed; the client is `identity` if it authenticated.
    Agreed { agreed: Agreed, identity: Option<Arc<str>> },
    /// Answered with an error; the connection stays plain, or closes with the reason.
    Refused { close: Option<&'static str> },
    /// Not answered: the connection closes with the reason.
    Unanswered { close: &'static str },
}

/// The answer to a connection's hello and what follows from it.
pub(crate) async fn answer_hello(
    negotiation: &ServerExtensions,
    auth: Authentication,
    peer: Peer,
    body: Bytes,
) -> (Bytes, HelloOutcome) {
    // Credentials refused cite [EXT-8]; none where they are required, [EXT-9].
    let unauthenticated = |close: &'static str| {
        let answer = ErrorAnswer::named(ErrorCode::Unauthenticated);
        (answer.to_body(), HelloOutcome::Refused { close: Some(close) })
    };
    let Some(offer) = HelloRequest::parse(&body) else {
        // Not an offer: answered as a route without handler, the connection stays plain ([EXT-1]).
        if auth.policy == AuthPolicy::Required {
            return unauthenticated("[EXT-9] unauthenticated");
        }
        return (ErrorAnswer::no_handler().to_body(), HelloOutcome::Refused { close: None });
    };
    let mut answer = negotiation.agree(&offer);
    let mut identity = None;
    match (auth.policy, &auth.authenticator, &offer.extensions.auth) {
        (AuthPolicy::Off, _, _) | (AuthPolicy::Optional, _, None) | (_, None, _) => {}
        (AuthPolicy::Required, Some(_), None) => return unauthenticated("[EXT-9] unauthenticated"),
        (_, Some(authenticator), Some(credentials)) => {
            let source = peer.socket_addr().map(|addr| addr.ip());
            let asked = Instant::now();
            loop {
                match auth.pace.turn(source, Instant::now()) {
                    Turn::After(wait) => {
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                        }
                        break;
                    }
                    // Another check from there runs: ask again shortly.
                    Turn::Busy if asked.elapsed() < MAX_WAIT => tokio::time::sleep(BUSY_RECHECK).await,
                    Turn::Busy | Turn::Refused => {
                        // Neither checked nor answered: held for as long
                        // as the source would have waited at most, then closed.
                        tracing::debug!(%peer, "hello dropped: its source failed too often");
                        tokio::time::sleep(MAX_WAIT.saturating_sub(asked.elapsed())).await;
                        let close = "[RES-10] too many failed authentications";
                        return (Bytes::new(), HelloOutcome::Unanswered { close });
                    }
                }
            }
            match authenticator.authenticate(&peer, credentials).await {
                Ok(who) => {
                    auth.pace.succeeded(source);
                    answer.extensions.auth = Some(AuthAgreed { identity: who.clone() });
                    identity = Some(Arc::from(who));
                }
                Err(err) => {
                    auth.pace.failed(source, Instant::now());
                    tracing::debug!(%peer, %err, "hello refused");
                    return unauthenticated("[EXT-8] unauthenticated");
                }
            }
        }
    }
    let text = serde_json::to_vec(&answer).unwrap_or_default();
    (Bytes::from(text), HelloOutcome::Agreed { agreed: answer.extensions, identity })
}
