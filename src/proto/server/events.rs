//! What the server core hands to its shell: requests for handlers, and the
//! tickets of the direct path.

use bytes::Bytes;

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
/// [`ServerConnection::receive_direct`](super::ServerConnection::receive_direct).
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
/// [`ServerConnection::answer_direct`](super::ServerConnection::answer_direct) or [`ServerConnection::defer`](super::ServerConnection::defer).
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
    /// Queued for [`ServerConnection::transmit`](super::ServerConnection::transmit) like any other answer.
    Queued,
}
