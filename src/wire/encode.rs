//! The frame encoder: writes frames into a [`BytesMut`] and refuses any frame
//! that a conforming decoder with the same limits would reject.

use bytes::{BufMut, BytesMut};

use crate::wire::frame::{Frame, FrameLimits};
use crate::wire::frame_error::{EncodeError, FrameErrorKind};
use crate::wire::status::Status;

/// Checks `frame` against the framing requirements without writing it.
pub fn check_frame(frame: &Frame, limits: &FrameLimits) -> Result<(), EncodeError> {
    let refuse = |kind| Err(EncodeError { kind });
    if frame.path.len() > limits.max_path {
        return refuse(FrameErrorKind::PathTooLong { limit: limits.max_path });
    }
    if crate::wire::scan::find_byte(0, &frame.path).is_some() {
        return refuse(FrameErrorKind::NulInPath);
    }
    let declared = u32::try_from(frame.data.len()).unwrap_or(u32::MAX);
    if declared > limits.max_data || frame.data.len() > u32::MAX as usize {
        return refuse(FrameErrorKind::DataTooLong { declared, limit: limits.max_data });
    }
    if frame.data.is_empty() && frame.status != Status::Close {
        return refuse(FrameErrorKind::EmptyData { status: frame.status });
    }
    Ok(())
}

/// Appends the wire form of `frame` to `dst` (`[FRAME-1]`).
pub fn encode_frame(frame: &Frame, limits: &FrameLimits, dst: &mut BytesMut) -> Result<(), EncodeError> {
    check_frame(frame, limits)?;
    encode_parts(frame.status, &frame.path, frame.channel, &frame.data, dst);
    Ok(())
}

/// Appends the wire form of the frame made of these parts to `dst`
/// (`[FRAME-1]`) without the checks of [`check_frame`]: the caller knows
/// that `path` holds no NUL and is within the limit and that `data` is
/// within the limit (a `u32`) and, unless it is a close frame, not empty.
#[inline(always)]
pub(crate) fn encode_parts(status: Status, path: &[u8], channel: u32, data: &[u8], dst: &mut BytesMut) {
    dst.reserve(crate::wire::frame::FIXED_OVERHEAD + path.len() + data.len());
    dst.put_u8(status.byte());
    dst.put_slice(path);
    // The NUL, the channel and the length go in with one copy.
    let [c0, c1, c2, c3] = channel.to_be_bytes();
    let [l0, l1, l2, l3] = (data.len() as u32).to_be_bytes();
    dst.put_slice(&[0, c0, c1, c2, c3, l0, l1, l2, l3]);
    dst.put_slice(data);
}

/// The wire form of `frame` as a fresh buffer.
pub fn frame_bytes(frame: &Frame, limits: &FrameLimits) -> Result<BytesMut, EncodeError> {
    let mut dst = BytesMut::with_capacity(frame.encoded_len());
    encode_frame(frame, limits, &mut dst)?;
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_sheet_new_channel_example_byte_for_byte() {
        let frame = Frame::new(Status::RequestWhole, &b"/sys/new_channel"[..], 0, &b"{}"[..]);
        let bytes = frame_bytes(&frame, &FrameLimits::default()).unwrap();
        let mut expected = vec![1u8];
        expected.extend_from_slice(b"/sys/new_channel\0");
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2]);
        expected.extend_from_slice(b"{}");
        assert_eq!(&bytes[..], &expected[..]);
    }

    #[test]
    fn refuses_what_a_decoder_rejects() {
        let limits = FrameLimits { max_path: 4, max_data: 8 };
        let bad = [
            Frame::new(Status::RequestWhole, &b"/abcd"[..], 0, &b"x"[..]),
            Frame::new(Status::RequestWhole, &b"/a\0"[..], 0, &b"x"[..]),
            Frame::new(Status::RequestWhole, &b"/a"[..], 0, vec![1u8; 9]),
            Frame::new(Status::RequestWhole, &b"/a"[..], 0, &b""[..]),
        ];
        for frame in bad {
            assert!(frame_bytes(&frame, &limits).is_err(), "{frame:?}");
        }
        assert!(frame_bytes(&Frame::close(0), &limits).is_ok());
    }
}
