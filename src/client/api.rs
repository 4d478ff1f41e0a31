//! The async client API over a [`Connection`]: [`Client`] and [`Channel`].

use std::sync::Arc as StdArc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::net::{TcpStream, ToSocketAddrs};
use tracing::Instrument;

use crate::proto::client::RequestError;
use crate::proto::extensions::metadata::MetadataMap;
use crate::wire::answer::ErrorAnswer;

use super::connection::Connection;
use super::{Call, ClientConfig, ClientError, Delivery, Inbox, Mux};

/// One client connection. Cheap to clone; every clone shares the
/// connection, which closes when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Client {
    connection: StdArc<Connection>,
    config: ClientConfig,
}

impl Client {
    /// Connects with default settings.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Client, ClientError> {
        Client::connect_with(addr, ClientConfig::default()).await
    }

    /// Connects with `config`, and says hello unless its extensions are
    /// off (see [`Client::hello`]).
    pub async fn connect_with(addr: impl ToSocketAddrs, config: ClientConfig) -> Result<Client, ClientError> {
        let client = Client::connect_tcp(addr, config).await?;
        client.hello(None).await?;
        Ok(client)
    }

    /// Connects over TCP without a hello.
    pub(crate) async fn connect_tcp(addr: impl ToSocketAddrs, config: ClientConfig) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await.map_err(|e| ClientError::Connect(e.to_string()))?;
        let connection = Connection::start(stream, config.frame_limits);
        connection.mux.set_max_answer(config.answer_limit(None));
        Ok(Client { connection: StdArc::new(connection), config })
    }

    /// Runs a client connection over any byte stream the caller opened: a
    /// TLS stream, a Unix socket, an in-memory pipe. No hello is said: call
    /// [`Client::hello`] before anything else to negotiate extensions.
    pub fn over<S>(stream: S, config: ClientConfig) -> Client
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let connection = Connection::start_stream(stream, config.frame_limits);
        connection.mux.set_max_answer(config.answer_limit(None));
        Client { connection: StdArc::new(connection), config }
    }

    #[cfg(feature = "tls")]
    /// Connects inside TLS; `server_name` is the name (or IP address) the
    /// server's certificate must carry.
    pub async fn connect_tls(
        addr: &str,
        server_name: &str,
        tls: StdArc<crate::tls::ClientConfig>,
        config: ClientConfig,
    ) -> Result<Client, ClientError> {
        let name = crate::tls::server_name(server_name).map_err(|e| ClientError::Tls(e.to_string()))?;
        super::Endpoint::new(addr).with_tls(tls, name).connect(config).await
    }

    /// Connects to a Unix domain socket.
    #[cfg(unix)]
    pub async fn connect_unix(path: impl AsRef<std::path::Path>, config: ClientConfig) -> Result<Client, ClientError> {
        let path = path.as_ref();
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|e| ClientError::Connect(format!("unix:{}: {e}", path.display())))?;
        Ok(Client::over(stream, config))
    }

    /// Says hello (`[EXT-1]`) offering the configured extensions and
    /// `credentials`, and puts what the server agreed in force; a server
    /// without extensions answers 102 and the connection stays plain IIP/1
    /// (`[EXT-5]`). Must be the connection's first request; does nothing
    /// when the extensions are off or a hello was already said. Fails with
    /// [`ClientError::Unauthenticated`] when the server refuses the
    /// credentials (the connection is then closed by the server).
    pub async fn hello(&self, credentials: Option<&crate::proto::extensions::Credentials>) -> Result<(), ClientError> {
        let extensions = self.config.extensions;
        if !extensions.enabled || self.connection.negotiated.get().is_some() {
            return Ok(());
        }
        let agreed = super::extensions::say_hello(&self.channel_zero(), &extensions, credentials).await?;
        let max_answer = self.config.answer_limit(agreed.as_ref());
        let body_codec = agreed.as_ref().and_then(|a| a.body_codec(max_answer));
        let metadata_max = agreed.as_ref().and_then(|a| a.metadata_max());
        if let Some(agreed) = &agreed {
            self.connection.mux.set_max_answer(max_answer);
            self.connection.mux.set_extensions(body_codec, agreed.going_away.is_some(), metadata_max.is_some());
            if let (Some(ping), Some(answer)) = (extensions.ping, &agreed.ping) {
                let interval = crate::proto::extensions::Liveness::interval_for(ping.interval, answer.idle_timeout_ms);
                let connection = &self.connection;
                tokio::spawn(super::extensions::keep_alive(
                    connection.mux.clone(),
                    connection.wake_writer.clone(),
                    connection.ended.clone(),
                    interval,
                    ping.timeout,
                ));
            }
        }
        let _ = self.connection.negotiated.set(super::connection::Negotiated { agreed, body_codec, metadata_max });
        Ok(())
    }

    /// What the hello agreed: `None` before it or when the connection is
    /// plain IIP/1 (no hello, or a server without extensions).
    pub fn agreed(&self) -> Option<&crate::proto::extensions::Agreed> {
        self.connection.negotiated.get().and_then(|n| n.agreed.as_ref())
    }

    /// Channel 0, which every connection has (`[CHAN-1]`).
    pub fn channel_zero(&self) -> Channel {
        Channel { client: self.clone(), id: 0 }
    }

    /// Calls `path` with `body` on channel 0; see [`Channel::call`].
    pub async fn call(&self, path: impl Into<Bytes>, body: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        self.channel_zero().call_with(Call::new(path, body)).await
    }

    /// Makes `call` on channel 0; see [`Channel::call_with`].
    pub async fn call_with(&self, call: Call) -> Result<Bytes, ClientError> {
        self.channel_zero().call_with(call).await
    }

    /// Opens a new channel and waits until the server has granted it (`[CHAN-5]`).
    /// Past a channel limit the server advertised it fails at once with
    /// [`RequestError::OverLimit`] (`[EXT-10]`).
    pub async fn open_channel(&self) -> Result<Channel, ClientError> {
        if let Some(limits) = self.agreed().and_then(|a| a.limits) {
            let open = self.connection.mux.channel_count() as u64;
            if open >= u64::from(limits.max_channels) {
                let limit = u64::from(limits.max_channels);
                return Err(RequestError::OverLimit { what: "channels", size: open + 1, limit }.into());
            }
        }
        let inbox = Mux::open_channel(&self.connection.mux, 0)?;
        self.connection.wake_writer.notify_one();
        let delivery = tokio::time::timeout(self.config.timeout, inbox.next())
            .await
            .map_err(|_| ClientError::Timeout(self.config.timeout))?;
        match delivery {
            Some(Delivery::Opened(id)) => Ok(Channel { client: self.clone(), id }),
            Some(Delivery::Refused { code, message }) => Err(ClientError::Server { code, message }),
            Some(Delivery::Failed(err)) => Err(err),
            _ => Err(ClientError::Closed { reason: "no answer to /sys/new_channel".into(), sent: true }),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether the connection is still up and takes new requests (not
    /// closed, and the server has not said it is going away).
    pub fn is_connected(&self) -> bool {
        self.connection.mux.closed().is_none() && !self.connection.mux.going_away()
    }

    /// Completes when the connection takes no new requests: it is over,
    /// or the server said it is going away (`[EXT-16]`). Requests already
    /// made still get their answers in the second case.
    pub async fn retired(&self) {
        let mut retiring = self.connection.retiring.clone();
        tokio::select! {
            _ = self.closed() => {}
            _ = retiring.wait_for(|r| *r) => {}
        }
    }

    /// Completes when the connection is over: the server closed it, a read
    /// or write failed, or a protocol error ended it.
    pub async fn closed(&self) {
        let mut ended = self.connection.ended.clone();
        let _ = ended.wait_for(|ended| *ended).await;
    }

    /// Queues a request with `metadata` and, when `timeout` is given, the
    /// time left of it as its `deadline` (`[EXT-22]`); the metadata is
    /// sent only where the extension is in force.
    fn submit(
        &self,
        channel: u32,
        path: Bytes,
        body: Bytes,
        metadata: MetadataMap,
        timeout: Option<Duration>,
    ) -> Result<Inbox, ClientError> {
        let negotiated = self.connection.negotiated.get();
        let codec = negotiated.and_then(|n| n.body_codec.as_ref());
        // The block, then the body, marked (and compressed) when that is
        // agreed: written here, not under the multiplexer's lock ([EXT-12],
        // [EXT-19]).
        let mut block = 0;
        let sent = match negotiated.and_then(|n| n.metadata_max) {
            Some(max_size) => {
                let plain: &[u8] = if body.is_empty() { b"{}" } else { &body };
                let mut out = BytesMut::with_capacity(32 + metadata.block_len() + plain.len() + 1);
                metadata.encode_with_deadline(timeout, max_size, &mut out).map_err(RequestError::from)?;
                block = out.len();
                match codec {
                    Some(codec) => out.extend_from_slice(&codec.seal(plain)),
                    None => out.extend_from_slice(plain),
                }
                Some(out.freeze())
            }
            None => codec.map(|codec| crate::proto::client::seal_request(Some(codec), None, &body)),
        };
        if let Some(limits) = self.agreed().and_then(|a| a.limits) {
            // The block counts toward the message limit, which applies to
            // the body before compression ([EXT-15], [EXT-20]).
            let size = (block + body.len()) as u64;
            if size > limits.max_message {
                let limit = limits.max_message;
                return Err(RequestError::OverLimit { what: "request body bytes", size, limit }.into());
            }
        }
        let inbox = match sent {
            None => Mux::call(&self.connection.mux, channel, path, body)?,
            Some(sent) => Mux::call_marked(&self.connection.mux, channel, path, sent)?,
        };
        self.connection.wake_writer.notify_one();
        Ok(inbox)
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

    /// Answers still to come on this channel: requests sent and not yet
    /// answered, those whose callers gave up included. A request sent now
    /// is answered after all of them (`[ORDER-1]`).
    pub fn in_flight(&self) -> usize {
        self.client.connection.mux.awaiting(self.id)
    }

    /// The client connection the channel belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Calls `path` with `body` within the client's timeout and returns
    /// the response body; an error answer becomes [`ClientError::Server`]
    /// (`[ANSWER-4]`). The same as `call_with(Call::new(path, body))`.
    pub async fn call(&self, path: impl Into<Bytes>, body: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        self.call_with(Call::new(path, body)).await
    }

    /// Makes `call` on this channel, with its options ([`Call`]): its own
    /// timeout or the client's, error answers as [`ClientError::Server`]
    /// unless it is [`Call::raw`]. On timeout the answer, when it comes,
    /// is dropped; later calls are not disturbed.
    ///
    /// Each call runs in a `call` span (at debug level, made only when a
    /// subscriber listens there) with its `channel` and `route`, and, once
    /// it ends, its `outcome` (`answered`, `error answer` with its `code`,
    /// or the error that ended it) and its duration in `micros`. With the
    /// `otel` feature and an OpenTelemetry layer, that span is sent as the
    /// request's `traceparent` where `metadata` is in force (`[EXT-23]`).
    pub async fn call_with(&self, call: Call) -> Result<Bytes, ClientError> {
        let timeout = call.timeout_or(self.client.config.timeout);
        let raw = call.is_raw();
        let (path, body, metadata) = call.into_parts();
        let body = match tracing::enabled!(tracing::Level::DEBUG).then(|| call_span(self.id, &path)) {
            None => self.call_unspanned(path, body, metadata, timeout).await,
            Some(span) => {
                // The callee's span is this call's child ([EXT-23]).
                #[cfg(feature = "otel")]
                let metadata = {
                    let mut metadata = metadata;
                    crate::otel::inject(&span, &mut metadata);
                    metadata
                };
                let started = std::time::Instant::now();
                let result = self.call_unspanned(path, body, metadata, timeout).instrument(span.clone()).await;
                record_outcome(&span, &result, started.elapsed());
                result
            }
        }?;
        if raw {
            return Ok(body);
        }
        match ErrorAnswer::parse(&body) {
            Some(answer) => Err(ClientError::Server { code: answer.code, message: answer.message }),
            None => Ok(body),
        }
    }

    async fn call_unspanned(
        &self,
        path: Bytes,
        body: Bytes,
        metadata: MetadataMap,
        timeout: Duration,
    ) -> Result<Bytes, ClientError> {
        let inbox = self.client.submit(self.id, path, body, metadata, Some(timeout))?;
        match tokio::time::timeout(timeout, inbox.body()).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    /// Calls `path` and yields the response frame by frame, for responses
    /// that arrive in several frames (`[MSG-2]`). Each frame must arrive
    /// within the client's timeout of the one before (of the request for
    /// the first); past it the stream ends with [`ClientError::Timeout`].
    pub fn call_stream(
        &self,
        path: impl Into<Bytes>,
        body: impl Into<Bytes>,
    ) -> impl Stream<Item = Result<Bytes, ClientError>> {
        let inbox = self.client.submit(self.id, path.into(), body.into(), MetadataMap::new(), None);
        Self::frames_of(inbox, self.client.config.timeout)
    }

    /// Makes `call` and yields its response frame by frame, as
    /// [`Channel::call_stream`]: each frame within the call's timeout (its
    /// own or the client's, and no later than its deadline) of the one
    /// before. Where `metadata` is in force the request carries the call's
    /// entries and that timeout as its deadline (`[EXT-22]`). Error
    /// answers come as their bodies: a stream does not parse them.
    pub fn call_stream_with(&self, call: Call) -> impl Stream<Item = Result<Bytes, ClientError>> {
        let timeout = call.timeout_or(self.client.config.timeout);
        let (path, body, metadata) = call.into_parts();
        let inbox = self.client.submit(self.id, path, body, metadata, Some(timeout));
        Self::frames_of(inbox, timeout)
    }

    /// The frames of the answer `inbox` waits for, each within `timeout`.
    fn frames_of(
        inbox: Result<Inbox, ClientError>,
        timeout: Duration,
    ) -> impl Stream<Item = Result<Bytes, ClientError>> {
        futures::stream::unfold(Some(inbox), move |state| async move {
            match state? {
                Err(err) => Some((Err(err), None)),
                Ok(inbox) => match tokio::time::timeout(timeout, inbox.next()).await {
                    Err(_) => Some((Err(ClientError::Timeout(timeout)), None)),
                    Ok(next) => match next? {
                        Delivery::Data { data, complete } => Some((Ok(data), (!complete).then_some(Ok(inbox)))),
                        Delivery::Failed(err) => Some((Err(err), None)),
                        Delivery::Opened(_) | Delivery::Refused { .. } => None,
                    },
                },
            }
        })
    }

    /// Deletes the channel (`[CHAN-7]`). Calls already made on it still get
    /// their answers.
    pub async fn delete(self) -> Result<(), ClientError> {
        self.client.connection.mux.delete_channel(self.id)?;
        self.client.connection.wake_writer.notify_one();
        Ok(())
    }
}

/// The span of one call on `channel` to `path` (its route, without the query).
fn call_span(channel: u32, path: &Bytes) -> tracing::Span {
    let route = crate::wire::frame::split_path(path).0;
    tracing::debug_span!(
        "call",
        channel,
        route = %String::from_utf8_lossy(route),
        outcome = tracing::field::Empty,
        code = tracing::field::Empty,
        micros = tracing::field::Empty,
    )
}

/// Records how a call ended on its span.
fn record_outcome(span: &tracing::Span, result: &Result<Bytes, ClientError>, took: Duration) {
    match result {
        Ok(body) => match ErrorAnswer::parse(body) {
            Some(answer) => {
                span.record("outcome", "error answer");
                span.record("code", answer.code);
            }
            None => {
                span.record("outcome", "answered");
            }
        },
        Err(err) => {
            span.record("outcome", tracing::field::display(err));
        }
    }
    span.record("micros", u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
}
