//! # iip — IIP/1, a multiplexed request/response protocol over TCP
//!
//! This crate is the reference implementation of the IIP/1 specification in
//! `spec/`: the frame codec, a sans-IO protocol core, a tokio server and
//! client over it, and the conformance suite.
//!
//! Layers, bottom up:
//! - [`status`], [`frame`], [`frame_error`]: the wire vocabulary.
//! - [`decode`], [`encode`], [`codec`]: bytes to frames and back.
//! - [`vector`]: the binary test vectors shipped in `vectors/`.

pub mod answer;
#[cfg(not(loom))]
pub mod attack;
pub mod client;
pub mod codec;
#[cfg(not(loom))]
pub mod conformance;
pub mod decode;
pub mod encode;
pub mod files;
pub mod frame;
pub mod frame_error;
#[cfg(not(loom))]
pub mod gateway;
#[cfg(not(loom))]
pub mod loadgen;
pub mod proto;
#[cfg(not(loom))]
pub mod reader;
#[cfg(not(loom))]
pub mod server;
pub mod spec;
pub mod status;
mod sync;
#[cfg(not(loom))]
pub mod tls;
pub mod vector;
#[cfg(not(loom))]
pub mod writer;

pub use codec::{CodecError, FrameCodec};
pub use decode::FrameDecoder;
pub use frame::{Frame, FrameLimits};
pub use frame_error::{DecodeError, EncodeError, FrameErrorKind};
pub use status::{MessageKind, Position, Sender, Status};
