//! [`tokio_util::codec`] glue, so that `Framed<TcpStream, FrameCodec>` reads
//! and writes frames.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::wire::decode::FrameDecoder;
use crate::wire::encode::encode_frame;
use crate::wire::frame::{Frame, FrameLimits};
use crate::wire::frame_error::{DecodeError, EncodeError};

/// The most the codec reserves ahead of a frame's bytes arriving, whatever
/// length the frame declares (`[LIMIT-4]`: memory follows bytes received,
/// never a declared length).
pub const MAX_RESERVE: usize = 64 * 1024;

/// An error of the frame codec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The peer sent bytes that are not valid frames.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A frame handed to the encoder breaks a framing requirement.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The underlying transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame began with a status its sender's role may not send, seen at
    /// the status byte, before the rest of the frame (`[STATUS-4]`).
    #[error("[STATUS-3] status {} may not be sent by a {sender} (seen at its status byte)", status.byte())]
    Forbidden {
        /// The status.
        status: crate::wire::status::Status,
        /// The role of the peer that sent it.
        sender: crate::wire::status::Sender,
    },
}

/// Frame codec for [`tokio_util::codec::Framed`].
#[derive(Debug, Clone, Default)]
pub struct FrameCodec {
    decoder: FrameDecoder,
}

impl FrameCodec {
    /// A codec enforcing `limits` in both directions.
    pub fn new(limits: FrameLimits) -> FrameCodec {
        FrameCodec { decoder: FrameDecoder::new(limits) }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let frame = self.decoder.decode(src)?;
        if frame.is_none() {
            src.reserve(self.decoder.needed().min(MAX_RESERVE));
        }
        Ok(frame)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Ok(self.decoder.decode_eof(src)?)
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(encode_frame(&frame, self.decoder.limits(), dst)?)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(encode_frame(frame, self.decoder.limits(), dst)?)
    }
}
