//! The streaming frame decoder, written with nom.
//!
//! [`parse_frame`] looks at a byte slice and says one of three things: here is
//! a whole frame and how long it is; at least this many more bytes are needed;
//! or the bytes break a requirement. [`FrameDecoder`] drives it over a
//! [`BytesMut`] read buffer and hands out frames whose path and data are
//! zero-copy slices of that buffer.

use bytes::{Buf, Bytes, BytesMut};
use nom::bytes::streaming::take_till;
use nom::error::{ErrorKind, ParseError};
use nom::number::streaming::{be_u32, be_u8};
use nom::{IResult, Needed};

use crate::wire::frame::{Frame, FrameLimits};
use crate::wire::frame_error::{DecodeError, FrameErrorKind};
use crate::wire::known_paths::KnownPaths;
use crate::wire::scan::find_byte;
use crate::wire::status::Status;

/// The smallest possible frame: a close frame with empty path and no data.
pub const MIN_FRAME_LEN: usize = 10;

/// Where the parts of a frame lie inside the buffer it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLayout {
    /// The status.
    pub status: Status,
    /// The channel id.
    pub channel: u32,
    /// Byte range of the path (without NUL).
    pub path: (usize, usize),
    /// Byte range of the data.
    pub data: (usize, usize),
}

impl FrameLayout {
    /// Total length of the frame on the wire.
    pub fn encoded_len(&self) -> usize {
        self.data.1
    }
}

/// The nom error type of the frame parser: either a broken requirement, with
/// the number of input bytes left where it was found, or an internal nom error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseFailure {
    /// A requirement is broken; `remaining` is the input length at the bad field.
    Frame {
        /// What is wrong.
        kind: FrameErrorKind,
        /// Input bytes left at the start of the offending field.
        remaining: usize,
    },
    /// A nom combinator failed in a way the grammar does not expect.
    Nom(ErrorKind),
}

impl<'a> ParseError<&'a [u8]> for ParseFailure {
    fn from_error_kind(_input: &'a [u8], kind: ErrorKind) -> Self {
        ParseFailure::Nom(kind)
    }

    fn append(_input: &'a [u8], _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

fn fail<T>(at: &[u8], kind: FrameErrorKind) -> IResult<&[u8], T, ParseFailure> {
    Err(nom::Err::Failure(ParseFailure::Frame { kind, remaining: at.len() }))
}

/// Rewrites an `Incomplete` from an inner parser into the least number of
/// bytes still needed for the whole frame, `rest_of_frame` counting the
/// fields after the one being parsed.
#[inline]
fn at_least<T>(
    result: IResult<&[u8], T, ParseFailure>,
    have: usize,
    field: usize,
    rest_of_frame: usize,
) -> IResult<&[u8], T, ParseFailure> {
    match result {
        Err(nom::Err::Incomplete(_)) => {
            Err(nom::Err::Incomplete(Needed::new(field.saturating_sub(have).max(1) + rest_of_frame)))
        }
        other => other,
    }
}

/// Parses one frame from the front of `input` (`[FRAME-1]`).
///
/// Returns the rest of the input and the layout of the frame, relative to
/// the start of `input`. Errors are found at the earliest byte that shows
/// them (`[FERR-2]`): an unknown status at the first byte, an overlong path
/// once `max_path + 1` bytes without NUL have arrived, an oversized or zero
/// length as soon as the length field is complete.
#[inline]
pub fn parse_frame<'a>(input: &'a [u8], limits: &FrameLimits) -> IResult<&'a [u8], FrameLayout, ParseFailure> {
    let total = input.len();
    let (rest, status_byte) = at_least(be_u8(input), 0, 1, MIN_FRAME_LEN - 1)?;
    let Some(status) = Status::from_byte(status_byte) else {
        return fail(input, FrameErrorKind::UnknownStatus(status_byte));
    };
    let min_data = usize::from(status != Status::Close);

    // The path: bytes up to a NUL, looked for only within the limit.
    let window = &rest[..rest.len().min(limits.max_path + 1)];
    let path: &[u8] = match take_till::<_, _, ParseFailure>(|b| b == 0)(window) {
        Ok((_, path)) => path,
        Err(nom::Err::Incomplete(_)) if window.len() > limits.max_path => {
            return fail(rest, FrameErrorKind::PathTooLong { limit: limits.max_path });
        }
        Err(nom::Err::Incomplete(_)) => return Err(nom::Err::Incomplete(Needed::new(1 + 8 + min_data))),
        Err(other) => return Err(other),
    };
    let path_start = 1;
    let after_path = &rest[path.len() + 1..];

    let header = after_path;
    let (after_channel, channel) = at_least(be_u32(header), header.len(), 8, min_data)?;
    let (after_len, len) = at_least(be_u32(after_channel), header.len(), 8, min_data)?;
    if len > limits.max_data {
        return fail(after_channel, FrameErrorKind::DataTooLong { declared: len, limit: limits.max_data });
    }
    if len == 0 && status != Status::Close {
        return fail(after_channel, FrameErrorKind::EmptyData { status });
    }
    // The data: only its presence is checked; it is never looked at.
    let Some(after_data) = after_len.get(len as usize..) else {
        return Err(nom::Err::Incomplete(Needed::new(len as usize - after_len.len())));
    };
    let data_start = total - after_len.len();
    Ok((
        after_data,
        FrameLayout {
            status,
            channel,
            path: (path_start, path_start + path.len()),
            data: (data_start, total - after_data.len()),
        },
    ))
}

/// The common case first: a whole frame that breaks no rule at the front
/// of `buf`, found with the checks of [`parse_frame`] and none of its
/// bookkeeping. `None` sends the caller to [`parse_frame`], which tells an
/// incomplete frame from a broken one and says what is missing or wrong;
/// both accept exactly the same frames (the `fast_path_agrees` property).
#[inline(always)]
fn whole_valid_frame(buf: &[u8], limits: &FrameLimits) -> Option<FrameLayout> {
    let status = Status::from_byte(*buf.first()?)?;
    // The path and its NUL within the path limit ([FRAME-3], [LIMIT-1]).
    let window = buf.get(1..buf.len().min(limits.max_path.saturating_add(2)))?;
    let nul = find_byte(0, window)?;
    let path_end = 1 + nul;
    let header = buf.get(path_end + 1..path_end + 9)?;
    let channel = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    // [LIMIT-2], and data only a close frame may lack ([FRAME-6]).
    if len > limits.max_data || (len == 0 && status != Status::Close) {
        return None;
    }
    let data_start = path_end + 9;
    let end = data_start.checked_add(len as usize)?;
    (buf.len() >= end).then_some(FrameLayout { status, channel, path: (1, path_end), data: (data_start, end) })
}

/// The result of looking at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Peek {
    /// A whole frame lies at the front of the buffer.
    Frame(FrameLayout),
    /// At least this many more bytes are needed before a frame is complete.
    Needs(usize),
}

/// Looks at the front of `buf` without consuming it. Errors carry offsets
/// relative to the start of `buf`.
#[inline]
pub fn peek_frame(buf: &[u8], limits: &FrameLimits) -> Result<Peek, DecodeError> {
    match whole_valid_frame(buf, limits) {
        Some(layout) => Ok(Peek::Frame(layout)),
        None => peek_with_parser(buf, limits),
    }
}

/// [`peek_frame`] once the fast path found no whole valid frame: the full
/// parser tells what is missing or wrong.
fn peek_with_parser(buf: &[u8], limits: &FrameLimits) -> Result<Peek, DecodeError> {
    match parse_frame(buf, limits) {
        Ok((_, layout)) => Ok(Peek::Frame(layout)),
        Err(nom::Err::Incomplete(Needed::Size(n))) => Ok(Peek::Needs(n.get())),
        Err(nom::Err::Incomplete(Needed::Unknown)) => Ok(Peek::Needs(1)),
        Err(
            nom::Err::Failure(ParseFailure::Frame { kind, remaining })
            | nom::Err::Error(ParseFailure::Frame { kind, remaining }),
        ) => Err(DecodeError { kind, offset: (buf.len() - remaining) as u64 }),
        Err(nom::Err::Failure(ParseFailure::Nom(_)) | nom::Err::Error(ParseFailure::Nom(_))) => {
            // The grammar above only fails through `fail`; a bare nom error
            // would mean the input is not frames at all. Report it as the
            // status being unusable so the caller still closes cleanly.
            Err(DecodeError { kind: FrameErrorKind::UnknownStatus(buf.first().copied().unwrap_or(0)), offset: 0 })
        }
    }
}

/// Cuts a frame described by `layout` off the front of `buf`, without copying
/// its path or data.
#[inline(always)]
pub fn split_frame(buf: &mut BytesMut, layout: &FrameLayout) -> Frame {
    let (status, channel) = (layout.status, layout.channel);
    let (path_start, path_end) = layout.path;
    if path_end == path_start && layout.data.1 == layout.data.0 {
        // An empty close frame shares nothing with the buffer.
        buf.advance(layout.encoded_len());
        return Frame { status, path: Bytes::new(), channel, data: Bytes::new() };
    }
    let mut frame = buf.split_to(layout.encoded_len());
    frame.advance(path_start);
    let path = if path_end > path_start { frame.split_to(path_end - path_start).freeze() } else { Bytes::new() };
    frame.advance(layout.data.0 - path_end);
    Frame { status, path, channel, data: frame.freeze() }
}

/// [`split_frame`] for a frame whose path is already at hand (a known
/// path): only its data is cut from `buf`.
#[inline(always)]
fn split_frame_with_path(buf: &mut BytesMut, layout: &FrameLayout, path: Bytes) -> Frame {
    let mut frame = buf.split_to(layout.encoded_len());
    frame.advance(layout.data.0);
    Frame { status: layout.status, path, channel: layout.channel, data: frame.freeze() }
}

/// Cuts the frame `layout` describes off the front of a frozen buffer:
/// its path and data are slices of the buffer, with no copy and no
/// change of the buffer's owner.
#[inline(always)]
pub fn split_frozen(buf: &mut Bytes, layout: &FrameLayout) -> Frame {
    let (path_start, path_end) = layout.path;
    let path = if path_end > path_start { buf.slice(path_start..path_end) } else { Bytes::new() };
    split_frozen_with_path(buf, layout, path)
}

/// [`split_frozen`] for a frame whose path is already at hand (a known
/// path): only its data is a slice of `buf`.
#[inline(always)]
fn split_frozen_with_path(buf: &mut Bytes, layout: &FrameLayout, path: Bytes) -> Frame {
    let (data_start, end) = layout.data;
    let data = if end > data_start { buf.slice(data_start..end) } else { Bytes::new() };
    buf.advance(end);
    Frame { status: layout.status, path, channel: layout.channel, data }
}

/// A stateful decoder over a byte stream: keeps the stream offset so errors
/// name where in the stream they are, and stops for good after an error
/// (`[FERR-1]`: no resynchronisation).
#[derive(Debug, Clone, Default)]
pub struct FrameDecoder {
    limits: FrameLimits,
    offset: u64,
    needed: usize,
    failed: Option<DecodeError>,
    /// Paths handed out as static copies rather than slices of the buffer.
    known: KnownPaths,
}

impl FrameDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: FrameLimits) -> FrameDecoder {
        FrameDecoder { limits, offset: 0, needed: MIN_FRAME_LEN, failed: None, known: KnownPaths::default() }
    }

    /// The same decoder giving a frame whose path is one of `known` that
    /// path's static copy, not a slice of the buffer it arrived in: the
    /// frame's bytes are the same, and taking the path costs no reference
    /// count. Default: no path is known.
    pub fn with_known_paths(mut self, known: KnownPaths) -> FrameDecoder {
        self.known = known;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &FrameLimits {
        &self.limits
    }

    /// Bytes of the stream consumed so far as whole frames.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// After `decode` returned `Ok(None)`: the least number of further bytes
    /// needed to complete the next frame.
    pub fn needed(&self) -> usize {
        self.needed
    }

    /// Takes the next frame from the front of `buf`, `Ok(None)` if it is not
    /// all there yet. After an error every later call returns the same error.
    #[inline(always)]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        // The common case inline: a whole valid frame at the front.
        if self.failed.is_none() {
            if let Some(layout) = whole_valid_frame(buf, &self.limits) {
                return Ok(Some(self.take(buf, &layout)));
            }
        }
        self.decode_rest(buf)
    }

    /// Cuts the frame `layout` describes off `buf` and moves past it.
    /// A frame from the front of `frozen`, bytes already read and frozen,
    /// when they begin with a whole frame that breaks no requirement;
    /// otherwise `None`, with `frozen` untouched: what it holds then goes
    /// through [`FrameDecoder::decode`], which tells an unfinished frame
    /// from a broken one.
    #[inline(always)]
    pub fn decode_frozen(&mut self, frozen: &mut Bytes) -> Option<Frame> {
        let layout = self.whole_frame(frozen)?;
        Some(self.take_frozen(frozen, &layout))
    }

    /// When `buf` begins with a whole frame that breaks no requirement:
    /// all of `buf`, frozen, with that frame taken off its front (take the
    /// rest with [`FrameDecoder::decode_frozen`]). Otherwise `None`, with
    /// `buf` untouched.
    #[inline(always)]
    pub fn freeze_whole(&mut self, buf: &mut BytesMut) -> Option<(Bytes, Frame)> {
        let layout = self.whole_frame(buf)?;
        let mut frozen = buf.split().freeze();
        let frame = self.take_frozen(&mut frozen, &layout);
        Some((frozen, frame))
    }

    /// The layout of a whole valid frame at the front of `buf`, unless the
    /// stream already failed.
    #[inline(always)]
    fn whole_frame(&self, buf: &[u8]) -> Option<FrameLayout> {
        if self.failed.is_some() {
            return None;
        }
        whole_valid_frame(buf, &self.limits)
    }

    #[inline(always)]
    fn take_frozen(&mut self, frozen: &mut Bytes, layout: &FrameLayout) -> Frame {
        self.passed(layout);
        match self.known_path_at(frozen, layout) {
            Some(path) => split_frozen_with_path(frozen, layout, path),
            None => split_frozen(frozen, layout),
        }
    }

    /// The static copy of the path of the frame `layout` describes at the
    /// front of `buf`, when it is a known path.
    #[inline(always)]
    fn known_path_at(&mut self, buf: &[u8], layout: &FrameLayout) -> Option<Bytes> {
        let (start, end) = layout.path;
        self.known_path(buf.get(start..end)?)
    }

    /// The static copy of `path`, when it is a known path (never for an
    /// empty path).
    #[inline(always)]
    pub(crate) fn known_path(&mut self, path: &[u8]) -> Option<Bytes> {
        self.known.get(Some(path).filter(|path| !path.is_empty())?)
    }

    /// The stream moved past the frame `layout` describes.
    #[inline(always)]
    fn passed(&mut self, layout: &FrameLayout) {
        self.offset += layout.encoded_len() as u64;
        self.needed = MIN_FRAME_LEN;
    }

    #[inline(always)]
    fn take(&mut self, buf: &mut BytesMut, layout: &FrameLayout) -> Frame {
        self.passed(layout);
        match self.known_path_at(buf, layout) {
            Some(path) => split_frame_with_path(buf, layout, path),
            None => split_frame(buf, layout),
        }
    }

    /// Everything but a whole valid frame at the front (the fast path has
    /// looked already): an earlier error, a frame not all there yet, a
    /// broken frame. Out of line, so that the common case stays small
    /// enough to inline where it is called.
    #[inline(never)]
    fn decode_rest(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        match peek_with_parser(buf, &self.limits) {
            Ok(Peek::Frame(layout)) => Ok(Some(self.take(buf, &layout))),
            Ok(Peek::Needs(n)) => {
                self.needed = n;
                Ok(None)
            }
            Err(err) => {
                let err = DecodeError { kind: err.kind, offset: self.offset + err.offset };
                self.failed = Some(err);
                Err(err)
            }
        }
    }

    /// Called when the stream has ended: an error if a frame was left
    /// unfinished (`[FERR-3]`), `Ok(None)` on a clean end between frames.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() => Ok(None),
            None => {
                let err = DecodeError { kind: FrameErrorKind::Truncated { buffered: buf.len() }, offset: self.offset };
                self.failed = Some(err);
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FrameLimits {
        FrameLimits::default()
    }

    #[test]
    fn a_known_path_is_the_same_frame_with_a_static_path() {
        use crate::wire::encode::encode_frame;
        use crate::wire::known_paths::interned;
        let frames = [
            Frame::new(Status::RequestWhole, Bytes::from_static(b"/echo"), 0, Bytes::from_static(b"one")),
            Frame::new(Status::RequestWhole, Bytes::from_static(b"/echo?x=1"), 1, Bytes::from_static(b"two")),
            Frame::new(Status::RequestWhole, Bytes::from_static(b"/other"), 2, Bytes::from_static(b"three")),
            Frame::new(Status::Close, Bytes::new(), 0, Bytes::new()),
        ];
        let mut wire = BytesMut::new();
        for frame in &frames {
            encode_frame(frame, &limits(), &mut wire).expect("encodes");
        }
        let known = KnownPaths::new([b"/echo".as_slice()]);
        // From a growing buffer and from frozen bytes alike.
        let mut decoder = FrameDecoder::new(limits()).with_known_paths(known.clone());
        let mut buf = wire.clone();
        let from_buf: Vec<Frame> = std::iter::from_fn(|| decoder.decode(&mut buf).expect("valid")).collect();
        let mut decoder = FrameDecoder::new(limits()).with_known_paths(known);
        let mut frozen = wire.freeze();
        let from_frozen: Vec<Frame> = std::iter::from_fn(|| decoder.decode_frozen(&mut frozen)).collect();
        for decoded in [&from_buf, &from_frozen] {
            assert_eq!(decoded[..], frames[..]);
            // Only the known path is the interned copy.
            let interned = interned(b"/echo");
            assert_eq!(decoded[0].path.as_ptr(), interned.as_ptr());
            assert_ne!(decoded[1].path.as_ptr(), interned.as_ptr());
        }
    }

    #[test]
    fn needs_reports_the_least_bytes_left() {
        assert_eq!(peek_frame(b"", &limits()), Ok(Peek::Needs(MIN_FRAME_LEN)));
        // status 1, path "/a" unterminated: NUL + 8 header + 1 data.
        assert_eq!(peek_frame(b"\x01/a", &limits()), Ok(Peek::Needs(10)));
        // status 1, path done, 3 of 8 header bytes.
        assert_eq!(peek_frame(b"\x01/a\x00\x00\x00\x00", &limits()), Ok(Peek::Needs(6)));
        // whole header, 2 data bytes declared, none there.
        assert_eq!(peek_frame(b"\x01/a\x00\x00\x00\x00\x00\x00\x00\x00\x02", &limits()), Ok(Peek::Needs(2)));
    }

    #[test]
    fn errors_carry_field_offsets() {
        let err = peek_frame(b"\x09", &limits()).unwrap_err();
        assert_eq!((err.kind, err.offset), (FrameErrorKind::UnknownStatus(9), 0));
        let err = peek_frame(b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", &limits()).unwrap_err();
        assert_eq!(err.offset, 6);
        assert_eq!(err.kind.requirement(), "FRAME-6");
    }

    proptest::proptest! {
        /// The fast path finds a frame exactly where the full parser does,
        /// with the same layout: on frames built field by field (valid or
        /// not, cut anywhere) and on small limits.
        #[test]
        fn fast_path_agrees(
            status in 0u8..12,
            path in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
            channel in proptest::prelude::any::<u32>(),
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
            declared in proptest::option::of(0u32..40),
            cut in 0usize..60,
            max_path in 0usize..12,
            max_data in 0u32..30,
        ) {
            let mut bytes = vec![status];
            bytes.extend_from_slice(&path);
            bytes.push(0);
            bytes.extend_from_slice(&channel.to_be_bytes());
            bytes.extend_from_slice(&declared.unwrap_or(data.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&data);
            bytes.truncate(bytes.len().saturating_sub(cut % 4 * cut));
            let limits = FrameLimits { max_path, max_data };
            let full = parse_frame(&bytes, &limits).ok().map(|(_, layout)| layout);
            proptest::prop_assert_eq!(whole_valid_frame(&bytes, &limits), full);
        }
    }

    #[test]
    fn close_frame_may_be_empty() {
        let bytes = b"\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00";
        match peek_frame(bytes, &limits()) {
            Ok(Peek::Frame(layout)) => assert_eq!(layout.encoded_len(), MIN_FRAME_LEN),
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}
