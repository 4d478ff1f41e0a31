//! The sans-IO protocol core: the per-connection state machines of both
//! roles, with no I/O and no async runtime in them.
//!
//! A core is fed the frames that arrived and the application's commands, and
//! answers with events for the application and frames to send. The tokio
//! server and client in this crate are thin shells over it; tests drive it
//! directly (see `tests/state_tables.rs`).

pub mod channels;
pub mod client;
pub mod error;
pub mod extensions;
pub mod message;
pub mod server;
pub mod timers;

pub use channels::ChannelIds;
pub use client::{ClientConnection, ClientEvent, RequestId};
pub use error::ProtocolError;
pub use message::{chunk_body, MessageState, Step};
pub use server::{HeldBytes, IncomingRequest, ServerConfig, ServerConnection, ServerEvent};
pub use timers::{ConnectionTimers, Expiry, Timeouts};
