//! IIP/1 extensions negotiated with `/sys/hello` (spec chapter 14), sans I/O.
//!
//! Nothing changes on the wire unless both peers negotiate: a client offers
//! extensions in the first request of a connection ([`hello::HelloRequest`]),
//! the server answers the ones it accepts ([`hello::HelloAnswer`]); a server
//! without extensions answers 102 and both carry on in plain IIP/1.
//!
//! - [`hello`]: the offer and answer, and the server's choice ([`hello::ServerExtensions`]).
//! - [`handshake`]: which requests a server admits before, during and after the hello.
//! - [`body`]: the one-byte body marker and compression of the `compression` extension.
//! - [`liveness`]: the client's ping timer and dead-peer verdict (`ping`).
//! - [`metadata`]: the block of keys and values before a request body (`metadata`).

pub mod body;
pub mod handshake;
pub mod hello;
pub mod liveness;
pub mod metadata;

pub use body::{BodyCodec, BodyError, Codec};
pub use handshake::{Admission, AuthPolicy, Handshake};
pub use hello::{Agreed, CompressionOffer, Credentials, HelloAnswer, HelloRequest, Limits, Offer, ServerExtensions};
pub use liveness::{Liveness, LivenessAction};
pub use metadata::{Metadata, MetadataError, MetadataMap, TraceParent};

/// The route of the hello request (`[EXT-1]`).
pub const HELLO: &[u8] = b"/sys/hello";
/// The largest hello body a server reads (`[RES-10]`): 64 KiB, far above
/// any offer of revision 1; a larger hello is answered 110 and the
/// connection stays plain ([EXT-5]).
pub const MAX_HELLO_BODY: usize = 64 * 1024;
/// The route of a liveness ping (`[EXT-6]`).
pub const PING: &[u8] = b"/sys/ping";
/// The path of a server's going-away frame (`[EXT-16]`).
pub const GOING_AWAY: &[u8] = b"/sys/going_away";
/// The protocol revision this crate speaks (`[EXT-2]`).
pub const REVISION: u32 = 1;
