//! Message state per channel and direction (spec table `message-transitions`),
//! and splitting a body into frames.

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::wire::encode::encode_parts;
use crate::wire::frame::{Frame, FIXED_OVERHEAD};
use crate::wire::status::{MessageKind, Position, Status};

/// Whether a message is open on a channel in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum MessageState {
    /// No message is open.
    #[default]
    Idle,
    /// A first frame has arrived, the last has not.
    Open,
}

impl MessageState {
    /// The name the spec's tables use.
    pub fn name(self) -> &'static str {
        match self {
            MessageState::Idle => "idle",
            MessageState::Open => "open",
        }
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a frame did to its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// The message is complete.
    Complete,
    /// A chunked message started.
    Started,
    /// A chunked message continues.
    Continues,
}

impl Step {
    /// The name the spec's tables use in the `result` column.
    pub fn name(self) -> &'static str {
        match self {
            Step::Complete => "message complete",
            Step::Started => "message started",
            Step::Continues => "message continues",
        }
    }
}

/// The name the spec's tables use for a position.
pub fn position_name(position: Position) -> &'static str {
    match position {
        Position::FirstMore => "first-more",
        Position::Whole => "whole",
        Position::ContinueMore => "continue-more",
        Position::Last => "last",
    }
}

/// The message transition function (`[MSG-6]`): the next state and what
/// happened, or `None` where the table has no row.
pub fn transition(state: MessageState, position: Position) -> Option<(MessageState, Step)> {
    match (state, position) {
        (MessageState::Idle, Position::Whole) => Some((MessageState::Idle, Step::Complete)),
        (MessageState::Idle, Position::FirstMore) => Some((MessageState::Open, Step::Started)),
        (MessageState::Open, Position::ContinueMore) => Some((MessageState::Open, Step::Continues)),
        (MessageState::Open, Position::Last) => Some((MessageState::Idle, Step::Complete)),
        _ => None,
    }
}

/// The frames of one message carrying `body` (`[MSG-1]`, `[MSG-2]`,
/// `[MSG-9]`, `[MSG-11]`): one frame when it fits in `max_data`, a chunked
/// message otherwise; an empty body travels as `{}`.
pub fn chunk_body(kind: MessageKind, path: &Bytes, channel: u32, body: Bytes, max_data: u32) -> Vec<Frame> {
    let mut frames = Vec::new();
    chunk_body_into(kind, path.clone(), channel, body, max_data, &mut frames);
    frames
}

/// [`chunk_body`] appending the frames to `out`, with no allocation of its
/// own: the common one-frame message costs a push, and takes `path` over.
/// Returns the bytes the frames take on the wire.
pub fn chunk_body_into(
    kind: MessageKind,
    path: Bytes,
    channel: u32,
    body: Bytes,
    max_data: u32,
    out: &mut impl Extend<Frame>,
) -> usize {
    let body = if body.is_empty() { Bytes::from_static(b"{}") } else { body };
    let max = (max_data as usize).max(1);
    if body.len() <= max {
        let frame = Frame::new(Status::message(kind, Position::Whole), path, channel, body);
        let encoded = frame.encoded_len();
        out.extend(std::iter::once(frame));
        return encoded;
    }
    let encoded = body.len() + body.len().div_ceil(max) * (FIXED_OVERHEAD + path.len());
    out.extend(chunks(body.len(), max).map(|(position, range)| {
        Frame::new(Status::message(kind, position), path.clone(), channel, body.slice(range))
    }));
    encoded
}

/// Where each frame's data lies in a body of `len` bytes cut into frames
/// of at most `max` bytes (`max` at least 1), with its place in the message.
fn chunks(len: usize, max: usize) -> impl Iterator<Item = (Position, std::ops::Range<usize>)> {
    let count = len.div_ceil(max);
    (0..count).map(move |i| (Position::from_flags(i == 0, i + 1 == count), i * max..((i + 1) * max).min(len)))
}

/// The frames of [`chunk_body`], encoded straight into `dst` instead of
/// made into [`Frame`]s. `path` must be a valid path within the limits the
/// frames are written under (as the path of a decoded frame is): it is not
/// checked again. Returns how many frames were written and their bytes.
#[inline(always)]
pub fn encode_body_into(
    kind: MessageKind,
    path: &[u8],
    channel: u32,
    body: &[u8],
    max_data: u32,
    dst: &mut BytesMut,
) -> (u64, usize) {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    let max = (max_data as usize).max(1);
    if body.len() <= max {
        // Most messages fit one frame: no arithmetic for the chunks.
        encode_parts(Status::message(kind, Position::Whole), path, channel, body, dst);
        return (1, crate::wire::frame::FIXED_OVERHEAD + path.len() + body.len());
    }
    encode_chunks_into(kind, (path, channel), body, max, dst)
}

/// [`encode_body_into`] for a body of more than one frame of at most `max`
/// bytes each, on `path` and `channel`.
#[inline(never)]
fn encode_chunks_into(
    kind: MessageKind,
    (path, channel): (&[u8], u32),
    body: &[u8],
    max: usize,
    dst: &mut BytesMut,
) -> (u64, usize) {
    let start = dst.len();
    let mut frames = 0;
    for (position, range) in chunks(body.len(), max) {
        encode_parts(Status::message(kind, position), path, channel, &body[range], dst);
        frames += 1;
    }
    (frames, dst.len() - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_size_given_is_the_frames_encoded_size() {
        let path = Bytes::from_static(b"/path");
        for (len, max) in [(0, 4), (1, 4), (4, 4), (5, 4), (10, 4), (12, 4), (1000, 7)] {
            let mut frames = Vec::new();
            let size =
                chunk_body_into(MessageKind::Response, path.clone(), 3, Bytes::from(vec![7u8; len]), max, &mut frames);
            assert_eq!(size, frames.iter().map(Frame::encoded_len).sum::<usize>(), "{len} bytes, frames of {max}");
        }
    }

    #[test]
    fn frames_encoded_straight_are_the_frames_of_chunk_body() {
        let path = Bytes::from_static(b"/path");
        let limits = crate::wire::frame::FrameLimits::default();
        for (len, max) in [(0, 4), (1, 4), (4, 4), (5, 4), (10, 4), (12, 4), (1000, 7)] {
            let body = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>());
            let mut expected = BytesMut::new();
            for frame in chunk_body(MessageKind::Response, &path, 9, body.clone(), max) {
                crate::wire::encode::encode_frame(&frame, &limits, &mut expected).unwrap();
            }
            let mut direct = BytesMut::from(&b"before"[..]);
            let (frames, bytes) = encode_body_into(MessageKind::Response, &path, 9, &body, max, &mut direct);
            assert_eq!(&direct[..6], b"before", "appended, not overwritten");
            assert_eq!(&direct[6..], &expected[..], "{len} bytes, frames of {max}");
            assert_eq!(
                (frames as usize, bytes),
                (chunk_body(MessageKind::Response, &path, 9, body, max).len(), expected.len())
            );
        }
    }

    #[test]
    fn bodies_are_chunked_at_the_frame_limit() {
        let path = Bytes::from_static(b"/x");
        let frames = chunk_body(MessageKind::Request, &path, 1, Bytes::from(vec![1u8; 10]), 4);
        let statuses: Vec<u8> = frames.iter().map(|f| f.status.byte()).collect();
        assert_eq!(statuses, vec![0, 2, 3]);
        assert_eq!(frames.iter().map(|f| f.data.len()).sum::<usize>(), 10);
        let frames = chunk_body(MessageKind::Response, &path, 1, Bytes::new(), 4);
        assert_eq!((frames.len(), frames[0].status, &frames[0].data[..]), (1, Status::ResponseWhole, &b"{}"[..]));
        let two = chunk_body(MessageKind::Response, &path, 1, Bytes::from(vec![1u8; 8]), 4);
        assert_eq!(two.iter().map(|f| f.status.byte()).collect::<Vec<_>>(), vec![4, 7]);
    }
}
