//! Framing errors: every way a byte stream can fail to be IIP frames, each
//! naming the requirement of the spec it breaks (spec chapter "Framing errors").

use std::fmt;

use crate::wire::status::Status;

/// What is wrong with a frame. Each kind names the requirement it breaks
/// through [`FrameErrorKind::requirement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameErrorKind {
    /// The status byte is not one of 0–8.
    UnknownStatus(u8),
    /// No NUL terminator within `limit + 1` path bytes.
    PathTooLong {
        /// The path limit in force.
        limit: usize,
    },
    /// The declared data length is larger than the limit.
    DataTooLong {
        /// The length the frame declares.
        declared: u32,
        /// The limit in force.
        limit: u32,
    },
    /// A message frame declares zero bytes of data.
    EmptyData {
        /// The status of the frame.
        status: Status,
    },
    /// The path contains a NUL byte (only an encoder can see this).
    NulInPath,
    /// The stream ended inside a frame.
    Truncated {
        /// Bytes of the unfinished frame that had arrived.
        buffered: usize,
    },
}

impl FrameErrorKind {
    /// The id of the spec requirement this error breaks, e.g. `"STATUS-2"`.
    pub fn requirement(&self) -> &'static str {
        match self {
            FrameErrorKind::UnknownStatus(_) => "STATUS-2",
            FrameErrorKind::PathTooLong { .. } => "LIMIT-1",
            FrameErrorKind::DataTooLong { .. } => "LIMIT-2",
            FrameErrorKind::EmptyData { .. } => "FRAME-6",
            FrameErrorKind::NulInPath => "FRAME-2",
            FrameErrorKind::Truncated { .. } => "FERR-3",
        }
    }

    /// A short stable name of the kind, used by vector sidecars.
    pub fn name(&self) -> &'static str {
        match self {
            FrameErrorKind::UnknownStatus(_) => "unknown-status",
            FrameErrorKind::PathTooLong { .. } => "path-too-long",
            FrameErrorKind::DataTooLong { .. } => "data-too-long",
            FrameErrorKind::EmptyData { .. } => "empty-data",
            FrameErrorKind::NulInPath => "nul-in-path",
            FrameErrorKind::Truncated { .. } => "truncated",
        }
    }
}

impl fmt::Display for FrameErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] ", self.requirement())?;
        match self {
            FrameErrorKind::UnknownStatus(b) => write!(f, "unknown status byte {b}"),
            FrameErrorKind::PathTooLong { limit } => {
                write!(f, "path not terminated within {limit} bytes")
            }
            FrameErrorKind::DataTooLong { declared, limit } => {
                write!(f, "data length {declared} exceeds the limit of {limit}")
            }
            FrameErrorKind::EmptyData { status } => {
                write!(f, "frame with status {status} declares zero bytes of data")
            }
            FrameErrorKind::NulInPath => write!(f, "path contains a NUL byte"),
            FrameErrorKind::Truncated { buffered } => {
                write!(f, "stream ended inside a frame ({buffered} bytes of it had arrived)")
            }
        }
    }
}

/// A framing error found while decoding, with the stream offset of the first
/// byte of the offending field (`[FERR-2]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{kind} at stream offset {offset}")]
pub struct DecodeError {
    /// What is wrong.
    pub kind: FrameErrorKind,
    /// Offset from the start of the stream of the field that is wrong.
    pub offset: u64,
}

/// A frame the encoder refuses to write because a conforming decoder would
/// reject it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("refusing to encode: {kind}")]
pub struct EncodeError {
    /// What is wrong with the frame.
    pub kind: FrameErrorKind,
}
