//! The tokio IIP client: a connection with channels, calls with timeouts,
//! pipelining, streaming responses, and a pool over channels and connections.
//!
//! ```no_run
//! # async fn run() -> Result<(), iip::client::ClientError> {
//! let client = iip::client::Client::connect("127.0.0.1:9090").await?;
//! let channel = client.open_channel().await?;
//! let answer = channel.call("/echo", "hello").await?;
//! assert_eq!(&answer[..], b"hello");
//! # Ok(()) }
//! ```

#[cfg(not(loom))]
mod api;
#[cfg(not(loom))]
mod connection;
#[cfg(not(loom))]
pub mod endpoint;
pub mod mux;
#[cfg(not(loom))]
pub mod pool;
#[cfg(not(loom))]
pub mod service;

use std::time::Duration;

#[cfg(not(loom))]
pub use api::{Channel, Client};
#[cfg(not(loom))]
pub use endpoint::{BoxStream, Endpoint, TlsTarget};
pub use mux::{Delivery, Inbox, Mux};
#[cfg(not(loom))]
pub use pool::Pool;
#[cfg(not(loom))]
pub use service::{Call, CallFuture};

use crate::proto::client::RequestError;
use crate::wire::frame::FrameLimits;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No complete answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection closed before the answer came (`[CLOSE-5]`).
    #[error("connection closed: {0}")]
    Closed(String),
    /// The server answered with an error answer (`[ANSWER-4]`).
    #[error("server error {code}: {message}")]
    Server {
        /// The code.
        code: i64,
        /// The message.
        message: String,
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

/// Settings of a client.
#[derive(Debug, Clone, Copy)]
pub struct ClientConfig {
    /// Frame limits: reading, and the size at which bodies are chunked.
    /// Default [`FrameLimits::default`] (16 MiB frames).
    pub frame_limits: FrameLimits,
    /// How long a call waits for its answer before it fails with
    /// [`ClientError::Timeout`]. Default 30 s.
    pub timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig { frame_limits: FrameLimits::default(), timeout: Duration::from_secs(30) }
    }
}
