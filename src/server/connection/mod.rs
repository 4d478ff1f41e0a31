//! One server connection: a tokio task that reads frames into the sans-IO
//! [`ServerConnection`], runs handlers concurrently, and writes the ordered
//! answers itself, in the turn that produced them. It enforces the
//! connection's memory budget by pausing its reads (`[RES-3]`) and its time
//! limits (`[RES-5]`–`[RES-7]`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::Instrument;

use crate::io::inline_writer::InlineWriter;
use crate::io::reader::{FrameReader, ReadStep};
use crate::proto::extensions::{Handshake, HELLO, PING};
use crate::proto::server::{IncomingRequest, ServerConnection, ServerEvent};
use crate::proto::timers::ConnectionTimers;
use crate::wire::answer::ErrorAnswer;
use crate::wire::codec::CodecError;
use crate::wire::frame::Frame;

use super::extensions::{answer_hello, HelloOutcome};
use super::handler::{HandlerError, Reply, Request, RequestMeta};
use super::memory::HeldShare;
use super::offload::Timed;
use super::stats::{latency_now, Counts, Instant as LatencyInstant, RouteStats};
use super::tally::{Answered, Found, RouteTallies, Tally};
use super::transport::Peer;
use super::turn_clock::TurnClock;
use super::Shared;

mod counts;
mod direct;
use direct::offload;
mod start;
mod system;

use counts::{answer_size, count_in, ChannelCounts, ChannelStatis, ConnectionStatis};
use start::{request_from, start_handler, Started};

/// An answer computed by a handler task.
struct Done {
    channel: u32,
    seq: u64,
    body: Bytes,
    /// Set for the answer to the connection's hello (boxed: every other
    /// answer moves this struct, and it stays small).
    hello: Option<Box<HelloOutcome>>,
}

impl Done {
    fn answer(channel: u32, seq: u64, body: Bytes) -> Done {
        Done { channel, seq, body, hello: None }
    }
}

struct Connection<W> {
    shared: Arc<Shared>,
    peer: Peer,
    core: ServerConnection,
    /// The write half: what the socket does not take at once waits here.
    writer: InlineWriter<W>,
    /// Handlers running for this connection, polled by its task: no task
    /// spawn and no cross-thread wake-up per request, and a slow handler
    /// still holds back only its own channel ([ORDER-3]).
    handlers: FuturesUnordered<BoxFuture<'static, Done>>,
    /// Counts per channel and for the connection (`/sys/connection_statis`).
    channel_counts: ChannelCounts,
    connection_count: Counts,
    /// What of `connection_count` the server's totals already have: the
    /// rest is added once per flush, not once per frame.
    reported: Counts,
    /// Counts and latencies of routes, not yet added to their statistics.
    tallies: RouteTallies,
    /// This connection's bytes in the server's memory total.
    held: HeldShare,
    /// Where the next handler's time begins (`[SYS-15]`).
    clock: TurnClock,
    /// Whether the reader may be polled; false after the end of the stream,
    /// an error, a close frame or the start of a shutdown.
    reading: bool,
    /// The client's stream ended: no answer not yet ready will be read,
    /// so waiting handlers are cancelled and the connection ends
    /// (`[RES-11]`).
    peer_gone: bool,
    /// A frame arrived since the timers last looked.
    frame_arrived: bool,
    close_reason: Option<String>,
    /// Who the client proved to be in its hello, if it did (`[EXT-8]`).
    identity: Option<Arc<str>>,
    /// Whether the client agreed to `going_away` (`[EXT-16]`).
    going_away: bool,
    /// Whether `ping` is in force: `/sys/ping` is answered only then (`[EXT-6]`).
    ping: bool,
    /// When a connection told to go away stops reading.
    going_away_until: Option<Instant>,
    /// The compression work of this peer the server's pace has booked.
    codec_booked: u64,
    /// Until when the pace of compression work keeps this connection from
    /// reading (`[RES-9]`).
    codec_wait: Option<Instant>,
    /// `None` while reading is paused (`[RES-3]`, `[RES-4]`); since when
    /// it has gone on otherwise. Bytes left in the buffer while the
    /// server takes no frames are not a frame that fails to arrive: the
    /// frame read timeout (`[RES-6]`) counts only while it reads.
    reading_since: Option<Instant>,
}

/// Growth of a connection's held bytes that is reported to the server's
/// total at once, not at the next flush.
const ACCOUNT_STEP: usize = 64 * 1024;

/// How long a connection paused by the server-wide budget alone waits
/// before it looks again.
const FULL_SERVER_RECHECK: Duration = Duration::from_millis(10);

/// Serves one accepted connection until it closes.
pub(crate) async fn serve_connection<R, W>(
    read_half: R,
    write_half: W,
    peer: Peer,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let _open = shared.stats.metrics.connection_opened();
    let limits = shared.config.core.frame_limits;
    let timeouts = shared.config.timeouts;
    let mut reader = FrameReader::new(read_half, limits)
        .from_peer(crate::wire::status::Sender::Client)
        .with_known_paths(shared.known_paths.clone());
    let writer = InlineWriter::new(write_half, limits, timeouts.write);
    let force = shared.force.clone();
    let handshake = Handshake::new(shared.config.extensions.enabled, shared.auth.policy);
    let mut timers = match handshake.requires_authentication() {
        true => ConnectionTimers::awaiting_hello(timeouts, Instant::now()),
        false => ConnectionTimers::new(timeouts, Instant::now()),
    };
    let mut core = ServerConnection::new(shared.config.core);
    core.set_handshake(handshake);
    let mut conn = Connection {
        core,
        held: HeldShare::new(shared.memory.clone()),
        shared,
        peer,
        writer,
        handlers: FuturesUnordered::new(),
        channel_counts: ChannelCounts::default(),
        connection_count: Counts::default(),
        reported: Counts::default(),
        tallies: RouteTallies::default(),
        clock: TurnClock::default(),
        reading: true,
        peer_gone: false,
        frame_arrived: false,
        close_reason: None,
        identity: None,
        going_away: false,
        ping: false,
        going_away_until: None,
        codec_booked: 0,
        codec_wait: None,
        reading_since: Some(Instant::now()),
    };
    let mut writer_done = false;
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut timer_at = None;
    loop {
        if *shutdown.borrow() && conn.reading && conn.shutting_down(Instant::now()) && conn.flush().await.is_err() {
            break;
        }
        if !conn.reading && (conn.handlers.is_empty() || conn.peer_gone) {
            break;
        }
        let now = Instant::now();
        timers.observe(now, conn.busy(), std::mem::take(&mut conn.frame_arrived));
        if conn.identity.is_some() {
            timers.authenticated();
        }
        if conn.reading {
            if let Some(expiry) = timers.expired(now, conn.frame_pending_since(&reader)) {
                tracing::debug!(peer = %conn.peer, reason = expiry.reason(), "closing");
                conn.stop(expiry.reason());
                continue;
            }
            // The grace given to a client told to go away is over ([EXT-16]).
            if conn.going_away_until.is_some_and(|at| now >= at) {
                conn.stop("server shutting down");
                continue;
            }
        }
        // The pace's wait is over: it no longer sets the timer.
        if conn.codec_wait.is_some_and(|at| now >= at) {
            conn.codec_wait = None;
        }
        // The peer read nothing within the write timeout ([RES-7]).
        if conn.writer.stalled(now) {
            writer_done = true;
            break;
        }
        let deadline = timers.deadline(conn.frame_pending_since(&reader)).map(|(at, _)| at);
        let deadline =
            [deadline, conn.going_away_until, conn.codec_wait].into_iter().flatten().min().filter(|_| conn.reading);
        let deadline = [deadline, conn.writer.stall_deadline()].into_iter().flatten().min();
        // The timer is moved only to an earlier instant: deadlines move later
        // with nearly every frame, and a timer that fires early costs one
        // more look at the clock, where moving it costs a trip to tokio's
        // timer wheel every turn.
        if let Some(at) = deadline.filter(|at| timer_at.is_none_or(|armed| armed > *at)) {
            timer.as_mut().reset(at.into());
            timer_at = Some(at);
        }
        // The task waits below: the next handler reads the clock anew.
        conn.clock.lapse();
        let may_read = conn.may_read();
        conn.reading_since = match (may_read, conn.reading_since) {
            (false, _) => None,
            (true, None) => Some(now),
            (true, since) => since,
        };
        let paused = conn.reading && !may_read;
        let paused_by_server = paused && conn.paused_by_server_only();
        tokio::select! {
            biased;
            _ = force.cancelled() => break,
            Some(done) = conn.handlers.next(), if !conn.handlers.is_empty() => conn.complete(done),
            // What the socket did not take goes out as it drains; reading
            // paused on the budget resumes once it has.
            drained = std::future::poll_fn(|cx| conn.writer.poll_drain(cx)), if conn.writer.has_pending() => {
                if drained.is_err() {
                    // The peer went away.
                    writer_done = true;
                    break;
                }
            }
            _ = shutdown.changed(), if conn.reading => {}
            _ = &mut timer, if timer_at.is_some() => timer_at = None,
            _ = tokio::time::sleep(FULL_SERVER_RECHECK), if paused_by_server => {}
            // Paused or done reading, with handlers waiting, the connection
            // still watches for its client leaving ([RES-11]).
            step = read_or_watch(&mut reader, may_read), if may_read || conn.watches_for_leaving() => match step {
                Some(ReadStep::Frame(next)) => {
                    conn.on_read(Some(next));
                    conn.account_growth(reader.buffered());
                }
                Some(ReadStep::End) | None => conn.on_read(None),
                // Bytes of an unfinished frame: look at the timers again.
                Some(ReadStep::Partial) => {}
            },
        }
        // Take whatever else is ready without waiting: answers of handlers
        // that finished and frames already in the read buffer. The answers
        // to everything one read brought then leave in one write, and the
        // socket is read again only after it.
        for _ in 0..BATCH_TURNS {
            let mut progressed = conn.complete_ready();
            if conn.may_read() {
                if let Some(next) = reader.try_next() {
                    conn.on_read(Some(next));
                    conn.account_growth(reader.buffered());
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        conn.account(reader.buffered());
        conn.pace_codec_work();
        if conn.flush().await.is_err() {
            break;
        }
        // A request read before the hello's answer went out breaks
        // [EXT-4], even one still unparsed in the buffer.
        if reader.buffered() == 0 {
            conn.core.hello_sent();
        }
    }
    if force.is_cancelled() || writer_done {
        return;
    }
    // Answers completed during the last turn still go out.
    let _ = conn.flush().await;
    if let Some(reason) = conn.close_reason.take() {
        conn.writer.queue([ServerConnection::close_frame(&reason)]);
    }
    let writer = conn.writer;
    tokio::select! {
        finished = writer.finish() => {
            if finished.is_ok() && !conn.peer_gone {
                let until = Instant::now() + LINGER_TIME;
                tokio::select! {
                    _ = reader.discard_until_end(LINGER_BYTES, until) => {}
                    _ = force.cancelled() => {}
                }
            }
        }
        _ = force.cancelled() => {}
    }
}

/// How long, and for how many bytes, a connection whose answers are all
/// written goes on reading its client's input before the socket closes
/// (`[CLOSE-11]`).
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1 << 20;

/// How far a paused connection reads ahead to see its client leave
/// (`[RES-11]`); counted with its unfinished frame.
const PAUSED_LOOKAHEAD: usize = 64 * 1024;

/// The next step of `reader` when reading is allowed; otherwise `None`
/// once the client's stream ends, read ahead at most [`PAUSED_LOOKAHEAD`].
async fn read_or_watch<R: AsyncRead + Unpin>(reader: &mut FrameReader<R>, may_read: bool) -> Option<ReadStep> {
    if may_read {
        return Some(reader.step().await);
    }
    reader.watch_end(PAUSED_LOOKAHEAD).await;
    None
}

/// Most rounds of ready work gathered before one flush.
const BATCH_TURNS: usize = 256;

impl<W: AsyncWrite + Unpin> Connection<W> {
    /// Stops reading; the connection closes with a close frame naming
    /// `reason` once what it already received is answered.
    fn stop(&mut self, reason: &str) {
        self.reading = false;
        self.close_reason = Some(reason.to_string());
    }

    /// The server began a graceful shutdown. A client that agreed to
    /// `going_away` is told so and given half the grace period, during
    /// which the connection goes on reading and answering (`[EXT-16]`);
    /// any other connection stops reading at once (`[CLOSE-3]`). True
    /// when a going-away frame was queued: it must be flushed at once.
    fn shutting_down(&mut self, now: Instant) -> bool {
        if !self.going_away {
            self.stop("server shutting down");
            return false;
        }
        if self.going_away_until.is_some() {
            return false;
        }
        let grace = self.shared.config.grace / 2;
        self.core.going_away(grace.as_millis() as u64);
        self.going_away_until = Some(now + grace);
        true
    }

    /// Gives the core the answers of every handler that has finished,
    /// without waiting; true if there was one. An empty set is not polled:
    /// polling it registers the task's waker, a few atomic operations per
    /// frame for nothing.
    fn complete_ready(&mut self) -> bool {
        if self.handlers.is_empty() {
            return false;
        }
        // Polling runs other handlers: the next reads the clock anew.
        self.clock.lapse();
        let mut completed = false;
        while !self.handlers.is_empty() {
            let Some(done) = self.handlers.next().now_or_never().flatten() else { break };
            self.complete(done);
            completed = true;
        }
        completed
    }

    /// Gives a finished handler's answer to the core; after the hello's
    /// answer, puts what was agreed in force.
    fn complete(&mut self, done: Done) {
        if let Some(HelloOutcome::Unanswered { close }) = done.hello.as_deref() {
            self.core.hello_completed(false, None, None);
            self.stop(close);
            return;
        }
        self.core.respond(done.channel, done.seq, done.body);
        match done.hello.map(|outcome| *outcome) {
            None => {}
            Some(HelloOutcome::Agreed { agreed, identity }) => {
                let max_message = self.shared.config.core.max_message.min(self.shared.config.core.max_held_bytes);
                self.core.hello_completed(identity.is_some(), agreed.body_codec(max_message), agreed.metadata_max());
                self.going_away = agreed.going_away.is_some();
                self.ping = agreed.ping.is_some();
                self.identity = identity;
                tracing::debug!(peer = %self.peer, extensions = ?agreed.names(), "hello");
            }
            Some(HelloOutcome::Refused { close }) => {
                self.core.hello_completed(false, None, None);
                if let Some(reason) = close {
                    self.stop(reason);
                }
            }
            Some(HelloOutcome::Unanswered { .. }) => {}
        }
    }

    /// Whether anything is in flight: requests in handlers, answers not
    /// yet written. Every request body is at least one byte ([FRAME-6]),
    /// so held bytes tell.
    fn busy(&self) -> bool {
        !self.handlers.is_empty() || self.core.held().outbound() > 0 || self.writer.queued_bytes() > 0
    }

    /// Bytes that leave without the peer sending more: bodies in handlers,
    /// answers in the core and in the writer.
    fn outbound(&self) -> usize {
        self.core.held().outbound() + self.writer.queued_bytes()
    }

    /// Whether the next frame may be read ([RES-3]): under the handler
    /// limit, under the connection's budget, and under the server's budget
    /// unless this connection holds nothing outbound at all (so that every
    /// connection can still make progress one request at a time).
    fn may_read(&self) -> bool {
        let outbound = self.outbound();
        self.reading
            && self.codec_wait.is_none_or(|at| Instant::now() >= at)
            && self.handlers.len() < self.shared.config.max_in_flight
            && outbound < self.shared.config.core.max_held_bytes
            && (outbound == 0 || !self.server_full())
    }

    /// Since when the unfinished frame in `reader` has been waiting while
    /// this connection reads (`[RES-6]`): not while reading is paused,
    /// and from when it resumed at the earliest.
    fn frame_pending_since<R: AsyncRead + Unpin>(&self, reader: &FrameReader<R>) -> Option<Instant> {
        let since = self.reading_since?;
        reader.pending_since().map(|pending| pending.max(since))
    }

    /// Whether the connection must notice its client leaving while it
    /// takes no frames: handlers still wait for it.
    fn watches_for_leaving(&self) -> bool {
        !self.peer_gone && !self.handlers.is_empty()
    }

    /// Whether the server holds its budget or more.
    fn server_full(&self) -> bool {
        self.server_room() == 0
    }

    /// What the server's budget can still give, counting this connection's
    /// bytes as they are now rather than as last reported.
    fn server_room(&self) -> usize {
        let mine = self.core.held().total() + self.writer.queued_bytes();
        let others = self.shared.memory.held().saturating_sub(self.held.reported());
        self.shared.memory.budget().saturating_sub(others + mine)
    }

    /// Whether only the server-wide budget keeps this connection from
    /// reading: then it must look again, since other connections free it.
    fn paused_by_server_only(&self) -> bool {
        self.handlers.len() < self.shared.config.max_in_flight
            && self.outbound() < self.shared.config.core.max_held_bytes
    }

    /// Books the compression work done for this peer since the last look
    /// on the server's pace; reading waits for its turn (`[RES-9]`).
    #[inline(always)]
    fn pace_codec_work(&mut self) {
        let work = self.core.codec_work();
        if work != self.codec_booked {
            let wait = self.shared.codec_pace.book(work - self.codec_booked);
            self.codec_booked = work;
            self.codec_wait = [self.codec_wait, wait].into_iter().flatten().max();
        }
    }

    /// Reports what this connection holds to the server's total.
    fn account(&mut self, unfinished_frame: usize) {
        self.held.set(self.core.held().total() + self.writer.queued_bytes() + unfinished_frame);
    }

    /// Reports what this connection holds when it has grown by more than
    /// [`ACCOUNT_STEP`] since the last report: between flushes, other
    /// connections then see a growth of at most that much (plus a frame).
    fn account_growth(&mut self, unfinished_frame: usize) {
        let now = self.core.held().total() + self.writer.queued_bytes() + unfinished_frame;
        if now > self.held.reported() + ACCOUNT_STEP {
            self.held.set(now);
        }
    }

    /// Handles what the reader yielded; stops reading on a framing error,
    /// a protocol error or the end of the stream.
    fn on_read(&mut self, next: Option<Result<Frame, CodecError>>) {
        match next {
            Some(Ok(frame)) => {
                self.frame_arrived = true;
                if let Err(reason) = self.on_frame(frame) {
                    // Requests complete before the error are still answered ([FERR-1]).
                    self.reading = false;
                    self.close_reason = reason;
                } else if let Some(reason) = self.core.close_requested() {
                    self.stop(reason);
                }
                self.pace_codec_work();
            }
            Some(Err(CodecError::Decode(err))) => {
                tracing::debug!(peer = %self.peer, %err, "framing error");
                self.stop(&err.to_string());
            }
            Some(Err(err @ CodecError::Forbidden { .. })) => {
                tracing::debug!(peer = %self.peer, %err, "protocol error");
                self.stop(&err.to_string());
            }
            // The client closed its side: what is ready still goes out,
            // handlers still waiting are cancelled ([RES-11]).
            Some(Err(_)) | None => {
                self.reading = false;
                self.peer_gone = true;
            }
        }
    }

    /// Handles one frame; `Err(reason)` means close the connection, with a
    /// close frame carrying the reason when there is one.
    fn on_frame(&mut self, frame: Frame) -> Result<(), Option<String>> {
        let bytes = frame.encoded_len() as u64;
        // Most requests are answered in this turn, with no place kept for
        // them in their channel's order.
        let Err(frame) = self.on_direct_frame(frame, bytes) else { return Ok(()) };
        let channel = frame.channel;
        // A chunked message grows by assembly, a compressed one by
        // inflation, and a new channel adds its state: each within what
        // the server has left.
        self.core.set_server_room(self.server_room());
        let received = self.core.receive(frame);
        let whole = matches!(received, Ok(Some(ServerEvent::Request(_))));
        self.count_received(channel, bytes, whole);
        match received {
            Ok(None) => Ok(()),
            Ok(Some(ServerEvent::Request(request))) => {
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

    /// Counts a frame of `bytes` bytes received on `channel`; `whole` when
    /// it completed a request.
    #[inline(always)]
    fn count_received(&mut self, channel: u32, bytes: u64, whole: bool) {
        self.count(channel, |c| {
            c.frame_received(bytes);
            c.whole_received += u64::from(whole);
        });
    }

    /// Applies `update` to the counts of `channel` and of the connection.
    fn count(&mut self, channel: u32, update: impl Fn(&mut Counts)) {
        let highest = self.core.highest_channel_id();
        count_in(&mut self.channel_counts, &mut self.connection_count, (channel, highest), update);
    }

    /// Adds what this connection counted to the server's totals and to its
    /// routes' statistics.
    fn report(&mut self) {
        self.tallies.report();
        if self.connection_count != self.reported {
            let counts = self.connection_count.minus(self.reported);
            self.reported = self.connection_count;
            self.shared.stats.metrics.add(&counts, self.shared.memory.held());
        }
    }

    /// Answers system paths at once and starts the handler of any other
    /// route: polled in this connection's task, or on a task of its own
    /// when its route is offloaded.
    fn dispatch(&mut self, request: IncomingRequest) {
        let IncomingRequest { channel, seq, route, query, body, metadata, frames, bytes, .. } = request;
        let frame_limit = self.shared.config.core.frame_limits.max_data;
        if route == HELLO && self.shared.config.extensions.enabled {
            // The core admitted it as the connection's hello ([EXT-1]).
            let shared = self.shared.clone();
            let peer = self.peer.clone();
            self.handlers.push(Box::pin(async move {
                let (body, outcome) = answer_hello(&shared.negotiation, shared.auth.clone(), peer, body).await;
                Done { channel, seq, body, hello: Some(Box::new(outcome)) }
            }));
            return;
        }
        if route.starts_with(b"/sys/") {
            // Its answer is not a handler's time, nor the next one's.
            self.clock.lapse();
            // What this connection answered before is in the figures.
            self.tallies.report();
            // A statistics path is a route of the server's own: counted,
            // itself included as received, and measured (`[SYS-9]`).
            let stats = self.shared.stats.route(&route).cloned();
            if let Some(stats) = &stats {
                stats.count.received(frames, bytes);
            }
            let started = Instant::now();
            let answer = self.system_answer(&route, &body);
            if let Some(stats) = stats {
                let elapsed = started.elapsed();
                stats.measure.record(elapsed);
                self.shared.stats.record_system(elapsed);
                let (frames, bytes) = answer_size(frame_limit, route.len(), &answer);
                stats.count.sent(frames, bytes);
            }
            self.core.respond(channel, seq, answer);
            return;
        }
        let Some(Found { route: found, tally, .. }) = self.tallies.find(&self.shared.routes, &route) else {
            self.core.respond_error(channel, seq, ErrorAnswer::no_handler());
            return;
        };
        // The deadline counts from the moment the request is whole ([EXT-22]).
        let request =
            request_from(&self.peer, &self.identity, channel, route, query, body, RequestMeta::arrived(metadata));
        match start_handler(&self.shared, found, tally, request, seq, (frames, bytes), &mut self.clock) {
            Started::Answered(body) => self.complete(Done::answer(channel, seq, body)),
            Started::Waiting(work) => self.handlers.push(work),
            Started::Offloaded(work) => offload(&mut self.handlers, work, channel, seq),
        }
    }

    /// Writes every frame the core has ready, as far as the socket takes
    /// them now, counting them, and adds what was counted since the last
    /// flush to the server's totals.
    async fn flush(&mut self) -> Result<(), CodecError> {
        let Connection { core, writer, channel_counts, connection_count, .. } = self;
        let highest = core.highest_channel_id();
        writer.queue(core.transmit().inspect(|frame| {
            let bytes = frame.encoded_len() as u64;
            let whole = frame.status.position().is_some_and(|p| p.completes_message());
            let sent = |c: &mut Counts| c.frame_sent(bytes, whole);
            count_in(channel_counts, connection_count, (frame.channel, highest), sent);
        }));
        self.report();
        // One attempt; what the socket does not take waits for it to drain.
        std::future::poll_fn(|cx| match self.writer.poll_drain(cx) {
            std::task::Poll::Ready(Err(err)) => std::task::Poll::Ready(Err(err)),
            _ => std::task::Poll::Ready(Ok(())),
        })
        .await
    }
}
