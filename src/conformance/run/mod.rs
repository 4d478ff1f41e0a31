//! Runs session cases against a server over TCP and says, for a failure,
//! which step broke, what was expected and what arrived: the session
//! driver here, what a step expects in the `expect` module, how a failure
//! reads in the `failure` module.

mod expect;
mod failure;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::io::{ReadHalf, WriteHalf};
use tokio_util::codec::FramedRead;

use crate::client::{BoxStream, Endpoint};
use crate::wire::codec::{CodecError, FrameCodec};
use crate::wire::frame::Frame;

pub use super::profile::{Profile, EXTENSION_ITEMS, KNOWN_PEERS, PROFILE_ITEMS};
use super::session::{Case, CloseExpect, ExpectFrame, ExpectMessage, Step};
use crate::wire::status::{Position, Status};
use expect::blob;
pub use failure::{show_bytes, show_frame, Failure, TRANSCRIPT_BYTES, TRANSCRIPT_FRAMES};

/// How long the suite waits: for each read, write or connection, and in
/// all (the run's deadline, past which nothing waits). A [`Duration`] is a
/// per-step limit alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    /// How long one step may wait for the server.
    pub step: Duration,
    /// When every wait ends, whatever is left of its step's limit.
    pub deadline: Option<Instant>,
}

impl From<Duration> for Waits {
    fn from(step: Duration) -> Waits {
        Waits { step, deadline: None }
    }
}

impl Waits {
    /// How long the next wait may last.
    pub fn next(&self) -> Duration {
        match self.deadline {
            Some(at) => self.step.min(at.saturating_duration_since(Instant::now())),
            None => self.step,
        }
    }

    /// Whether the run's deadline has passed.
    pub fn expired(&self) -> bool {
        self.deadline.is_some_and(|at| Instant::now() >= at)
    }

    /// What a wait that ran out of time was: the step's limit, or the
    /// run's deadline.
    fn ran_out(&self) -> String {
        match self.expired() {
            true => "the run's deadline".to_string(),
            false => format!("{:?}", self.step),
        }
    }
}

struct Session {
    reader: FramedRead<ReadHalf<BoxStream>, FrameCodec>,
    writer: WriteHalf<BoxStream>,
    waits: Waits,
    /// The tail of what was sent, for a failure's transcript.
    sent: Vec<u8>,
    /// Whether bytes before `sent` were dropped from it.
    sent_cut: bool,
    /// The last frames received, for a failure's transcript.
    received: std::collections::VecDeque<Frame>,
    /// JSON answers kept by `capture`, by name.
    captured: std::collections::HashMap<String, serde_json::Value>,
}

enum Read {
    Frame(Frame),
    Closed(String),
    TimedOut,
}

impl Session {
    async fn read(&mut self, timeout: Duration) -> Read {
        match tokio::time::timeout(timeout, self.reader.next()).await {
            Err(_) => Read::TimedOut,
            Ok(Some(Ok(frame))) => {
                if self.received.len() == TRANSCRIPT_FRAMES {
                    self.received.pop_front();
                }
                self.received.push_back(frame.clone());
                Read::Frame(frame)
            }
            Ok(Some(Err(CodecError::Decode(e)))) => Read::Closed(format!("undecodable bytes from the server: {e}")),
            Ok(Some(Err(e))) => Read::Closed(format!("connection closed ({e})")),
            Ok(None) => Read::Closed("connection closed".into()),
        }
    }

    async fn next_frame(&mut self) -> Result<Frame, String> {
        match self.read(self.waits.next()).await {
            Read::Frame(frame) => Ok(frame),
            Read::Closed(why) => Err(why),
            Read::TimedOut => Err(format!("nothing within {}", self.waits.ran_out())),
        }
    }

    async fn write(&mut self, bytes: &[u8], split: Option<usize>) -> Result<(), String> {
        self.sent.extend_from_slice(&bytes[bytes.len().saturating_sub(TRANSCRIPT_BYTES)..]);
        let excess = self.sent.len().saturating_sub(TRANSCRIPT_BYTES);
        self.sent_cut |= excess > 0 || bytes.len() > TRANSCRIPT_BYTES;
        self.sent.drain(..excess);
        let piece = split.unwrap_or(bytes.len()).max(1);
        for chunk in bytes.chunks(piece) {
            let write = async {
                self.writer.write_all(chunk).await?;
                self.writer.flush().await
            };
            match tokio::time::timeout(self.waits.next(), write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("write failed: {e}")),
                Err(_) => return Err(format!("the server took no bytes within {}", self.waits.ran_out())),
            }
            if split.is_some() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        Ok(())
    }

    async fn step(&mut self, step: &Step) -> Result<(), (String, String)> {
        let fail = |expected: String, actual: String| Err((expected, actual));
        if let Some(ms) = step.sleep_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(spec) = &step.send {
            let mut bytes = BytesMut::new();
            for _ in 0..step.repeat.unwrap_or(1) {
                spec.write_raw(&mut bytes).map_err(|e| ("a valid case".to_string(), e.to_string()))?;
            }
            // A write may fail when the server already closed: the next
            // expectation decides whether that is right.
            let _ = self.write(&bytes, step.split).await;
        }
        if let Some(raw) = &step.send_raw {
            let _ = self.write(&blob(raw), step.split).await;
        }
        if step.end_stream == Some(true) {
            let _ = tokio::time::timeout(self.waits.next(), self.writer.shutdown()).await;
        }
        if let Some(expect) = &step.expect {
            let waits = self.waits;
            if let Some(ms) = step.within_ms {
                self.waits.step = self.waits.step.min(Duration::from_millis(ms));
            }
            let expected = self.expect_frames(expect, step.repeat).await;
            self.waits = waits;
            return expected;
        }
        if let Some(set) = &step.expect_unordered {
            let mut open: Vec<&ExpectFrame> = set.iter().collect();
            let describe = |open: &[&ExpectFrame]| open.iter().map(|e| e.describe()).collect::<Vec<_>>().join("; ");
            while !open.is_empty() {
                match self.next_frame().await {
                    Ok(frame) => match open.iter().position(|e| e.matches_with(&frame, &self.captured)) {
                        Some(i) => {
                            open.remove(i);
                        }
                        None => return fail(format!("in any order: {}", describe(&open)), show_frame(&frame)),
                    },
                    Err(why) => return fail(format!("in any order: {}", describe(&open)), why),
                }
            }
        }
        if let Some(message) = &step.expect_message {
            return self.expect_message(message).await;
        }
        if let Some(how) = step.expect_close {
            return self.expect_close(how).await;
        }
        if let Some(ms) = step.expect_silence_ms {
            return match self.read(Duration::from_millis(ms)).await {
                Read::TimedOut => Ok(()),
                Read::Frame(frame) => fail(format!("no frame for {ms} ms"), show_frame(&frame)),
                Read::Closed(why) => fail(format!("no frame for {ms} ms, connection open"), why),
            };
        }
        Ok(())
    }

    /// The next frame matches `expect`, `repeat` times (once by default).
    async fn expect_frames(&mut self, expect: &ExpectFrame, repeat: Option<usize>) -> Result<(), (String, String)> {
        let fail = |expected: String, actual: String| Err((expected, actual));
        for i in 0..repeat.unwrap_or(1) {
            let nth =
                if repeat.is_some() { format!(" (copy {} of {})", i + 1, repeat.unwrap_or(1)) } else { String::new() };
            match self.next_frame().await {
                Ok(frame) if expect.matches_with(&frame, &self.captured) => {
                    if let Some(name) = &expect.capture {
                        if let Ok(value) = serde_json::from_slice(&frame.data) {
                            self.captured.insert(name.clone(), value);
                        }
                    }
                }
                Ok(frame) => return fail(format!("{}{nth}", expect.describe()), show_frame(&frame)),
                Err(why) => return fail(format!("{}{nth}", expect.describe()), why),
            }
        }
        Ok(())
    }

    async fn expect_message(&mut self, message: &ExpectMessage) -> Result<(), (String, String)> {
        let want = blob(&message.body);
        let expected = format!(
            "a response on channel {} with a body of {} bytes {}",
            message.channel,
            want.len(),
            show_bytes(&want[..want.len().min(16)])
        );
        let mut body = BytesMut::new();
        let mut frames = 0usize;
        loop {
            let frame = self.next_frame().await.map_err(|why| (expected.clone(), why))?;
            let position = frame.status.position();
            let in_order = match (frames, position) {
                (0, Some(Position::Whole | Position::FirstMore)) => true,
                (n, Some(Position::ContinueMore | Position::Last)) => n > 0,
                _ => false,
            };
            let path_ok = message.path.as_ref().is_none_or(|p| blob(p) == frame.path);
            if frame.channel != message.channel
                || !in_order
                || frame.status.message_kind() != Some(crate::wire::status::MessageKind::Response)
                || !path_ok
            {
                return Err((expected, format!("after {frames} frame(s) of it: {}", show_frame(&frame))));
            }
            frames += 1;
            body.extend_from_slice(&frame.data);
            if frame.status.position().is_some_and(|p| p.completes_message()) {
                break;
            }
        }
        if body[..] != want[..] {
            let at = body.iter().zip(want.iter()).position(|(a, b)| a != b).unwrap_or(body.len().min(want.len()));
            return Err((expected, format!("a body of {} bytes, first difference at byte {at}", body.len())));
        }
        if let Some(min) = message.min_frames {
            if frames < min {
                return Err((format!("{expected} in at least {min} frames"), format!("{frames} frame(s)")));
            }
        }
        Ok(())
    }

    async fn expect_close(&mut self, how: CloseExpect) -> Result<(), (String, String)> {
        let expected = match how {
            CloseExpect::Any => "the connection to close (a close frame first is allowed)".to_string(),
            CloseExpect::WithFrame => "a close frame (status 8), then the connection to close".to_string(),
            CloseExpect::AfterAnyFrames => "the connection to close (after any frames)".to_string(),
            CloseExpect::Clean => {
                "the connection to close as on an orderly close (a close frame first may not cite a requirement)"
                    .to_string()
            }
            CloseExpect::CleanWithFrame => {
                "a close frame that cites no requirement, then the connection to close".to_string()
            }
        };
        let mut saw_close_frame = false;
        loop {
            match self.read(self.waits.next()).await {
                Read::Frame(frame) if frame.status == Status::Close => {
                    let clean = matches!(how, CloseExpect::Clean | CloseExpect::CleanWithFrame);
                    if clean && cites_a_requirement(&frame.data) {
                        return Err((expected, format!("a protocol-error close: {}", show_frame(&frame))));
                    }
                    saw_close_frame = true
                }
                Read::Frame(_) if how == CloseExpect::AfterAnyFrames => {}
                Read::Frame(frame) => return Err((expected, show_frame(&frame))),
                Read::TimedOut => {
                    return Err((expected, format!("connection still open after {}", self.waits.ran_out())))
                }
                Read::Closed(_)
                    if matches!(how, CloseExpect::WithFrame | CloseExpect::CleanWithFrame) && !saw_close_frame =>
                {
                    return Err((expected, "closed without a close frame".into()))
                }
                Read::Closed(_) => return Ok(()),
            }
        }
    }
}

fn session(stream: BoxStream, waits: Waits) -> Session {
    let (read, writer) = tokio::io::split(stream);
    Session {
        reader: FramedRead::new(read, FrameCodec::default()),
        writer,
        waits,
        sent: Vec::new(),
        sent_cut: false,
        received: Default::default(),
        captured: Default::default(),
    }
}

impl Session {
    /// A failure at `step` with this session's transcript.
    fn failure(&self, step: usize, expected: String, actual: String) -> Failure {
        Failure {
            step,
            expected,
            actual,
            sent: self.sent.clone(),
            sent_cut: self.sent_cut,
            received: self.received.iter().cloned().collect(),
        }
    }
}

/// Runs `case` against the server at `target` (TCP or a Unix socket,
/// plain or inside TLS); `waits` bounds each wait and all of them. Steps
/// run on connection `a` unless they name another (`on = "b"`), which is
/// opened when first named.
pub async fn run_case(target: &Endpoint, case: &Case, waits: impl Into<Waits>) -> Result<(), Failure> {
    let waits = waits.into();
    let mut sessions: Vec<(&str, Session)> = Vec::new();
    for (i, step) in case.steps.iter().enumerate() {
        let name = step.on.as_deref().unwrap_or("a");
        if step.expect_refused == Some(true) {
            if let Some(ms) = step.sleep_ms {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            expect_refused(target, waits).await.map_err(|actual| {
                Failure::new(i + 1, format!("connection {name} to {} refused or closed unserved", target.addr), actual)
            })?;
            continue;
        }
        let index = match sessions.iter().position(|(n, _)| *n == name) {
            Some(index) => index,
            None => {
                let expected = || format!("connection {name} to {}", target.addr);
                // A server that shut down for the case before may still be
                // starting again: its first connection waits for it.
                let stream = match connect(target, waits, sessions.is_empty() && case.requires.shutdown).await {
                    Ok(stream) => stream,
                    Err(why) => return Err(Failure::new(i + 1, expected(), why)),
                };
                sessions.push((name, session(stream, waits)));
                sessions.len() - 1
            }
        };
        let session = &mut sessions[index].1;
        if let Err((expected, actual)) = session.step(step).await {
            return Err(session.failure(i + 1, format!("on connection {name}: {expected}"), actual));
        }
    }
    Ok(())
}

/// Connects to `target` within the step's wait; `retry`: a connection
/// that fails is tried again every 50 ms until then.
async fn connect(target: &Endpoint, waits: Waits, retry: bool) -> Result<BoxStream, String> {
    let attempts = async {
        loop {
            match target.connect_stream().await {
                Err(_) if retry => tokio::time::sleep(Duration::from_millis(50)).await,
                done => return done,
            }
        }
    };
    match tokio::time::timeout(waits.next(), attempts).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("none within {}", waits.ran_out())),
    }
}

/// `Ok` when the server does not serve a new connection: the connection
/// (or its TLS handshake) fails, or it ends before any frame arrives.
async fn expect_refused(target: &Endpoint, waits: Waits) -> Result<(), String> {
    let stream = match tokio::time::timeout(waits.next(), target.connect_stream()).await {
        Ok(Err(_)) => return Ok(()),
        Ok(Ok(stream)) => stream,
        Err(_) => return Err(format!("a connection neither made nor refused within {}", waits.ran_out())),
    };
    let mut session = session(stream, waits);
    match session.read(waits.next()).await {
        Read::Closed(_) => Ok(()),
        Read::Frame(frame) => Err(format!("served: {}", show_frame(&frame))),
        Read::TimedOut => Err(format!("accepted and held open for {}", waits.ran_out())),
    }
}

/// Plays `steps` over one connected stream: the scripted server of the
/// client cases uses it (the steps seen from the server's side).
pub async fn run_steps(stream: BoxStream, steps: &[Step], waits: impl Into<Waits>) -> Result<(), Failure> {
    let mut session = session(stream, waits.into());
    for (i, step) in steps.iter().enumerate() {
        if step.on.is_some() {
            return Err(Failure::new(i + 1, "a step on the one connection", "a step naming a connection"));
        }
        if let Err((expected, actual)) = session.step(step).await {
            return Err(session.failure(i + 1, expected, actual));
        }
    }
    Ok(())
}

/// Whether `text` cites a requirement id such as `[CHAN-6]`.
fn cites_a_requirement(text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    text.split('[').skip(1).any(|rest| {
        let Some((id, _)) = rest.split_once(']') else { return false };
        let Some((prefix, number)) = id.split_once('-') else { return false };
        !prefix.is_empty()
            && prefix.chars().all(|c| c.is_ascii_uppercase())
            && !number.is_empty()
            && number.chars().all(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_frame(data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![1];
        bytes.extend_from_slice(b"/echo\0");
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn a_whole_window_is_decoded() {
        let failure = Failure { sent: echo_frame(b"hi"), ..Failure::new(1, "x", "y") };
        let text = failure.transcript();
        assert!(text.contains("path \"/echo\" channel 0 data \"hi\""), "{text}");
        assert!(!text.contains("not decoded"), "{text}");
    }

    #[test]
    fn a_cut_window_is_shown_but_not_decoded() {
        let frame = echo_frame(b"hi");
        let failure = Failure { sent: frame[3..].to_vec(), sent_cut: true, ..Failure::new(1, "x", "y") };
        let text = failure.transcript();
        assert!(text.contains("not decoded"), "{text}");
        assert!(!text.contains("framing error"), "{text}");
    }
}
