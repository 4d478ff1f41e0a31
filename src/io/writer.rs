//! The write half of a connection: a task that takes batches of frames,
//! encodes them into one buffer and writes them with as few system calls as
//! the batches allow (write batching).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::FutureExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::inline_writer::{ENCODE_AHEAD, KEEP_BUFFER};
use crate::wire::codec::CodecError;
use crate::wire::encode::encode_frame;
use crate::wire::frame::{Frame, FrameLimits};

/// How many batches may wait for the writer before senders wait
/// (backpressure from a slow reader reaches the producer).
pub const WRITE_QUEUE_BATCHES: usize = 64;

/// The sending side of a writer task.
#[derive(Debug, Clone)]
pub struct FrameSink {
    tx: mpsc::Sender<Vec<Frame>>,
    queued: Arc<Queued>,
}

/// What a writer has been given and not yet written.
#[derive(Debug, Default)]
struct Queued {
    frames: AtomicU64,
    bytes: AtomicUsize,
}

impl FrameSink {
    /// Queues a batch; fails when the writer has stopped.
    pub async fn send(&self, batch: Vec<Frame>) -> Result<(), CodecError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.queued.frames.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.queued.bytes.fetch_add(batch.iter().map(Frame::encoded_len).sum(), Ordering::Relaxed);
        self.tx.send(batch).await.map_err(|_| CodecError::Io(std::io::ErrorKind::BrokenPipe.into()))
    }

    /// Frames queued and not yet written.
    pub fn queued(&self) -> u64 {
        self.queued.frames.load(Ordering::Relaxed)
    }

    /// Encoded bytes of the frames queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.bytes.load(Ordering::Relaxed)
    }
}

/// A write buffer that encodes frames and writes them out in one call.
#[derive(Debug, Default)]
pub struct WriteBuffer {
    buf: BytesMut,
}

impl WriteBuffer {
    /// Encodes `frames` behind what is already buffered.
    pub fn encode(&mut self, frames: &[Frame], limits: &FrameLimits) -> Result<(), CodecError> {
        for frame in frames {
            encode_frame(frame, limits, &mut self.buf)?;
        }
        Ok(())
    }

    /// Bytes buffered.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Writes everything buffered to `io`, then empties the buffer; a buffer
    /// grown past 4 MiB by a large message is given back. With `stall` set,
    /// a write call that makes no progress for that long fails with
    /// `TimedOut` (`[RES-7]`: a peer that reads nothing cannot hold answers).
    pub async fn write_to<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        stall: Option<Duration>,
    ) -> Result<(), CodecError> {
        match stall {
            None => io.write_all(&self.buf).await?,
            Some(limit) => {
                let mut written = 0;
                while written < self.buf.len() {
                    // A write the socket takes at once needs no timer: most do.
                    let attempt = match io.write(&self.buf[written..]).now_or_never() {
                        Some(done) => Ok(done),
                        None => tokio::time::timeout(limit, io.write(&self.buf[written..])).await,
                    };
                    match attempt {
                        Ok(Ok(0)) => return Err(CodecError::Io(std::io::ErrorKind::WriteZero.into())),
                        Ok(Ok(n)) => written += n,
                        Ok(Err(err)) => return Err(err.into()),
                        Err(_) => return Err(super::inline_writer::write_timeout()),
                    }
                }
            }
        }
        self.buf.clear();
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = BytesMut::new();
        }
        Ok(())
    }
}

/// Starts a writer task over `io`. It ends, shutting the write side down,
/// when every [`FrameSink`] is dropped, or at the first write error; with
/// `stall` set, also when one write call makes no progress for that long.
pub fn spawn_writer<W>(
    mut io: W,
    limits: FrameLimits,
    stall: Option<Duration>,
) -> (FrameSink, JoinHandle<Result<(), CodecError>>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Vec<Frame>>(WRITE_QUEUE_BATCHES);
    let queued = Arc::new(Queued::default());
    let task_queued = queued.clone();
    let task = tokio::spawn(async move {
        let mut out = WriteBuffer::default();
        while let Some(batch) = rx.recv().await {
            let mut frames = 0u64;
            let mut pending = Some(batch);
            // Coalesce whatever else is already queued, up to ~1 MiB.
            while let Some(batch) = pending.take() {
                out.encode(&batch, &limits)?;
                frames += batch.len() as u64;
                if out.len() < ENCODE_AHEAD {
                    pending = rx.try_recv().ok();
                }
            }
            let bytes = out.len();
            out.write_to(&mut io, stall).await?;
            task_queued.frames.fetch_sub(frames, Ordering::Relaxed);
            task_queued.bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
        match stall {
            Some(limit) => {
                let _ = tokio::time::timeout(limit, async {
                    io.flush().await?;
                    io.shutdown().await
                })
                .await;
            }
            None => {
                io.flush().await?;
                io.shutdown().await?;
            }
        }
        Ok(())
    });
    (FrameSink { tx, queued }, task)
}
