//! The bytes a connection holds, by where they are, and the limits a
//! message's body is held to (`[RES-1]`, `[RES-10]`).

use bytes::BytesMut;

use super::ServerConfig;
use crate::proto::extensions::Handshake;

/// The bytes a connection holds, by where they are (`[RES-1]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldBytes {
    /// Bodies of chunked requests not yet complete.
    pub assembling: usize,
    /// Bodies of requests handed out and not yet answered.
    pub handed_out: usize,
    /// Answers given and not yet taken by `transmit`,
    /// as encoded frame bytes once they are frames.
    pub answers: usize,
    /// [`WAITING_REQUEST_COST`](super::WAITING_REQUEST_COST) for each request given a place in its
    /// channel's order and not yet sent its answer.
    pub waiting: usize,
    /// [`CHANNEL_COST`](super::CHANNEL_COST) for each channel beyond channel 0.
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

/// Appends `data` to a message body being assembled, or gives `None` (for
/// good) once the body would pass `max_message`, once everything the
/// connection holds would pass its budget, or once it would pass what the
/// server can still give (`server_room`). `held` follows.
pub(super) fn append_within(
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
pub(super) fn message_limit(handshake: &Handshake, config: &ServerConfig, route: &[u8]) -> usize {
    handshake.body_limit(route).map_or(config.max_message, |limit| limit.min(config.max_message))
}
