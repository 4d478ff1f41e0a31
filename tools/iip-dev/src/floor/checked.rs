//! The checked IIP echo of `iip-dev floor --checked`: the crate's sans-IO
//! server core ([`ServerConnection`]) behind the thinnest shell that
//! drives it, so that a figure of `iip serve` can be read against what the
//! spec's per-request obligations cost in this crate, apart from the tokio
//! server around the core. Built on the core itself, it cannot drift from
//! what `iip serve` checks.
//!
//! Kept, for every frame, because the core and the crate's reader keep
//! them: the frame checks of the decoder (`[FRAME-*]`, `[LIMIT-1]`,
//! `[LIMIT-2]`) and the client's role (`[STATUS-3]`); channels and message
//! states (`[CHAN-*]`, `[MSG-6]`), chunked requests gathered within the
//! message limit and the connection's budget (`[MSG-4]`–`[MSG-8]`,
//! `[RES-2]`); answers in request order (`[ORDER-1]`); the route without
//! its query as the answer's path (`[MSG-10]`); no handler: 102
//! (`[ANSWER-2]`). Kept by this shell as the server keeps them: the
//! handler behind an unwind guard (a panic: 104, `[ANSWER-11]`), and the
//! request counted and its handler time measured on its route
//! (`[SYS-7]`–`[SYS-9]`, `[SYS-15]`), added to the route's statistics once
//! per read.
//!
//! Not kept: handlers that wait, the server-wide budget, timers, the hello
//! and its extensions, answers to the statistics paths. It must never face
//! real traffic.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use iip::io::reader::FrameReader;
use iip::proto::error::ProtocolError;
use iip::proto::extensions::{AuthPolicy, Handshake};
use iip::proto::server::{DirectAnswer, ServerConfig, ServerConnection, ServerEvent};
use iip::server::stats::{latency_now, Instant, RouteStats, ServerStats};
use iip::server::tally::{Answered, Tally};
use iip::wire::answer::{ErrorAnswer, ErrorCode};
use iip::wire::codec::CodecError;
use iip::wire::encode::encode_frame;
use iip::wire::frame::split_route;
use iip::wire::known_paths::KnownPaths;
use iip::wire::status::Sender;
use iip::Frame;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// The only route of the checked echo: answers a request with its body.
pub const ECHO_ROUTE: &[u8] = b"/echo";

/// Why the checked echo closes a connection (`[CLOSE-4]`).
#[derive(Debug, thiserror::Error)]
pub enum CheckedClose {
    /// The bytes are not frames, or the socket failed.
    #[error(transparent)]
    Frame(#[from] CodecError),
    /// A well-formed frame breaks a rule of channels or messages.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// A request's handler: its body in, its answer's body out. It never waits.
pub type EchoHandler = Arc<dyn Fn(Bytes) -> Bytes + Send + Sync>;

/// Serves the checked IIP echo on `listener` until accepting fails: every
/// connection on a task of its own, `/echo` answering each request with
/// its body, under [`ServerConfig::default`]'s limits.
pub async fn serve_checked_iip(listener: TcpListener) -> io::Result<()> {
    let stats = Arc::new(ServerStats::new([Bytes::from_static(ECHO_ROUTE)]));
    let echo: EchoHandler = Arc::new(|body| body);
    loop {
        let (stream, _) = listener.accept().await?;
        let Some(route) = stats.route(ECHO_ROUTE).cloned() else { return Ok(()) };
        let connection = CheckedEcho::new(ServerConfig::default(), echo.clone(), route);
        tokio::spawn(async move {
            if let Err(error) = checked_connection(stream, connection).await {
                eprintln!("checked floor: connection closed: {error}");
            }
        });
    }
}

async fn checked_connection(stream: TcpStream, mut echo: CheckedEcho) -> Result<(), CheckedClose> {
    stream.set_nodelay(true).map_err(CodecError::Io)?;
    let limits = echo.core.config().frame_limits;
    let (read_half, mut write_half) = stream.into_split();
    let mut reader =
        FrameReader::new(read_half, limits).from_peer(Sender::Client).with_known_paths(KnownPaths::new([ECHO_ROUTE]));
    let mut output = BytesMut::with_capacity(64 * 1024);
    // One read: the first frame waits for the socket, the rest are those
    // the same read brought.
    while let Some(first) = reader.next().await {
        let mut clock = latency_now();
        let mut next = Some(first);
        let mut outcome = Ok(Some(clock));
        while let Some(frame) = next.take() {
            outcome = frame.map_err(CheckedClose::from).and_then(|frame| echo.on_frame(frame, &mut output, clock));
            match &outcome {
                Ok(Some(ended)) => clock = *ended,
                _ => break,
            }
            next = reader.try_next();
        }
        echo.end_of_read(&mut output);
        let end = match outcome {
            Ok(Some(_)) => None,
            Ok(None) => Some(Ok(())),
            // The socket failed: nothing more can be written.
            Err(CheckedClose::Frame(CodecError::Io(error))) => return Err(CodecError::Io(error).into()),
            Err(error) => {
                // The answers before the broken frame go first ([FERR-1]).
                let close = Frame::close_with_reason(&error.to_string());
                let _ = encode_frame(&close, &limits, &mut output);
                Some(Err(error))
            }
        };
        if !output.is_empty() {
            write_half.write_all(&output).await.map_err(CodecError::Io)?;
            output.clear();
        }
        if let Some(end) = end {
            return end;
        }
    }
    Ok(())
}

/// One connection of the checked echo, apart from its socket: fed each
/// frame, it appends the answers to an output buffer.
pub struct CheckedEcho {
    core: ServerConnection,
    handler: EchoHandler,
    route: Arc<RouteStats>,
    tally: Tally,
}

impl CheckedEcho {
    /// A connection with channel 0 only and no hello to wait for, answering
    /// `/echo` with `handler` and recording it in `route`, under `config`'s
    /// limits.
    pub fn new(config: ServerConfig, handler: EchoHandler, route: Arc<RouteStats>) -> CheckedEcho {
        let mut core = ServerConnection::new(config);
        core.set_handshake(Handshake::new(false, AuthPolicy::Off));
        CheckedEcho { core, handler, route, tally: Tally::default() }
    }

    /// Takes one frame, its handler's time beginning at `started`; answers
    /// it into `output` when it completes a request, after the answers the
    /// core had queued. Returns the clock's reading at the end of the
    /// frame's handler (or `started` when there was none), `None` after a
    /// close frame, or why the connection must close.
    pub fn on_frame(
        &mut self,
        frame: Frame,
        output: &mut BytesMut,
        started: Instant,
    ) -> Result<Option<Instant>, CheckedClose> {
        let bytes = frame.encoded_len() as u64;
        if let Some(direct) = self.core.direct(&frame) {
            let (route, _) = split_route(frame.path);
            let Some(answer) = handle(&self.handler, &route, frame.data) else {
                direct.answer(&route, ErrorAnswer::no_handler().to_body(), Some(output));
                return Ok(Some(started));
            };
            let ended = latency_now();
            let len = answer.len();
            let sent = match direct.answer(&route, answer, Some(output)) {
                DirectAnswer::Written { frames, bytes } => (frames, bytes as u64),
                // Queued, or any later way: counted as the core will send it.
                _ => self.answer_size(&route, len),
            };
            self.record((1, bytes), started, ended, sent);
            return Ok(Some(ended));
        }
        let event = self.core.receive(frame)?;
        let mut clock = started;
        match event {
            None => {}
            Some(ServerEvent::PeerClosed { .. }) => return Ok(None),
            Some(ServerEvent::Request(request)) => {
                let answer = match handle(&self.handler, &request.route, request.body) {
                    Some(answer) => {
                        clock = latency_now();
                        let sent = self.answer_size(&request.route, answer.len());
                        self.record((request.frames, request.bytes), started, clock, sent);
                        answer
                    }
                    None => ErrorAnswer::no_handler().to_body(),
                };
                self.core.respond(request.channel, request.seq, answer);
            }
            // Events the echo has nothing to do for.
            Some(_) => {}
        }
        self.transmit(output);
        Ok(Some(clock))
    }

    /// Writes what the core queued and adds what was counted to the
    /// route's statistics: at the end of every read.
    pub fn end_of_read(&mut self, output: &mut BytesMut) {
        self.transmit(output);
        self.tally.report_to(&self.route);
    }

    /// Counts a request received in `received` frames and bytes and
    /// answered in `sent` frames and bytes, its handler running from
    /// `started` to `ended`.
    fn record(&mut self, received: (u64, u64), started: Instant, ended: Instant, sent: (u64, u64)) {
        self.tally.received(received.0, received.1);
        let elapsed = ended.saturating_duration_since(started);
        let answered = Answered { elapsed, ended, frames: sent.0, bytes: sent.1 };
        self.tally.answered(&self.route, &answered);
    }

    /// The frames and whole-frame bytes of an answer of `len` bytes on
    /// `route` (`[SYS-8]`): chunks of at most the data limit, each with a
    /// header of the status, the path, its NUL, the channel and the length.
    fn answer_size(&self, route: &[u8], len: usize) -> (u64, u64) {
        let max_data = (self.core.config().frame_limits.max_data as usize).max(1);
        let frames = len.div_ceil(max_data).max(1) as u64;
        (frames, frames * (route.len() as u64 + 10) + len.max(2) as u64)
    }

    /// Encodes every frame the core has queued into `output`.
    fn transmit(&mut self, output: &mut BytesMut) {
        let limits = self.core.config().frame_limits;
        for frame in self.core.transmit() {
            // The core's frames are within its own limits.
            let _ = encode_frame(&frame, &limits, output);
        }
    }
}

/// The answer of `handler` to a request on `route`, behind an unwind
/// guard; `None` when no handler has the route.
fn handle(handler: &EchoHandler, route: &[u8], body: Bytes) -> Option<Bytes> {
    if route != ECHO_ROUTE {
        return None;
    }
    Some(catch_unwind(AssertUnwindSafe(|| handler(body))).unwrap_or_else(|_| {
        ErrorAnswer::new(ErrorCode::Unknown, format!("{}: handler panicked", ErrorCode::Unknown.name())).to_body()
    }))
}

#[cfg(test)]
mod tests;
