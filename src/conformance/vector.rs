//! Binary frame vectors: the `.snap.bin` files in `vectors/frames/` and the
//! TOML sidecars beside them that say how each was built and what a
//! conforming decoder makes of it.
//!
//! A sidecar either lists the frames (`[[frame]]`), and the reference
//! encoder writes them, or lists raw pieces (`[[raw]]`) for bytes the
//! encoder refuses to write. In both cases `[[frame]]` are the frames a
//! decoder must yield, in order, and `[expect]` says how the stream ends.

use std::fmt;
use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;

use crate::wire::decode::FrameDecoder;
use crate::wire::encode::encode_frame;
use crate::wire::frame::{Frame, FrameLimits};
use crate::wire::status::Status;

/// A byte string in a sidecar: text, hex, or one byte repeated.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Blob {
    /// UTF-8 text taken as its bytes.
    Text(String),
    /// Hex digits, white space ignored.
    Hex {
        /// The hex digits.
        hex: String,
    },
    /// `count` copies of the byte `fill`.
    Fill {
        /// The byte.
        fill: u8,
        /// How many times.
        count: usize,
    },
    /// Several blobs one after another.
    Concat(Vec<Blob>),
}

/// The largest blob a vector may describe: 64 MiB, four times the largest
/// frame (a sidecar asking for more is an error, not an allocation).
pub const MAX_BLOB_BYTES: usize = 64 << 20;

impl Blob {
    /// The bytes this blob stands for; an error past [`MAX_BLOB_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, VectorError> {
        let mut out = Vec::new();
        self.append_to(&mut out)?;
        Ok(out)
    }

    fn append_to(&self, out: &mut Vec<u8>) -> Result<(), VectorError> {
        let adds = match self {
            Blob::Text(text) => text.len(),
            Blob::Hex { hex } => hex.len() / 2,
            Blob::Fill { count, .. } => *count,
            Blob::Concat(_) => 0,
        };
        if out.len().saturating_add(adds) > MAX_BLOB_BYTES {
            return Err(VectorError::Format(format!("a blob may hold at most {MAX_BLOB_BYTES} bytes")));
        }
        match self {
            Blob::Text(text) => out.extend_from_slice(text.as_bytes()),
            Blob::Hex { hex } => out.extend(parse_hex(hex)?),
            Blob::Fill { fill, count } => out.resize(out.len() + count, *fill),
            Blob::Concat(parts) => {
                for part in parts {
                    part.append_to(out)?;
                }
            }
        }
        Ok(())
    }
}

/// The `.toml` files of a vector directory, sorted.
pub(crate) fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, VectorError> {
    crate::conformance::files::files_with_extension(dir, "toml")
        .map_err(|e| VectorError::Format(format!("{}: {e}", dir.display())))
}

/// Reads and parses every TOML file of `dir`, on disk or embedded.
pub(crate) fn read_tomls<T: serde::de::DeserializeOwned>(
    dir: &crate::conformance::files::DataDir,
) -> Result<Vec<(PathBuf, T)>, VectorError> {
    let files = dir.files("toml").map_err(|e| VectorError::Format(format!("{dir}: {e}")))?;
    files
        .into_iter()
        .map(|(path, bytes)| {
            let text = String::from_utf8(bytes).map_err(|e| VectorError::Format(format!("{}: {e}", path.display())))?;
            let value = toml::from_str(&text).map_err(|e| VectorError::Format(format!("{}: {e}", path.display())))?;
            Ok((path, value))
        })
        .collect()
}

/// Reads and parses one TOML file of the vectors.
pub(crate) fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, VectorError> {
    let text = std::fs::read_to_string(path).map_err(|e| VectorError::Format(format!("{}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| VectorError::Format(format!("{}: {e}", path.display())))
}

/// `bytes` as hex digits, two a byte, as [`parse_hex`] reads them.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes hex digits, ignoring ASCII white space.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, VectorError> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err(VectorError::Format(format!("odd number of hex digits in {text:?}")));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| VectorError::Format(format!("bad hex digits {:?}", String::from_utf8_lossy(pair))))
        })
        .collect()
}

/// A frame as a sidecar states it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FrameSpec {
    /// The status byte.
    pub status: u8,
    /// The path, without NUL.
    #[serde(default = "empty_blob")]
    pub path: Blob,
    /// The channel id.
    #[serde(default)]
    pub channel: u32,
    /// The data.
    #[serde(default = "empty_blob")]
    pub data: Blob,
    /// In a raw piece only: a data length to write instead of the true one.
    #[serde(default)]
    pub length: Option<u32>,
}

fn empty_blob() -> Blob {
    Blob::Text(String::new())
}

impl FrameSpec {
    /// The frame this spec describes, if its status is a defined one.
    pub fn to_frame(&self) -> Result<Frame, VectorError> {
        let status = Status::from_byte(self.status)
            .ok_or_else(|| VectorError::Format(format!("status {} is not defined", self.status)))?;
        Ok(Frame::new(status, self.path.to_bytes()?, self.channel, self.data.to_bytes()?))
    }

    /// Writes the frame with no checks at all, for invalid vectors.
    pub fn write_raw(&self, dst: &mut BytesMut) -> Result<(), VectorError> {
        let path = self.path.to_bytes()?;
        let data = self.data.to_bytes()?;
        dst.put_u8(self.status);
        dst.put_slice(&path);
        dst.put_u8(0);
        dst.put_u32(self.channel);
        dst.put_u32(self.length.unwrap_or(data.len() as u32));
        dst.put_slice(&data);
        Ok(())
    }
}

/// One piece of a raw vector.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawPiece {
    /// A frame written without checks.
    #[serde(default)]
    pub frame: Option<FrameSpec>,
    /// Literal bytes.
    #[serde(default)]
    pub bytes: Option<Blob>,
}

/// How the decoded stream must end.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum End {
    /// Every byte was consumed as whole frames.
    Clean,
    /// A frame is unfinished; `needs` more bytes at least are required.
    Needs,
    /// A framing error is reported.
    Error,
}

/// The `[expect]` table of a sidecar.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// How the stream ends.
    pub end: End,
    /// With `end = "needs"`: the least number of further bytes needed.
    #[serde(default)]
    pub needs: Option<usize>,
    /// With `end = "error"`: the error kind's name (see `FrameErrorKind::name`).
    #[serde(default)]
    pub error: Option<String>,
    /// With `end = "error"`: the stream offset of the offending field.
    #[serde(default)]
    pub offset: Option<u64>,
}

/// Optional limits a vector is decoded under.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Path limit.
    pub max_path: Option<usize>,
    /// Data limit.
    pub max_data: Option<u32>,
}

/// A whole sidecar.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    /// What the vector shows.
    pub description: String,
    /// Requirement ids the vector exercises.
    pub requirements: Vec<String>,
    /// Limits other than the defaults, if any.
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
    /// Raw pieces; when absent the bytes are the encoded `frame` list.
    #[serde(default)]
    pub raw: Vec<RawPiece>,
    /// Keep only this many bytes of what was built.
    #[serde(default)]
    pub truncate: Option<usize>,
    /// Frames a decoder yields, in order.
    #[serde(default)]
    pub frame: Vec<FrameSpec>,
    /// How the stream ends.
    pub expect: Expect,
}

/// A vector: its name, its sidecar and where its files are.
#[derive(Debug, Clone)]
pub struct FrameVector {
    /// File stem, e.g. `001-new-channel-request`.
    pub name: String,
    /// The parsed sidecar.
    pub sidecar: Sidecar,
    /// Path of the sidecar.
    pub sidecar_path: PathBuf,
}

/// Something wrong with a vector or with what a decoder made of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VectorError {
    /// The sidecar cannot be read or understood.
    #[error("bad vector: {0}")]
    Format(String),
    /// The decoder's result differs from the sidecar.
    #[error("mismatch: {0}")]
    Mismatch(String),
}

/// What a decoder made of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The frames, in order.
    pub frames: Vec<Frame>,
    /// How the stream ended.
    pub end: End,
    /// Bytes still needed (for `End::Needs`).
    pub needs: Option<usize>,
    /// Error kind name and offset (for `End::Error`).
    pub error: Option<(String, u64)>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} frame(s), then ", self.frames.len())?;
        match (self.end, self.needs, &self.error) {
            (End::Needs, Some(n), _) => write!(f, "needs {n} more byte(s)"),
            (End::Error, _, Some((kind, offset))) => write!(f, "error {kind} at offset {offset}"),
            _ => write!(f, "a clean end"),
        }
    }
}

/// Decodes `bytes` fed in pieces of `chunk` bytes (at least 1) under `limits`.
pub fn decode_stream(bytes: &[u8], chunk: usize, limits: FrameLimits) -> Outcome {
    decode_pieces(bytes.chunks(chunk.max(1)), limits)
}

/// Decodes a stream that arrives in the given pieces, in order, under `limits`.
pub fn decode_pieces<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, limits: FrameLimits) -> Outcome {
    let mut decoder = FrameDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(err) => {
                    return Outcome {
                        frames,
                        end: End::Error,
                        needs: None,
                        error: Some((err.kind.name().to_string(), err.offset)),
                    };
                }
            }
        }
    }
    if buf.is_empty() {
        Outcome { frames, end: End::Clean, needs: None, error: None }
    } else {
        Outcome { frames, end: End::Needs, needs: Some(decoder.needed()), error: None }
    }
}

impl FrameVector {
    /// Loads every `*.toml` sidecar in `dir`, sorted by name.
    pub fn load_dir(dir: &Path) -> Result<Vec<FrameVector>, VectorError> {
        toml_files(dir)?.iter().map(|path| FrameVector::load(path)).collect()
    }

    /// Loads one sidecar.
    pub fn load(sidecar_path: &Path) -> Result<FrameVector, VectorError> {
        let sidecar: Sidecar = read_toml(sidecar_path)?;
        let name = sidecar_path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        Ok(FrameVector { name, sidecar, sidecar_path: sidecar_path.to_path_buf() })
    }

    /// Path of the binary vector beside the sidecar (`NAME.snap.bin`).
    pub fn bin_path(&self) -> PathBuf {
        self.sidecar_path.with_file_name(format!("{}.snap.bin", self.name))
    }

    /// The limits the vector is decoded under.
    pub fn limits(&self) -> FrameLimits {
        let mut limits = FrameLimits::default();
        if let Some(spec) = self.sidecar.limits {
            limits.max_path = spec.max_path.unwrap_or(limits.max_path);
            limits.max_data = spec.max_data.unwrap_or(limits.max_data);
        }
        limits
    }

    /// Builds the vector's bytes from its sidecar: the reference encoder for
    /// a frame list, the raw writer for raw pieces.
    pub fn build(&self) -> Result<Bytes, VectorError> {
        let mut dst = BytesMut::new();
        if self.sidecar.raw.is_empty() {
            for spec in &self.sidecar.frame {
                encode_frame(&spec.to_frame()?, &self.limits(), &mut dst)
                    .map_err(|e| VectorError::Format(e.to_string()))?;
            }
        } else {
            for piece in &self.sidecar.raw {
                match (&piece.frame, &piece.bytes) {
                    (Some(frame), None) => frame.write_raw(&mut dst)?,
                    (None, Some(blob)) => dst.put_slice(&blob.to_bytes()?),
                    _ => return Err(VectorError::Format("a raw piece has exactly one of `frame` or `bytes`".into())),
                }
            }
        }
        if let Some(len) = self.sidecar.truncate {
            dst.truncate(len);
        }
        Ok(dst.freeze())
    }

    /// The expected outcome stated by the sidecar.
    pub fn expected(&self) -> Result<Outcome, VectorError> {
        let frames = self.sidecar.frame.iter().map(FrameSpec::to_frame).collect::<Result<Vec<_>, _>>()?;
        let expect = &self.sidecar.expect;
        let error = match (expect.end, &expect.error, expect.offset) {
            (End::Error, Some(kind), Some(offset)) => Some((kind.clone(), offset)),
            (End::Error, _, _) => return Err(VectorError::Format("end = \"error\" needs `error` and `offset`".into())),
            _ => None,
        };
        if expect.end == End::Needs && expect.needs.is_none() {
            return Err(VectorError::Format("end = \"needs\" needs `needs`".into()));
        }
        Ok(Outcome { frames, end: expect.end, needs: expect.needs.filter(|_| expect.end == End::Needs), error })
    }

    /// Decodes `bytes` in pieces of `chunk` bytes and compares with the sidecar.
    pub fn check(&self, bytes: &[u8], chunk: usize) -> Result<(), VectorError> {
        let expected = self.expected()?;
        let actual = decode_stream(bytes, chunk, self.limits());
        if actual == expected {
            Ok(())
        } else {
            Err(VectorError::Mismatch(format!(
                "vector {} (chunks of {chunk}): expected {expected}, decoded {actual}{}",
                self.name,
                first_frame_difference(&expected.frames, &actual.frames)
            )))
        }
    }
}

fn first_frame_difference(expected: &[Frame], actual: &[Frame]) -> String {
    expected
        .iter()
        .zip(actual)
        .position(|(e, a)| e != a)
        .map(|i| format!("; frame {i} differs: expected {:?}, decoded {:?}", expected[i], actual[i]))
        .unwrap_or_default()
}
