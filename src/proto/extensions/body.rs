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
#[non_exhaustive]
pub enum Codec {
    /// An LZ4 frame (the LZ4 frame format, magic `04 22 4D 18`): fast, modest ratio.
    Lz4,
    /// A Zstandard frame (RFC 8878) at level 3: slower, better ratio.
    Zstd,
}

/// Why a body could not be read (`[EXT-14]`, `[EXT-15]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
        match self {
            Codec::Lz4 => lz4_frame::compress(body, out),
            Codec::Zstd => ZSTD.with(|zstd| {
                let mut zstd = zstd.borrow_mut();
                let compressor = match &mut zstd.0 {
                    Some(c) => c,
                    slot => slot.insert(zstd::bulk::Compressor::new(3)?),
                };
                out.extend_from_slice(&compressor.compress(body)?);
                Ok(())
            }),
        }
    }

    #[cfg(not(feature = "compression"))]
    fn compress(self, _body: &[u8], _out: &mut Vec<u8>) -> std::io::Result<()> {
        Err(std::io::Error::other("built without the compression feature"))
    }

    /// Inflates `data` into at most `limit + 1` bytes (so a bomb is caught
    /// without inflating it whole); more than `limit` bytes means too large.
    #[cfg(feature = "compression")]
    fn decompress(self, data: &[u8], limit: usize) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let cap = (limit as u64).saturating_add(1);
        match self {
            Codec::Lz4 => {
                if let Some(inflated) = lz4_frame::decompress(data, limit)? {
                    return Ok(inflated);
                }
                lz4_frame::check_one_frame(data)?;
                let mut out = Vec::new();
                lz4_flex::frame::FrameDecoder::new(data).take(cap).read_to_end(&mut out)?;
                Ok(out)
            }
            Codec::Zstd => {
                zstd_one_frame(data)?;
                match zstd::zstd_safe::get_frame_content_size(data) {
                    // A frame that names its size: one call, into exactly that much.
                    Ok(Some(size)) if size > limit as u64 => {
                        Err(std::io::Error::from(std::io::ErrorKind::FileTooLarge))
                    }
                    Ok(Some(size)) => ZSTD.with(|zstd| {
                        let mut zstd = zstd.borrow_mut();
                        let decompressor = match &mut zstd.1 {
                            Some(d) => d,
                            slot => slot.insert(zstd::bulk::Decompressor::new()?),
                        };
                        decompressor.decompress(data, size as usize)
                    }),
                    _ => {
                        let mut out = Vec::new();
                        zstd::stream::read::Decoder::with_buffer(data)?.take(cap).read_to_end(&mut out)?;
                        Ok(out)
                    }
                }
            }
        }
    }

    #[cfg(not(feature = "compression"))]
    fn decompress(self, _data: &[u8], _limit: usize) -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::other("built without the compression feature"))
    }
}

/// Whether `data` is exactly one Zstandard frame without a dictionary
/// (`[EXT-14]`): a skippable frame, a second frame or trailing bytes are
/// not a body.
#[cfg(feature = "compression")]
fn zstd_one_frame(data: &[u8]) -> std::io::Result<()> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    match zstd::zstd_safe::find_frame_compressed_size(data) {
        Ok(size) if size == data.len() && zstd::zstd_safe::get_dict_id_from_frame(data).is_none() => Ok(()),
        Ok(size) if size == data.len() => Err(bad("a zstd frame that needs a dictionary")),
        Ok(_) => Err(bad("bytes after the zstd frame, or a skippable frame")),
        Err(_) => Err(bad("not a zstd frame")),
    }
}

#[cfg(feature = "compression")]
type ZstdContexts = (Option<zstd::bulk::Compressor<'static>>, Option<zstd::bulk::Decompressor<'static>>);

#[cfg(feature = "compression")]
thread_local! {
    /// zstd contexts, made once per thread: making one costs more than
    /// compressing a 14 KB body.
    static ZSTD: std::cell::RefCell<ZstdContexts> = const { std::cell::RefCell::new((None, None)) };
}

/// LZ4 frames (the LZ4 frame format) written and read block by block with
/// no per-message buffers: independent 64 KiB blocks, no checksums, no
/// content size. Frames of another layout are read by lz4_flex's decoder.
#[cfg(feature = "compression")]
mod lz4_frame {
    /// Magic, FLG (version 1, independent blocks), BD (64 KiB blocks) and
    /// the header checksum of those two bytes.
    const HEADER: [u8; 7] = [0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, 0x82];
    const BLOCK: usize = 64 * 1024;
    /// A block size with this bit set holds the block's bytes as they are.
    const STORED: u32 = 1 << 31;

    pub(super) fn compress(body: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        out.extend_from_slice(&HEADER);
        let mut scratch = vec![0u8; lz4_flex::block::get_maximum_output_size(BLOCK.min(body.len()))];
        for block in body.chunks(BLOCK) {
            let n = lz4_flex::block::compress_into(block, &mut scratch).map_err(std::io::Error::other)?;
            if n < block.len() {
                out.extend_from_slice(&(n as u32).to_le_bytes());
                out.extend_from_slice(&scratch[..n]);
            } else {
                out.extend_from_slice(&(block.len() as u32 | STORED).to_le_bytes());
                out.extend_from_slice(block);
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        Ok(())
    }

    /// Whether `data` is exactly one LZ4 frame of any layout the LZ4 frame
    /// format allows, without a dictionary id (`[EXT-14]`): its end is
    /// found from its header and block sizes, and a skippable frame, a
    /// second frame or trailing bytes are refused.
    pub(super) fn check_one_frame(data: &[u8]) -> std::io::Result<()> {
        let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let rest = data.strip_prefix(&HEADER[..4]).ok_or_else(|| bad("not an LZ4 frame"))?;
        let (&[flg, _bd], _) = rest.split_first_chunk::<2>().ok_or_else(|| bad("truncated LZ4 header"))?;
        if flg & 0x01 != 0 {
            return Err(bad("an LZ4 frame that needs a dictionary"));
        }
        let content_size = if flg & 0x08 != 0 { 8 } else { 0 };
        let block_checksum = if flg & 0x10 != 0 { 4 } else { 0 };
        let content_checksum = if flg & 0x04 != 0 { 4 } else { 0 };
        let mut at = 4 + 2 + content_size + 1;
        loop {
            let size = data.get(at..at + 4).ok_or_else(|| bad("truncated LZ4 frame"))?;
            let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]);
            at += 4;
            if size == 0 {
                break;
            }
            at += (size & !STORED) as usize + block_checksum;
        }
        if at + content_checksum != data.len() {
            return Err(bad("bytes after the LZ4 frame"));
        }
        Ok(())
    }

    /// The body of a frame of [`HEADER`]'s layout; `Ok(None)` for another
    /// layout. Stops past `limit` (the caller reports it).
    pub(super) fn decompress(data: &[u8], limit: usize) -> std::io::Result<Option<Vec<u8>>> {
        let Some(mut rest) = data.strip_prefix(&HEADER[..]) else { return Ok(None) };
        let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let mut out = Vec::new();
        loop {
            let (size, after) = rest.split_first_chunk::<4>().ok_or_else(|| bad("truncated block size"))?;
            let size = u32::from_le_bytes(*size);
            if size == 0 {
                return if after.is_empty() { Ok(Some(out)) } else { Err(bad("bytes after the end mark")) };
            }
            let len = (size & !STORED) as usize;
            if len > BLOCK || len > after.len() {
                return Err(bad("block larger than 64 KiB or than the frame"));
            }
            let (block, next) = after.split_at(len);
            if size & STORED != 0 {
                out.extend_from_slice(block);
            } else {
                let start = out.len();
                out.resize(start + BLOCK, 0);
                let n = lz4_flex::block::decompress_into(block, &mut out[start..]).map_err(std::io::Error::other)?;
                out.truncate(start + n);
            }
            if out.len() > limit {
                return Ok(Some(out));
            }
            rest = next;
        }
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

    /// The body with its marker (an empty body as `{}`): compressed when it is at least `min_size`
    /// bytes and compressing makes it smaller (`[EXT-13]`), as it is otherwise.
    pub fn seal(&self, body: &[u8]) -> Bytes {
        // An empty body is sent as `{}` ([MSG-9]) and then marked ([EXT-12]).
        let body: &[u8] = if body.is_empty() { b"{}" } else { body };
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
        self.open_within(body, usize::MAX)
    }

    /// [`BodyCodec::open`] that inflates at most `room` bytes (and never
    /// more than the message limit): inflation stops there, before the
    /// memory is spent, and the body is [`BodyError::TooLarge`] with the
    /// lower of the two as its limit (`[EXT-15]`, `[RES-9]`).
    pub fn open_within(&self, body: &Bytes, room: usize) -> Result<Bytes, BodyError> {
        let limit = self.max_message.min(room);
        match body.first() {
            None => Err(BodyError::Empty),
            Some(&IDENTITY) => Ok(body.slice(1..)),
            Some(&COMPRESSED) => {
                let inflated = self.codec.decompress(&body[1..], limit).map_err(|e| match e.kind() {
                    std::io::ErrorKind::FileTooLarge => BodyError::TooLarge { limit },
                    _ => BodyError::Corrupt { codec: self.codec.name(), detail: e.to_string() },
                })?;
                if inflated.len() > limit {
                    return Err(BodyError::TooLarge { limit });
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
    fn lz4_frames_are_standard_both_ways() {
        use std::io::{Read, Write};
        let body = json(3000); // more than one 64 KiB block
        assert!(body.len() > 64 * 1024);
        let c = BodyCodec::new(Codec::Lz4, 0, 1 << 20);
        let sealed = c.seal(&body);
        let mut inflated = Vec::new();
        lz4_flex::frame::FrameDecoder::new(&sealed[1..]).read_to_end(&mut inflated).unwrap();
        assert_eq!(inflated, body, "lz4_flex reads our frames");
        let info =
            lz4_flex::frame::FrameInfo::new().content_checksum(true).block_size(lz4_flex::frame::BlockSize::Max256KB);
        let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, vec![COMPRESSED]);
        encoder.write_all(&body).unwrap();
        let theirs = Bytes::from(encoder.finish().unwrap());
        assert_eq!(c.open(&theirs).unwrap(), Bytes::from(body), "we read frames of another layout");
        let mut truncated = c.seal(&json(300)).to_vec();
        truncated.truncate(truncated.len() - 6);
        assert!(matches!(c.open(&Bytes::from(truncated)), Err(BodyError::Corrupt { .. })));
    }

    /// A compressed part is one frame of the codec and nothing else
    /// (`[EXT-14]`): more frames, skippable frames and trailing bytes are
    /// corrupt bodies, whichever layout the frame has.
    #[test]
    fn a_compressed_part_is_exactly_one_frame() {
        use std::io::Write;
        let body = json(300);
        let theirs_lz4 = |body: &[u8]| {
            let info = lz4_flex::frame::FrameInfo::new().content_checksum(true);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            encoder.write_all(body).unwrap();
            encoder.finish().unwrap()
        };
        let skippable = [0x50, 0x2A, 0x4D, 0x18, 1, 0, 0, 0, 0xAA];
        for codec in [Codec::Lz4, Codec::Zstd] {
            let c = BodyCodec::new(codec, 0, 1 << 20);
            let ours = c.seal(&body)[1..].to_vec();
            let mut frames = vec![ours.clone()];
            if codec == Codec::Lz4 {
                frames.push(theirs_lz4(&body));
            }
            for frame in frames {
                let marked = |parts: &[&[u8]]| {
                    Bytes::from(
                        [&[COMPRESSED][..]].iter().chain(parts).flat_map(|p| p.iter().copied()).collect::<Vec<u8>>(),
                    )
                };
                assert_eq!(c.open(&marked(&[&frame])).unwrap(), Bytes::from(body.clone()), "{codec:?} one frame");
                for (what, bad) in [
                    ("trailing byte", marked(&[&frame, &[0x00]])),
                    ("two frames", marked(&[&frame, &frame])),
                    ("a skippable frame after", marked(&[&frame, &skippable])),
                    ("a skippable frame before", marked(&[&skippable, &frame])),
                ] {
                    assert!(matches!(c.open(&bad), Err(BodyError::Corrupt { .. })), "{codec:?}: {what} accepted");
                }
            }
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
        let lz4_bomb = BodyCodec::new(Codec::Lz4, 0, usize::MAX).seal(&vec![b'a'; 1_000_000]);
        assert_eq!(BodyCodec::new(Codec::Lz4, 0, 1000).open(&lz4_bomb), Err(BodyError::TooLarge { limit: 1000 }));
    }

    #[test]
    fn inflation_stops_at_the_room_given_below_the_message_limit() {
        for codec in [Codec::Lz4, Codec::Zstd] {
            let c = BodyCodec::new(codec, 0, 1 << 20);
            let sealed = c.seal(&vec![b'z'; 200_000]);
            assert_eq!(c.open_within(&sealed, 100_000), Err(BodyError::TooLarge { limit: 100_000 }), "{codec:?}");
            assert_eq!(c.open_within(&sealed, 200_000).map(|b| b.len()), Ok(200_000), "{codec:?}");
            assert_eq!(c.open_within(&sealed, usize::MAX).map(|b| b.len()), Ok(200_000), "{codec:?}");
        }
    }
}
