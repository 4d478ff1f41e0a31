//! The write half of a connection: a task that takes batches of frames,
//! encodes them into one buffer and writes them with as few system calls as
//! the batches allow (write batching).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::codec::CodecError;
use crate::encode::encode_frame;
use crate::frame::{Frame, FrameLimits};

/// How many batches may wait for the writer before senders wait
/// (backpressure from a slow reader reaches the producer).
pub const WRITE_QUEUE_BATCHES: usize = 64;

/// Frame and byte counters shared with whoever reports statistics.
#[derive(Debug, Default)]
pub struct WriteCounters {
    /// Frames written.
    pub frames: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// Frames queued and not yet written.
    pub queued: AtomicU64,
}

/// The sending side of a writer task.
#[derive(Debug, Clone)]
pub struct FrameSink {
    tx: mpsc::Sender<Vec<Frame>>,
    counters: Arc<WriteCounters>,
}

impl FrameSink {
    /// Queues a batch; fails when the writer has stopped.
    pub async fn send(&self, batch: Vec<Frame>) -> Result<(), CodecError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.counters.queued.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.tx.send(batch).await.map_err(|_| CodecError::Io(std::io::ErrorKind::BrokenPipe.into()))
    }

    /// The writer's counters.
    pub fn counters(&self) -> &Arc<WriteCounters> {
        &self.counters
    }
}

/// Starts a writer task over `io`. It ends, shutting the write side down,
/// when every [`FrameSink`] is dropped, or at the first write error.
pub fn spawn_writer<W>(mut io: W, limits: FrameLimits) -> (FrameSink, JoinHandle<Result<(), CodecError>>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Vec<Frame>>(WRITE_QUEUE_BATCHES);
    let counters = Arc::new(WriteCounters::default());
    let task_counters = counters.clone();
    let task = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        while let Some(batch) = rx.recv().await {
            let mut frames = 0u64;
            let mut pending = Some(batch);
            // Coalesce whatever else is already queued, up to ~1 MiB.
            while let Some(batch) = pending.take() {
                for frame in &batch {
                    encode_frame(frame, &limits, &mut buf)?;
                }
                frames += batch.len() as u64;
                if buf.len() < 1 << 20 {
                    pending = rx.try_recv().ok();
                }
            }
            io.write_all(&buf).await?;
            task_counters.frames.fetch_add(frames, Ordering::Relaxed);
            task_counters.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
            task_counters.queued.fetch_sub(frames, Ordering::Relaxed);
            buf.clear();
            if buf.capacity() > 4 << 20 {
                buf = BytesMut::new();
            }
        }
        io.flush().await?;
        io.shutdown().await?;
        Ok(())
    });
    (FrameSink { tx, counters }, task)
}
