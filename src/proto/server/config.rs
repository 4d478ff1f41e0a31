//! What a server connection is configured with, and the costs its budget
//! counts for what it holds (`[RES-1]`, `[RES-9]`).

use crate::wire::frame::FrameLimits;

/// Settings of the server core (the `[core]` table of a configuration
/// file; every key optional).
///
/// Start from `default()` and set the fields to change: the struct is
/// `#[non_exhaustive]`, so a field added later breaks no caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Frame limits, for reading and for chunking answers. Default
    /// [`FrameLimits::default`]: paths up to 2,048 bytes, frame data up to 16 MiB.
    pub frame_limits: FrameLimits,
    /// Most channels per connection, channel 0 included (`[CHAN-9]`).
    /// Default 1,024.
    pub max_channels: u32,
    /// Largest request body (`[MSG-8]`). Default 64 MiB.
    pub max_message: usize,
    /// The connection's memory budget in bytes (`[RES-1]`): what it may hold
    /// of request bodies being assembled, bodies handed to handlers and not
    /// yet answered, and answers not yet sent. A chunked message whose next
    /// frame would take the total past it is refused with 110 (`[RES-2]`);
    /// the shell stops reading while bodies in handlers and answers reach
    /// it (`[RES-3]`). A message can therefore be at most this large,
    /// whatever `max_message` says. Default 64 MiB.
    pub max_held_bytes: usize,
}

/// What a connection counts for each channel it holds beyond channel 0
/// (`[RES-9]`): the channel's state in the core and its counts in the
/// shell, rounded up from the ≈240 bytes measured per channel.
pub const CHANNEL_COST: usize = 256;

/// What a connection counts for each request that waits for its answer
/// (`[RES-9]`): its place in its channel's order and the state of a
/// handler that waits, rounded up from the ≈1.3 KB measured per request
/// parked in a sleeping handler. A request answered in the turn it arrived
/// in never waits and costs nothing.
pub const WAITING_REQUEST_COST: usize = 1536;

/// How far a connection that holds nothing outbound may inflate a
/// compressed body while the whole server is at its budget (`[RES-9]`),
/// so that it is still served one small request at a time ([RES-4]).
pub const INFLATE_FLOOR: usize = 64 * 1024;

/// The default per-connection memory budget: 64 MiB.
pub const DEFAULT_MAX_HELD_BYTES: usize = 64 * 1024 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            frame_limits: FrameLimits::default(),
            max_channels: 1024,
            max_message: 64 * 1024 * 1024,
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
        }
    }
}
