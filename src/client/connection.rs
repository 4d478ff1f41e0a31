//! The tasks of one client connection: a reader that delivers the server's
//! frames into the [`Mux`], and a writer that sends what callers queued.

use std::sync::Arc as StdArc;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;
use tracing::Instrument;

use crate::io::writer::WriteBuffer;
use crate::sync::Arc;
use crate::wire::codec::FrameCodec;
use crate::wire::frame::FrameLimits;

use super::mux::Mux;

/// What a connection's hello agreed (`agreed: None`: plain IIP/1), with the
/// body codec and the metadata limit read from it once, for sealing bodies
/// outside the lock.
#[derive(Debug)]
pub(crate) struct Negotiated {
    pub(crate) agreed: Option<crate::proto::extensions::Agreed>,
    pub(crate) body_codec: Option<crate::proto::extensions::BodyCodec>,
    /// The largest metadata block the server takes, when `metadata` is in force.
    pub(crate) metadata_max: Option<usize>,
}

/// The running tasks of a connection; dropping it closes the connection.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) mux: Arc<Mux>,
    pub(crate) wake_writer: StdArc<Notify>,
    /// Becomes true when the reader or the writer stops: the connection is over.
    pub(crate) ended: tokio::sync::watch::Receiver<bool>,
    /// Becomes true when the server says it is going away (`[EXT-16]`).
    pub(crate) retiring: tokio::sync::watch::Receiver<bool>,
    /// What the hello agreed, once it is answered.
    pub(crate) negotiated: std::sync::OnceLock<Negotiated>,
    reader: JoinHandle<()>,
}

impl Connection {
    pub(crate) fn start(stream: TcpStream, limits: FrameLimits) -> Connection {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().map_or_else(|_| "tcp".to_string(), |addr| addr.to_string());
        let (read_half, write_half) = stream.into_split();
        Connection::start_halves(read_half, write_half, limits, &peer)
    }

    /// Runs a connection over any byte stream.
    pub(crate) fn start_stream<S>(stream: S, limits: FrameLimits) -> Connection
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read_half, write_half) = tokio::io::split(stream);
        Connection::start_halves(read_half, write_half, limits, "stream")
    }

    /// The reader runs in a `connection` span (debug level) naming `peer`,
    /// and says why the connection ended when it does.
    fn start_halves<R, W>(read_half: R, mut write_half: W, limits: FrameLimits, peer: &str) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let mux = Mux::new(limits);
        let wake_writer = StdArc::new(Notify::new());
        let (ended_tx, ended) = tokio::sync::watch::channel(false);
        let ended_tx = StdArc::new(ended_tx);
        let (retiring_tx, retiring) = tokio::sync::watch::channel(false);
        let (reader_mux, reader_wake, reader_ended) = (mux.clone(), wake_writer.clone(), ended_tx.clone());
        let reader = tokio::spawn(
            async move {
                let mut frames = FramedRead::new(read_half, FrameCodec::new(limits));
                let reason = loop {
                    match frames.next().await {
                        Some(Ok(frame)) => {
                            if let Err(err) = reader_mux.deliver(frame) {
                                break err.to_string();
                            }
                            if reader_mux.going_away() {
                                retiring_tx.send_if_modified(|r| !std::mem::replace(r, true));
                            }
                            if reader_mux.closed().is_some() {
                                break "server closed the connection".to_string();
                            }
                        }
                        Some(Err(err)) => {
                            if let Some(rule) = broken_rule(&err) {
                                reader_mux.framing_error(&rule);
                            }
                            break describe_read_error(&err);
                        }
                        None => break "server closed the connection".to_string(),
                    }
                };
                tracing::debug!(%reason, "connection ended");
                reader_mux.close(&reason);
                reader_wake.notify_one();
                reader_ended.send_replace(true);
            }
            .instrument(tracing::debug_span!("connection", %peer)),
        );
        let (writer_mux, writer_wake) = (mux.clone(), wake_writer.clone());
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut out = WriteBuffer::default();
            loop {
                writer_mux.take_outgoing(&mut batch);
                if batch.is_empty() {
                    if writer_mux.closed().is_some() {
                        break;
                    }
                    writer_wake.notified().await;
                    continue;
                }
                // The core checked every frame; one that still does not encode,
                // or a failed write, means the connection cannot go on.
                let written = match out.encode(&batch, &limits) {
                    Ok(()) => out.write_to(&mut write_half, None).await,
                    Err(err) => Err(err),
                };
                batch.clear();
                if let Err(err) = written {
                    writer_mux.close(&format!("write failed: {err}"));
                    break;
                }
            }
            ended_tx.send_replace(true);
            let _ = write_half.shutdown().await;
        });
        Connection { mux, wake_writer, ended, retiring, negotiated: std::sync::OnceLock::new(), reader }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.mux.close("client dropped");
        self.wake_writer.notify_one();
        self.reader.abort();
    }
}

/// The close reason of a read error that is a rule the server broke,
/// naming the requirement (`[CLOSE-4]`); `None` for a failed transport,
/// which no close frame could reach.
fn broken_rule(err: &crate::wire::codec::CodecError) -> Option<String> {
    use crate::wire::codec::CodecError;
    match err {
        CodecError::Decode(e) => {
            let text = e.to_string();
            Some(if text.starts_with('[') { text } else { format!("[{}] {text}", e.kind.requirement()) })
        }
        CodecError::Forbidden { .. } => Some(err.to_string()),
        CodecError::Encode(_) | CodecError::Io(_) => None,
    }
}

/// A read error as the caller should see it: a stream whose very first
/// byte is a TLS record type (alert 21, handshake 22) is a TLS server
/// talked to in plain IIP, and the message says so.
fn describe_read_error(err: &crate::wire::codec::CodecError) -> String {
    use crate::wire::codec::CodecError;
    use crate::wire::frame_error::FrameErrorKind;
    match err {
        CodecError::Decode(e) if e.offset == 0 && matches!(e.kind, FrameErrorKind::UnknownStatus(21 | 22)) => {
            format!("{e}: the server answered with a TLS record; it expects TLS (connect with TLS)")
        }
        other => other.to_string(),
    }
}
