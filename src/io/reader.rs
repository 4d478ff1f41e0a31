//! The read half of a connection: reads bytes into one buffer and cuts
//! frames off its front, holding no more memory than the bytes received.
//!
//! Unlike `FramedRead`, it tells whether a frame has begun and not finished
//! (for the frame read timeout) and it gives back a read buffer that grew
//! large for one big frame, so that small frames read later do not keep that
//! allocation alive (`[LIMIT-4]`: memory follows bytes received).

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::wire::codec::{CodecError, MAX_RESERVE};
use crate::wire::decode::FrameDecoder;
use crate::wire::frame::{Frame, FrameLimits};
use crate::wire::known_paths::KnownPaths;
use crate::wire::status::{Sender, Status};

/// The read buffer's size when a connection starts and after a large
/// buffer is given back: idle connections stay cheap.
pub const INITIAL_READ_BUFFER: usize = 1024;

/// A read buffer with more capacity than this is replaced by a fresh small
/// one as soon as it holds no bytes of a frame in progress.
pub const KEEP_READ_BUFFER: usize = 64 * 1024;

/// Frames whose data is at most this long are copied out of a read buffer
/// larger than [`KEEP_READ_BUFFER`], so that a small request waiting for its
/// handler never pins a buffer that grew for a large frame.
pub const COPY_SMALL_DATA: usize = 4096;

/// Reads frames from `io`.
#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    /// Bytes read and frozen once for all the whole frames they begin
    /// with: each frame's path and data are slices of it. Only its tail
    /// may be an unfinished frame, which goes back in front of `buf`
    /// before anything more is read.
    frozen: Bytes,
    /// Bytes read after `frozen` (all of them when `frozen` is empty).
    buf: BytesMut,
    decoder: FrameDecoder,
    eof: bool,
    /// When the last read returned bytes.
    last_read: Option<Instant>,
    /// When the first byte of the unfinished frame at the buffer's front arrived.
    pending_since: Option<Instant>,
    /// The buffer's allocation has grown past [`KEEP_READ_BUFFER`] (its
    /// remaining capacity after frames are cut off no longer tells).
    big: bool,
    /// The peer's role, when the reader judges status bytes by it.
    sender: Option<Sender>,
    /// Bytes the last read brought.
    last_len: usize,
    /// A status the peer may not send arrived: every later call says so again.
    refused: Option<Status>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader enforcing `limits`, starting with a small buffer.
    pub fn new(io: R, limits: FrameLimits) -> FrameReader<R> {
        FrameReader {
            io,
            frozen: Bytes::new(),
            buf: BytesMut::with_capacity(INITIAL_READ_BUFFER),
            decoder: FrameDecoder::new(limits),
            eof: false,
            last_read: None,
            pending_since: None,
            big: false,
            sender: None,
            last_len: 0,
            refused: None,
        }
    }

    /// The same reader judging every frame's status byte by the peer's
    /// role as soon as it arrives (`[STATUS-4]`): a status the peer may not
    /// send is an error at once, without waiting for a frame that may be
    /// 16 MiB long.
    pub fn from_peer(mut self, sender: Sender) -> FrameReader<R> {
        self.sender = Some(sender);
        self
    }

    /// The same reader giving a frame whose path is one of `known` (a
    /// server's routes) that path's static copy rather than a slice of the
    /// read buffer: no reference count is taken or dropped for it.
    /// Default: no path is known.
    pub fn with_known_paths(mut self, known: KnownPaths) -> FrameReader<R> {
        self.decoder = std::mem::take(&mut self.decoder).with_known_paths(known);
        self
    }

    /// The same frame with its data in an allocation of its own, and its
    /// path too unless it is a known path's static copy, which pins no
    /// buffer. Rare (only once a buffer grew past its usual size), so kept
    /// out of the reader's common path.
    #[cold]
    #[inline(never)]
    fn unpin(&mut self, frame: Frame) -> Frame {
        let path = self.decoder.known_path(&frame.path).unwrap_or_else(|| Bytes::copy_from_slice(&frame.path));
        Frame { status: frame.status, path, channel: frame.channel, data: Bytes::copy_from_slice(&frame.data) }
    }

    /// The next frame: `None` at a clean end of stream, an error for bytes
    /// that are not frames ([FERR-1]), a stream cut inside a frame
    /// ([FERR-3]) or a failed read. Cancel-safe: no byte is lost when the
    /// future is dropped.
    pub async fn next(&mut self) -> Option<Result<Frame, CodecError>> {
        loop {
            match self.step().await {
                ReadStep::Frame(item) => return Some(item),
                ReadStep::Partial => {}
                ReadStep::End => return None,
            }
        }
    }

    /// Frees what is buffered, then reads and drops what still arrives
    /// until the stream ends, `max_bytes` have been dropped or `until`
    /// passes: a socket closed with unread input resets the connection,
    /// which can destroy frames the peer has not read yet (`[CLOSE-11]`).
    /// Holds one small buffer, not what it reads.
    pub async fn discard_until_end(&mut self, max_bytes: usize, until: Instant) {
        use tokio::io::AsyncReadExt;
        self.buf = BytesMut::new();
        self.frozen = Bytes::new();
        let mut scratch = [0u8; 4096];
        let mut dropped = 0usize;
        while !self.eof && dropped < max_bytes {
            match tokio::time::timeout_at(until.into(), self.io.read(&mut scratch)).await {
                Ok(Ok(0)) | Ok(Err(_)) => self.eof = true,
                Ok(Ok(n)) => dropped += n,
                Err(_) => return,
            }
        }
    }

    /// A buffered frame if there is one; otherwise one read, after which
    /// it says whether a frame came of it. A caller that must watch the
    /// time a frame takes (`[RES-6]`) sees every read this way.
    /// Cancel-safe.
    pub async fn step(&mut self) -> ReadStep {
        if let Some(item) = self.try_next() {
            return ReadStep::Frame(item);
        }
        if self.eof {
            return match self.decoder.decode_eof(&mut self.buf) {
                Ok(Some(frame)) => ReadStep::Frame(Ok(frame)),
                Ok(None) => ReadStep::End,
                Err(err) => ReadStep::Frame(Err(err.into())),
            };
        }
        // Room for the frame under way, and for twice what the last read
        // brought: a read that leaves room tells tokio the socket is drained,
        // which spares the next attempt a system call that would find nothing.
        let wanted = self.decoder.needed().max(self.last_len.saturating_mul(2).min(KEEP_READ_BUFFER / 2));
        self.buf.reserve(wanted.clamp(1, MAX_RESERVE));
        self.big |= self.buf.capacity() > KEEP_READ_BUFFER;
        match self.io.read_buf(&mut self.buf).await {
            Ok(0) => self.eof = true,
            Ok(n) => {
                self.last_len = n;
                let now = Instant::now();
                self.last_read = Some(now);
                self.pending_since.get_or_insert(now);
            }
            Err(err) => return ReadStep::Frame(Err(err.into())),
        }
        match self.try_next() {
            Some(item) => ReadStep::Frame(item),
            None => ReadStep::Partial,
        }
    }

    /// Reads on without handing out frames while fewer than `cap` bytes
    /// are buffered, and returns once the stream has ended or failed: a
    /// caller that has stopped taking frames (back-pressure) notices a
    /// peer that left. Pends for ever once `cap` bytes are buffered, as
    /// the end can then not be seen without taking frames. The bytes read
    /// are the next frames, for [`FrameReader::step`] to hand out later.
    /// Cancel-safe.
    pub async fn watch_end(&mut self, cap: usize) {
        use tokio::io::AsyncReadExt;
        while !self.eof {
            let room = cap.saturating_sub(self.buffered()).min(MAX_RESERVE);
            if room == 0 {
                return std::future::pending().await;
            }
            self.buf.reserve(room);
            match (&mut self.io).take(room as u64).read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => self.eof = true,
                Ok(_) => {}
            }
        }
    }

    /// A frame already in the buffer, without reading; `None` if there is
    /// no whole frame buffered.
    pub fn try_next(&mut self) -> Option<Result<Frame, CodecError>> {
        if let Some(err) = self.refusal() {
            return Some(Err(err));
        }
        let frame = match self.decoder.decode_frozen(&mut self.frozen) {
            Some(frame) => frame,
            None => match self.thaw_and_decode() {
                Ok(Some(frame)) => frame,
                Ok(None) => return None,
                Err(err) => return Some(Err(err)),
            },
        };
        if self.sender.is_some_and(|sender| !frame.status.may_be_sent_by(sender)) {
            self.refused = Some(frame.status);
            return self.refusal().map(Err);
        }
        let big_buffer = self.big;
        if self.frozen.is_empty() {
            // Empty, it would still hold the allocation it was cut from:
            // the frames cut from it keep what they need.
            self.frozen = Bytes::new();
        }
        if self.frozen.is_empty() && self.buf.is_empty() {
            self.pending_since = None;
            if big_buffer {
                // Let the large allocation go with the frames cut from it.
                self.buf = BytesMut::with_capacity(INITIAL_READ_BUFFER);
                self.big = false;
            }
        } else {
            // What is left behind the frame arrived with the last read.
            self.pending_since = self.last_read;
        }
        Some(Ok(if big_buffer && frame.data.len() <= COPY_SMALL_DATA { self.unpin(frame) } else { frame }))
    }

    /// The next frame when the frozen bytes do not begin with one: what is
    /// left of them (an unfinished frame) goes back in front of the bytes
    /// read since; then, if the buffer begins with a whole frame, all of
    /// it is frozen and the frame taken from it (its head read once), and
    /// otherwise the decoder says what is missing or wrong.
    fn thaw_and_decode(&mut self) -> Result<Option<Frame>, CodecError> {
        if !self.frozen.is_empty() {
            let mut joined = BytesMut::with_capacity((self.frozen.len() + self.buf.len()).max(INITIAL_READ_BUFFER));
            joined.extend_from_slice(&self.frozen);
            joined.extend_from_slice(&self.buf);
            self.frozen = Bytes::new();
            self.buf = joined;
        }
        if let Some((frozen, frame)) = self.decoder.freeze_whole(&mut self.buf) {
            self.frozen = frozen;
            return Ok(Some(frame));
        }
        // The bytes begin with the first byte of the next frame: a status
        // the peer may not send is refused before the rest of its frame,
        // which may be 16 MiB long, has come.
        if let (Some(sender), Some(status)) = (self.sender, self.buf.first().copied().and_then(Status::from_byte)) {
            if !status.may_be_sent_by(sender) {
                self.refused = Some(status);
                return Err(CodecError::Forbidden { status, sender });
            }
        }
        Ok(self.decoder.decode(&mut self.buf)?)
    }

    /// The error of a status the peer may not send, once one arrived.
    fn refusal(&self) -> Option<CodecError> {
        Some(CodecError::Forbidden { status: self.refused?, sender: self.sender? })
    }

    /// Whether some bytes of a frame have arrived and the rest has not.
    pub fn in_frame(&self) -> bool {
        !self.frozen.is_empty() || !self.buf.is_empty()
    }

    /// Since when the first byte of an unfinished frame has been waiting
    /// for the rest (`[RES-6]`); `None` between frames.
    pub fn pending_since(&self) -> Option<Instant> {
        self.pending_since.filter(|_| self.in_frame())
    }

    /// Bytes read and not yet handed out as frames.
    pub fn buffered(&self) -> usize {
        self.frozen.len() + self.buf.len()
    }
}

/// What one [`FrameReader::step`] came to.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadStep {
    /// A frame, or the error that ends the stream.
    Frame(Result<Frame, CodecError>),
    /// Bytes arrived (or the end of the stream was seen) without
    /// completing a frame.
    Partial,
    /// The stream ended cleanly between frames.
    End,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode::encode_frame;
    use crate::wire::status::Status;

    fn stream(frames: &[Frame]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for f in frames {
            encode_frame(f, &FrameLimits::default(), &mut out).unwrap();
        }
        out.to_vec()
    }

    #[tokio::test]
    async fn reads_frames_and_ends_cleanly() {
        let frames = vec![
            Frame::new(Status::RequestWhole, &b"/a"[..], 0, &b"x"[..]),
            Frame::new(Status::RequestWhole, &b"/b"[..], 3, vec![7u8; 200_000]),
            Frame::new(Status::RequestWhole, &b"/c"[..], 0, &b"y"[..]),
        ];
        let bytes = stream(&frames);
        let mut reader = FrameReader::new(&bytes[..], FrameLimits::default());
        for want in &frames {
            assert_eq!(reader.next().await.unwrap().unwrap(), *want);
        }
        assert!(reader.next().await.is_none());
    }

    #[tokio::test]
    async fn a_cut_frame_is_an_error_and_counts_as_in_frame() {
        let bytes = stream(&[Frame::new(Status::RequestWhole, &b"/a"[..], 0, &b"xyz"[..])]);
        let cut = &bytes[..bytes.len() - 1];
        let mut reader = FrameReader::new(cut, FrameLimits::default());
        assert!(matches!(reader.next().await, Some(Err(CodecError::Decode(_)))));
        assert!(reader.in_frame());
    }

    #[tokio::test]
    async fn small_frames_after_a_big_one_do_not_share_its_buffer() {
        let big = Frame::new(Status::RequestWhole, &b"/big"[..], 0, vec![1u8; 1 << 20]);
        let small = Frame::new(Status::RequestWhole, &b"/s"[..], 0, &b"tiny"[..]);
        let bytes = stream(&[big.clone(), small.clone()]);
        let mut reader = FrameReader::new(&bytes[..], FrameLimits::default());
        let got_big = reader.next().await.unwrap().unwrap();
        let got_small = reader.next().await.unwrap().unwrap();
        // Cut from the shared buffer, the small frame's data would sit
        // right behind the big frame's data and the small frame's header.
        let sliced_at = got_big.data.as_ptr() as usize + got_big.data.len() + 1 + 2 + 1 + 8;
        assert_ne!(got_small.data.as_ptr() as usize, sliced_at);
        assert_eq!((got_big, &got_small), (big, &small));
        assert!(reader.buf.capacity() <= KEEP_READ_BUFFER);
    }

    #[tokio::test]
    async fn a_small_frame_after_a_big_one_keeps_its_known_path_static() {
        use crate::wire::known_paths::interned;
        let big = Frame::new(Status::RequestWhole, &b"/big"[..], 0, vec![1u8; 1 << 20]);
        let small = Frame::new(Status::RequestWhole, &b"/s"[..], 0, &b"tiny"[..]);
        let bytes = stream(&[big.clone(), small.clone()]);
        let mut reader =
            FrameReader::new(&bytes[..], FrameLimits::default()).with_known_paths(KnownPaths::new([b"/s".as_slice()]));
        assert_eq!(reader.next().await.unwrap().unwrap(), big);
        let got_small = reader.next().await.unwrap().unwrap();
        assert_eq!(got_small, small);
        assert_eq!(got_small.path.as_ptr(), interned(b"/s").as_ptr(), "the known path is not copied");
        assert!(reader.buf.capacity() <= KEEP_READ_BUFFER);
    }

    #[tokio::test]
    async fn a_frame_read_alone_is_the_only_holder_of_its_bytes() {
        let big = Frame::new(Status::RequestWhole, &b"/big"[..], 0, vec![1u8; 1 << 20]);
        let bytes = stream(std::slice::from_ref(&big));
        let mut reader = FrameReader::new(&bytes[..], FrameLimits::default());
        let Frame { path, data, .. } = reader.next().await.unwrap().unwrap();
        drop(path);
        assert!(data.is_unique(), "the reader keeps no hold on a frame's allocation once it is handed out");
        assert!(reader.next().await.is_none());
    }

    #[tokio::test]
    async fn a_status_the_peer_may_not_send_is_refused_for_good() {
        let request = Frame::new(Status::RequestWhole, &b"/a"[..], 0, &b"x"[..]);
        let answer = Frame::new(Status::ResponseWhole, &b"/a"[..], 0, &b"y"[..]);
        // Whole frames read at once, and an answer's first byte alone.
        let whole = stream(&[request.clone(), answer, request.clone()]);
        let first_byte = [stream(std::slice::from_ref(&request)), vec![Status::ResponseWhole.byte()]].concat();
        for bytes in [whole, first_byte] {
            let mut reader = FrameReader::new(&bytes[..], FrameLimits::default()).from_peer(Sender::Client);
            assert_eq!(reader.next().await.unwrap().unwrap(), request);
            for _ in 0..2 {
                let refused = reader.next().await;
                assert!(
                    matches!(refused, Some(Err(CodecError::Forbidden { status: Status::ResponseWhole, .. }))),
                    "{refused:?}"
                );
            }
        }
    }

    /// Hands out at most the next cut's worth of bytes per read.
    struct Chunked {
        data: Vec<u8>,
        cuts: Vec<usize>,
        at: usize,
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            out: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let cut = self.cuts.get(self.at % self.cuts.len().max(1)).copied().unwrap_or(1).max(1);
            self.at += 1;
            let n = cut.min(out.remaining()).min(self.data.len());
            let rest = self.data.split_off(n);
            out.put_slice(&self.data);
            self.data = rest;
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// What a decoder given the whole stream at once makes of it.
    fn decoded_at_once(bytes: &[u8], limits: FrameLimits) -> Vec<Result<Frame, String>> {
        let (mut decoder, mut buf, mut out) = (FrameDecoder::new(limits), BytesMut::from(bytes), Vec::new());
        loop {
            match decoder.decode_eof(&mut buf) {
                Ok(Some(frame)) => out.push(Ok(frame)),
                Ok(None) => return out,
                Err(err) => {
                    out.push(Err(err.to_string()));
                    return out;
                }
            }
        }
    }

    proptest::proptest! {
        /// However the reads cut the stream, the reader hands out the frames
        /// (or the error) that decoding the whole stream at once gives,
        /// with the same error offsets.
        #[test]
        fn frames_are_the_same_however_reads_cut_them(
            frames in proptest::collection::vec(
                (proptest::sample::select(vec![0u8, 1, 2, 3]),
                 proptest::collection::vec(b'a'..=b'z', 0..6),
                 0u32..4,
                 proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300)),
                0..12),
            cuts in proptest::collection::vec(1usize..400, 1..8),
            damage in proptest::option::of((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>())),
            truncate in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
        ) {
            let frames: Vec<Frame> = frames
                .into_iter()
                .map(|(status, path, channel, data)| Frame::new(Status::from_byte(status).unwrap(), path, channel, data))
                .collect();
            let mut bytes = stream(&frames);
            if let (Some((at, byte)), false) = (damage, bytes.is_empty()) {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            if let (Some(at), false) = (truncate, bytes.is_empty()) {
                bytes.truncate(at.index(bytes.len()));
            }
            let limits = FrameLimits { max_path: 8, max_data: 1000 };
            let expected = decoded_at_once(&bytes, limits);
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = runtime.block_on(async {
                let mut reader = FrameReader::new(Chunked { data: bytes.clone(), cuts, at: 0 }, limits);
                let mut got = Vec::new();
                while let Some(item) = reader.next().await {
                    match item {
                        Ok(frame) => got.push(Ok(frame)),
                        Err(CodecError::Decode(err)) => {
                            got.push(Err(err.to_string()));
                            break;
                        }
                        Err(other) => panic!("{other}"),
                    }
                }
                got
            });
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
