//! Protocol errors: well-formed frames that break the rules of channels and
//! messages. Each names the requirement it breaks; the reaction is always to
//! close the connection (`[CLOSE-4]`).

use crate::wire::status::Status;

use super::message::MessageState;

/// A broken rule of the channel or message layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A peer sent a status reserved for the other role.
    #[error("[STATUS-3] status {status} may not be sent by the {sender}")]
    WrongRole {
        /// The status received.
        status: Status,
        /// "client" or "server".
        sender: &'static str,
    },
    /// A frame on a channel that does not exist.
    #[error("[CHAN-6] frame on channel {channel}, which does not exist")]
    UnknownChannel {
        /// The channel id.
        channel: u32,
    },
    /// A frame on a channel whose deletion was requested.
    #[error("[CHAN-10] frame on channel {channel} after its /sys/delete_channel")]
    DeletedChannel {
        /// The channel id.
        channel: u32,
    },
    /// A message frame the message state of its channel does not allow.
    #[error("[MSG-6] status {status} on channel {channel} while its message state is {state}")]
    BadTransition {
        /// The channel id.
        channel: u32,
        /// The state before the frame.
        state: MessageState,
        /// The status received.
        status: Status,
    },
    /// A response arrived on a channel with no request waiting for one.
    #[error("[ORDER-7] response on channel {channel} with no request outstanding")]
    UnexpectedResponse {
        /// The channel id.
        channel: u32,
    },
    /// The answer to `/sys/new_channel` could not be understood.
    #[error("[CHAN-3] malformed /sys/new_channel answer: {detail}")]
    BadChannelGrant {
        /// What was wrong.
        detail: String,
    },
    /// `/sys/new_channel` was answered with an id already open on the
    /// connection, or with 0.
    #[error("[CHAN-4] channel {channel} granted while it is open")]
    GrantedInUse {
        /// The id granted.
        channel: u32,
    },
    /// A request arrived while the connection's hello was unanswered.
    #[error("[EXT-4] request for {route} before the answer to /sys/hello")]
    HelloPending {
        /// The route of the request, lossily as text.
        route: String,
    },
    /// A message body that breaks the body marker rules of the
    /// `compression` extension.
    #[error(transparent)]
    Body(#[from] super::extensions::BodyError),
    /// A request body whose metadata block is malformed (`metadata`
    /// extension).
    #[error(transparent)]
    Metadata(#[from] super::extensions::MetadataError),
}

impl ProtocolError {
    /// The id of the broken requirement.
    pub fn requirement(&self) -> &'static str {
        match self {
            ProtocolError::WrongRole { .. } => "STATUS-3",
            ProtocolError::UnknownChannel { .. } => "CHAN-6",
            ProtocolError::DeletedChannel { .. } => "CHAN-10",
            ProtocolError::BadTransition { .. } => "MSG-6",
            ProtocolError::UnexpectedResponse { .. } => "ORDER-7",
            ProtocolError::BadChannelGrant { .. } => "CHAN-3",
            ProtocolError::GrantedInUse { .. } => "CHAN-4",
            ProtocolError::HelloPending { .. } => "EXT-4",
            ProtocolError::Body(super::extensions::BodyError::TooLarge { .. }) => "EXT-15",
            ProtocolError::Body(_) => "EXT-14",
            ProtocolError::Metadata(_) => "EXT-20",
        }
    }
}

/// A sans-IO core that stops for good after a protocol error or a close.
pub(crate) trait Breakable {
    /// The flag that says the core accepts no more frames.
    fn broken(&mut self) -> &mut bool;
}

/// Runs `receive` on `core` unless it is already broken, and breaks it when
/// `receive` fails: after a protocol error nothing more is accepted (`[CLOSE-4]`).
pub(crate) fn receive_unless_broken<C: Breakable, E>(
    core: &mut C,
    frame: crate::wire::frame::Frame,
    receive: fn(&mut C, crate::wire::frame::Frame) -> Result<Option<E>, ProtocolError>,
) -> Result<Option<E>, ProtocolError> {
    if *core.broken() {
        return Ok(None);
    }
    let result = receive(core, frame);
    if result.is_err() {
        *core.broken() = true;
    }
    result
}
