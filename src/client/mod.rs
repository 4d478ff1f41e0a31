//! The tokio IIP client.
//!
//! - [`Client`] and [`Channel`]: one connection, its channels, pipelined
//!   calls with timeouts, streaming responses. A dead connection fails its
//!   calls with [`ClientError::Closed`], saying whether each request may
//!   have reached the server.
//! - [`Backend`]: one server behind a connection that reconnects with
//!   back-off and jitter; [`Pool`]: several of them to one server.
//! - [`Balancer`]: several servers, picked per call by a [`Strategy`],
//!   health-checked ([`HealthCheck`]), from a list, a DNS name or any
//!   `tower::discover::Discover` ([`discovery`]).
//! - Every one of them is a `tower::Service<`[`Call`]`>`; [`retry::RetryPolicy`]
//!   retries only what cannot run twice unless a route is idempotent.
//!
//! ```no_run
//! # async fn run() -> Result<(), iip::client::ClientError> {
//! let client = iip::client::Client::connect("127.0.0.1:9090").await?;
//! let channel = client.open_channel().await?;
//! let answer = channel.call("/echo", "hello").await?;
//! assert_eq!(&answer[..], b"hello");
//! # Ok(()) }
//! ```

/// The items that build on tokio's and std's sync types, which the loom
/// build of the multiplexer (`tests/loom.rs`) leaves out.
macro_rules! without_loom {
    ($($item:item)*) => {$( #[cfg(not(loom))] $item )*};
}

pub mod mux;
pub use mux::{Delivery, Inbox, Mux};

without_loom! {
    mod api;
    pub mod backend;
    pub mod balance;
    mod call;
    mod connection;
    pub mod discovery;
    pub mod endpoint;
    pub mod extensions;
    pub mod pool;
    pub mod retry;
    pub mod service;

    pub use api::{Channel, Client};
    pub use backend::{Backend, BackendConfig, BackendStatus, Backoff};
    pub use balance::{rendezvous_score, Balancer, BalancerConfig, Endpoints, HealthCheck, Strategy};
    pub use call::Call;
    pub use endpoint::{BoxStream, Endpoint, TlsTarget};
    pub use extensions::{ClientExtensions, PingConfig};
    pub use pool::Pool;
    pub use service::CallFuture;
}

use std::time::Duration;

use crate::proto::client::RequestError;
use crate::wire::frame::FrameLimits;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No complete answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection closed before the answer came (`[CLOSE-5]`). `sent`
    /// tells whether the request had been handed to the connection's writer:
    /// when false the server never saw it and sending it again is safe; when
    /// true the server may have received and processed it.
    #[error("connection closed: {reason}; the request {}", if *sent { "may have reached the server" } else { "was not sent" })]
    Closed {
        /// Why the connection closed.
        reason: String,
        /// Whether the request may have reached the server.
        sent: bool,
    },
    /// No connection to any server could be had within the call's timeout
    /// (a reconnecting client or a balancer whose servers are all down or
    /// paused). The request was not sent.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The server answered with an error answer (`[ANSWER-4]`).
    #[error("server error {code}: {message}")]
    Server {
        /// The code.
        code: i64,
        /// The message.
        message: String,
    },
    /// The server went silent: nothing arrived within the ping timeout of
    /// a ping (`[EXT-7]`), so the connection was closed. `sent` as for
    /// [`ClientError::Closed`].
    #[error("dead peer: nothing received from the server for {silent:?}; the request {}", if *sent { "may have reached the server" } else { "was not sent" })]
    DeadPeer {
        /// How long nothing had arrived.
        silent: Duration,
        /// Whether the request may have reached the server.
        sent: bool,
    },
    /// The server refused the hello's credentials, or requires them and
    /// none were given (code 112, `[EXT-8]`, `[EXT-9]`).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The answer was larger than [`ClientConfig::max_answer`]: the call
    /// failed, the rest of the answer was dropped as it came, and the
    /// connection goes on.
    #[error("the answer is larger than the client's limit of {limit} bytes")]
    AnswerTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The request could not be sent as asked.
    #[error(transparent)]
    Refused(#[from] RequestError),
    /// Connecting failed; names the address.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The TLS handshake failed; names the address and the cause (an
    /// unknown issuer, an expired certificate, a name mismatch, a peer that
    /// does not speak TLS).
    #[error("{0}")]
    Tls(String),
}

impl ClientError {
    /// A closed connection that the request never reached.
    pub fn not_sent(reason: impl Into<String>) -> ClientError {
        ClientError::Closed { reason: reason.into(), sent: false }
    }

    /// Whether the server may have received (and processed) the request:
    /// false only when it certainly did not (not sent, no connection,
    /// refused locally), so that sending it again cannot run it twice.
    pub fn may_have_reached_server(&self) -> bool {
        match self {
            ClientError::Closed { sent, .. } | ClientError::DeadPeer { sent, .. } => *sent,
            ClientError::Timeout(_) | ClientError::Server { .. } | ClientError::AnswerTooLarge { .. } => true,
            ClientError::Unavailable(_)
            | ClientError::Refused(_)
            | ClientError::Connect(_)
            | ClientError::Tls(_)
            | ClientError::Unauthenticated(_) => false,
        }
    }

    /// The code of an error answer, if this is one (`[ANSWER-4]`).
    pub fn code(&self) -> Option<i64> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the connection (not the server's answer) failed: a closed
    /// connection, a timeout, no connection at all. A balancer's health
    /// check counts these against a server.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            ClientError::Closed { .. }
                | ClientError::DeadPeer { .. }
                | ClientError::Timeout(_)
                | ClientError::Unavailable(_)
                | ClientError::Connect(_)
                | ClientError::Tls(_)
        )
    }
}

/// Settings of a client.
///
/// Start from `default()` and set the fields to change: the struct is
/// `#[non_exhaustive]`, so a field added later breaks no caller.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Frame limits: reading, and the size at which bodies are chunked.
    /// Default [`FrameLimits::default`] (16 MiB frames).
    pub frame_limits: FrameLimits,
    /// How long a call waits for its answer before it fails with
    /// [`ClientError::Timeout`]. Default 30 s.
    pub timeout: Duration,
    /// What the client offers in its hello (spec chapter 14). Default:
    /// a hello offering `ping`, `limits` and `going_away`; against a server
    /// without extensions it falls back to plain IIP/1.
    #[cfg(not(loom))]
    pub extensions: ClientExtensions,
    /// The largest answer a call takes, in bytes, as it comes and once
    /// inflated: a larger one fails that call with
    /// [`ClientError::AnswerTooLarge`] and leaves the others working, so a
    /// hostile server cannot make the client hold without end. Default
    /// `None`: 64 MiB ([`crate::proto::client::DEFAULT_MAX_ANSWER`]), or the
    /// `max_message` the server advertised in its hello (`[EXT-10]`) when
    /// that is larger — a server that takes requests that large may answer
    /// with bodies as large.
    pub max_answer: Option<usize>,
}

impl ClientConfig {
    /// The answer limit in force on a connection whose hello agreed
    /// `agreed` (see [`ClientConfig::max_answer`]).
    pub(crate) fn answer_limit(&self, agreed: Option<&crate::proto::extensions::Agreed>) -> usize {
        let advertised = agreed.and_then(|a| a.limits.as_ref()).map(|l| usize::try_from(l.max_message));
        match (self.max_answer, advertised) {
            (Some(limit), _) => limit,
            (None, Some(Ok(max_message))) => max_message.max(crate::proto::client::DEFAULT_MAX_ANSWER),
            (None, Some(Err(_))) => usize::MAX,
            (None, None) => crate::proto::client::DEFAULT_MAX_ANSWER,
        }
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            frame_limits: FrameLimits::default(),
            timeout: Duration::from_secs(30),
            #[cfg(not(loom))]
            extensions: ClientExtensions::default(),
            max_answer: None,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::proto::client::DEFAULT_MAX_ANSWER;
    use crate::proto::extensions::{Agreed, Limits};

    fn advertising(max_message: u64) -> Agreed {
        Agreed { limits: Some(Limits { max_message, ..Limits::default() }), ..Agreed::default() }
    }

    #[test]
    fn the_answer_limit_follows_the_advertised_max_message_unless_set() {
        let default = ClientConfig::default();
        assert_eq!(default.answer_limit(None), DEFAULT_MAX_ANSWER);
        assert_eq!(default.answer_limit(Some(&Agreed::default())), DEFAULT_MAX_ANSWER);
        assert_eq!(default.answer_limit(Some(&advertising(1_000))), DEFAULT_MAX_ANSWER);
        assert_eq!(default.answer_limit(Some(&advertising(256 << 20))), 256 << 20);
        let set = ClientConfig { max_answer: Some(4096), ..ClientConfig::default() };
        assert_eq!(set.answer_limit(Some(&advertising(256 << 20))), 4096);
    }
}
