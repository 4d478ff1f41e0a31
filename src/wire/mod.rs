//! The wire format (spec chapters "Frames" to "Answers"): the status byte,
//! frames, framing errors, the streaming decoder and the encoder, the JSON
//! answers the protocol defines, and (with the `runtime` feature) a
//! tokio-util codec. Nothing here does I/O.

pub mod answer;
#[cfg(feature = "runtime")]
pub mod codec;
pub mod decode;
pub mod encode;
pub mod frame;
pub mod frame_error;
pub mod known_paths;
pub(crate) mod scan;
pub mod status;
