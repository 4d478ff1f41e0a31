//! The client side of a connection, sans I/O.
//!
//! Ask it to open channels, send requests and delete channels; it returns a
//! [`RequestId`] for each and queues the frames to send. Feed it every frame
//! the server sent ([`ClientConnection::receive`]); it matches responses to
//! requests by their order on the channel (`[ORDER-5]`) and reports each
//! response frame as it arrives, so a caller can stream a long response.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::wire::answer::ChannelGrant;
use crate::wire::encode::check_frame;
use crate::wire::frame::{Frame, FrameLimits};
use crate::wire::frame_error::EncodeError;
use crate::wire::status::{MessageKind, Sender, Status};

use super::channels::{DELETE_CHANNEL, NEW_CHANNEL};
use super::error::{receive_unless_broken, Breakable, ProtocolError};
use super::extensions::body::{COMPRESSED, IDENTITY};
use super::extensions::{BodyCodec, BodyError, GOING_AWAY};
use super::message::{chunk_body_into, transition, MessageState, Step};

/// A request body as it goes on the wire under the extensions in force:
/// with the marker of `codec`, compressed or not (`[EXT-12]`), and behind
/// `block`, a metadata block, when `metadata` is in force (`[EXT-19]`).
/// An empty body is `{}` as in plain IIP/1 (`[MSG-9]`), then marked.
pub fn seal_request(codec: Option<&BodyCodec>, block: Option<&[u8]>, body: &[u8]) -> Bytes {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    match (codec, block) {
        (Some(codec), None) => codec.seal(body),
        (None, None) => Bytes::copy_from_slice(body),
        (codec, Some(block)) => {
            let sealed = codec.map(|codec| codec.seal(body));
            let rest = sealed.as_deref().unwrap_or(body);
            let mut out = BytesMut::with_capacity(block.len() + rest.len());
            out.extend_from_slice(block);
            out.extend_from_slice(rest);
            out.freeze()
        }
    }
}

/// The block of a request without metadata (`[EXT-18]`).
pub const EMPTY_BLOCK: &[u8] = &[0, 0];

/// Identifies one request of a client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// What a server frame means for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A frame of the response to `id`; `complete` on its last frame.
    Response {
        /// The request answered.
        id: RequestId,
        /// This frame's data.
        data: Bytes,
        /// Whether the response is now complete.
        complete: bool,
    },
    /// A `/sys/new_channel` request was answered with a new channel.
    ChannelOpened {
        /// The `/sys/new_channel` request.
        id: RequestId,
        /// The granted channel.
        channel: u32,
    },
    /// A `/sys/new_channel` request was refused.
    ChannelRefused {
        /// The `/sys/new_channel` request.
        id: RequestId,
        /// The error code.
        code: i64,
        /// The error message.
        message: String,
    },
    /// The server is going away (`[EXT-16]`): send nothing new on this
    /// connection; close it once the outstanding requests are answered.
    GoingAway {
        /// The frame's body, `{"grace_ms":N}`.
        body: Bytes,
    },
    /// The server sent a close frame.
    PeerClosed {
        /// Its data, as a reason.
        reason: Bytes,
    },
    /// The answer to `id` passed the client's limit on an answer's size
    /// ([`ClientConnection::set_max_answer`]): the call fails, the rest of
    /// that answer is read and dropped, and other calls go on.
    AnswerTooLarge {
        /// The request answered.
        id: RequestId,
        /// The limit, in bytes.
        limit: usize,
    },
}

/// The default limit on one answer's size: 64 MiB, the reference server's
/// message limit.
pub const DEFAULT_MAX_ANSWER: usize = 64 * 1024 * 1024;

/// The most bytes a `/sys/new_channel` answer may have: a grant is a short
/// JSON object.
const MAX_GRANT: usize = 4096;

/// A request the client refuses to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The channel is not open on this connection (`[CHAN-5]`).
    #[error("[CHAN-5] channel {0} is not open")]
    ChannelNotOpen(u32),
    /// Channel 0 cannot be deleted (`[CHAN-8]`).
    #[error("[CHAN-8] channel 0 cannot be deleted")]
    ChannelZero,
    /// The path cannot be framed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The connection is closed.
    #[error("[CLOSE-5] the connection is closed")]
    Closed,
    /// The call's metadata cannot be sent (`[EXT-18]`, `[EXT-20]`): a bad
    /// key or value, or a block past the server's `max_size`.
    #[error(transparent)]
    Metadata(#[from] super::extensions::MetadataError),
    /// Past a limit the server advertised in its hello answer (`[EXT-10]`):
    /// refused locally instead of learning it from an error answer.
    #[error("[EXT-10] {what} {size} is past the server's limit of {limit}")]
    OverLimit {
        /// What is limited: `request body bytes` or `channels`.
        what: &'static str,
        /// What was asked for.
        size: u64,
        /// The advertised limit.
        limit: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    Call(RequestId),
    Open(RequestId),
    /// A delete answer may come (conforming servers) or not (the Go server).
    DeleteAck,
}

/// Where the body marker of the response arriving on a channel stands (`[EXT-12]`).
#[derive(Debug, Default)]
enum Unmarking {
    /// The next frame starts a response: its first byte is the marker.
    #[default]
    Start,
    /// An identity response: frames pass as they are.
    Identity,
    /// A compressed response, assembled until its last frame.
    Compressed(BytesMut),
}

impl Unmarking {
    /// The data to deliver for one response frame: `None` while a compressed
    /// response is still being assembled.
    fn frame(
        &mut self,
        codec: &BodyCodec,
        data: Bytes,
        complete: bool,
        limit: usize,
    ) -> Result<Option<Bytes>, BodyError> {
        let out = match std::mem::take(self) {
            Unmarking::Start => match data.first() {
                None => return Err(BodyError::Empty),
                Some(&IDENTITY) => {
                    *self = Unmarking::Identity;
                    Some(data.slice(1..))
                }
                Some(&COMPRESSED) => {
                    *self = Unmarking::Compressed(BytesMut::from(&data[..]));
                    None
                }
                Some(&other) => return Err(BodyError::UnknownMarker(other)),
            },
            Unmarking::Identity => {
                *self = Unmarking::Identity;
                Some(data)
            }
            Unmarking::Compressed(mut body) => {
                body.extend_from_slice(&data);
                *self = Unmarking::Compressed(body);
                None
            }
        };
        if !complete {
            return Ok(out);
        }
        match std::mem::take(self) {
            Unmarking::Compressed(body) => codec.open_within(&body.freeze(), limit).map(Some),
            _ => Ok(out),
        }
    }
}

#[derive(Debug, Default)]
struct Channel {
    inbound: MessageState,
    unmarking: Unmarking,
    waiting: VecDeque<Waiting>,
    deleted: bool,
    /// Data of a `/sys/new_channel` answer that arrives in several frames.
    grant: Vec<u8>,
    /// Bytes of the answer arriving now, as they came on the wire.
    answer_bytes: usize,
    /// The answer arriving now passed the limit: its frames are dropped.
    dropping: bool,
}

/// The client's per-connection protocol state.
#[derive(Debug)]
pub struct ClientConnection {
    limits: FrameLimits,
    channels: rustc_hash::FxHashMap<u32, Channel>,
    next_id: u64,
    outbox: VecDeque<Frame>,
    closed: bool,
    /// The body marker and codec once compression is agreed (`[EXT-12]`).
    body_codec: Option<BodyCodec>,
    /// Whether the server may send a going-away frame (`[EXT-16]`).
    going_away: bool,
    /// Whether request bodies start with a metadata block (`[EXT-18]`).
    metadata: bool,
    /// The largest answer a call takes.
    max_answer: usize,
}

impl ClientConnection {
    /// A new connection: only channel 0 is open (`[CHAN-1]`).
    pub fn new(limits: FrameLimits) -> ClientConnection {
        ClientConnection {
            limits,
            channels: rustc_hash::FxHashMap::from_iter([(0, Channel::default())]),
            next_id: 0,
            outbox: VecDeque::new(),
            closed: false,
            body_codec: None,
            going_away: false,
            metadata: false,
            max_answer: DEFAULT_MAX_ANSWER,
        }
    }

    /// Limits the size of one answer, as it comes on the wire and once
    /// inflated (default [`DEFAULT_MAX_ANSWER`]): a larger one fails its
    /// call with [`ClientEvent::AnswerTooLarge`] and nothing more of it is
    /// kept.
    pub fn set_max_answer(&mut self, limit: usize) {
        self.max_answer = limit;
    }

    /// Answers still to come on `channel`: its requests sent or queued and
    /// not yet answered, those whose caller gave up included (their
    /// answers still arrive, in order, before any later one).
    pub fn awaiting(&self, channel: u32) -> usize {
        self.channels.get(&channel).map_or(0, |c| c.waiting.len())
    }

    /// Puts the extensions agreed in the hello answer in force: the body
    /// marker (and codec) of `compression` on every body sent and received
    /// from now on (`[EXT-12]`), the going-away frame (`[EXT-16]`), and
    /// the metadata block before every request body (`[EXT-18]`).
    pub fn set_extensions(&mut self, body_codec: Option<BodyCodec>, going_away: bool, metadata: bool) {
        self.body_codec = body_codec;
        self.going_away = going_away;
        self.metadata = metadata;
    }

    fn open_channel_mut(&mut self, channel: u32) -> Result<&mut Channel, RequestError> {
        if self.closed {
            return Err(RequestError::Closed);
        }
        match self.channels.get_mut(&channel) {
            Some(c) if !c.deleted => Ok(c),
            _ => Err(RequestError::ChannelNotOpen(channel)),
        }
    }

    fn enqueue(&mut self, channel: u32, path: Bytes, body: Bytes, waiting: Waiting) -> Result<(), RequestError> {
        let block = self.metadata.then_some(EMPTY_BLOCK);
        let body = match (&self.body_codec, block) {
            (None, None) => body,
            (codec, block) => seal_request(codec.as_ref(), block, &body),
        };
        self.enqueue_marked(channel, path, body, waiting)
    }

    /// Queues a request whose body already carries the metadata block and
    /// the marker in force (or neither when neither is agreed).
    fn enqueue_marked(&mut self, channel: u32, path: Bytes, body: Bytes, waiting: Waiting) -> Result<(), RequestError> {
        check_frame(&Frame::new(Status::RequestWhole, path.clone(), channel, Bytes::from_static(b"{}")), &self.limits)?;
        self.open_channel_mut(channel)?.waiting.push_back(waiting);
        chunk_body_into(MessageKind::Request, path, channel, body, self.limits.max_data, &mut self.outbox);
        Ok(())
    }

    fn new_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    /// Sends a request for `path` with `body` on `channel`. An empty body is
    /// sent as `{}` (`[MSG-9]`), a long one in chunks (`[MSG-11]`).
    pub fn request(&mut self, channel: u32, path: impl Into<Bytes>, body: Bytes) -> Result<RequestId, RequestError> {
        let id = self.new_id();
        self.enqueue(channel, path.into(), body, Waiting::Call(id))?;
        Ok(id)
    }

    /// Like [`ClientConnection::request`] for a body already sealed with
    /// [`seal_request`], the codec and the metadata in force, so that a
    /// shell can compress and write the block outside whatever lock guards
    /// the core (`[EXT-12]`, `[EXT-19]`). With neither agreed it is `request`.
    pub fn request_marked(
        &mut self,
        channel: u32,
        path: impl Into<Bytes>,
        body: Bytes,
    ) -> Result<RequestId, RequestError> {
        let id = self.new_id();
        self.enqueue_marked(channel, path.into(), body, Waiting::Call(id))?;
        Ok(id)
    }

    /// Asks for a new channel, sending `/sys/new_channel` on `via` (`[CHAN-2]`).
    pub fn open_channel(&mut self, via: u32) -> Result<RequestId, RequestError> {
        let id = self.new_id();
        self.enqueue(via, Bytes::from_static(NEW_CHANNEL), Bytes::from_static(b"{}"), Waiting::Open(id))?;
        Ok(id)
    }

    /// Deletes `channel` (`[CHAN-7]`). The channel takes no more requests at
    /// once; answers to earlier requests on it still arrive. No answer to the
    /// delete itself is awaited (`[COMPAT-2]`).
    pub fn delete_channel(&mut self, channel: u32) -> Result<(), RequestError> {
        if channel == 0 {
            return Err(RequestError::ChannelZero);
        }
        self.enqueue(channel, Bytes::from_static(DELETE_CHANNEL), Bytes::from_static(b"{}"), Waiting::DeleteAck)?;
        if let Some(c) = self.channels.get_mut(&channel) {
            c.deleted = true;
        }
        Ok(())
    }

    /// Takes one frame from the server. A protocol error means the connection
    /// must be closed; the core accepts nothing after it.
    pub fn receive(&mut self, frame: Frame) -> Result<Option<ClientEvent>, ProtocolError> {
        receive_unless_broken(self, frame, Self::receive_inner)
    }

    fn receive_inner(&mut self, frame: Frame) -> Result<Option<ClientEvent>, ProtocolError> {
        if frame.status == Status::Close {
            self.closed = true;
            return Ok(Some(ClientEvent::PeerClosed { reason: frame.data }));
        }
        let position = match frame.status.position() {
            Some(p) if frame.status.may_be_sent_by(Sender::Server) => p,
            _ => return Err(ProtocolError::WrongRole { status: frame.status, sender: "server" }),
        };
        let channel_id = frame.channel;
        let channel =
            self.channels.get_mut(&channel_id).ok_or(ProtocolError::UnknownChannel { channel: channel_id })?;
        let state = channel.inbound;
        let going_away = self.going_away
            && channel_id == 0
            && frame.status == Status::ResponseWhole
            && state == MessageState::Idle
            && frame.path == GOING_AWAY;
        if going_away {
            let body = match &self.body_codec {
                Some(codec) => codec.open(&frame.data)?,
                None => frame.data,
            };
            return Ok(Some(ClientEvent::GoingAway { body }));
        }
        let (next, step) = transition(state, position).ok_or(ProtocolError::BadTransition {
            channel: channel_id,
            state,
            status: frame.status,
        })?;
        let waiting = *channel.waiting.front().ok_or(ProtocolError::UnexpectedResponse { channel: channel_id })?;
        channel.inbound = next;
        let complete = step == Step::Complete;
        if complete {
            channel.waiting.pop_front();
        }
        if let Waiting::Call(id) = waiting {
            let limit = self.max_answer;
            let dropping = channel.dropping;
            channel.answer_bytes = channel.answer_bytes.saturating_add(frame.data.len());
            // A marked body carries one byte more than it stands for.
            let marker = usize::from(self.body_codec.is_some());
            let too_large = !dropping && channel.answer_bytes > limit.saturating_add(marker);
            if complete {
                channel.answer_bytes = 0;
            }
            channel.dropping = (dropping || too_large) && !complete;
            if dropping || too_large {
                channel.unmarking = Unmarking::default();
                return Ok(too_large.then_some(ClientEvent::AnswerTooLarge { id, limit }));
            }
        } else if channel.grant.len() + frame.data.len() > MAX_GRANT {
            return Err(ProtocolError::BadChannelGrant { detail: format!("a grant longer than {MAX_GRANT} bytes") });
        }
        let data = match &self.body_codec {
            None => frame.data,
            Some(codec) => match channel.unmarking.frame(codec, frame.data, complete, self.max_answer) {
                Ok(Some(data)) => data,
                Ok(None) => return Ok(None),
                // Inflating past the limit fails the call alone.
                Err(BodyError::TooLarge { limit }) => {
                    return match waiting {
                        Waiting::Call(id) => Ok(Some(ClientEvent::AnswerTooLarge { id, limit })),
                        _ => Err(BodyError::TooLarge { limit }.into()),
                    };
                }
                Err(err) => return Err(err.into()),
            },
        };
        match waiting {
            Waiting::Call(id) => Ok(Some(ClientEvent::Response { id, data, complete })),
            Waiting::DeleteAck => {
                if complete && channel.waiting.is_empty() {
                    self.channels.remove(&channel_id);
                }
                Ok(None)
            }
            Waiting::Open(id) => {
                channel.grant.extend_from_slice(&data);
                if !complete {
                    return Ok(None);
                }
                let body = std::mem::take(&mut channel.grant);
                self.grant(id, &body).map(Some)
            }
        }
    }

    fn grant(&mut self, id: RequestId, body: &[u8]) -> Result<ClientEvent, ProtocolError> {
        let grant: ChannelGrant =
            serde_json::from_slice(body).map_err(|e| ProtocolError::BadChannelGrant { detail: e.to_string() })?;
        match (grant.code, grant.channel_id) {
            (0, Some(channel)) => {
                // A reused id replaces what is left of the deleted channel.
                let fresh = self.channels.get(&channel).is_none_or(|c| c.deleted);
                if !fresh || channel == 0 {
                    return Err(ProtocolError::GrantedInUse { channel });
                }
                self.channels.insert(channel, Channel::default());
                Ok(ClientEvent::ChannelOpened { id, channel })
            }
            (0, None) => Err(ProtocolError::BadChannelGrant { detail: "code 0 without channel_id".into() }),
            (code, _) => Ok(ClientEvent::ChannelRefused { id, code, message: grant.message.unwrap_or_default() }),
        }
    }

    /// The next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        self.outbox.pop_front()
    }

    /// Moves every frame waiting to be sent into `out`.
    pub fn drain_transmit(&mut self, out: &mut Vec<Frame>) {
        out.extend(self.outbox.drain(..));
    }

    /// Requests sent and not yet completely answered.
    pub fn outstanding(&self) -> usize {
        self.channels.values().flat_map(|c| &c.waiting).filter(|w| !matches!(w, Waiting::DeleteAck)).count()
    }

    /// Every request without a complete answer, to be failed when the
    /// connection closes (`[CLOSE-5]`); the core is closed afterwards.
    pub fn close(&mut self) -> Vec<RequestId> {
        self.closed = true;
        self.outbox.clear();
        let mut ids: Vec<RequestId> = self
            .channels
            .values_mut()
            .flat_map(|c| c.waiting.drain(..))
            .filter_map(|w| match w {
                Waiting::Call(id) | Waiting::Open(id) => Some(id),
                Waiting::DeleteAck => None,
            })
            .collect();
        ids.sort();
        ids
    }

    /// Whether `channel` is open for requests.
    pub fn is_open(&self, channel: u32) -> bool {
        self.channels.get(&channel).is_some_and(|c| !c.deleted)
    }

    /// Channels open or being deleted, channel 0 included.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Whether the core accepts no more frames.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

impl Breakable for ClientConnection {
    fn broken(&mut self) -> &mut bool {
        &mut self.closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u8, channel: u32, data: &'static [u8]) -> Frame {
        Frame::new(Status::from_byte(status).unwrap(), Bytes::from_static(b"/x"), channel, Bytes::from_static(data))
    }

    #[test]
    fn responses_match_requests_in_order_and_stream() {
        let mut core = ClientConnection::new(FrameLimits::default());
        let a = core.request(0, "/x", Bytes::from_static(b"1")).unwrap();
        let b = core.request(0, "/x", Bytes::from_static(b"2")).unwrap();
        assert_eq!(
            core.receive(resp(4, 0, b"p")).unwrap(),
            Some(ClientEvent::Response { id: a, data: Bytes::from_static(b"p"), complete: false })
        );
        assert_eq!(
            core.receive(resp(7, 0, b"q")).unwrap(),
            Some(ClientEvent::Response { id: a, data: Bytes::from_static(b"q"), complete: true })
        );
        assert_eq!(
            core.receive(resp(5, 0, b"r")).unwrap(),
            Some(ClientEvent::Response { id: b, data: Bytes::from_static(b"r"), complete: true })
        );
        assert_eq!(core.receive(resp(5, 0, b"s")), Err(ProtocolError::UnexpectedResponse { channel: 0 }));
    }

    #[test]
    fn channel_grant_opens_channel_and_delete_tolerates_missing_ack() {
        let mut core = ClientConnection::new(FrameLimits::default());
        let open = core.open_channel(0).unwrap();
        assert_eq!(core.request(1, "/x", Bytes::new()), Err(RequestError::ChannelNotOpen(1)));
        let event = core.receive(resp(5, 0, br#"{"code":0,"channel_id":1}"#)).unwrap();
        assert_eq!(event, Some(ClientEvent::ChannelOpened { id: open, channel: 1 }));
        core.delete_channel(1).unwrap();
        assert!(!core.is_open(1));
        // The Go server never answers; the id can be granted again.
        core.open_channel(0).unwrap();
        let event = core.receive(resp(5, 0, br#"{"code":0,"channel_id":1}"#)).unwrap();
        assert!(matches!(event, Some(ClientEvent::ChannelOpened { channel: 1, .. })));
        assert!(core.is_open(1));
    }
}
