//! The write half of a connection driven by the connection's own task:
//! answers are written in the same turn that produced them, with no hand-over
//! to another task and no wake-up of one. What the socket does not take at
//! once waits here and goes out as the socket drains, while the task goes on
//! reading.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::wire::codec::CodecError;
use crate::wire::encode::encode_frame;
use crate::wire::frame::{Frame, FrameLimits};

/// Bytes encoded ahead of the socket at most: frames past this stay frames
/// (sharing their bodies) until the socket takes what is encoded.
pub(crate) const ENCODE_AHEAD: usize = 1 << 20;

/// An encode buffer larger than this is given back once written.
pub(crate) const KEEP_BUFFER: usize = 4 << 20;

/// A connection's write side, polled by the task that owns it.
#[derive(Debug)]
pub struct InlineWriter<W> {
    io: W,
    limits: FrameLimits,
    /// Frames queued and not yet encoded.
    queue: VecDeque<Frame>,
    /// Encoded bytes; `out[written..]` are still to be written.
    out: BytesMut,
    written: usize,
    /// Frames in `out` not yet wholly written.
    frames_in_out: u64,
    /// Encoded size of everything queued or encoded and not yet written.
    pending_bytes: usize,
    /// The socket must take bytes within this long while some wait (`[RES-7]`).
    stall: Option<Duration>,
    /// Since when the socket has taken nothing while bytes wait.
    refused_since: Option<Instant>,
    /// TLS and other buffered writers hold bytes until flushed.
    needs_flush: bool,
}

impl<W: AsyncWrite + Unpin> InlineWriter<W> {
    /// A writer over `io` encoding within `limits`; with `stall` set, a
    /// socket that takes nothing for that long while bytes wait makes
    /// [`InlineWriter::stalled`] true.
    pub fn new(io: W, limits: FrameLimits, stall: Option<Duration>) -> InlineWriter<W> {
        InlineWriter {
            io,
            limits,
            queue: VecDeque::new(),
            out: BytesMut::new(),
            written: 0,
            frames_in_out: 0,
            pending_bytes: 0,
            stall,
            refused_since: None,
            needs_flush: false,
        }
    }

    /// Queues `frames` behind what waits; nothing is written until the next
    /// [`InlineWriter::poll_drain`]. Frames are encoded at once while the
    /// encoded bytes stay under 1 MiB and no frame waits
    /// unencoded; past that they wait as frames, sharing their bodies.
    pub fn queue(&mut self, frames: impl IntoIterator<Item = Frame>) {
        for frame in frames {
            self.pending_bytes += frame.encoded_len();
            let limits = self.limits;
            // A frame that does not encode waits in the queue, where
            // `poll_drain` reports its error in its turn.
            if let Some(out) = self.direct_buffer() {
                if encode_frame(&frame, &limits, out).is_ok() {
                    self.frames_in_out += 1;
                    continue;
                }
            }
            self.queue.push_back(frame);
        }
    }

    /// The buffer of encoded bytes, when frames may be encoded straight
    /// into it now: no frame waits unencoded (it would be overtaken) and
    /// less than 1 MiB waits encoded. Say what was appended with
    /// [`InlineWriter::appended`]; nothing is written until the next
    /// [`InlineWriter::poll_drain`].
    pub fn direct_buffer(&mut self) -> Option<&mut BytesMut> {
        if !self.queue.is_empty() || self.out.len() >= ENCODE_AHEAD {
            return None;
        }
        if self.written == self.out.len() {
            self.restart_buffer();
        }
        Some(&mut self.out)
    }

    /// Counts `frames` whole frames of `bytes` bytes appended to the
    /// buffer of [`InlineWriter::direct_buffer`].
    pub fn appended(&mut self, frames: u64, bytes: usize) {
        self.frames_in_out += frames;
        self.pending_bytes += bytes;
    }

    /// Encoded bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Frames queued and not yet wholly written.
    pub fn queued_frames(&self) -> u64 {
        self.queue.len() as u64 + self.frames_in_out
    }

    /// Whether anything waits to be written or flushed.
    pub fn has_pending(&self) -> bool {
        self.pending_bytes > 0 || self.needs_flush
    }

    /// When the socket will have refused bytes for the whole stall limit,
    /// if it is refusing them now.
    pub fn stall_deadline(&self) -> Option<Instant> {
        Some(self.refused_since? + self.stall?)
    }

    /// Whether the socket has refused bytes for the stall limit by `now`.
    pub fn stalled(&self, now: Instant) -> bool {
        self.stall_deadline().is_some_and(|at| now >= at)
    }

    /// Writes what the socket takes: `Ready(Ok)` once everything is written
    /// and flushed, `Pending` (with `cx` woken when the socket drains) while
    /// bytes wait, `Ready(Err)` on a write error.
    pub fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CodecError>> {
        loop {
            if self.written == self.out.len() {
                self.refill()?;
            }
            if self.written == self.out.len() {
                break;
            }
            match Pin::new(&mut self.io).poll_write(cx, &self.out[self.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(CodecError::Io(std::io::ErrorKind::WriteZero.into()))),
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.pending_bytes -= n;
                    self.needs_flush = true;
                    self.refused_since = None;
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err.into())),
                Poll::Pending => return self.refused(),
            }
        }
        if self.needs_flush {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err.into())),
                Poll::Pending => return self.refused(),
            }
        }
        self.refused_since = None;
        Poll::Ready(Ok(()))
    }

    fn refused(&mut self) -> Poll<Result<(), CodecError>> {
        if self.stall.is_some() {
            self.refused_since.get_or_insert_with(Instant::now);
        }
        Poll::Pending
    }

    /// Empties the encode buffer, all of it written, giving back a large
    /// allocation.
    fn restart_buffer(&mut self) {
        self.out.clear();
        self.written = 0;
        self.frames_in_out = 0;
        if self.out.capacity() > KEEP_BUFFER {
            self.out = BytesMut::new();
        }
    }

    /// Encodes queued frames into the (written) buffer, up to
    /// [`ENCODE_AHEAD`] bytes.
    fn refill(&mut self) -> Result<(), CodecError> {
        self.restart_buffer();
        while self.out.len() < ENCODE_AHEAD {
            let Some(frame) = self.queue.pop_front() else { break };
            encode_frame(&frame, &self.limits, &mut self.out)?;
            self.frames_in_out += 1;
        }
        Ok(())
    }

    /// Writes everything that waits, then shuts the write side down; with
    /// a stall limit, fails with `TimedOut` once the socket has taken
    /// nothing for that long.
    pub async fn finish(mut self) -> Result<(), CodecError> {
        loop {
            let deadline = self.stall_deadline();
            let drained = tokio::select! {
                // A first refusal comes back at once, to arm the stall timer.
                drained = poll_fn(|cx| match self.poll_drain(cx) {
                    Poll::Pending if deadline.is_none() && self.stall_deadline().is_some() => Poll::Ready(None),
                    polled => polled.map(Some),
                }) => drained,
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now).into()), if deadline.is_some() => {
                    if self.stalled(Instant::now()) {
                        return Err(write_timeout());
                    }
                    None
                }
            };
            match drained {
                Some(Ok(())) => break,
                Some(Err(err)) => return Err(err),
                None => {}
            }
        }
        match self.stall {
            Some(limit) => tokio::time::timeout(limit, self.io.shutdown()).await.map_err(|_| write_timeout())??,
            None => self.io.shutdown().await?,
        }
        Ok(())
    }
}

/// The error of a socket that took nothing within the write timeout.
pub fn write_timeout() -> CodecError {
    CodecError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "[RES-7] the peer read nothing within the write timeout",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode::FrameDecoder;
    use crate::wire::status::Status;
    use tokio::io::AsyncReadExt;

    fn frame(channel: u32, size: usize) -> Frame {
        Frame::new(Status::ResponseWhole, &b"/echo"[..], channel, vec![b'a'; size])
    }

    #[tokio::test]
    async fn writes_what_is_queued_in_order_and_finishes_with_the_write_side_shut() {
        let (near, mut far) = tokio::io::duplex(64 * 1024);
        let mut writer = InlineWriter::new(near, FrameLimits::default(), Some(Duration::from_secs(5)));
        let frames: Vec<Frame> = (0..50).map(|i| frame(i, 100 + i as usize)).collect();
        writer.queue(frames.clone());
        assert_eq!(writer.queued_frames(), 50);
        assert_eq!(writer.queued_bytes(), frames.iter().map(Frame::encoded_len).sum::<usize>());
        writer.finish().await.expect("finish");
        let mut bytes = Vec::new();
        far.read_to_end(&mut bytes).await.expect("read to the end");
        let mut buf = BytesMut::from(&bytes[..]);
        let mut decoder = FrameDecoder::new(FrameLimits::default());
        let got: Vec<Frame> = std::iter::from_fn(|| decoder.decode(&mut buf).expect("valid")).collect();
        assert_eq!(got, frames);
    }

    #[tokio::test]
    async fn a_peer_that_reads_nothing_stalls_the_writer() {
        let (near, _far) = tokio::io::duplex(1024);
        let stall = Duration::from_millis(50);
        let mut writer = InlineWriter::new(near, FrameLimits::default(), Some(stall));
        writer.queue([frame(1, 10_000)]);
        let polled = poll_fn(|cx| Poll::Ready(writer.poll_drain(cx))).await;
        assert!(polled.is_pending(), "the pipe holds 1 KiB, not 10");
        assert!(writer.has_pending() && writer.queued_bytes() < 10_000);
        let deadline = writer.stall_deadline().expect("refusing");
        assert!(!writer.stalled(deadline - Duration::from_millis(1)) && writer.stalled(deadline));
        let err = writer.finish().await.expect_err("nothing reads");
        assert!(matches!(err, CodecError::Io(ref e) if e.kind() == std::io::ErrorKind::TimedOut), "{err:?}");
    }
}
