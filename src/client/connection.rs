//! The tasks of one client connection: a reader that delivers the server's
//! frames into the [`Mux`], and a writer that sends what callers queued.

use std::sync::Arc as StdArc;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;

use bytes::BytesMut;

use crate::codec::FrameCodec;
use crate::encode::encode_frame;
use crate::frame::FrameLimits;
use crate::sync::Arc;

use super::mux::Mux;

/// The running tasks of a connection; dropping it closes the connection.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) mux: Arc<Mux>,
    pub(crate) wake_writer: StdArc<Notify>,
    reader: JoinHandle<()>,
}

impl Connection {
    pub(crate) fn start(stream: TcpStream, limits: FrameLimits) -> Connection {
        let _ = stream.set_nodelay(true);
        let (read_half, mut write_half) = stream.into_split();
        let mux = Mux::new(limits);
        let wake_writer = StdArc::new(Notify::new());
        let (reader_mux, reader_wake) = (mux.clone(), wake_writer.clone());
        let reader = tokio::spawn(async move {
            let mut frames = FramedRead::new(read_half, FrameCodec::new(limits));
            let reason = loop {
                match frames.next().await {
                    Some(Ok(frame)) => {
                        if let Err(err) = reader_mux.deliver(frame) {
                            break err.to_string();
                        }
                        if reader_mux.closed().is_some() {
                            break "server closed the connection".to_string();
                        }
                    }
                    Some(Err(err)) => break err.to_string(),
                    None => break "server closed the connection".to_string(),
                }
            };
            reader_mux.close(&reason);
            reader_wake.notify_one();
        });
        let (writer_mux, writer_wake) = (mux.clone(), wake_writer.clone());
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut buf = BytesMut::new();
            loop {
                writer_mux.take_outgoing(&mut batch);
                if batch.is_empty() {
                    if writer_mux.closed().is_some() {
                        break;
                    }
                    writer_wake.notified().await;
                    continue;
                }
                for frame in batch.drain(..) {
                    if let Err(err) = encode_frame(&frame, &limits, &mut buf) {
                        // The core checked the path; a frame that still does
                        // not encode means the connection cannot go on.
                        writer_mux.close(&err.to_string());
                        break;
                    }
                }
                if let Err(err) = write_half.write_all(&buf).await {
                    writer_mux.close(&format!("write failed: {err}"));
                    break;
                }
                buf.clear();
            }
            let _ = write_half.shutdown().await;
        });
        Connection { mux, wake_writer, reader }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.mux.close("client dropped");
        self.wake_writer.notify_one();
        self.reader.abort();
    }
}
