//! The server side of a connection, sans I/O.
//!
//! Feed it every frame the client sent ([`ServerConnection::receive`]); it
//! answers `/sys/new_channel` and `/sys/delete_channel` itself and hands every
//! other complete request out as an [`IncomingRequest`] with a per-channel
//! sequence number. Give each answer back with [`ServerConnection::respond`],
//! in any order; frames come out of [`ServerConnection::poll_transmit`] in the
//! order the spec demands (`[ORDER-2]`).
//!
//! A shell that can answer at once may offer every frame to
//! [`ServerConnection::receive_direct`] first (or, keeping the frame, ask
//! [`ServerConnection::direct_ticket`] about it). A whole request on a channel
//! with nothing before it in line comes back as a [`DirectRequest`] whose
//! answer [`ServerConnection::answer_direct`] encodes straight into the
//! shell's write buffer: no place in the channel's order, no frame in the
//! outbox. A handler that must wait instead takes the request's place with
//! [`ServerConnection::defer`] and answers through `respond` as usual. Any
//! other frame is given back untouched, for `receive`.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::wire::answer::{channel_granted_body, ok_body, ErrorAnswer, ErrorCode};
use crate::wire::frame::{split_route, Frame, FrameLimits};
use crate::wire::scan::same_bytes;
use crate::wire::status::{MessageKind, Sender, Status};

use super::channels::{ChannelIds, ChannelTable};
use super::error::{receive_unless_broken, Breakable, ProtocolError};
use super::extensions::{Admission, AuthPolicy, BodyCodec, BodyError, Handshake, GOING_AWAY};
use super::message::{chunk_body_into, encode_body_into, transition, MessageState, Step};

/// The route that opens a channel (`[CHAN-2]`).
pub const NEW_CHANNEL: &[u8] = b"/sys/new_channel";
/// The route that deletes the channel it arrives on (`[CHAN-7]`).
pub const DELETE_CHANNEL: &[u8] = b"/sys/delete_channel";

/// Settings of the server core (the `[core]` table of a configuration
/// file; every key optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Frame limits, for reading and for chunking answers. Default
    /// [`FrameLimits::default`]: paths up to 2,048 bytes, frame data up to 16 MiB.
    pub frame_limits: FrameLimits,
    /// Most channels per connection, channel 0 included (`[CHAN-9]`).
    /// Default 1,024.
    pub max_channels: u32,
    /// Largest request body (`[MSG-8]`). Default 64 MiB.
    pub max_message: usize,
    /// The connection's memory budget in bytes (`[RES-1]`): what it may hold
    /// of request bodies being assembled, bodies handed to handlers and not
    /// yet answered, and answers not yet sent. A chunked message whose next
    /// frame would take the total past it is refused with 110 (`[RES-2]`);
    /// the shell stops reading while bodies in handlers and answers reach
    /// it (`[RES-3]`). A message can therefore be at most this large,
    /// whatever `max_message` says. Default 64 MiB.
    pub max_held_bytes: usize,
}

/// What a connection counts for each channel it holds beyond channel 0
/// (`[RES-9]`): the channel's state in the core and its counts in the
/// shell, rounded up from the ≈240 bytes measured per channel.
pub const CHANNEL_COST: usize = 256;

/// What a connection counts for each request that waits for its answer
/// (`[RES-9]`): its place in its channel's order and the state of a
/// handler that waits, rounded up from the ≈1.3 KB measured per request
/// parked in a sleeping handler. A request answered in the turn it arrived
/// in never waits and costs nothing.
pub const WAITING_REQUEST_COST: usize = 1536;

/// How far a connection that holds nothing outbound may inflate a
/// compressed body while the whole server is at its budget (`[RES-9]`),
/// so that it is still served one small request at a time ([RES-4]).
pub const INFLATE_FLOOR: usize = 64 * 1024;

/// The default per-connection memory budget: 64 MiB.
pub const DEFAULT_MAX_HELD_BYTES: usize = 64 * 1024 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            frame_limits: FrameLimits::default(),
            max_channels: 1024,
            max_message: 64 * 1024 * 1024,
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
        }
    }
}

/// A complete request for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingRequest {
    /// The channel it came on.
    pub channel: u32,
    /// Its place in the channel's order; give it back to `respond`.
    pub seq: u64,
    /// The route: the path up to the first `?`.
    pub route: Bytes,
    /// The query: what follows the first `?`, if any.
    pub query: Option<Bytes>,
    /// The whole body.
    pub body: Bytes,
    /// How many frames carried it.
    pub frames: u64,
    /// The bytes of those frames, headers included (`[SYS-8]`).
    pub bytes: u64,
}

/// What a received frame means for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A complete request to handle.
    Request(IncomingRequest),
    /// The client sent a close frame (`[CLOSE-2]`).
    PeerClosed {
        /// The close frame's data, as a reason.
        reason: Bytes,
    },
}

/// A whole request that may be answered in the turn it arrived in, with
/// no place kept for it in its channel's order: see
/// [`ServerConnection::receive_direct`].
#[derive(Debug, PartialEq, Eq)]
pub struct DirectRequest {
    /// What the core needs back with its answer.
    pub ticket: DirectTicket,
    /// The route: the path up to the first `?`.
    pub route: Bytes,
    /// The query: what follows the first `?`, if any.
    pub query: Option<Bytes>,
    /// The whole body (one frame carried it).
    pub body: Bytes,
    /// The bytes of its frame, header included (`[SYS-8]`).
    pub bytes: u64,
}

/// A direct request's claim on its channel's next place in order. Give it
/// back, before the core is given anything else, to
/// [`ServerConnection::answer_direct`] or [`ServerConnection::defer`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a direct request must be answered or deferred"]
pub struct DirectTicket {
    /// The channel it came on.
    pub channel: u32,
    /// Its place in the channel's order, as [`IncomingRequest::seq`].
    pub seq: u64,
}

/// Where a direct answer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectAnswer {
    /// Encoded into the buffer given: this many frames of this many bytes.
    Written {
        /// Frames written.
        frames: u64,
        /// Their bytes on the wire.
        bytes: usize,
    },
    /// Queued for [`ServerConnection::transmit`] like any other answer.
    Queued,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Deleting,
}

/// An answer that is ready, waiting for its turn.
#[derive(Debug)]
struct Ready {
    route: Bytes,
    body: Bytes,
    /// Sending this answer completes a channel's deletion.
    deletes: bool,
}

#[derive(Debug)]
enum Inbound {
    Idle,
    /// A chunked request in progress; `None` body once it outgrew the limit.
    Open {
        path: Bytes,
        body: Option<BytesMut>,
        frames: u64,
        /// Whole frames so far, headers included (`[SYS-8]`).
        bytes: u64,
    },
}

#[derive(Debug)]
struct Channel {
    phase: Phase,
    inbound: Inbound,
    /// The seq of the first slot: the next answer to send.
    next_to_send: u64,
    /// One slot per request given a seq and not yet sent, in seq order:
    /// answers go out from the front as soon as it is ready ([ORDER-1]).
    slots: VecDeque<Slot>,
}

/// A request's place in its channel's order.
#[derive(Debug)]
enum Slot {
    /// Handed out; its route and the body bytes it holds until answered.
    Waiting { route: Bytes, held: usize },
    /// Answered, waiting for the answers before it.
    Ready(Ready),
}

impl Channel {
    fn new() -> Channel {
        Channel { phase: Phase::Open, inbound: Inbound::Idle, next_to_send: 0, slots: VecDeque::new() }
    }

    fn message_state(&self) -> MessageState {
        match self.inbound {
            Inbound::Idle => MessageState::Idle,
            Inbound::Open { .. } => MessageState::Open,
        }
    }

    /// Gives the next request its place in the order; `held` is the size
    /// of its body while it waits for an answer, counted in `bytes` with
    /// the place itself.
    fn take_seq(&mut self, route: Bytes, held: usize, bytes: &mut HeldBytes) -> u64 {
        bytes.handed_out += held;
        bytes.waiting += WAITING_REQUEST_COST;
        self.slots.push_back(Slot::Waiting { route, held });
        self.next_to_send + self.slots.len() as u64 - 1
    }

    fn unanswered(&self) -> usize {
        self.slots.len()
    }

    /// Marks request `seq` answered with `ready` (given the request's
    /// route); returns the body bytes it held, or `None` if it is not waiting.
    fn answer(&mut self, seq: u64, ready: impl FnOnce(Bytes) -> Ready) -> Option<usize> {
        let slot = self.slots.get_mut(usize::try_from(seq.checked_sub(self.next_to_send)?).ok()?)?;
        let Slot::Waiting { route, held } = slot else { return None };
        let held = *held;
        *slot = Slot::Ready(ready(std::mem::take(route)));
        Some(held)
    }

    /// Takes request `seq` out of the order if it is the oldest one and
    /// waiting, so that its answer goes out at once with no turn through
    /// its slot: its route and the body bytes it held. A deletion is never
    /// waiting (it is answered as it arrives).
    /// `bytes` no longer counts it.
    fn take_oldest(&mut self, seq: u64, bytes: &mut HeldBytes) -> Option<(Bytes, usize)> {
        if seq != self.next_to_send || !matches!(self.slots.front(), Some(Slot::Waiting { .. })) {
            return None;
        }
        let Some(Slot::Waiting { route, held }) = self.slots.pop_front() else { return None };
        self.next_to_send += 1;
        bytes.waiting -= WAITING_REQUEST_COST;
        bytes.handed_out -= held;
        Some((route, held))
    }

    /// The answer at the front, if it is ready; its place is no longer
    /// counted in `bytes`.
    fn pop_ready(&mut self, bytes: &mut HeldBytes) -> Option<Ready> {
        match self.slots.front() {
            Some(Slot::Ready(_)) => {}
            _ => return None,
        }
        self.next_to_send += 1;
        bytes.waiting -= WAITING_REQUEST_COST;
        match self.slots.pop_front() {
            Some(Slot::Ready(ready)) => Some(ready),
            _ => None,
        }
    }
}

/// The bytes a connection holds, by where they are (`[RES-1]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeldBytes {
    /// Bodies of chunked requests not yet complete.
    pub assembling: usize,
    /// Bodies of requests handed out and not yet answered.
    pub handed_out: usize,
    /// Answers given and not yet taken by `poll_transmit`/`drain_transmit`,
    /// as encoded frame bytes once they are frames.
    pub answers: usize,
    /// [`WAITING_REQUEST_COST`] for each request given a place in its
    /// channel's order and not yet sent its answer.
    pub waiting: usize,
    /// [`CHANNEL_COST`] for each channel beyond channel 0.
    pub channels: usize,
}

impl HeldBytes {
    /// Everything held.
    pub fn total(&self) -> usize {
        self.assembling + self.handed_out + self.answers + self.waiting + self.channels
    }

    /// What leaves without the peer sending more: bodies in handlers,
    /// answers and the requests waiting for them. Reading pauses on this,
    /// never on `assembling`, which only reading can complete, nor on
    /// channels, which only the peer's deletes release (`[RES-3]`).
    pub fn outbound(&self) -> usize {
        self.handed_out + self.answers + self.waiting
    }
}

/// The server's per-connection protocol state.
#[derive(Debug)]
pub struct ServerConnection {
    config: ServerConfig,
    ids: ChannelIds,
    channels: ChannelTable<Channel>,
    outbox: VecDeque<Frame>,
    closed: bool,
    held: HeldBytes,
    /// What the server-wide budget can still give this connection, as the
    /// shell last said: no message grows past it by assembly (`[RES-2]`)
    /// or inflation (`[RES-9]`), and no channel is opened past it.
    server_room: usize,
    /// Where the connection stands with its hello (`[EXT-1]`).
    handshake: Handshake,
    /// The body marker and codec once compression is agreed (`[EXT-12]`).
    body_codec: Option<BodyCodec>,
    /// Set when the connection must close once its answers are sent (`[EXT-9]`).
    close_requested: Option<&'static str>,
    /// Bytes inflated and compressed for this peer so far (`[RES-9]`).
    codec_work: u64,
}

/// Appends `data` to a message body being assembled, or gives `None` (for
/// good) once the body would pass `max_message`, once everything the
/// connection holds would pass its budget, or once it would pass what the
/// server can still give (`server_room`). `held` follows.
fn append_within(
    body: Option<BytesMut>,
    data: &[u8],
    (config, max_message): (&ServerConfig, usize),
    server_room: usize,
    held: &mut HeldBytes,
) -> Option<BytesMut> {
    let mut body = body?;
    let fits = body.len() + data.len() <= max_message
        && held.total() + data.len() <= config.max_held_bytes
        && data.len() <= server_room;
    if !fits {
        held.assembling -= body.len();
        return None;
    }
    held.assembling += data.len();
    body.extend_from_slice(data);
    Some(body)
}

/// The largest body a message for `route` may have: the message limit, or
/// the hello's own where it is lower (`[RES-10]`).
fn message_limit(handshake: &Handshake, config: &ServerConfig, route: &[u8]) -> usize {
    handshake.body_limit(route).map_or(config.max_message, |limit| limit.min(config.max_message))
}

/// Moves the answers at the front of `channel` that are ready into
/// `outbox` as frames, in order (`[ORDER-1]`), keeping `held` in step;
/// true when one of them answered the channel's deletion (nothing after
/// it is sent).
fn send_ready(
    channel: &mut Channel,
    channel_id: u32,
    max_data: u32,
    held: &mut HeldBytes,
    outbox: &mut VecDeque<Frame>,
) -> bool {
    while let Some(ready) = channel.pop_ready(held) {
        held.answers -= ready.body.len();
        held.answers += chunk_body_into(MessageKind::Response, ready.route, channel_id, ready.body, max_data, outbox);
        if ready.deletes {
            return true;
        }
    }
    false
}

/// `body` with the marker in force, if any (`[EXT-12]`).
fn seal(codec: &Option<BodyCodec>, body: Bytes) -> Bytes {
    match codec {
        Some(codec) => codec.seal(&body),
        None => body,
    }
}

impl ServerConnection {
    /// A new connection: only channel 0 exists (`[CHAN-1]`).
    pub fn new(config: ServerConfig) -> ServerConnection {
        ServerConnection {
            config,
            ids: ChannelIds::new(config.max_channels),
            channels: ChannelTable::with_channel_zero(Channel::new()),
            outbox: VecDeque::new(),
            closed: false,
            held: HeldBytes::default(),
            server_room: usize::MAX,
            handshake: Handshake::new(true, AuthPolicy::Off),
            body_codec: None,
            close_requested: None,
            codec_work: 0,
        }
    }

    /// Sets how the connection treats `/sys/hello` and authentication
    /// (default: hellos answered, no authentication). Call before the
    /// first frame.
    pub fn set_handshake(&mut self, handshake: Handshake) {
        self.handshake = handshake;
    }

    /// The hello was answered (the answer given to [`ServerConnection::respond`]):
    /// from now on every body received and sent carries the marker of
    /// `body_codec`, if compression was agreed (`[EXT-12]`), and
    /// `authenticated` says whether the client's credentials were accepted.
    pub fn hello_completed(&mut self, authenticated: bool, body_codec: Option<BodyCodec>) {
        self.handshake.completed(authenticated);
        self.body_codec = body_codec;
    }

    /// Why the connection must close once what is queued is sent, if it
    /// must: a request refused for want of authentication (`[EXT-9]`).
    pub fn close_requested(&self) -> Option<&'static str> {
        self.close_requested
    }

    /// Queues the going-away frame (`[EXT-16]`): status 5 on channel 0 with
    /// the path `/sys/going_away`, answering no request, telling a client
    /// that agreed to `going_away` to send nothing new and to finish within
    /// `grace_ms`. It goes out between messages, as frames leave whole
    /// messages at a time.
    pub fn going_away(&mut self, grace_ms: u64) {
        let body = seal(&self.body_codec, Bytes::from(format!("{{\"grace_ms\":{grace_ms}}}")));
        let frame = Frame::new(Status::ResponseWhole, Bytes::from_static(GOING_AWAY), 0, body);
        self.held.answers += frame.encoded_len();
        self.outbox.push_back(frame);
    }

    /// Bytes inflated from compressed requests and given to the codec as
    /// answers so far: the compression work this peer has cost, which a
    /// shell paces (`[RES-9]`).
    pub fn codec_work(&self) -> u64 {
        self.codec_work
    }

    /// The bytes this connection holds (`[RES-1]`).
    pub fn held(&self) -> HeldBytes {
        self.held
    }

    /// Tells the core how many bytes the server-wide budget can still give
    /// this connection (default: no limit). A chunked request that would
    /// grow past it, or a compressed one that would inflate past it, is
    /// refused with 110 (`[RES-2]`, `[RES-9]`); no channel is opened past it.
    pub fn set_server_room(&mut self, room: usize) {
        self.server_room = room;
    }

    /// The bytes a compressed body on this connection may inflate to: what
    /// its budget and the server's leave, and at least [`INFLATE_FLOOR`]
    /// (within its own budget) when it holds nothing outbound (`[RES-9]`).
    fn inflate_room(&self) -> usize {
        let own = self.config.max_held_bytes.saturating_sub(self.held.total());
        let server = if self.held.outbound() == 0 { self.server_room.max(INFLATE_FLOOR) } else { self.server_room };
        own.min(server)
    }

    /// Whether one more channel fits the connection's budget and the
    /// server's (`[RES-9]`).
    fn channel_fits(&self) -> bool {
        self.held.total() + CHANNEL_COST <= self.config.max_held_bytes && CHANNEL_COST <= self.server_room
    }

    /// The settings in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Takes one frame from the client. A protocol error means the
    /// connection must be closed (`[CLOSE-4]`); the core accepts nothing after.
    pub fn receive(&mut self, frame: Frame) -> Result<Option<ServerEvent>, ProtocolError> {
        receive_unless_broken(self, frame, Self::receive_inner)
    }

    /// Takes one frame from the client if it is a request that may be
    /// answered at once, with nothing kept in the core while its handler
    /// runs; gives the frame back untouched otherwise, to go to
    /// [`ServerConnection::receive`].
    ///
    /// A request is direct when it is whole (status 1), on an open channel
    /// with no request of its own in progress or unanswered, within the
    /// message limit, on a route outside `/sys/`, on a connection past its
    /// hello with no body marker in force (or with extensions off), and
    /// nothing is queued to be sent: then its answer is the next thing its
    /// channel sends (`[ORDER-1]`) and may be written straight after what
    /// was sent before. Every decision `receive` would make about it is the
    /// same: it would be handed out as the channel's next request.
    pub fn receive_direct(&mut self, frame: Frame) -> Result<DirectRequest, Frame> {
        let Some(ticket) = self.direct_ticket(&frame) else { return Err(frame) };
        let bytes = frame.encoded_len() as u64;
        let (route, query) = split_route(frame.path);
        Ok(DirectRequest { ticket, route, query, body: frame.data, bytes })
    }

    /// [`ServerConnection::receive_direct`] for a shell that keeps the
    /// frame: the request's ticket when `frame` is direct (by the same
    /// rules), `None` when it must go to [`ServerConnection::receive`].
    /// Nothing moves in or out but the ticket; the shell takes the route,
    /// query and body from the frame itself.
    #[inline(always)]
    pub fn direct_ticket(&mut self, frame: &Frame) -> Option<DirectTicket> {
        let possible = !self.closed
            && frame.status == Status::RequestWhole
            && self.outbox.is_empty()
            && self.body_codec.is_none()
            && frame.data.len() <= self.config.max_message
            && !frame.path.starts_with(b"/sys/")
            && self.handshake.proceeds();
        if !possible {
            return None;
        }
        let channel = self.channels.get(frame.channel)?;
        if channel.phase != Phase::Open || !matches!(channel.inbound, Inbound::Idle) || !channel.slots.is_empty() {
            return None;
        }
        Some(DirectTicket { channel: frame.channel, seq: channel.next_to_send })
    }

    /// The answer to a direct request: its frames are encoded into `dst`
    /// when there is one and the answer fits one frame, and queued like any
    /// other answer otherwise (then [`DirectAnswer::Queued`]). `route` is
    /// the request's route, which the answer's frames carry; one that is
    /// not a valid path within the frame limits is queued, and refused
    /// where frames are encoded.
    #[inline(always)]
    pub fn answer_direct(
        &mut self,
        ticket: DirectTicket,
        route: &Bytes,
        body: Bytes,
        dst: Option<&mut bytes::BytesMut>,
    ) -> DirectAnswer {
        let limits = self.config.frame_limits;
        let (channel_id, seq) = (ticket.channel, ticket.seq);
        let fits = self.outbox.is_empty()
            && body.len() <= limits.max_data as usize
            && route.len() <= limits.max_path
            && crate::wire::scan::find_byte(0, route).is_none();
        // Its turn, when nothing of its channel waits before it.
        let in_turn = self.channels.get_mut(channel_id).filter(|c| fits && c.slots.is_empty() && c.next_to_send == seq);
        match (in_turn, dst) {
            (Some(channel), Some(dst)) => {
                channel.next_to_send += 1;
                let body = seal(&self.body_codec, body);
                let (frames, bytes) =
                    encode_body_into(MessageKind::Response, route, channel_id, &body, limits.max_data, dst);
                DirectAnswer::Written { frames, bytes }
            }
            _ => {
                let seq = self.defer(ticket, route.clone(), 0);
                self.respond(channel_id, seq, body);
                DirectAnswer::Queued
            }
        }
    }

    /// Gives a direct request its place in its channel's order, to be
    /// answered later with [`ServerConnection::respond`] like a request
    /// that [`ServerConnection::receive`] handed out; `held` is its body's
    /// size while it waits. Returns its seq: the ticket's, when the ticket
    /// comes back before the core is given anything else.
    pub fn defer(&mut self, ticket: DirectTicket, route: Bytes, held: usize) -> u64 {
        let Some(channel) = self.channels.get_mut(ticket.channel) else { return ticket.seq };
        channel.take_seq(route, held, &mut self.held)
    }

    fn receive_inner(&mut self, frame: Frame) -> Result<Option<ServerEvent>, ProtocolError> {
        if frame.status == Status::Close {
            self.closed = true;
            return Ok(Some(ServerEvent::PeerClosed { reason: frame.data }));
        }
        if !frame.status.may_be_sent_by(Sender::Client) {
            return Err(ProtocolError::WrongRole { status: frame.status, sender: "client" });
        }
        let channel_id = frame.channel;
        let channel = self.channels.get_mut(channel_id).ok_or(ProtocolError::UnknownChannel { channel: channel_id })?;
        if channel.phase == Phase::Deleting {
            return Err(ProtocolError::DeletedChannel { channel: channel_id });
        }
        let Some(position) = frame.status.position() else {
            return Err(ProtocolError::WrongRole { status: frame.status, sender: "client" });
        };
        let state = channel.message_state();
        let Some((_, step)) = transition(state, position) else {
            return Err(ProtocolError::BadTransition { channel: channel_id, state, status: frame.status });
        };
        let first = matches!(channel.inbound, Inbound::Idle);
        let (message_route, _) = match &channel.inbound {
            Inbound::Open { path, .. } => split_route(path.clone()),
            Inbound::Idle => split_route(frame.path.clone()),
        };
        // Nothing of a message that authentication would refuse is held
        // ([EXT-9], [RES-10]).
        if first && self.handshake.refuses_start(channel_id, &message_route) {
            let seq = channel.take_seq(message_route, 0, &mut self.held);
            self.respond_error(channel_id, seq, ErrorAnswer::named(ErrorCode::Unauthenticated));
            self.close_requested = Some("[EXT-9] unauthenticated");
            return Ok(None);
        }
        let max_message = message_limit(&self.handshake, &self.config, &message_route);
        let (config, room, held) = ((&self.config, max_message), self.server_room, &mut self.held);
        let frame_bytes = frame.encoded_len() as u64;
        // Assemble (`[MSG-3]`, `[MSG-4]`); `None` once past a limit (`[MSG-8]`, `[RES-2]`).
        let whole = step == Step::Complete && first;
        let inbound = if whole { Inbound::Idle } else { std::mem::replace(&mut channel.inbound, Inbound::Idle) };
        let (path, body, frames, bytes) = match (step, inbound) {
            (Step::Complete, Inbound::Idle) => {
                (frame.path, Some(frame.data).filter(|d| d.len() <= max_message), 1, frame_bytes)
            }
            (Step::Started, _) => {
                let body = append_within(Some(BytesMut::new()), &frame.data, config, room, held);
                // The path is copied: a slice would keep the whole read
                // buffer of this (possibly large) frame alive until the
                // message completes.
                let path = Bytes::copy_from_slice(&frame.path);
                channel.inbound = Inbound::Open { path, body, frames: 1, bytes: frame_bytes };
                return Ok(None);
            }
            (Step::Continues, Inbound::Open { path, body, frames, bytes }) => {
                let body = append_within(body, &frame.data, config, room, held);
                channel.inbound = Inbound::Open { path, body, frames: frames + 1, bytes: bytes + frame_bytes };
                return Ok(None);
            }
            (Step::Complete, Inbound::Open { path, body, frames, bytes }) => {
                let body = append_within(body, &frame.data, config, room, held).map(|body| {
                    held.assembling -= body.len();
                    body.freeze()
                });
                (path, body, frames + 1, bytes + frame_bytes)
            }
            (Step::Continues, Inbound::Idle) => {
                return Err(ProtocolError::BadTransition { channel: channel_id, state, status: frame.status });
            }
        };
        let (route, query) = split_route(path);
        match self.handshake.admit(channel_id, &route) {
            Admission::Proceed => {}
            // A hello past its limit is answered 110 like any request too
            // large ([RES-10]); it agrees nothing ([EXT-5]).
            Admission::Hello if body.is_none() => self.handshake.completed(false),
            Admission::Hello => {}
            Admission::LateHello => {
                let seq = channel.take_seq(route, 0, &mut self.held);
                self.respond_error(channel_id, seq, ErrorAnswer::named(ErrorCode::HandleError));
                return Ok(None);
            }
            Admission::Unauthenticated => {
                let seq = channel.take_seq(route, 0, &mut self.held);
                self.respond_error(channel_id, seq, ErrorAnswer::named(ErrorCode::Unauthenticated));
                self.close_requested = Some("[EXT-9] unauthenticated");
                return Ok(None);
            }
            Admission::HelloPending => {
                return Err(ProtocolError::HelloPending { route: String::from_utf8_lossy(&route).into_owned() });
            }
        }
        // The marker of a compressed connection; the limit applies to the
        // inflated body (`[EXT-14]`, `[EXT-15]`).
        let room = self.inflate_room();
        let body = match (body, &self.body_codec) {
            (Some(body), Some(codec)) => match codec.open_within(&body, room) {
                Ok(open) => {
                    self.codec_work += open.len() as u64;
                    Some(open)
                }
                Err(BodyError::TooLarge { .. }) => None,
                Err(err) => return Err(err.into()),
            },
            (body, _) => body,
        };
        let Some(body) = body else {
            let Some(channel) = self.channels.get_mut(channel_id) else { return Ok(None) };
            let seq = channel.take_seq(route, 0, &mut self.held);
            self.respond_error(channel_id, seq, ErrorAnswer::named(ErrorCode::RequestTooLarge));
            return Ok(None);
        };
        if same_bytes(&route, NEW_CHANNEL) {
            // A channel past the budgets is refused as one past the
            // channel limit ([CHAN-9], [RES-9]).
            let granted = if self.channel_fits() { self.ids.allocate() } else { None };
            let answer = match granted {
                Some(id) => {
                    self.channels.insert(id, Channel::new());
                    self.held.channels += CHANNEL_COST;
                    channel_granted_body(id)
                }
                None => ErrorAnswer::new(ErrorCode::ChannelCreateLimited, "channel create limited").to_body(),
            };
            let Some(channel) = self.channels.get_mut(channel_id) else { return Ok(None) };
            let seq = channel.take_seq(route, 0, &mut self.held);
            self.respond(channel_id, seq, answer);
            return Ok(None);
        }
        if same_bytes(&route, DELETE_CHANNEL) {
            let Some(channel) = self.channels.get_mut(channel_id) else { return Ok(None) };
            let seq = channel.take_seq(route, 0, &mut self.held);
            if channel_id == 0 {
                self.respond_error(0, seq, ErrorAnswer::named(ErrorCode::ChannelNotDeletable));
            } else {
                channel.phase = Phase::Deleting;
                let body = seal(&self.body_codec, ok_body());
                self.held.answers += body.len();
                channel.answer(seq, |route| Ready { route, body, deletes: true });
                self.flush_channel(channel_id);
            }
            return Ok(None);
        }
        let Some(channel) = self.channels.get_mut(channel_id) else { return Ok(None) };
        let seq = channel.take_seq(route.clone(), body.len(), &mut self.held);
        Ok(Some(ServerEvent::Request(IncomingRequest { channel: channel_id, seq, route, query, body, frames, bytes })))
    }

    /// Gives the answer to request `seq` of `channel`. Answers may be given
    /// in any order; they are sent in request order. Returns false if no such
    /// request is waiting (already answered, or the connection is gone).
    pub fn respond(&mut self, channel_id: u32, seq: u64, body: Bytes) -> bool {
        let Some(channel) = self.channels.get_mut(channel_id) else { return false };
        if self.body_codec.is_some() {
            self.codec_work += body.len() as u64;
        }
        let body = seal(&self.body_codec, body);
        let max_data = self.config.frame_limits.max_data;
        if let Some((route, _)) = channel.take_oldest(seq, &mut self.held) {
            // The oldest request's answer goes out at once.
            self.held.answers +=
                chunk_body_into(MessageKind::Response, route, channel_id, body, max_data, &mut self.outbox);
        } else {
            let answered = body.len();
            let Some(handed_out) = channel.answer(seq, |route| Ready { route, body, deletes: false }) else {
                return false;
            };
            self.held.handed_out -= handed_out;
            self.held.answers += answered;
        }
        // Answers given earlier to the requests behind it follow (none
        // when nothing waits behind it); the channel's lookup serves the
        // sending too, and a deletion waiting behind this answer may end
        // the channel.
        if !channel.slots.is_empty() && send_ready(channel, channel_id, max_data, &mut self.held, &mut self.outbox) {
            self.end_channel(channel_id);
        }
        true
    }

    /// Answers request `seq` of `channel` with an error answer (`[ANSWER-1]`).
    pub fn respond_error(&mut self, channel: u32, seq: u64, answer: ErrorAnswer) -> bool {
        self.respond(channel, seq, answer.to_body())
    }

    /// Sends the answers of `channel_id` that are ready, in order, and
    /// ends the channel once its deletion is answered.
    fn flush_channel(&mut self, channel_id: u32) {
        let Some(channel) = self.channels.get_mut(channel_id) else { return };
        let max_data = self.config.frame_limits.max_data;
        if send_ready(channel, channel_id, max_data, &mut self.held, &mut self.outbox) {
            self.end_channel(channel_id);
        }
    }

    /// Forgets a channel whose deletion was answered; its id may be given again.
    fn end_channel(&mut self, channel_id: u32) {
        if self.channels.remove(channel_id).is_some() {
            self.held.channels -= CHANNEL_COST;
        }
        self.ids.release(channel_id);
    }

    /// The next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        let frame = self.outbox.pop_front()?;
        self.held.answers -= frame.encoded_len();
        Some(frame)
    }

    /// Moves every frame waiting to be sent into `out`.
    pub fn drain_transmit(&mut self, out: &mut Vec<Frame>) {
        out.extend(self.transmit());
    }

    /// Takes every frame waiting to be sent, in order; the core no longer
    /// counts them as held, whether or not the iterator is run to its end
    /// (frames it leaves are dropped with it).
    pub fn transmit(&mut self) -> std::collections::vec_deque::Drain<'_, Frame> {
        self.held.answers -= self.outbox.iter().map(Frame::encoded_len).sum::<usize>();
        self.outbox.drain(..)
    }

    /// Number of frames waiting to be sent.
    pub fn queued_frames(&self) -> usize {
        self.outbox.len()
    }

    /// Requests handed out and not yet answered, over all channels.
    pub fn unanswered(&self) -> usize {
        self.channels.iter().map(|(_, channel)| channel.unanswered()).sum()
    }

    /// Requests of `channel` received and not yet answered.
    pub fn unanswered_on(&self, channel: u32) -> Option<usize> {
        self.channels.get(channel).map(Channel::unanswered)
    }

    /// The highest channel id this connection ever gave out (see
    /// [`ChannelIds::highest`]): every channel a frame may use is at most it.
    pub fn highest_channel_id(&self) -> u32 {
        self.ids.highest()
    }

    /// The channels that exist, sorted.
    pub fn channel_ids(&self) -> Vec<u32> {
        self.channels.iter().map(|(id, _)| id).collect()
    }

    /// Whether `channel` exists and is not being deleted.
    pub fn is_open(&self, channel: u32) -> bool {
        self.channels.get(channel).is_some_and(|c| c.phase == Phase::Open)
    }

    /// Whether `channel` has a chunked request in progress.
    pub fn message_state(&self, channel: u32) -> Option<MessageState> {
        self.channels.get(channel).map(Channel::message_state)
    }

    /// Whether the core accepts no more frames (peer closed or protocol error).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The close frame to send before closing, naming `reason` (`[CLOSE-4]`).
    pub fn close_frame(reason: &str) -> Frame {
        Frame::new(Status::Close, Bytes::new(), 0, Bytes::from(reason.to_string()))
    }
}

impl Breakable for ServerConnection {
    fn broken(&mut self) -> &mut bool {
        &mut self.closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(status: u8, path: &'static [u8], channel: u32, data: &'static [u8]) -> Frame {
        Frame::new(Status::from_byte(status).unwrap(), Bytes::from_static(path), channel, Bytes::from_static(data))
    }

    fn sent(core: &mut ServerConnection) -> Vec<(u32, Vec<u8>)> {
        std::iter::from_fn(|| core.poll_transmit()).map(|f| (f.channel, f.data.to_vec())).collect()
    }

    #[test]
    fn answers_go_out_in_request_order() {
        let mut core = ServerConnection::new(ServerConfig::default());
        let mut seqs = Vec::new();
        for body in [&b"a"[..], b"b", b"c"] {
            match core.receive(req(1, b"/echo?x=1", 0, body)).unwrap() {
                Some(ServerEvent::Request(r)) => {
                    assert_eq!((&r.route[..], r.query.as_deref()), (&b"/echo"[..], Some(&b"x=1"[..])));
                    seqs.push(r.seq)
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(core.respond(0, seqs[2], Bytes::from_static(b"C")));
        assert!(core.respond(0, seqs[1], Bytes::from_static(b"B")));
        assert!(sent(&mut core).is_empty());
        assert!(core.respond(0, seqs[0], Bytes::from_static(b"A")));
        assert_eq!(sent(&mut core), vec![(0, b"A".to_vec()), (0, b"B".to_vec()), (0, b"C".to_vec())]);
        assert!(!core.respond(0, seqs[0], Bytes::from_static(b"again")));
    }

    /// A core with no hello to wait for: requests may be direct from the first.
    fn plain(config: ServerConfig) -> ServerConnection {
        let mut core = ServerConnection::new(config);
        core.set_handshake(Handshake::new(false, AuthPolicy::Off));
        core
    }

    fn direct(core: &mut ServerConnection, frame: Frame) -> DirectRequest {
        core.receive_direct(frame).unwrap_or_else(|frame| panic!("not direct: {frame:?}"))
    }

    #[test]
    fn a_direct_answer_is_the_frame_the_core_would_have_sent() {
        let limits = FrameLimits::default();
        let mut core = plain(ServerConfig::default());
        let mut out = BytesMut::new();
        for (seq, body) in [(0, &b"a"[..]), (1, b"")] {
            // Asking for the ticket alone takes no place: the request that
            // follows gets the same one.
            let ticket = core.direct_ticket(&req(1, b"/echo?x=1", 0, b"q"));
            assert_eq!(ticket, Some(DirectTicket { channel: 0, seq }));
            let request = direct(&mut core, req(1, b"/echo?x=1", 0, b"q"));
            assert_eq!(
                (request.ticket.seq, &request.route[..], request.query.as_deref()),
                (seq, &b"/echo"[..], Some(&b"x=1"[..]))
            );
            assert_eq!((&request.body[..], request.bytes), (&b"q"[..], 20));
            let answer =
                core.answer_direct(request.ticket, &request.route, Bytes::copy_from_slice(body), Some(&mut out));
            let expected =
                Frame::new(Status::ResponseWhole, &b"/echo"[..], 0, if body.is_empty() { &b"{}"[..] } else { body });
            assert_eq!(answer, DirectAnswer::Written { frames: 1, bytes: expected.encoded_len() });
            let mut wire = BytesMut::new();
            crate::wire::encode::encode_frame(&expected, &limits, &mut wire).unwrap();
            assert!(out.ends_with(&wire), "appended: {out:?}");
        }
        assert_eq!((core.queued_frames(), core.held(), core.unanswered()), (0, HeldBytes::default(), 0));
        // The channel's order goes on from the seqs the direct requests took.
        let Some(ServerEvent::Request(r)) = core.receive(req(1, b"/sys/x", 0, b"q")).unwrap() else { panic!() };
        assert_eq!(r.seq, 2);
    }

    #[test]
    fn requests_that_are_not_direct_come_back_untouched() {
        let codec_core = || {
            let mut core = plain(ServerConfig::default());
            core.hello_completed(false, Some(BodyCodec::new(crate::proto::extensions::Codec::Lz4, 64, 1 << 20)));
            core
        };
        let fresh_handshake = || {
            let mut core = ServerConnection::new(ServerConfig::default());
            core.set_handshake(Handshake::new(true, AuthPolicy::Off));
            core
        };
        let small = ServerConfig { max_message: 1, ..ServerConfig::default() };
        let cases: Vec<(&str, ServerConnection, Frame)> = vec![
            ("a chunk", plain(ServerConfig::default()), req(0, b"/echo", 0, b"q")),
            ("a /sys/ path", plain(ServerConfig::default()), req(1, b"/sys/new_channel", 0, b"{}")),
            ("an unknown channel", plain(ServerConfig::default()), req(1, b"/echo", 7, b"q")),
            ("a response status", plain(ServerConfig::default()), req(5, b"/echo", 0, b"q")),
            ("over the message limit", plain(small), req(1, b"/echo", 0, b"qq")),
            ("a body marker in force", codec_core(), req(1, b"/echo", 0, b"q")),
            ("before the first request decides the hello", fresh_handshake(), req(1, b"/echo", 0, b"q")),
        ];
        for (case, mut core, frame) in cases {
            assert_eq!(core.direct_ticket(&frame), None, "{case}");
            assert_eq!(core.receive_direct(frame.clone()), Err(frame), "{case}");
        }
        // A channel with a request unanswered, and a connection with an answer unsent.
        let mut core = plain(ServerConfig::default());
        let Some(ServerEvent::Request(first)) = core.receive(req(1, b"/echo", 0, b"q")).unwrap() else { panic!() };
        assert!(core.receive_direct(req(1, b"/echo", 0, b"q")).is_err(), "behind a request waiting");
        core.respond(0, first.seq, Bytes::from_static(b"a"));
        assert!(core.receive_direct(req(1, b"/echo", 0, b"q")).is_err(), "behind an answer unsent");
        let _ = sent(&mut core);
        assert!(core.receive_direct(req(1, b"/echo", 0, b"q")).is_ok());
    }

    #[test]
    fn a_deferred_direct_request_keeps_its_place() {
        let mut core = plain(ServerConfig::default());
        let first = direct(&mut core, req(1, b"/slow", 0, b"abc"));
        let seq = core.defer(first.ticket, first.route, 3);
        assert_eq!((seq, core.held().handed_out, core.unanswered()), (0, 3, 1));
        // The next request on the channel waits behind it.
        let Some(ServerEvent::Request(second)) = core.receive(req(1, b"/fast", 0, b"q")).unwrap() else { panic!() };
        assert_eq!(second.seq, 1);
        assert!(core.respond(0, second.seq, Bytes::from_static(b"B")));
        assert!(sent(&mut core).is_empty());
        assert!(core.respond(0, seq, Bytes::from_static(b"A")));
        assert_eq!(sent(&mut core), vec![(0, b"A".to_vec()), (0, b"B".to_vec())]);
        assert_eq!(core.held(), HeldBytes::default());
    }

    #[test]
    fn a_direct_answer_with_no_buffer_or_too_large_is_queued() {
        let config = ServerConfig {
            frame_limits: FrameLimits { max_data: 4, ..FrameLimits::default() },
            ..ServerConfig::default()
        };
        let mut core = plain(config);
        let request = direct(&mut core, req(1, b"/echo", 0, b"q"));
        assert_eq!(
            core.answer_direct(request.ticket, &request.route, Bytes::from_static(b"A"), None),
            DirectAnswer::Queued
        );
        assert_eq!(sent(&mut core), vec![(0, b"A".to_vec())]);
        let request = direct(&mut core, req(1, b"/echo", 0, b"q"));
        let mut out = BytesMut::new();
        let answer = core.answer_direct(request.ticket, &request.route, Bytes::from_static(b"ABCDEF"), Some(&mut out));
        assert_eq!((answer, out.len()), (DirectAnswer::Queued, 0));
        let frames: Vec<Frame> = std::iter::from_fn(|| core.poll_transmit()).collect();
        let statuses: Vec<Status> = frames.iter().map(|f| f.status).collect();
        assert_eq!(statuses, vec![Status::ResponseFirst, Status::ResponseLast]);
        assert_eq!(core.unanswered(), 0);
    }

    #[test]
    fn channels_open_delete_and_reuse() {
        let mut core = ServerConnection::new(ServerConfig::default());
        core.receive(req(1, b"/sys/new_channel", 0, b"{}")).unwrap();
        core.receive(req(1, b"/sys/new_channel", 0, b"{}")).unwrap();
        assert_eq!(
            sent(&mut core),
            vec![(0, br#"{"code":0,"channel_id":1}"#.to_vec()), (0, br#"{"code":0,"channel_id":2}"#.to_vec())]
        );
        core.receive(req(1, b"/sys/delete_channel", 1, b"{}")).unwrap();
        assert_eq!(sent(&mut core), vec![(1, br#"{"code":0}"#.to_vec())]);
        assert!(!core.is_open(1));
        core.receive(req(1, b"/sys/new_channel", 2, b"{}")).unwrap();
        assert_eq!(sent(&mut core), vec![(2, br#"{"code":0,"channel_id":1}"#.to_vec())]);
    }

    #[test]
    fn chunked_request_over_the_limit_is_answered_110() {
        let config = ServerConfig { max_message: 4, ..ServerConfig::default() };
        let mut core = ServerConnection::new(config);
        assert_eq!(core.receive(req(0, b"/up", 0, b"abc")).unwrap(), None);
        assert_eq!(core.receive(req(2, b"/up", 0, b"de")).unwrap(), None);
        assert_eq!(core.receive(req(3, b"/up", 0, b"f")).unwrap(), None);
        let answers = sent(&mut core);
        assert_eq!(ErrorAnswer::parse(&answers[0].1).map(|a| a.code), Some(110));
    }

    fn request_of(event: Option<ServerEvent>) -> IncomingRequest {
        match event {
            Some(ServerEvent::Request(r)) => r,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn held_bytes_follow_a_request_to_its_answer_on_the_wire() {
        let mut core = ServerConnection::new(ServerConfig::default());
        core.receive(req(0, b"/up", 0, b"abcd")).unwrap();
        assert_eq!(core.held(), HeldBytes { assembling: 4, ..HeldBytes::default() });
        let r = request_of(core.receive(req(3, b"/up", 0, b"ef")).unwrap());
        let waiting = WAITING_REQUEST_COST;
        assert_eq!(core.held(), HeldBytes { handed_out: 6, waiting, ..HeldBytes::default() });
        core.respond(0, r.seq, Bytes::from_static(b"0123456789"));
        let frame_len = 1 + 3 + 1 + 8 + 10;
        assert_eq!(core.held(), HeldBytes { answers: frame_len, ..HeldBytes::default() });
        assert_eq!(core.held().outbound(), frame_len);
        let mut out = Vec::new();
        core.drain_transmit(&mut out);
        assert_eq!(core.held().total(), 0);
    }

    #[test]
    fn assembly_past_the_connection_budget_is_refused_and_released() {
        let config = ServerConfig { max_held_bytes: 10 + CHANNEL_COST, ..ServerConfig::default() };
        let mut core = ServerConnection::new(config);
        core.receive(req(1, b"/sys/new_channel", 0, b"{}")).unwrap();
        let _ = sent(&mut core);
        core.receive(req(0, b"/a", 0, b"123456")).unwrap();
        // Channel 1 starts a message that would take assembly to 12 bytes.
        core.receive(req(0, b"/b", 1, b"123456")).unwrap();
        assert_eq!(core.held().assembling, 6, "the crossing message holds nothing");
        core.receive(req(3, b"/b", 1, b"7")).unwrap();
        let answers = sent(&mut core);
        assert_eq!(answers.len(), 1);
        assert_eq!(ErrorAnswer::parse(&answers[0].1).map(|a| a.code), Some(110));
        // Channel 0's message, inside the budget, completes.
        let r = request_of(core.receive(req(3, b"/a", 0, b"78")).unwrap());
        assert_eq!((&r.body[..], core.held().assembling), (&b"12345678"[..], 0));
    }

    #[test]
    fn bodies_in_handlers_count_toward_the_budget_for_assembly() {
        let config = ServerConfig { max_held_bytes: 10 + WAITING_REQUEST_COST, ..ServerConfig::default() };
        let mut core = ServerConnection::new(config);
        let first = request_of(core.receive(req(1, b"/a", 0, b"123456")).unwrap());
        core.receive(req(0, b"/b", 0, b"12345")).unwrap();
        let waiting = WAITING_REQUEST_COST;
        assert_eq!(core.held(), HeldBytes { handed_out: 6, waiting, ..HeldBytes::default() });
        core.receive(req(3, b"/b", 0, b"6")).unwrap();
        core.respond(0, first.seq, Bytes::from_static(b"ok"));
        let answers = sent(&mut core);
        assert_eq!(ErrorAnswer::parse(&answers[1].1).map(|a| a.code), Some(110));
    }

    #[test]
    fn a_full_server_refuses_growing_messages_but_not_whole_ones() {
        let mut core = ServerConnection::new(ServerConfig::default());
        core.set_server_room(0);
        core.receive(req(0, b"/a", 0, b"123")).unwrap();
        core.receive(req(3, b"/a", 0, b"4")).unwrap();
        assert_eq!(ErrorAnswer::parse(&sent(&mut core)[0].1).map(|a| a.code), Some(110));
        assert_eq!(core.held().total(), 0);
        let r = request_of(core.receive(req(1, b"/a", 0, b"whole")).unwrap());
        assert_eq!(&r.body[..], b"whole");
    }

    #[test]
    fn channels_and_waiting_requests_count_and_channels_past_the_budget_are_refused() {
        let config = ServerConfig { max_held_bytes: 3 * CHANNEL_COST - 1, ..ServerConfig::default() };
        let mut core = ServerConnection::new(config);
        let grants: Vec<_> = (0..3)
            .map(|_| {
                core.receive(req(1, b"/sys/new_channel", 0, b"{}")).unwrap();
                ErrorAnswer::parse(&sent(&mut core)[0].1).map(|a| a.code)
            })
            .collect();
        assert_eq!(grants, [None, None, Some(106)], "the third channel passes the budget");
        assert_eq!(core.held(), HeldBytes { channels: 2 * CHANNEL_COST, ..HeldBytes::default() });
        let r = request_of(core.receive(req(1, b"/slow", 1, b"x")).unwrap());
        assert_eq!(core.held().outbound(), 1 + WAITING_REQUEST_COST);
        core.respond(r.channel, r.seq, Bytes::from_static(b"y"));
        let _ = sent(&mut core);
        core.receive(req(1, b"/sys/delete_channel", 2, b"{}")).unwrap();
        let _ = sent(&mut core);
        assert_eq!(core.held(), HeldBytes { channels: CHANNEL_COST, ..HeldBytes::default() });
        core.set_server_room(CHANNEL_COST - 1);
        core.receive(req(1, b"/sys/new_channel", 0, b"{}")).unwrap();
        assert_eq!(ErrorAnswer::parse(&sent(&mut core)[0].1).map(|a| a.code), Some(106), "nor past the server's");
    }

    #[test]
    fn a_hello_past_its_limit_is_answered_110_and_the_connection_stays_plain() {
        use crate::proto::extensions::MAX_HELLO_BODY;
        let mut core = ServerConnection::new(ServerConfig::default());
        let half = Bytes::from(vec![b' '; MAX_HELLO_BODY / 2 + 1]);
        for status in [Status::RequestFirst, Status::RequestLast] {
            core.receive(Frame::new(status, &b"/sys/hello"[..], 0, half.clone())).unwrap();
            assert!(core.held().assembling <= MAX_HELLO_BODY / 2 + 1, "nothing past the limit is held");
        }
        assert_eq!(ErrorAnswer::parse(&sent(&mut core)[0].1).map(|a| a.code), Some(110));
        let r = request_of(core.receive(req(1, b"/echo", 0, b"plain")).unwrap());
        assert_eq!(&r.body[..], b"plain");
    }

    #[test]
    fn without_authentication_a_message_is_refused_at_its_first_frame() {
        use crate::proto::extensions::{AuthPolicy, Handshake};
        let mut core = ServerConnection::new(ServerConfig::default());
        core.set_handshake(Handshake::new(true, AuthPolicy::Required));
        core.receive(req(0, b"/upload", 0, b"0123456789")).unwrap();
        assert_eq!(core.held().assembling, 0, "nothing of it is held");
        assert_eq!(ErrorAnswer::parse(&sent(&mut core)[0].1).map(|a| a.code), Some(112));
        assert_eq!(core.close_requested(), Some("[EXT-9] unauthenticated"));
    }
}
