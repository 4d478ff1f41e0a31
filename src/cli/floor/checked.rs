//! The checked IIP echo of `iip floor --checked`: the unchecked echo plus
//! the work the spec asks of a server for every request, and nothing else,
//! so that a figure of `iip serve` can be read against what the spec's
//! obligations cost at least (the performance targets are ratios to the
//! unchecked echo, which keeps none of them).
//!
//! Kept, for every frame of one read (each a requirement of the spec):
//! - the frame checks of the decoder: status, path and data limits, a
//!   non-empty body ([`peek_frame`]; `[FRAME-*]`, `[LIMIT-1]`, `[LIMIT-2]`);
//! - the client's role: statuses 0–3, and 8 to close (`[STATUS-3]`);
//! - the channel exists (`[CHAN-6]`) and the frame follows its message
//!   state (`[MSG-6]`); chunked requests gathered into one body (`[MSG-4]`,
//!   `[MSG-7]`), a body past the limit, or one that would take the bodies
//!   being gathered past the connection's budget, answered 110 (`[MSG-8]`,
//!   `[RES-2]`);
//! - channels granted at the lowest free id up to the limit, deleted on
//!   request (`[CHAN-2]`–`[CHAN-9]`);
//! - the route without its query chooses the handler and is the answer's
//!   path (`[MSG-10]`); no handler: 102 (`[ANSWER-2]`);
//! - the handler called behind an unwind guard (a panic: 104,
//!   `[ANSWER-11]`);
//! - the request counted and its handler time measured on its route
//!   (`[SYS-7]`–`[SYS-9]`, `[SYS-15]`), added to the route's statistics
//!   once per read.
//!
//! Not kept, because the spec does not ask them of every request or a
//! handler that never waits does not need them: handlers that wait (and
//! so the ordering of answers across waits), the budget of answers not yet
//! sent and of the whole server, timers, the hello and its extensions,
//! answers to the statistics paths. It must never face real traffic.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::READ_SIZE;
use crate::proto::channels::{ChannelIds, ChannelTable};
use crate::proto::error::ProtocolError;
use crate::proto::message::{encode_body_into, transition, MessageState, Step};
use crate::proto::server::{ServerConfig, DELETE_CHANNEL, NEW_CHANNEL};
use crate::server::handler::HandlerError;
use crate::server::stats::{latency_now, Instant, RouteStats, ServerStats};
use crate::server::tally::{Answered, Tally};
use crate::wire::answer::{channel_granted_body, ok_body, ErrorAnswer, ErrorCode};
use crate::wire::decode::{peek_frame, Peek};
use crate::wire::frame_error::DecodeError;
use crate::wire::scan::find_byte;
use crate::wire::status::{MessageKind, Sender, Status};

/// The only route of the checked echo: answers a request with its body.
pub const ECHO_ROUTE: &[u8] = b"/echo";

/// Why the checked echo closes a connection (`[CLOSE-4]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckedClose {
    /// The bytes are not a frame.
    #[error(transparent)]
    Frame(#[from] DecodeError),
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
                tracing::debug!(%error, "checked floor: connection closed");
            }
        });
    }
}

async fn checked_connection(mut stream: TcpStream, mut echo: CheckedEcho) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut input = BytesMut::with_capacity(READ_SIZE);
    let mut output = BytesMut::with_capacity(READ_SIZE);
    loop {
        input.reserve(READ_SIZE);
        if stream.read_buf(&mut input).await? == 0 {
            return Ok(());
        }
        let read = input.split().freeze();
        let answered = echo.answer_read(&read, &mut output);
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
        }
        match answered {
            Ok(Some(used)) => input.extend_from_slice(&read[used..]),
            Ok(None) => return Ok(()),
            Err(close) => return Err(io::Error::new(io::ErrorKind::InvalidData, close)),
        }
    }
}

/// A channel of a connection, as the checked echo keeps it.
#[derive(Debug)]
enum Lane {
    /// No request is open on it.
    Idle,
    /// A chunked request is open on it.
    Open(Gathering),
}

impl Lane {
    /// Its message state, as the spec's table names it (`[MSG-6]`).
    fn state(&self) -> MessageState {
        match self {
            Lane::Idle => MessageState::Idle,
            Lane::Open(_) => MessageState::Open,
        }
    }
}

/// A chunked request being gathered (`[MSG-4]`).
#[derive(Debug)]
struct Gathering {
    /// The route of its first frame (`[MSG-3]`), query included.
    path: Bytes,
    /// The body so far, or `None` once it passed the limit (`[MSG-8]`).
    body: Option<BytesMut>,
    /// Frames and bytes received so far (`[SYS-8]`).
    frames: u64,
    bytes: u64,
}

/// What a connection allows the bodies it gathers (`[MSG-8]`, `[RES-2]`).
#[derive(Debug, Clone, Copy)]
struct GatherLimits {
    /// Largest body of one request.
    max_message: usize,
    /// Largest total of the bodies being gathered on the connection.
    max_held: usize,
}

impl Gathering {
    /// Adds a frame of `len` bytes carrying `data`, dropping the body once
    /// it would pass the message limit or take `held`, the connection's
    /// gathered bytes, past its budget; `held` follows what the body holds.
    fn add(&mut self, data: &[u8], len: usize, limits: GatherLimits, held: &mut usize) {
        self.frames += 1;
        self.bytes += len as u64;
        if let Some(body) = self.body.take() {
            if body.len() + data.len() > limits.max_message || *held + data.len() > limits.max_held {
                *held -= body.len();
            } else {
                let mut body = body;
                body.extend_from_slice(data);
                *held += data.len();
                self.body = Some(body);
            }
        }
    }

    /// Gives back what the body held to `held`, and the body.
    fn finish(mut self, held: &mut usize) -> WholeRequest {
        let body = self.body.take();
        *held -= body.as_ref().map_or(0, BytesMut::len);
        WholeRequest {
            path: self.path,
            body: body.map(BytesMut::freeze).ok_or(ErrorCode::RequestTooLarge),
            received: (self.frames, self.bytes),
        }
    }
}

/// A whole request: its path (query included), body, and the frames and
/// bytes it took.
struct WholeRequest {
    path: Bytes,
    body: Result<Bytes, ErrorCode>,
    received: (u64, u64),
}

/// One connection of the checked echo, apart from its socket: fed each
/// read's bytes, it appends the answers to an output buffer.
pub struct CheckedEcho {
    config: ServerConfig,
    /// The channel ids in use (`[CHAN-4]`, `[CHAN-9]`) and their lanes.
    ids: ChannelIds,
    lanes: ChannelTable<Lane>,
    /// Bytes of the bodies being gathered (`[RES-2]`).
    held: usize,
    handler: EchoHandler,
    route: Arc<RouteStats>,
    tally: Tally,
}

impl CheckedEcho {
    /// A connection with channel 0 only, answering `/echo` with `handler`
    /// and recording it in `route`, under `config`'s limits.
    pub fn new(config: ServerConfig, handler: EchoHandler, route: Arc<RouteStats>) -> CheckedEcho {
        CheckedEcho {
            ids: ChannelIds::new(config.max_channels),
            lanes: ChannelTable::with_channel_zero(Lane::Idle),
            config,
            held: 0,
            handler,
            route,
            tally: Tally::default(),
        }
    }

    /// Answers every whole frame at the front of `read` into `output`, and
    /// adds what it counted to the route's statistics. Returns the bytes
    /// those frames took (the rest is the start of a frame), `None` after a
    /// close frame, or why the connection must close; the answers already
    /// in `output` precede the close.
    pub fn answer_read(&mut self, read: &Bytes, output: &mut BytesMut) -> Result<Option<usize>, CheckedClose> {
        let result = self.answer_frames(read, output);
        self.tally.report_to(&self.route);
        result
    }

    fn answer_frames(&mut self, read: &Bytes, output: &mut BytesMut) -> Result<Option<usize>, CheckedClose> {
        let mut at = 0;
        // The handler time of a request runs from the end of the previous
        // one, or from the read (`[SYS-15]`): one clock reading a request.
        let mut clock = latency_now();
        let limits = GatherLimits { max_message: self.config.max_message, max_held: self.config.max_held_bytes };
        while let Some(rest) = read.get(at..) {
            let layout = match peek_frame(rest, &self.config.frame_limits) {
                Ok(Peek::Frame(layout)) => layout,
                Ok(Peek::Needs(_)) => break,
                Err(error) => return Err(DecodeError { offset: error.offset + at as u64, ..error }.into()),
            };
            let len = layout.encoded_len();
            let status = layout.status;
            if status == Status::Close {
                return Ok(None);
            }
            let position = match status.position() {
                Some(position) if status.may_be_sent_by(Sender::Client) => position,
                _ => return Err(ProtocolError::WrongRole { status, sender: "client" }.into()),
            };
            let channel = layout.channel;
            let Some(lane) = self.lanes.get_mut(channel) else {
                return Err(ProtocolError::UnknownChannel { channel }.into());
            };
            let state = lane.state();
            let Some((_, step)) = transition(state, position) else {
                return Err(ProtocolError::BadTransition { channel, state, status }.into());
            };
            let (data_start, data_end) = (at + layout.data.0, at + layout.data.1);
            let data = &read[data_start..data_end];
            // The echo route's path is a static copy, as a server's known
            // routes are: no count on the read buffer for it.
            let path = || match &read[at + layout.path.0..at + layout.path.1] {
                ECHO_ROUTE => Bytes::from_static(ECHO_ROUTE),
                _ => read.slice(at + layout.path.0..at + layout.path.1),
            };
            let held = &mut self.held;
            // The table allowed the step: a whole request arrives on an
            // idle lane, a continuation on an open one.
            let whole = match (step, std::mem::replace(lane, Lane::Idle)) {
                (Step::Complete, Lane::Idle) => Some(WholeRequest {
                    path: path(),
                    body: Ok(read.slice(data_start..data_end)),
                    received: (1, len as u64),
                }),
                (Step::Started, _) => {
                    let mut gathering = Gathering { path: path(), body: Some(BytesMut::new()), frames: 0, bytes: 0 };
                    gathering.add(data, len, limits, held);
                    *lane = Lane::Open(gathering);
                    None
                }
                (_, Lane::Open(mut gathering)) => {
                    gathering.add(data, len, limits, held);
                    if step == Step::Complete {
                        Some(gathering.finish(held))
                    } else {
                        *lane = Lane::Open(gathering);
                        None
                    }
                }
                (Step::Continues, Lane::Idle) => {
                    return Err(ProtocolError::BadTransition { channel, state, status }.into());
                }
            };
            at += len;
            if let Some(request) = whole {
                clock = self.answer(output, channel, request, clock);
            }
        }
        Ok(Some(at))
    }

    /// Answers one whole request; returns the clock's reading at its end.
    fn answer(&mut self, output: &mut BytesMut, channel: u32, request: WholeRequest, started: Instant) -> Instant {
        let path = &request.path[..];
        let route = match find_byte(b'?', path) {
            Some(query) => &path[..query],
            None => path,
        };
        let body = match request.body {
            Ok(body) => body,
            Err(code) => {
                put_error(output, route, channel, code);
                return started;
            }
        };
        let received = request.received;
        if route.starts_with(b"/sys/") {
            self.answer_system(output, channel, route);
            return started;
        }
        if route != ECHO_ROUTE {
            put_error(output, route, channel, ErrorCode::HandleError);
            return started;
        }
        let handler = &self.handler;
        let answer = catch_unwind(AssertUnwindSafe(|| handler(body)));
        let ended = latency_now();
        let answer = answer.unwrap_or_else(|_| HandlerError::crashed("handler panicked").to_answer().to_body());
        let max_data = self.config.frame_limits.max_data;
        let (frames, bytes) = encode_body_into(MessageKind::Response, route, channel, &answer, max_data, output);
        self.tally.received(received.0, received.1);
        let answered =
            Answered { elapsed: ended.saturating_duration_since(started), ended, frames, bytes: bytes as u64 };
        self.tally.answered(&self.route, &answered);
        ended
    }

    /// `/sys/new_channel`, `/sys/delete_channel`; any other system path is
    /// answered 102, as a route without a handler.
    fn answer_system(&mut self, output: &mut BytesMut, channel: u32, route: &[u8]) {
        if route == NEW_CHANNEL {
            let Some(id) = self.ids.allocate() else {
                return put_error(output, route, channel, ErrorCode::ChannelCreateLimited);
            };
            self.lanes.insert(id, Lane::Idle);
            put_answer(output, route, channel, &channel_granted_body(id));
        } else if route == DELETE_CHANNEL {
            if channel == 0 {
                return put_error(output, route, channel, ErrorCode::ChannelNotDeletable);
            }
            put_answer(output, route, channel, &ok_body());
            self.ids.release(channel);
            self.lanes.remove(channel);
        } else {
            put_error(output, route, channel, ErrorCode::HandleError);
        }
    }
}

/// Appends a whole answer `body` (short: a system or error answer) on
/// `channel`.
fn put_answer(output: &mut BytesMut, route: &[u8], channel: u32, body: &[u8]) {
    encode_body_into(MessageKind::Response, route, channel, body, u32::MAX, output);
}

/// Appends the error answer of `code`, its name as message (`[ANSWER-10]`).
fn put_error(output: &mut BytesMut, route: &[u8], channel: u32, code: ErrorCode) {
    put_answer(output, route, channel, &ErrorAnswer::named(code).to_body());
}

#[cfg(test)]
mod tests {
    use super::super::tests::{answers, frames, request};
    use super::*;
    use crate::proto::server::ServerConfig;
    use crate::wire::answer::ChannelGrant;
    use crate::wire::frame_error::FrameErrorKind;
    use crate::Frame;

    /// A connection of the checked echo whose handler answers with the body,
    /// or panics on the body `panic`; and its route's statistics.
    fn connection(config: ServerConfig) -> (CheckedEcho, Arc<RouteStats>) {
        let stats = ServerStats::new([Bytes::from_static(ECHO_ROUTE)]);
        let route = stats.route(ECHO_ROUTE).expect("the echo route").clone();
        let handler: EchoHandler = Arc::new(|body: Bytes| {
            assert!(&body[..] != b"panic", "the handler was asked to panic");
            body
        });
        (CheckedEcho::new(config, handler, route.clone()), route)
    }

    fn frame(status: Status, path: &'static str, channel: u32, body: &[u8]) -> Frame {
        Frame::new(status, Bytes::from_static(path.as_bytes()), channel, body.to_vec())
    }

    /// Feeds `list` as one read; the answers, and what `answer_read` said.
    fn feed(echo: &mut CheckedEcho, list: &[Frame]) -> (Vec<Frame>, Result<Option<usize>, CheckedClose>) {
        let read = frames(list).freeze();
        let mut output = BytesMut::new();
        let result = echo.answer_read(&read, &mut output);
        (answers(&mut output), result)
    }

    fn code(answer: &Frame) -> Option<i64> {
        ErrorAnswer::parse(&answer.data).map(|a| a.code)
    }

    #[test]
    fn answers_requests_in_order_on_their_route_and_records_them() {
        let (mut echo, route) = connection(ServerConfig::default());
        let list = [request("/echo?x=1", 0, b"one"), request("/echo", 0, b"two"), request("/nowhere", 0, b"{}")];
        let (answers, result) = feed(&mut echo, &list);
        assert_eq!(result, Ok(Some(frames(&list).len())));
        let seen: Vec<(&[u8], &[u8])> = answers.iter().map(|a| (&a.path[..], &a.data[..])).collect();
        assert_eq!(seen[..2], [(&b"/echo"[..], &b"one"[..]), (&b"/echo"[..], &b"two"[..])], "[MSG-10]: no query");
        assert_eq!(code(&answers[2]), Some(ErrorCode::HandleError.value()), "[ANSWER-2]");
        let counts = route.count.snapshot();
        assert_eq!((counts.whole_received, counts.whole_sent), (2, 2), "reported after the read");
        assert_eq!(counts.bytes_received, frames(&list[..2]).len() as u64, "[SYS-8]: whole frames");
        assert_eq!(counts.bytes_sent, (2 * (5 + 10) + 6) as u64);
        assert_eq!(route.measure.totals().0, 2, "both measured");
    }

    #[test]
    fn gathers_a_chunked_request_and_answers_one_past_the_limit_with_110() {
        let config = ServerConfig { max_message: 5, ..ServerConfig::default() };
        let (mut echo, route) = connection(config);
        let list = [
            frame(Status::RequestFirst, "/echo", 0, b"ab"),
            frame(Status::RequestContinue, "/other", 0, b"cd"),
            frame(Status::RequestLast, "", 0, b"e"),
            frame(Status::RequestFirst, "/echo", 0, b"abc"),
            frame(Status::RequestLast, "/echo", 0, b"def"),
            request("/echo", 0, b"after"),
        ];
        let (answers, result) = feed(&mut echo, &list);
        assert!(matches!(result, Ok(Some(_))), "{result:?}");
        assert_eq!(answers.len(), 3, "one answer a request");
        assert_eq!((&answers[0].path[..], &answers[0].data[..]), (&b"/echo"[..], &b"abcde"[..]), "[MSG-3], [MSG-4]");
        assert_eq!(code(&answers[1]), Some(ErrorCode::RequestTooLarge.value()), "[MSG-8]");
        assert_eq!(&answers[2].data[..], b"after", "the connection goes on");
        let counts = route.count.snapshot();
        assert_eq!((counts.whole_received, counts.packets_received), (2, 4));
    }

    #[test]
    fn bodies_being_gathered_stay_within_the_connections_budget() {
        let config = ServerConfig { max_held_bytes: 6, ..ServerConfig::default() };
        let (mut echo, _) = connection(config);
        let (granted, _) = feed(&mut echo, &[request("/sys/new_channel", 0, b"{}")]);
        assert_eq!(granted[0].data, channel_granted_body(1));
        let list = [
            frame(Status::RequestFirst, "/echo", 0, b"abcd"),
            frame(Status::RequestFirst, "/echo", 1, b"wx"),
            frame(Status::RequestLast, "/echo", 1, b"yz"),
            frame(Status::RequestLast, "/echo", 0, b"e"),
            frame(Status::RequestFirst, "/echo", 1, b"abc"),
            frame(Status::RequestLast, "/echo", 1, b"def"),
        ];
        let (answers, result) = feed(&mut echo, &list);
        assert!(matches!(result, Ok(Some(_))), "{result:?}");
        let channels: Vec<u32> = answers.iter().map(|a| a.channel).collect();
        assert_eq!(channels, [1, 0, 1]);
        assert_eq!(code(&answers[0]), Some(ErrorCode::RequestTooLarge.value()), "[RES-2]: 4 + 2 + 2 > 6");
        assert_eq!(&answers[1].data[..], b"abcde", "the other request is not affected");
        assert_eq!(&answers[2].data[..], b"abcdef", "what the finished requests held is given back");
        assert_eq!(echo.held, 0);
    }

    #[test]
    fn an_answer_longer_than_a_frame_is_chunked() {
        let mut config = ServerConfig::default();
        config.frame_limits.max_data = 4;
        let (mut echo, route) = connection(config);
        let list = [
            frame(Status::RequestFirst, "/echo", 0, b"abcd"),
            frame(Status::RequestContinue, "/echo", 0, b"efgh"),
            frame(Status::RequestLast, "/echo", 0, b"ij"),
        ];
        let (answers, _) = feed(&mut echo, &list);
        let frames: Vec<(Status, &[u8])> = answers.iter().map(|a| (a.status, &a.data[..])).collect();
        assert_eq!(
            frames,
            [
                (Status::ResponseFirst, &b"abcd"[..]),
                (Status::ResponseContinue, &b"efgh"[..]),
                (Status::ResponseLast, &b"ij"[..])
            ],
            "[MSG-11]"
        );
        assert_eq!(route.count.snapshot().packets_sent, 3);
    }

    #[test]
    fn grants_the_lowest_free_channel_up_to_the_limit_and_deletes_on_request() {
        let config = ServerConfig { max_channels: 3, ..ServerConfig::default() };
        let (mut echo, _) = connection(config);
        let new = || request("/sys/new_channel", 0, b"{}");
        let (answers, _) = feed(&mut echo, &[new(), new(), new()]);
        let granted: Vec<Option<u32>> = answers
            .iter()
            .map(|a| serde_json::from_slice::<ChannelGrant>(&a.data).ok().and_then(|g| g.channel_id))
            .collect();
        assert_eq!(granted, [Some(1), Some(2), None]);
        assert_eq!(code(&answers[2]), Some(ErrorCode::ChannelCreateLimited.value()), "[CHAN-9]");
        let (answers, _) = feed(
            &mut echo,
            &[request("/sys/delete_channel", 1, b"{}"), request("/sys/delete_channel", 0, b"{}"), new()],
        );
        assert_eq!(answers[0].data, ok_body(), "[CHAN-7]");
        assert_eq!(code(&answers[1]), Some(ErrorCode::ChannelNotDeletable.value()), "[CHAN-8]");
        let regranted = serde_json::from_slice::<ChannelGrant>(&answers[2].data).ok().and_then(|g| g.channel_id);
        assert_eq!(regranted, Some(1), "[CHAN-4]");
        let (answers, _) = feed(&mut echo, &[request("/sys/delete_channel", 2, b"{}")]);
        assert_eq!(answers[0].data, ok_body());
        let (answers, result) = feed(&mut echo, &[request("/echo", 1, b"still"), request("/echo", 2, b"gone")]);
        assert_eq!(answers.len(), 1, "the answers before the close are kept");
        assert_eq!(result, Err(ProtocolError::UnknownChannel { channel: 2 }.into()), "[CHAN-6]");
    }

    #[test]
    fn closes_on_a_broken_rule_naming_it() {
        let (mut echo, _) = connection(ServerConfig::default());
        let (_, result) = feed(&mut echo, &[frame(Status::ResponseWhole, "/echo", 0, b"x")]);
        let role = ProtocolError::WrongRole { status: Status::ResponseWhole, sender: "client" };
        assert_eq!(result, Err(role.into()), "[STATUS-3]");

        let (mut echo, _) = connection(ServerConfig::default());
        let (_, result) = feed(&mut echo, &[frame(Status::RequestLast, "/echo", 0, b"x")]);
        let transition =
            ProtocolError::BadTransition { channel: 0, state: MessageState::Idle, status: Status::RequestLast };
        assert_eq!(result, Err(transition.into()), "[MSG-6]");

        let (mut echo, _) = connection(ServerConfig::default());
        let mut read = frames(&[request("/echo", 0, b"x")]);
        let first = read.len();
        read.extend_from_slice(&[9, b'/', 0]);
        let result = echo.answer_read(&read.freeze(), &mut BytesMut::new());
        let Err(CheckedClose::Frame(error)) = result else { panic!("a framing error: {result:?}") };
        assert_eq!((error.kind, error.offset), (FrameErrorKind::UnknownStatus(9), first as u64), "offset in the read");
    }

    #[test]
    fn a_partial_frame_waits_and_a_close_frame_ends_after_the_answers_before_it() {
        let (mut echo, _) = connection(ServerConfig::default());
        let whole = frames(&[request("/echo", 0, b"x")]);
        let mut read = whole.clone();
        read.extend_from_slice(&whole[..4]);
        assert_eq!(echo.answer_read(&read.freeze(), &mut BytesMut::new()), Ok(Some(whole.len())));
        let (answers, result) = feed(&mut echo, &[request("/echo", 0, b"y"), frame(Status::Close, "", 0, b"")]);
        assert_eq!((answers.len(), result), (1, Ok(None)));
    }

    #[test]
    fn a_panicking_handler_is_answered_104_and_the_next_request_served() {
        let (mut echo, _) = connection(ServerConfig::default());
        let (answers, result) = feed(&mut echo, &[request("/echo", 0, b"panic"), request("/echo", 0, b"next")]);
        assert!(matches!(result, Ok(Some(_))));
        assert_eq!(code(&answers[0]), Some(ErrorCode::Unknown.value()), "[ANSWER-11]");
        assert_eq!(&answers[1].data[..], b"next");
    }

    #[tokio::test]
    async fn serves_a_request_split_across_writes_and_closes_on_a_broken_frame() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve_checked_iip(listener));
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = frames(&[request("/echo?q", 0, b"split")]);
        let (first, second) = request.split_at(7);
        stream.write_all(first).await.expect("write");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        stream.write_all(second).await.expect("write");
        let mut expected =
            frames(&[Frame::new(Status::ResponseWhole, Bytes::from_static(b"/echo"), 0, b"split".to_vec())]);
        let mut answer = vec![0; expected.len()];
        stream.read_exact(&mut answer).await.expect("the answer");
        assert_eq!(answer, expected.split().to_vec());
        stream.write_all(&[9, b'/', 0]).await.expect("write");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the connection closes: {read:?}");
    }
}
