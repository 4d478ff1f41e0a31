//! Comparison servers for benchmarks (`iip-dev floor`, `benches/echo.rs`):
//! what an echo costs with nearly no protocol work, so that a figure of
//! `iip serve` can be read as a fraction of the floor measured in the same
//! run.
//!
//! - [`serve_unchecked_iip`]: an IIP echo that reads once, walks every whole
//!   frame in the buffer with no checks at all, and writes every answer in
//!   one write. No channel state, no ordering, no limits, no statistics.
//!   It is only as correct as a well-behaved client makes it, and must never
//!   face real traffic.
//! - [`checked::serve_checked_iip`]: the crate's own sans-IO server core
//!   behind the thinnest shell that drives it (one read, every frame
//!   through the core, handlers that never wait, one write): what the
//!   spec's per-request obligations cost in this crate, without the tokio
//!   server's budgets, timers, extensions and waiting handlers.
//! - [`serve_h2_echo`]: hyper's HTTP/2 server answering every request with
//!   its body, what a tonic user runs underneath; [`serve_http1_echo`] the
//!   same over HTTP/1.1. The gateway's figures are read against these.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use iip::proto::message::encode_body_into;
use iip::wire::answer::{channel_granted_body, ErrorAnswer, ErrorCode};
use iip::wire::status::MessageKind;

pub mod checked;

/// Bytes asked of the kernel per read by the unchecked echo.
const READ_SIZE: usize = 64 * 1024;

/// Serves the unchecked IIP echo on `listener` until it fails: every
/// connection on a task of its own.
///
/// Each request frame (statuses 0–3) is answered by the same frame with its
/// status turned into the response's (status + 4), path, channel and data
/// unchanged. `/sys/new_channel` is granted the next id of the connection
/// (no limit), any other `/sys/` path is answered 102, and frames of any
/// other status are dropped.
pub async fn serve_unchecked_iip(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = unchecked_connection(stream).await;
        });
    }
}

async fn unchecked_connection(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut input = BytesMut::with_capacity(READ_SIZE);
    let mut output = BytesMut::with_capacity(READ_SIZE);
    let mut next_channel = 1u32;
    loop {
        input.reserve(READ_SIZE);
        if stream.read_buf(&mut input).await? == 0 {
            return Ok(());
        }
        let used = answer_whole_frames(&input, &mut output, &mut next_channel);
        input.advance(used);
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
        }
    }
}

/// Appends the answer of every whole frame at the front of `input` to
/// `output`; returns the bytes those frames took.
fn answer_whole_frames(input: &[u8], output: &mut BytesMut, next_channel: &mut u32) -> usize {
    let mut at = 0;
    while let Some(frame) = input.get(at..).and_then(whole_frame) {
        let bytes = &input[at..at + frame.len];
        match bytes[0] {
            0..=3 if frame.path.starts_with(b"/sys/") => {
                let body = if frame.path == b"/sys/new_channel" {
                    *next_channel += 1;
                    channel_granted_body(*next_channel - 1)
                } else {
                    ErrorAnswer::named(ErrorCode::HandleError).to_body()
                };
                encode_body_into(MessageKind::Response, frame.path, frame.channel, &body, u32::MAX, output);
            }
            status @ 0..=3 => {
                output.put_u8(status + 4);
                output.extend_from_slice(&bytes[1..]);
            }
            _ => {}
        }
        at += frame.len;
    }
    at
}

/// The parts of a whole frame at the front of a buffer.
struct WholeFrame<'a> {
    path: &'a [u8],
    channel: u32,
    len: usize,
}

fn whole_frame(buf: &[u8]) -> Option<WholeFrame<'_>> {
    let nul = memchr::memchr(0, buf.get(1..)?)?;
    let header = 1 + nul + 1;
    let field = |at: usize| -> Option<u32> { Some(u32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?)) };
    let channel = field(header)?;
    let len = header + 8 + field(header + 4)? as usize;
    (buf.len() >= len).then(|| WholeFrame { path: &buf[1..1 + nul], channel, len })
}

/// Serves hyper's HTTP/2 (prior knowledge, cleartext) on `listener` until it
/// fails: every request is answered 200 with its whole body.
pub async fn serve_h2_echo(listener: TcpListener) -> io::Result<()> {
    serve_http_echo(listener, HttpVersion::H2).await
}

/// Serves hyper's HTTP/1.1 on `listener` until it fails: every request is
/// answered 200 with its whole body, connections kept alive.
pub async fn serve_http1_echo(listener: TcpListener) -> io::Result<()> {
    serve_http_echo(listener, HttpVersion::H1).await
}

/// Which of hyper's servers an HTTP echo runs.
#[derive(Clone, Copy)]
enum HttpVersion {
    H1,
    H2,
}

async fn serve_http_echo(listener: TcpListener, version: HttpVersion) -> io::Result<()> {
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let service = service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
                let body: Bytes = request.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(body)))
            });
            let io = TokioIo::new(stream);
            let _ = match version {
                HttpVersion::H2 => {
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, service).await
                }
                HttpVersion::H1 => hyper::server::conn::http1::Builder::new().serve_connection(io, service).await,
            };
        });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use iip::wire::decode::FrameDecoder;
    use iip::wire::encode::encode_frame;
    use iip::{Frame, FrameLimits, Status};

    /// `list` encoded one after the other.
    pub(crate) fn frames(list: &[Frame]) -> BytesMut {
        let mut out = BytesMut::new();
        for frame in list {
            encode_frame(frame, &FrameLimits::default(), &mut out).expect("valid");
        }
        out
    }

    /// Every frame in `output`, decoded; `output` must hold whole frames only.
    pub(crate) fn answers(output: &mut BytesMut) -> Vec<Frame> {
        let mut decoder = FrameDecoder::new(FrameLimits::default());
        let answers: Vec<Frame> = std::iter::from_fn(|| decoder.decode(output).expect("valid")).collect();
        assert!(output.is_empty(), "only whole frames");
        answers
    }

    /// A whole request (status 1).
    pub(crate) fn request(path: &'static str, channel: u32, body: &[u8]) -> Frame {
        Frame::new(Status::RequestWhole, Bytes::from_static(path.as_bytes()), channel, body.to_vec())
    }

    #[test]
    fn answers_whole_frames_and_leaves_a_partial_one() {
        let mut input = frames(&[
            request("/sys/new_channel", 0, b"{}"),
            request("/echo", 1, b"abc"),
            request("/sys/hello", 0, b"{}"),
        ]);
        let whole = input.len();
        input.extend_from_slice(&[1, b'/', b'e', 0, 0, 0]);
        let (mut output, mut next) = (BytesMut::new(), 1);
        assert_eq!(answer_whole_frames(&input, &mut output, &mut next), whole);
        let answers = answers(&mut output);
        assert_eq!(answers.len(), 3);
        assert_eq!(answers[0].data, channel_granted_body(1));
        assert_eq!(
            (answers[1].status, answers[1].channel, &answers[1].data[..]),
            (Status::ResponseWhole, 1, &b"abc"[..])
        );
        assert_eq!(ErrorAnswer::parse(&answers[2].data).map(|a| a.code), Some(ErrorCode::HandleError.value()));
    }
}
