//! How a failed case reads: the step, what it expected, what arrived, and
//! the bytes around it decoded where they can be.

use std::fmt;

use bytes::BytesMut;

use crate::wire::frame::Frame;

/// Where and how a case failed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failure {
    /// 1-based step number.
    pub step: usize,
    /// What the step expected.
    pub expected: String,
    /// What happened instead.
    pub actual: String,
    /// The last bytes the suite sent on the failing connection (at most
    /// [`TRANSCRIPT_BYTES`]).
    pub sent: Vec<u8>,
    /// Whether earlier bytes were sent before `sent`: the window may then
    /// start inside a frame, and the transcript does not decode it.
    pub sent_cut: bool,
    /// The last frames it received there (at most [`TRANSCRIPT_FRAMES`]).
    pub received: Vec<Frame>,
}

/// How many of the last bytes sent a failure keeps.
pub const TRANSCRIPT_BYTES: usize = 512;
/// How many of the last frames received a failure keeps.
pub const TRANSCRIPT_FRAMES: usize = 8;

impl Failure {
    /// A failure at `step` with no transcript.
    pub fn new(step: usize, expected: impl Into<String>, actual: impl Into<String>) -> Failure {
        Failure { step, expected: expected.into(), actual: actual.into(), ..Failure::default() }
    }

    /// The bytes sent and the frames received, in hex and decoded.
    pub fn transcript(&self) -> String {
        let mut out = String::new();
        if !self.sent.is_empty() {
            out.push_str(&format!("last {} byte(s) sent:\n{}", self.sent.len(), hex_lines(&self.sent)));
            if self.sent_cut {
                out.push_str(
                    "  = (earlier bytes not shown: the window may start inside a frame, so it is not decoded)\n",
                );
                return self.transcript_received(out);
            }
            let decoded = crate::conformance::vector::decode_stream(
                &self.sent,
                self.sent.len(),
                crate::wire::frame::FrameLimits::default(),
            );
            for frame in &decoded.frames {
                out.push_str(&format!("  = {}\n", show_frame(frame)));
            }
            if let Some((kind, offset)) = decoded.error {
                out.push_str(&format!("  = then a framing error ({kind}) at byte {offset}\n"));
            }
        }
        self.transcript_received(out)
    }

    /// `out` followed by the frames received, in hex and decoded.
    fn transcript_received(&self, mut out: String) -> String {
        for frame in &self.received {
            let mut bytes = BytesMut::new();
            let _ = crate::wire::encode::encode_frame(frame, &crate::wire::frame::FrameLimits::default(), &mut bytes);
            out.push_str(&format!(
                "received:\n{}  = {}\n",
                hex_lines(&bytes[..bytes.len().min(64)]),
                show_frame(frame)
            ));
        }
        out
    }
}

/// `bytes` as hex, 16 a line, indented.
fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| format!("  {}\n", line.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")))
        .collect()
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}:\n  expected: {}\n  actual:   {}", self.step, self.expected, self.actual)
    }
}

/// A short human form of a byte string.
pub fn show_bytes(bytes: &[u8]) -> String {
    const MAX: usize = 80;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    let more = if bytes.len() > MAX { format!("… ({} bytes)", bytes.len()) } else { String::new() };
    format!("{text:?}{more}")
}

/// A short human form of a frame.
pub fn show_frame(frame: &Frame) -> String {
    format!(
        "frame status {} path {} channel {} data {}",
        frame.status,
        show_bytes(&frame.path),
        frame.channel,
        show_bytes(&frame.data)
    )
}
