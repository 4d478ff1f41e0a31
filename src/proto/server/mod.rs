//! The server side of a connection, sans I/O.
//!
//! Feed it every frame the client sent ([`ServerConnection::receive`]); it
//! answers `/sys/new_channel` and `/sys/delete_channel` itself and hands every
//! other complete request out as an [`IncomingRequest`] with a per-channel
//! sequence number. Give each answer back with [`ServerConnection::respond`],
//! in any order; frames come out of [`ServerConnection::transmit`] in the
//! order the spec demands (`[ORDER-2]`).
//!
//! A shell that can answer at once may first ask
//! [`ServerConnection::direct`] about each frame. A whole request on a
//! channel with nothing before it in line comes back as a [`Direct`] guard,
//! which borrows the core until the request is answered
//! ([`Direct::answer`], encoding straight into the shell's write buffer: no
//! place in the channel's order, no frame in the outbox) or deferred
//! ([`Direct::defer`], for a handler that must wait, answered through
//! `respond` as usual). While the guard lives the core takes nothing else,
//! and the compiler holds that order. Any other frame goes to `receive`.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::wire::answer::{channel_granted_body, ok_body, ErrorAnswer, ErrorCode};
use crate::wire::frame::{split_route, Frame};
use crate::wire::scan::same_bytes;
use crate::wire::status::{MessageKind, Sender, Status};

mod config;
mod direct;
mod events;
mod held;

pub use config::*;
pub use direct::Direct;
pub use events::*;
pub use held::HeldBytes;
use held::{append_within, message_limit};

use crate::proto::channels::{ChannelIds, ChannelTable, DELETE_CHANNEL, NEW_CHANNEL};
use crate::proto::error::{receive_unless_broken, Breakable, ProtocolError};
use crate::proto::extensions::{Admission, AuthPolicy, BodyCodec, BodyError, Handshake, Metadata, GOING_AWAY};
use crate::proto::message::{chunk_body_into, transition, MessageState, Step};

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
    /// The largest metadata block taken, once `metadata` is agreed (`[EXT-18]`).
    metadata_max: Option<usize>,
    /// Set when the connection must close once its answers are sent (`[EXT-9]`).
    close_requested: Option<&'static str>,
    /// Bytes inflated and compressed for this peer so far (`[RES-9]`).
    codec_work: u64,
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
            metadata_max: None,
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
    /// `body_codec`, if compression was agreed (`[EXT-12]`), every request
    /// body starts with a metadata block of at most `metadata_max` bytes,
    /// if `metadata` was agreed (`[EXT-18]`), and `authenticated` says
    /// whether the client's credentials were accepted. The hello stays
    /// pending until [`ServerConnection::hello_sent`]: a request received
    /// before that breaks `[EXT-4]`.
    pub fn hello_completed(&mut self, authenticated: bool, body_codec: Option<BodyCodec>, metadata_max: Option<usize>) {
        self.handshake.completed(authenticated);
        self.body_codec = body_codec;
        self.metadata_max = metadata_max;
    }

    /// Whether request bodies start with a metadata block (`[EXT-18]`).
    pub fn metadata_in_force(&self) -> bool {
        self.metadata_max.is_some()
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

    fn receive_inner(&mut self, frame: Frame) -> Result<Option<ServerEvent>, ProtocolError> {
        if frame.status == Status::Close {
            self.closed = true;
            return Ok(Some(ServerEvent::PeerClosed { reason: frame.data }));
        }
        if !frame.status.may_be_sent_by(Sender::Client) {
            return Err(ProtocolError::WrongRole { status: frame.status, sender: "client" });
        }
        let channel_id = frame.channel;
        let Some(channel) = self.channels.get_mut(channel_id) else {
            // Ids are granted lowest first ([CHAN-4]): an id up to the
            // highest ever granted that is not in use was deleted and not
            // granted since, the more specific citation ([CHAN-10], [CLOSE-4]).
            let deleted = channel_id != 0 && channel_id <= self.ids.highest();
            return Err(if deleted {
                ProtocolError::DeletedChannel { channel: channel_id }
            } else {
                ProtocolError::UnknownChannel { channel: channel_id }
            });
        };
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
        // The marker byte is not part of the body it marks ([EXT-15]).
        let marker = usize::from(self.body_codec.is_some());
        let max_message = message_limit(&self.handshake, &self.config, &message_route) + marker;
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
        // The metadata block comes before the marker, and counts toward
        // the message limit ([EXT-19], [EXT-20]).
        let (metadata, body) = match (body, self.metadata_max) {
            (Some(body), Some(max_size)) => {
                let (metadata, rest) = Metadata::split(&body, max_size)?;
                (metadata, Some(rest))
            }
            (body, _) => (Metadata::empty(), body),
        };
        // The marker of a compressed connection; the limit applies to the
        // inflated body (`[EXT-14]`, `[EXT-15]`).
        let block = if self.metadata_max.is_some() { 2 + metadata.block_len() } else { 0 };
        let room = self.inflate_room().min(self.config.max_message.saturating_sub(block));
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
        // Its metadata is held while the handler runs, counted with the
        // body ([RES-1]); entries of a compressed request are copied out
        // so that the compressed message is not kept for them.
        let metadata = if self.body_codec.is_some() { metadata.detached() } else { metadata };
        let Some(channel) = self.channels.get_mut(channel_id) else { return Ok(None) };
        let seq = channel.take_seq(route.clone(), body.len() + metadata.block_len(), &mut self.held);
        Ok(Some(ServerEvent::Request(IncomingRequest {
            channel: channel_id,
            seq,
            route,
            query,
            body,
            metadata,
            frames,
            bytes,
        })))
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

    /// Takes every frame waiting to be sent, in order, to hand them to the
    /// transport; the core no longer counts them as held, whether or not
    /// the iterator is run to its end (frames it leaves are dropped with
    /// it).
    pub fn transmit(&mut self) -> std::collections::vec_deque::Drain<'_, Frame> {
        self.held.answers -= self.outbox.iter().map(Frame::encoded_len).sum::<usize>();
        self.outbox.drain(..)
    }

    /// The frames taken by [`ServerConnection::transmit`] were handed to
    /// the transport, and nothing the client sent is left unread: a hello
    /// whose answer was among them is no longer pending, and requests are
    /// admitted from now on. Until a shell says so, a request received
    /// after a hello breaks `[EXT-4]`, also one made in the same read as
    /// the hello and looked at after its answer was made.
    #[inline]
    pub fn hello_sent(&mut self) {
        if self.outbox.is_empty() {
            self.handshake.sent();
        }
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
        Frame::close_with_reason(reason)
    }
}

impl Breakable for ServerConnection {
    fn broken(&mut self) -> &mut bool {
        &mut self.closed
    }
}

#[cfg(test)]
mod tests;
