//! The body marker of the `compression` extension (`[EXT-12]`–`[EXT-15]`).
//!
//! Once compression is agreed, every message body on the connection starts
//! with one byte: [`IDENTITY`] (the body follows as it is) or
//! [`COMPRESSED`] (a frame of the agreed codec follows). The sender chooses
//! per message; the receiver takes either.

use bytes::{BufMut, Bytes, BytesMut};

/// Marker of a body sent as it is.
pub const IDENTITY: u8 = 0;
/// Marker of a body compressed with the agreed codec.
pub const COMPRESSED: u8 = 1;

/// A compression codec (`[EXT-11]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// An LZ4 frame (the LZ4 frame format, magic `04 22 4D 18`): fast, modest ratio.
    Lz4,
    /// A Zstandard frame (RFC 8878) at level 3: slower, better ratio.
    Zstd,
}

/// Why a body could not be read (`[EXT-14]`, `[EXT-15]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// A body without its marker byte.
    #[error("[EXT-14] message body without its marker byte")]
    Empty,
    /// A marker other than 0 or 1.
    #[error("[EXT-14] unknown body marker {0}")]
    UnknownMarker(u8),
    /// The compressed part is not a valid frame of the agreed codec.
    #[error("[EXT-14] compressed body is not a valid {codec} frame: {detail}")]
    Corrupt {
        /// The agreed codec's name.
        codec: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// The body inflates past the receiver's message limit.
    #[error("[EXT-15] compressed body inflates past the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
}

impl Codec {
    /// Every codec this build can compress with: both with the
    /// `compression` feature, none without.
    pub fn built_in() -> &'static [Codec] {
        if cfg!(feature = "compression") {
            &[Codec::Lz4, Codec::Zstd]
        } else {
            &[]
        }
    }

    /// The codec's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }

    /// The codec of a name on the wire; `None` for names this crate does not know.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "lz4" => Some(Codec::Lz4),
            "zstd" => Some(Codec::Zstd),
            _ => None,
        }
    }

    #[cfg(feature = "compression")]
    fn compress(self, body: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        use std::io::Write;
        match self {
            Codec::Lz4 => {
                let mut encoder = lz4_flex::frame::FrameEncoder::new(out);
                encoder.write_all(body)?;
                encoder.finish().map(|_| ()).map_err(std::io::Error::other)
            }
            Codec::Zstd => zstd::stream::copy_encode(body, out, 3),
        }
    }

    #[cfg(not(feature = "compression"))]
    fn compress(self, _body: &[u8], _out: &mut Vec<u8>) -> std::io::Result<()> {
        Err(std::io::Error::other("built without the compression feature"))
    }

    /// Inflates `data` into at most `limit + 1` bytes (so a bomb is caught
    /// without inflating it whole).
    #[cfg(feature = "compression")]
    fn decompress(self, data: &[u8], limit: usize) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let cap = (limit as u64).saturating_add(1);
        let mut out = Vec::new();
        match self {
            Codec::Lz4 => lz4_flex::frame::FrameDecoder::new(data).take(cap).read_to_end(&mut out)?,
            Codec::Zstd => zstd::stream::read::Decoder::with_buffer(data)?.take(cap).read_to_end(&mut out)?,
        };
        Ok(out)
    }

    #[cfg(not(feature = "compression"))]
    fn decompress(self, _data: &[u8], _limit: usize) -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::other("built without the compression feature"))
    }
}

/// The body transform of a connection with compression in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyCodec {
    codec: Codec,
    min_size: usize,
    max_message: usize,
}

impl BodyCodec {
    /// Compresses bodies of `min_size` bytes or more with `codec`; opens
    /// bodies up to `max_message` bytes once inflated.
    pub fn new(codec: Codec, min_size: usize, max_message: usize) -> BodyCodec {
        BodyCodec { codec, min_size, max_message }
    }

    /// The agreed codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The body with its marker: compressed when it is at least `min_size`
    /// bytes and compressing makes it smaller (`[EXT-13]`), as it is otherwise.
    pub fn seal(&self, body: &[u8]) -> Bytes {
        if body.len() >= self.min_size {
            let mut out = Vec::with_capacity(body.len() / 2 + 16);
            out.push(COMPRESSED);
            if self.codec.compress(body, &mut out).is_ok() && out.len() <= body.len() {
                return Bytes::from(out);
            }
        }
        Self::identity(body)
    }

    /// The body behind the identity marker.
    pub fn identity(body: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(body.len() + 1);
        out.put_u8(IDENTITY);
        out.extend_from_slice(body);
        out.freeze()
    }

    /// The body a marked body stands for (`[EXT-12]`): the rest of an
    /// identity body (no copy), the inflated rest of a compressed one.
    pub fn open(&self, body: &Bytes) -> Result<Bytes, BodyError> {
        match body.first() {
            None => Err(BodyError::Empty),
            Some(&IDENTITY) => Ok(body.slice(1..)),
            Some(&COMPRESSED) => {
                let inflated = self
                    .codec
                    .decompress(&body[1..], self.max_message)
                    .map_err(|e| BodyError::Corrupt { codec: self.codec.name(), detail: e.to_string() })?;
                if inflated.len() > self.max_message {
                    return Err(BodyError::TooLarge { limit: self.max_message });
                }
                Ok(Bytes::from(inflated))
            }
            Some(&other) => Err(BodyError::UnknownMarker(other)),
        }
    }
}

#[cfg(all(test, feature = "compression"))]
mod tests {
    use super::*;

    fn json(n: usize) -> Vec<u8> {
        let items: Vec<String> = (0..n).map(|i| format!(r#"{{"id":{i},"name":"item {i}","ok":true}}"#)).collect();
        format!("[{}]", items.join(",")).into_bytes()
    }

    #[test]
    fn bodies_round_trip_through_both_codecs_and_small_ones_stay_identity() {
        for codec in [Codec::Lz4, Codec::Zstd] {
            let c = BodyCodec::new(codec, 64, 1 << 20);
            let big = json(300);
            let sealed = c.seal(&big);
            assert_eq!(sealed[0], COMPRESSED);
            assert!(sealed.len() < big.len() / 3, "{codec:?}: {} of {}", sealed.len(), big.len());
            assert_eq!(c.open(&sealed).unwrap(), Bytes::from(big));
            let small = c.seal(b"tiny");
            assert_eq!(&small[..], b"\0tiny");
            assert_eq!(c.open(&small).unwrap(), Bytes::from_static(b"tiny"));
        }
    }

    #[test]
    fn bad_markers_corrupt_frames_and_bombs_are_typed_errors() {
        let c = BodyCodec::new(Codec::Lz4, 0, 1000);
        assert_eq!(c.open(&Bytes::new()), Err(BodyError::Empty));
        assert_eq!(c.open(&Bytes::from_static(b"\x07x")), Err(BodyError::UnknownMarker(7)));
        assert!(matches!(c.open(&Bytes::from_static(b"\x01garbage")), Err(BodyError::Corrupt { .. })));
        let bomb = BodyCodec::new(Codec::Zstd, 0, usize::MAX).seal(&vec![b'a'; 100_000]);
        assert!(bomb.len() < 100);
        let strict = BodyCodec::new(Codec::Zstd, 0, 1000);
        assert_eq!(strict.open(&bomb), Err(BodyError::TooLarge { limit: 1000 }));
    }
}
