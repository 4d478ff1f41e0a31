//! The client's side of the IIP/1 extensions (spec chapter 14): what it
//! offers ([`ClientExtensions`]), the hello at connect, the liveness task,
//! and the limits it keeps to.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::proto::extensions::{
    Agreed, Codec, CompressionOffer, Credentials, HelloAnswer, HelloRequest, Liveness, LivenessAction, Offer, HELLO,
    PING, REVISION,
};
use crate::sync::Arc;
use crate::wire::answer::{ErrorAnswer, ErrorCode};

use super::mux::Mux;
use super::ClientError;

/// Liveness settings: ping after `interval` without a frame (at most half
/// the server's idle timeout), and declare the server dead when nothing
/// arrives within `timeout` of the ping (`[EXT-7]`).
///
/// Start from `default()` and set the fields to change: the struct is
/// `#[non_exhaustive]`, so a field added later breaks no caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PingConfig {
    /// Silence after which a ping goes out. Default 15 s.
    pub interval: Duration,
    /// How long a ping may go unanswered (with nothing else arriving)
    /// before every call fails with [`ClientError::DeadPeer`]. Default 10 s.
    pub timeout: Duration,
}

impl Default for PingConfig {
    fn default() -> Self {
        PingConfig { interval: Duration::from_secs(15), timeout: Duration::from_secs(10) }
    }
}

/// What the client offers in its hello (spec chapter 14). Against a server
/// without extensions (the Go server, or ours with them off) the hello is
/// answered 102 and the client carries on in plain IIP/1 (`[EXT-5]`).
///
/// Start from `default()` and set the fields to change: the struct is
/// `#[non_exhaustive]`, so a field added later breaks no caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientExtensions {
    /// Say hello at all. Default true; false for a plain IIP/1 client that
    /// sends exactly what the deployed client sends.
    pub enabled: bool,
    /// Offer `ping`. Default on with [`PingConfig::default`].
    pub ping: Option<PingConfig>,
    /// Ask for the server's limits and keep to them: a body larger than its
    /// message limit, or a channel past its channel limit, is refused
    /// locally with [`crate::proto::client::RequestError::OverLimit`]. Default true.
    pub limits: bool,
    /// The codec to offer (`[EXT-11]`); `None` offers no compression.
    /// Default `None`: the marker costs a copy of every body, worth it only
    /// for large compressible ones.
    pub compression: Option<Codec>,
    /// The smallest body this client compresses. Default 1,024 bytes.
    pub min_compress: u64,
    /// Offer `going_away` (`[EXT-16]`). Default true.
    pub going_away: bool,
    /// Offer `metadata` (`[EXT-17]`): where the server accepts it, every
    /// request carries a metadata block with the call's deadline (its
    /// timeout) and whatever [`crate::client::Call::with_metadata`] and
    /// [`crate::client::Call::inherit`] add. Where it does not (the Go
    /// server, or ours with extensions off) nothing is sent and deadlines
    /// are kept by the client alone. Default false: the block costs a copy
    /// of every request body.
    pub metadata: bool,
    /// How long the hello may take (at most the client's call timeout);
    /// a server that does not answer in time fails the connect with
    /// [`ClientError::Timeout`]. Default 10 s.
    pub hello_timeout: Duration,
}

impl Default for ClientExtensions {
    fn default() -> Self {
        ClientExtensions {
            enabled: true,
            ping: Some(PingConfig::default()),
            limits: true,
            compression: None,
            min_compress: 1024,
            going_away: true,
            metadata: false,
            hello_timeout: Duration::from_secs(10),
        }
    }
}

impl ClientExtensions {
    /// No hello: a plain IIP/1 client.
    pub fn off() -> ClientExtensions {
        ClientExtensions { enabled: false, ..ClientExtensions::default() }
    }

    /// The hello body offering these extensions and `credentials`.
    pub fn offer(&self, credentials: Option<&Credentials>) -> HelloRequest {
        let empty = Some(crate::proto::extensions::hello::Empty {});
        HelloRequest {
            revision: REVISION,
            extensions: Offer {
                ping: self.ping.and(empty),
                auth: credentials.cloned(),
                limits: if self.limits { empty } else { None },
                compression: self
                    .compression
                    .map(|c| CompressionOffer { codecs: vec![c.name().to_string()], min_size: self.min_compress }),
                going_away: if self.going_away { empty } else { None },
                metadata: if self.metadata { empty } else { None },
            },
        }
    }
}

/// Says hello on channel 0 (the connection's first request) and returns
/// what was agreed: `None` when the server answers with an error other than
/// 112 (it has no extensions; `[EXT-5]`).
pub(crate) async fn say_hello(
    channel: &super::Channel,
    extensions: &ClientExtensions,
    credentials: Option<&Credentials>,
) -> Result<Option<Agreed>, ClientError> {
    let body = serde_json::to_vec(&extensions.offer(credentials)).unwrap_or_default();
    let timeout = extensions.hello_timeout.min(channel.client().config().timeout);
    let answer = channel
        .call_with(crate::client::Call::new(Bytes::from_static(HELLO), body).with_timeout(timeout).raw())
        .await?;
    if let Some(error) = ErrorAnswer::parse(&answer) {
        if error.code == ErrorCode::Unauthenticated.value() {
            return Err(ClientError::Unauthenticated(error.message));
        }
        // Not an answer to the hello: the server refuses the connection
        // ([ANSWER-5]) and closes it.
        if error.code == ErrorCode::ServerConnectionsLimited.value() {
            return Err(ClientError::Server { code: error.code, message: error.message });
        }
        tracing::debug!(code = error.code, "no extensions: plain IIP/1");
        return Ok(None);
    }
    match serde_json::from_slice::<HelloAnswer>(&answer) {
        Ok(answer) => Ok(Some(answer.extensions)),
        // Not an answer this revision reads: carry on plain.
        Err(err) => {
            tracing::debug!(%err, "unreadable hello answer: plain IIP/1");
            Ok(None)
        }
    }
}

/// Pings when the connection is silent and closes it as dead when a ping
/// goes unanswered (`[EXT-7]`); ends with the connection.
pub(crate) async fn keep_alive(
    mux: Arc<Mux>,
    wake_writer: std::sync::Arc<tokio::sync::Notify>,
    mut ended: tokio::sync::watch::Receiver<bool>,
    interval: Duration,
    timeout: Duration,
) {
    let mut liveness = Liveness::new(interval, timeout, Instant::now());
    loop {
        tokio::select! {
            _ = ended.wait_for(|ended| *ended) => return,
            _ = tokio::time::sleep_until(liveness.deadline().into()) => {}
        }
        let now = Instant::now();
        liveness.observe(now, mux.frames_received());
        match liveness.poll(now) {
            None => {}
            // The answer is dropped on arrival: any frame is proof of life.
            Some(LivenessAction::Ping) => match Mux::call(&mux, 0, Bytes::from_static(PING), Bytes::from_static(b"{}"))
            {
                Ok(_inbox) => wake_writer.notify_one(),
                Err(_) => return,
            },
            Some(LivenessAction::Dead { silent }) => {
                tracing::info!(?silent, "[EXT-7] dead peer: closing the connection");
                mux.close_dead(silent);
                wake_writer.notify_one();
                return;
            }
        }
    }
}
