//! The direct path: a whole request answered in the turn it arrived in,
//! with no place kept for it in its channel's order and no frame in the
//! outbox, behind a guard that borrows the core until the request is
//! answered or deferred.

use bytes::{Bytes, BytesMut};

use super::{seal, DirectAnswer, Inbound, Phase, ServerConnection};
use crate::proto::extensions::Metadata;
use crate::proto::message::encode_body_into;
use crate::wire::frame::Frame;
use crate::wire::scan::find_byte;
use crate::wire::status::{MessageKind, Status};

/// A direct request's claim on its channel's next place in order, holding
/// the core until it is spent: [`Direct::answer`] when the answer is ready
/// now, [`Direct::defer`] when the handler must wait. Nothing else reaches
/// the core while the guard lives, which is what makes its place the
/// channel's next one (`[ORDER-1]`).
///
/// Dropping the guard unspent leaves the core as it was: the frame it was
/// asked about has not been received, and may still go to
/// [`ServerConnection::receive`].
///
/// A shell asks first, and gives the frame to `receive` only when the
/// answer is `None`:
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use iip::proto::server::{ServerConfig, ServerConnection};
/// use iip::{Frame, Status};
///
/// let mut core = ServerConnection::new(ServerConfig::default());
/// let frame = Frame::new(Status::RequestWhole, Bytes::from_static(b"/echo"), 0, b"hi".to_vec());
/// let mut written = BytesMut::new();
/// match core.direct(&frame) {
///     Some(direct) => {
///         direct.answer(&Bytes::from_static(b"/echo"), frame.data.clone(), Some(&mut written));
///     }
///     None => {
///         core.receive(frame).expect("a well-formed request");
///     }
/// }
/// ```
///
/// The core cannot be used while the guard lives; the compiler, not a
/// convention, keeps the request's place:
///
/// ```compile_fail,E0499
/// use bytes::Bytes;
/// use iip::proto::server::{ServerConfig, ServerConnection};
/// use iip::{Frame, Status};
///
/// let mut core = ServerConnection::new(ServerConfig::default());
/// let frame = Frame::new(Status::RequestWhole, Bytes::from_static(b"/echo"), 0, b"hi".to_vec());
/// let direct = core.direct(&frame).expect("a whole request on channel 0");
/// let _ = core.receive(frame.clone()); // the guard still borrows the core
/// direct.defer(Bytes::from_static(b"/echo"), 0);
/// ```
#[derive(Debug)]
#[must_use = "a direct request is received only when it is answered or deferred"]
pub struct Direct<'core> {
    core: &'core mut ServerConnection,
    channel: u32,
    seq: u64,
    /// The request's metadata block, checked, where the extension is in
    /// force (`[EXT-18]`), and the bytes it takes at the front of the
    /// frame's data (0 without the extension).
    metadata: Option<Metadata>,
    block: usize,
}

impl ServerConnection {
    /// Asks whether `frame` is a request that may be answered at once, with
    /// nothing kept in the core while its handler runs: then a guard for
    /// it, and `None` when the frame must go to [`ServerConnection::receive`].
    /// Only the guard's answer or deferral receives the request; the shell
    /// takes the route, query and body from the frame itself.
    ///
    /// A request is direct when it is whole (status 1), on an open channel
    /// with no request of its own in progress or unanswered, within the
    /// message limit, on a route outside `/sys/`, on a connection past its
    /// hello with no body marker in force (or with extensions off), with a
    /// well-formed metadata block where `metadata` is in force, and
    /// nothing is queued to be sent: then its answer is the next thing its
    /// channel sends (`[ORDER-1]`) and may be written straight after what
    /// was sent before. Every decision `receive` would make about it is the
    /// same: it would be handed out as the channel's next request. The
    /// shell takes the body past [`Direct::block_len`] bytes.
    #[inline(always)]
    pub fn direct(&mut self, frame: &Frame) -> Option<Direct<'_>> {
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
        // A malformed block is for `receive` to refuse ([EXT-20]).
        let (metadata, block) = match self.metadata_max {
            None => (None, 0),
            Some(max_size) => split_block(&frame.data, max_size)?,
        };
        let channel = self.channels.get(frame.channel)?;
        if channel.phase != Phase::Open || !matches!(channel.inbound, Inbound::Idle) || !channel.slots.is_empty() {
            return None;
        }
        let seq = channel.next_to_send;
        Some(Direct { core: self, channel: frame.channel, seq, metadata, block })
    }
}

/// The metadata block at the front of `data` and its bytes, if it is
/// well-formed; kept out of line, off the path of plain requests.
#[inline(never)]
fn split_block(data: &Bytes, max_size: usize) -> Option<(Option<Metadata>, usize)> {
    let (metadata, _) = Metadata::split(data, max_size).ok()?;
    let block = 2 + metadata.block_len();
    Some((Some(metadata), block))
}

impl Direct<'_> {
    /// The channel the request came on.
    pub fn channel(&self) -> u32 {
        self.channel
    }

    /// The bytes of the metadata block at the front of the frame's data:
    /// the body is what follows them (0 without the extension).
    pub fn block_len(&self) -> usize {
        self.block
    }

    /// The metadata block at the front of `data`, the frame's data, and the
    /// body after it (`[EXT-18]`): `None` and the data itself when no block
    /// is in force. The metadata is taken out of the guard: a second call
    /// gives `None`.
    #[inline(always)]
    pub fn split_body(&mut self, data: Bytes) -> (Option<Metadata>, Bytes) {
        match self.metadata.take() {
            None => (None, data),
            Some(metadata) => (Some(metadata), data.slice(self.block..)),
        }
    }

    /// The request's place in its channel's order, as
    /// [`IncomingRequest::seq`](super::IncomingRequest::seq).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The highest channel id the connection ever gave out, as
    /// [`ServerConnection::highest_channel_id`].
    pub fn highest_channel_id(&self) -> u32 {
        self.core.highest_channel_id()
    }

    /// Answers the request: its frames are encoded into `dst` when there is
    /// one and the answer fits one frame, and queued like any other answer
    /// otherwise (then [`DirectAnswer::Queued`]). `route` is the request's
    /// route, which the answer's frames carry; one that is not a valid path
    /// within the frame limits is queued, and refused where frames are
    /// encoded.
    #[inline(always)]
    pub fn answer(self, route: &Bytes, body: Bytes, dst: Option<&mut BytesMut>) -> DirectAnswer {
        let Direct { core, channel: channel_id, seq, .. } = self;
        let limits = core.config.frame_limits;
        let fits = core.outbox.is_empty()
            && body.len() <= limits.max_data as usize
            && route.len() <= limits.max_path
            && find_byte(0, route).is_none();
        match (core.channels.get_mut(channel_id).filter(|_| fits), dst) {
            (Some(channel), Some(dst)) => {
                channel.next_to_send += 1;
                let body = seal(&core.body_codec, body);
                let (frames, bytes) =
                    encode_body_into(MessageKind::Response, route, channel_id, &body, limits.max_data, dst);
                DirectAnswer::Written { frames, bytes }
            }
            _ => {
                let seq = Direct { core: &mut *core, channel: channel_id, seq, metadata: None, block: 0 }
                    .defer(route.clone(), 0);
                core.respond(channel_id, seq, body);
                DirectAnswer::Queued
            }
        }
    }

    /// Gives the request its place in its channel's order, to be answered
    /// later with [`ServerConnection::respond`] like a request that
    /// [`ServerConnection::receive`] handed out; `held` is its body's size
    /// while it waits. Returns its seq, [`Direct::seq`].
    pub fn defer(self, route: Bytes, held: usize) -> u64 {
        let Direct { core, channel, seq, .. } = self;
        let Some(channel) = core.channels.get_mut(channel) else { return seq };
        channel.take_seq(route, held, &mut core.held)
    }
}
