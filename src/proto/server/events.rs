//! What the server core hands to its shell: requests for handlers, and the
//! outcomes of the direct path.

use bytes::Bytes;

/// A complete request for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IncomingRequest {
    /// The channel it came on.
    pub channel: u32,
    /// Its place in the channel's order; give it back to `respond`.
    pub seq: u64,
    /// The route: the path up to the first `?`.
    pub route: Bytes,
    /// The query: what follows the first `?`, if any.
    pub query: Option<Bytes>,
    /// The whole body, without its metadata block.
    pub body: Bytes,
    /// Its metadata (`[EXT-18]`): empty when the extension is not in force.
    pub metadata: crate::proto::extensions::Metadata,
    /// How many frames carried it.
    pub frames: u64,
    /// The bytes of those frames, headers included (`[SYS-8]`).
    pub bytes: u64,
}

/// What a received frame means for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A complete request to handle.
    Request(IncomingRequest),
    /// The client sent a close frame (`[CLOSE-2]`).
    PeerClosed {
        /// The close frame's data, as a reason.
        reason: Bytes,
    },
}

/// Where a direct answer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
