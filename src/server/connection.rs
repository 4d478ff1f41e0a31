//! One server connection: a tokio task that reads frames into the sans-IO
//! [`ServerConnection`], runs handlers concurrently, and hands the ordered
//! answers to the writer task.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::codec::FramedRead;

use crate::answer::{ErrorAnswer, ErrorCode};
use crate::codec::{CodecError, FrameCodec};
use crate::frame::Frame;
use crate::proto::server::{IncomingRequest, ServerConnection, ServerEvent};
use crate::writer::{spawn_writer, FrameSink};

use super::handler::Request;
use super::stats::Counts;
use super::Shared;

/// An answer computed by a handler task: channel, seq, body.
type Done = (u32, u64, Bytes);

struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    core: ServerConnection,
    sink: FrameSink,
    /// Handlers running for this connection, polled by its task: no task
    /// spawn and no cross-thread wake-up per request, and a slow handler
    /// still holds back only its own channel ([ORDER-3]).
    handlers: FuturesUnordered<BoxFuture<'static, Done>>,
    /// Counts per channel and for the connection (`/sys/connection_statis`).
    channel_counts: HashMap<u32, Counts>,
    connection_count: Counts,
    /// Counts not yet added to the server's totals: they are added once per
    /// flush, not once per frame.
    unreported: Counts,
}

/// Serves one accepted connection until it closes.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let limits = shared.config.core.frame_limits;
    let (read_half, write_half) = stream.into_split();
    // A small first read buffer keeps idle connections cheap; the decoder
    // reserves more as frames need it.
    let mut reader = FramedRead::with_capacity(read_half, FrameCodec::new(limits), 1024);
    let (sink, writer) = spawn_writer(write_half, limits);
    let mut conn = Connection {
        core: ServerConnection::new(shared.config.core),
        shared,
        peer,
        sink,
        handlers: FuturesUnordered::new(),
        channel_counts: HashMap::new(),
        connection_count: Counts::default(),
        unreported: Counts::default(),
    };
    let mut reading = true;
    let mut close_reason: Option<String> = None;
    let max_in_flight = conn.shared.config.max_in_flight;
    loop {
        if *shutdown.borrow() && reading {
            reading = false;
            close_reason = Some("server shutting down".into());
        }
        if !reading && conn.handlers.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some((channel, seq, body)) = conn.handlers.next(), if !conn.handlers.is_empty() => {
                conn.core.respond(channel, seq, body);
            }
            _ = shutdown.changed(), if reading => {}
            next = reader.next(), if reading && conn.handlers.len() < max_in_flight => {
                conn.on_read(next, &mut reading, &mut close_reason);
            }
        }
        // Take whatever else is ready without waiting — answers of handlers
        // that finished, frames already read — so that one write carries many.
        for _ in 0..BATCH_TURNS {
            let mut progressed = false;
            while let Some(Some((channel, seq, body))) = conn.handlers.next().now_or_never() {
                conn.core.respond(channel, seq, body);
                progressed = true;
            }
            if reading && conn.handlers.len() < max_in_flight {
                if let Some(next) = reader.next().now_or_never() {
                    conn.on_read(next, &mut reading, &mut close_reason);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        if conn.flush().await.is_err() {
            break;
        }
    }
    // Answers completed during the last turn still go out.
    let _ = conn.flush().await;
    if let Some(reason) = close_reason {
        let _ = conn.sink.send(vec![ServerConnection::close_frame(&reason)]).await;
    }
    drop(conn);
    let _ = writer.await;
}

/// Most rounds of ready work gathered before one flush.
const BATCH_TURNS: usize = 64;

impl Connection {
    /// Handles what the reader yielded; stops reading on a framing error,
    /// a protocol error or the end of the stream.
    fn on_read(
        &mut self,
        next: Option<Result<Frame, CodecError>>,
        reading: &mut bool,
        close_reason: &mut Option<String>,
    ) {
        match next {
            Some(Ok(frame)) => {
                if let Err(reason) = self.on_frame(frame) {
                    *close_reason = reason;
                    // Requests complete before the error are still answered ([FERR-1]).
                    *reading = false;
                }
            }
            Some(Err(CodecError::Decode(err))) => {
                tracing::debug!(peer = %self.peer, %err, "framing error");
                *close_reason = Some(err.to_string());
                *reading = false;
            }
            // The client closed (or half-closed) its side: finish what is in
            // flight, then close.
            Some(Err(_)) | None => *reading = false,
        }
    }

    /// Handles one frame; `Err(reason)` means close the connection, with a
    /// close frame carrying the reason when there is one.
    fn on_frame(&mut self, frame: Frame) -> Result<(), Option<String>> {
        let channel = frame.channel;
        let bytes = frame.encoded_len() as u64;
        self.count(channel, |c| c.frame_received(bytes));
        match self.core.receive(frame) {
            Ok(None) => Ok(()),
            Ok(Some(ServerEvent::Request(request))) => {
                self.count(channel, |c| c.whole_received += 1);
                self.dispatch(request);
                Ok(())
            }
            Ok(Some(ServerEvent::PeerClosed { .. })) => Err(None),
            Err(err) => {
                tracing::debug!(peer = %self.peer, %err, "protocol error");
                Err(Some(err.to_string()))
            }
        }
    }

    /// Applies `update` to the counts of `channel`, of the connection and of
    /// what the server totals have not seen yet.
    fn count(&mut self, channel: u32, update: impl Fn(&mut Counts)) {
        update(self.channel_counts.entry(channel).or_default());
        update(&mut self.connection_count);
        update(&mut self.unreported);
    }

    /// Adds what this connection counted to the server's totals.
    fn report(&mut self) {
        if self.unreported != Counts::default() {
            self.shared.stats.count.add(&std::mem::take(&mut self.unreported));
        }
    }

    /// Answers system paths at once and runs handlers in their own tasks.
    fn dispatch(&mut self, request: IncomingRequest) {
        let IncomingRequest { channel, seq, route, query, body, frames } = request;
        if route.starts_with(b"/sys/") {
            self.report();
            let answer = self.system_answer(&route, &body);
            self.core.respond(channel, seq, answer);
            return;
        }
        let (Some(handler), Some(route_stats)) = (self.shared.routes.get(&route), self.shared.stats.route(&route))
        else {
            self.core.respond_error(channel, seq, ErrorAnswer::no_handler());
            return;
        };
        let (handler, route_stats) = (handler.clone(), route_stats.clone());
        route_stats.count.received(frames, body.len() as u64);
        let shared = self.shared.clone();
        let request = Request { channel, route, query, body, peer: self.peer };
        self.handlers.push(Box::pin(async move {
            let started = Instant::now();
            let call = AssertUnwindSafe(handler.call(request)).catch_unwind();
            let outcome = match shared.config.handler_timeout {
                Some(limit) => tokio::time::timeout(limit, call).await.ok(),
                None => Some(call.await),
            };
            let answer = match outcome {
                Some(Ok(Ok(body))) => body,
                Some(Ok(Err(err))) => ErrorAnswer::handler_failed(err).to_body(),
                Some(Err(_panic)) => ErrorAnswer::new(ErrorCode::Unknown, "handler panicked").to_body(),
                None => ErrorAnswer::new(ErrorCode::RequestTimeout, "request timeout").to_body(),
            };
            let elapsed = started.elapsed();
            shared.stats.measure.record(elapsed);
            route_stats.measure.record(elapsed);
            let max = shared.config.core.frame_limits.max_data.max(1) as usize;
            route_stats.count.sent(answer.len().div_ceil(max).max(1) as u64, answer.len() as u64);
            (channel, seq, answer)
        }));
    }

    /// The answer to a `/sys/` route other than new/delete channel (`[SYS-1]`, `[SYS-4]`).
    fn system_answer(&self, route: &[u8], body: &[u8]) -> Bytes {
        let stats = &self.shared.stats;
        let body_route = || String::from_utf8_lossy(body).trim().trim_matches('"').as_bytes().to_vec();
        let value = match route {
            b"/sys/server_count" => stats.count.to_json(),
            b"/sys/server_measure" => stats.measure.to_json(),
            b"/sys/path_count" => match stats.route(&body_route()) {
                Some(r) => r.count.to_json(),
                None => Counts::default().to_json(),
            },
            b"/sys/path_measure" => match stats.route(&body_route()) {
                Some(r) => r.measure.to_json(),
                None => crate::server::stats::Measure::default().to_json(),
            },
            b"/sys/connection_statis" => self.connection_json(),
            b"/sys/statis" => {
                let unit = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v.get("time_unit").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_default();
                return Bytes::from(stats.summary(&unit));
            }
            _ => return ErrorAnswer::no_handler().to_body(),
        };
        Bytes::from(value.to_string())
    }

    fn connection_json(&self) -> Value {
        let channels: serde_json::Map<String, Value> = self
            .core
            .channel_ids()
            .into_iter()
            .map(|id| {
                let queue = self.core.unanswered_on(id).unwrap_or(0);
                let count = self.channel_counts.get(&id).copied().unwrap_or_default();
                (id.to_string(), json!({"ReceiveQueue": queue, "Count": count.to_json()}))
            })
            .collect();
        let write_queue = self.sink.queued() + self.core.queued_frames() as u64;
        json!({ self.peer.to_string(): {
            "Channels": channels,
            "WriteQueue": write_queue,
            "Count": self.connection_count.to_json(),
        }})
    }

    /// Sends every frame the core has ready, counting them, and adds what
    /// was counted since the last flush to the server's totals.
    async fn flush(&mut self) -> Result<(), CodecError> {
        let mut batch = Vec::new();
        self.core.drain_transmit(&mut batch);
        for frame in &batch {
            let bytes = frame.encoded_len() as u64;
            let whole = frame.status.position().is_some_and(|p| p.completes_message());
            self.count(frame.channel, |c| c.frame_sent(bytes, whole));
        }
        self.report();
        self.sink.send(batch).await
    }
}
