//! # iip — IIP/1, a multiplexed request/response protocol over TCP
//!
//! One IIP connection holds many *channels*; on a channel, requests are
//! pipelined and answered in order; channels run concurrently. This crate is
//! the reference implementation of the IIP/1 specification (the book in
//! `spec/`): a server, a client, the frame codec and protocol core under
//! them, and the conformance suite that checks any implementation.
//!
//! A server with one route and a client calling it:
//!
//! ```
//! use iip::client::Client;
//! use iip::server::{Request, Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder()
//!     .route("/hello", |req: Request| async move {
//!         Ok::<_, std::convert::Infallible>(format!("hello, {}", String::from_utf8_lossy(req.body())))
//!     })
//!     .build()?;
//! let handle = server.spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
//!
//! let client = Client::connect(handle.local_addr()).await?;
//! let channel = client.open_channel().await?;
//! let answer = channel.call("/hello", "world").await?;
//! assert_eq!(&answer[..], b"hello, world");
//!
//! handle.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## The main types
//!
//! - **Serving**: `server::Server` (built by `Server::builder()`, a
//!   `ServerBuilder` of routes, tower layers and a `ServerConfig`) runs
//!   handlers that take a `server::Request` and answer a body or a
//!   `server::HandlerError`; `Server::spawn` gives a `ServerHandle` for
//!   its address, statistics and graceful shutdown.
//! - **Calling**: `client::Client` is one connection, `client::Channel` one
//!   of its channels; `client::Backend` reconnects, `client::Pool` holds
//!   several connections to one server, `client::Balancer` spreads calls
//!   over several servers. Each calls `call(path, body)` and
//!   `call_with(Call)`, where a `client::Call` carries the options
//!   (timeout, raw answers, balancing key), and each is a
//!   `tower::Service<Call>`; failures are a `client::ClientError`.
//! - **The protocol without I/O**: [`wire`] encodes and decodes frames
//!   ([`Frame`], [`FrameDecoder`], `FrameCodec` for tokio-util);
//!   [`proto::server::ServerConnection`] and
//!   [`proto::client::ClientConnection`] are the state machines, fed frames
//!   and instants, giving back events and frames to send.
//! - **Checking an implementation**: `conformance::run_suite` runs the
//!   server cases against any address, `conformance::attack` the attacks;
//!   the `iip conformance` and `iip attack` commands wrap them.
//! - **HTTP in front**: `gateway::Gateway` maps HTTP/1.1 and HTTP/2
//!   requests to IIP calls.
//!
//! ## Stability
//!
//! The crate is at 0.x: a minor release may break the API, a patch release
//! does not. Public enums and configuration structs are
//! `#[non_exhaustive]` (configurations start from `default()`), and
//! requests, calls and answers are read through methods, so new variants,
//! settings and fields arrive in minor releases without breaking callers.
//! The wire is IIP/1 and does not change within it.
//!
//! ## Rooms and features
//!
//! | module | what | feature |
//! |---|---|---|
//! | [`wire`] | status byte, frames, framing errors, decoder, encoder, JSON answers | always |
//! | [`proto`] | the sans-IO protocol core: channel tables, message assembly, ordering, budgets, timers | always |
//! | `io` | the tokio frame reader and batching writer both shells use | `runtime` (by `server` or `client`) |
//! | `server` | the tokio server: routes, limits, TLS, graceful shutdown, statistics | `server` (default) |
//! | `client` | the tokio client: channels, pipelined calls, pools | `client` (default) |
//! | `tls` | rustls configurations from PEM files | `tls` (default) |
//! | `server::metrics` | the server's counters and latencies through the `metrics` facade | `metrics` |
//! | `gateway` | an HTTP/1.1 and HTTP/2 gateway in front of IIP servers | `gateway` |
//! | (spans) | request and call spans joined into one OpenTelemetry trace through `traceparent` | `otel` |
//! | `conformance` | the conformance suite, its embedded spec and vectors, the attack suite | `conformance` |
//! | `cli` | the `iip` command | `cli` |
//!
//! With `default-features = false` the crate is the codec and the core
//! alone: no tokio, no CLI crate.

#[cfg(all(feature = "cli", not(loom)))]
pub mod cli;
#[cfg(feature = "client")]
pub mod client;
#[cfg(all(feature = "conformance", not(loom)))]
pub mod conformance;
#[cfg(all(feature = "gateway", not(loom)))]
pub mod gateway;
#[cfg(all(feature = "runtime", not(loom)))]
pub mod io;
#[cfg(all(feature = "otel", any(feature = "server", feature = "client"), not(loom)))]
mod otel;
pub mod proto;
mod seconds;
#[cfg(all(feature = "server", not(loom)))]
pub mod server;
#[cfg(feature = "client")]
mod sync;
#[cfg(all(feature = "tls", not(loom)))]
pub mod tls;
pub mod wire;

#[cfg(feature = "runtime")]
pub use wire::codec::{CodecError, FrameCodec};
pub use wire::decode::FrameDecoder;
pub use wire::frame::{Frame, FrameLimits};
pub use wire::frame_error::{DecodeError, EncodeError, FrameErrorKind};
pub use wire::status::{MessageKind, Position, Sender, Status};
