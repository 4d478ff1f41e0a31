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

mod connection;
pub mod pool;

use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot};

pub use pool::Pool;

use crate::answer::ErrorAnswer;
use crate::frame::FrameLimits;
use crate::proto::client::RequestError;
use connection::{Command, Reply};

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
    /// Connecting failed.
    #[error("connect failed: {0}")]
    Connect(String),
}

/// Settings of a client.
#[derive(Debug, Clone, Copy)]
pub struct ClientConfig {
    /// Frame limits: reading, and the size at which bodies are chunked.
    pub frame_limits: FrameLimits,
    /// How long a call waits for its answer.
    pub timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig { frame_limits: FrameLimits::default(), timeout: Duration::from_secs(30) }
    }
}

/// One client connection. Cheap to clone; every clone shares the connection.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    config: ClientConfig,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl Client {
    /// Connects with default settings.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Client, ClientError> {
        Client::connect_with(addr, ClientConfig::default()).await
    }

    /// Connects with `config`.
    pub async fn connect_with(addr: impl ToSocketAddrs, config: ClientConfig) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await.map_err(|e| ClientError::Connect(e.to_string()))?;
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(connection::run(stream, config.frame_limits, rx));
        Ok(Client { commands, config })
    }

    /// Channel 0, which every connection has (`[CHAN-1]`).
    pub fn channel_zero(&self) -> Channel {
        Channel { client: self.clone(), id: 0 }
    }

    /// Calls `path` on channel 0.
    pub async fn call(&self, path: impl Into<Bytes>, body: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        self.channel_zero().call(path, body).await
    }

    /// Opens a new channel and waits until the server has granted it (`[CHAN-5]`).
    pub async fn open_channel(&self) -> Result<Channel, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Open { via: 0, reply })?;
        let id = self.wait(rx).await??;
        Ok(Channel { client: self.clone(), id })
    }

    /// The settings in force.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether the connection is still up.
    pub fn is_connected(&self) -> bool {
        !self.commands.is_closed()
    }

    fn send(&self, command: Command) -> Result<(), ClientError> {
        self.commands.send(command).map_err(|_| ClientError::Closed("connection closed".into()))
    }

    async fn wait<T>(&self, rx: oneshot::Receiver<T>) -> Result<T, ClientError> {
        match tokio::time::timeout(self.config.timeout, rx).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(ClientError::Closed("connection closed".into())),
            Err(_) => Err(ClientError::Timeout(self.config.timeout)),
        }
    }
}

/// A channel of a client connection. Calls made on it concurrently are
/// pipelined and answered in order (`[ORDER-2]`).
#[derive(Debug, Clone)]
pub struct Channel {
    client: Client,
    id: u32,
}

impl Channel {
    /// The channel id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Calls `path` with `body` and returns the response body; an error
    /// answer becomes [`ClientError::Server`] (`[ANSWER-4]`).
    pub async fn call(&self, path: impl Into<Bytes>, body: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        let body = self.call_raw(path, body).await?;
        match ErrorAnswer::parse(&body) {
            Some(answer) => Err(ClientError::Server { code: answer.code, message: answer.message }),
            None => Ok(body),
        }
    }

    /// Calls `path` and returns the response body as it is, error answers included.
    pub async fn call_raw(&self, path: impl Into<Bytes>, body: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        self.call_raw_timeout(path, body, self.client.config.timeout).await
    }

    /// Like [`Channel::call_raw`] with its own timeout.
    pub async fn call_raw_timeout(
        &self,
        path: impl Into<Bytes>,
        body: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.client.send(Command::Call {
            channel: self.id,
            path: path.into(),
            body: body.into(),
            reply: Reply::Whole(tx),
        })?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::Closed("connection closed".into())),
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    /// Calls `path` and yields the response frame by frame, for responses
    /// that arrive in several frames (`[MSG-2]`). No timeout applies.
    pub fn call_stream(
        &self,
        path: impl Into<Bytes>,
        body: impl Into<Bytes>,
    ) -> impl Stream<Item = Result<Bytes, ClientError>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let sent = self.client.send(Command::Call {
            channel: self.id,
            path: path.into(),
            body: body.into(),
            reply: Reply::Stream(tx.clone()),
        });
        if let Err(err) = sent {
            let _ = tx.send(Err(err));
        }
        drop(tx);
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
    }

    /// Deletes the channel (`[CHAN-7]`). Calls already made on it still get
    /// their answers.
    pub async fn delete(self) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        self.client.send(Command::Delete { channel: self.id, reply })?;
        self.client.wait(rx).await?
    }
}
