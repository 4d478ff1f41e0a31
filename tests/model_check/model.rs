//! The model: one client and one server of IIP/1 over an ordered byte
//! stream in each direction, as chapter 15 describes it. The stream carries
//! frames (and, in the hostile configurations, one undecodable frame); a
//! state is both peers and both streams, and every action is one peer doing
//! one thing. Which frames exist and what they do comes from the spec's
//! tables ([`Tables`]).

use std::collections::VecDeque;
use std::sync::Arc;

use stateright::{Model, Property};

use crate::client::Client;
use crate::server::Server;
use crate::tables::Tables;

/// A route the model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    Echo,
    NewChannel,
    Delete,
    Hello,
    GoingAway,
}

impl Route {
    /// Its path on the wire.
    pub fn path(self) -> &'static [u8] {
        match self {
            Route::Echo => b"/echo",
            Route::NewChannel => b"/sys/new_channel",
            Route::Delete => b"/sys/delete_channel",
            Route::Hello => b"/sys/hello",
            Route::GoingAway => b"/sys/going_away",
        }
    }
}

/// A frame in a stream: status byte, route (none for a close frame),
/// channel, data. `bad` (the sender broke a rule with it) and `call` (the
/// client's call it belongs to) are the model's own notes, not on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WireFrame {
    pub status: u8,
    pub route: Option<Route>,
    pub channel: u32,
    pub data: Vec<u8>,
    pub bad: bool,
    pub call: Option<u8>,
}

/// What a stream carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Wire {
    Frame(WireFrame),
    /// Bytes that are no frame: a status byte outside the table ([STATUS-2]).
    Garbage,
    /// The sender closed its side.
    End,
}

/// A mistake a server can be built with, to show that the checker finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Defect {
    /// Sends an answer as soon as it is given, ahead of earlier ones.
    AnswersOutOfOrder,
    /// Grants the highest free channel id instead of the lowest.
    HighestFreeId,
    /// Pauses reading on everything held, channels and assembly included.
    PausesOnAllHeld,
    /// Drops its queued answers when the client's close frame arrives.
    CloseDropsAnswers,
    /// Takes frames on a channel being deleted as if it were open.
    AcceptsOnDeleted,
}

/// One configuration of the model: what each peer may do, and the server's
/// limits. Small numbers: every interleaving of these is explored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// Requests to `/echo` the client sends in all.
    pub requests: u8,
    /// Whether an echo body may be long enough to be chunked.
    pub chunked: bool,
    /// `/sys/new_channel` requests the client sends in all.
    pub opens: u8,
    /// `/sys/delete_channel` requests the client sends in all.
    pub deletes: u8,
    /// Whether the client may say hello, offering `going_away`.
    pub hello: bool,
    /// Whether the client may send a close frame (once nothing is owed to
    /// it, or, when `close_early`, at any time).
    pub close: bool,
    /// Whether the client's close frame may come behind requests not yet answered.
    pub close_early: bool,
    /// Whether the server may begin a graceful shutdown.
    pub shutdown: bool,
    /// Whether the client may send one frame that breaks a rule.
    pub hostile: bool,
    /// The server's channel limit, channel 0 included ([CHAN-9]).
    pub max_channels: u32,
    /// The server's connection budget in bytes ([RES-1]).
    pub budget: usize,
    /// A planted defect of the server, if any.
    pub defect: Option<Defect>,
}

/// The largest frame data of both peers in the model: bodies longer than
/// this are chunked ([MSG-11]). System answers fit in one frame.
pub const MAX_DATA: u32 = 64;
/// The body length of a short echo request (one frame).
pub const SHORT: usize = 10;
/// The body length of a long echo request (two frames).
pub const LONG: usize = 100;

/// Every reachable state: both peers and both streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct State {
    pub client: Client,
    pub to_server: VecDeque<Wire>,
    pub server: Server,
    pub to_client: VecDeque<Wire>,
}

/// One step of one peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// The client sends its hello.
    Hello,
    /// The client starts an echo request on a channel.
    Call { channel: u32, long: bool },
    /// The client asks for a channel on channel 0.
    Open,
    /// The client deletes a channel.
    Delete { channel: u32 },
    /// The client puts the next frame of a message it started on the stream.
    Send { channel: u32 },
    /// The client sends its close frame.
    Close,
    /// The client breaks a rule with one frame.
    Break(Breach),
    /// The client reads the next frame from the server.
    ClientRead,
    /// The server reads the next frame from the client (or, once it has
    /// stopped reading, reads and discards it: [CLOSE-11]).
    ServerRead,
    /// The handler of request `seq` on `channel` gives its answer.
    Answer { channel: u32, seq: u64 },
    /// The server writes what it has queued.
    Write,
    /// The server begins a graceful shutdown ([CLOSE-3], [EXT-16]).
    Shutdown,
    /// The shutdown's grace is over: the server stops reading.
    GraceOver,
    /// The server, owing nothing more, sends its close frame (if any) and closes.
    Finish,
}

/// A rule the hostile client breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Breach {
    /// A request on a channel never granted ([CHAN-6]).
    UnknownChannel,
    /// A request on a channel the client deleted ([CHAN-10]).
    DeletedChannel,
    /// A last frame with no message open ([MSG-6]).
    NoMessageOpen,
    /// A status byte outside the table ([STATUS-2]).
    Garbage,
}

/// The model of one configuration.
#[derive(Clone)]
pub struct Iip {
    pub setup: Setup,
    pub tables: Arc<Tables>,
}

impl Iip {
    /// The model of `setup`, its rules read from `spec/`.
    pub fn new(setup: Setup) -> Iip {
        Iip { setup, tables: Arc::new(Tables::read()) }
    }

    /// The most a connection holds beyond its budget ([PROP-6]): twice the
    /// budget, since bytes in assembly and bytes outbound are bounded
    /// separately, plus the frame read last with its waiting cost and the
    /// frames of one answer.
    pub fn held_bound(&self) -> usize {
        let longest = if self.setup.chunked { LONG } else { SHORT };
        let frames = longest.div_ceil(MAX_DATA as usize);
        2 * self.setup.budget
            + iip::proto::server::WAITING_REQUEST_COST
            + MAX_DATA as usize
            + longest
            + frames * crate::wire::FRAME_OVERHEAD
    }
}

impl Model for Iip {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            client: Client::new(&self.setup),
            to_server: VecDeque::new(),
            server: Server::new(),
            to_client: VecDeque::new(),
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        state.client.actions(&self.setup, &state.to_client, actions);
        state.server.actions(self, &state.to_server, actions);
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        let mut next = state.clone();
        let State { client, to_server, server, to_client } = &mut next;
        match action {
            Action::ClientRead => client.read(self, to_client)?,
            Action::ServerRead => server.read(self, to_server)?,
            Action::Answer { channel, seq } => server.answer(self, channel, seq)?,
            Action::Write => server.write(to_client),
            Action::Shutdown => server.shutdown(self),
            Action::GraceOver => server.grace_over(),
            Action::Finish => server.finish(to_client),
            client_action => client.act(self, client_action, to_server)?,
        }
        if server.stage == crate::server::Stage::Reading && !to_server.is_empty() && !server.may_read(self) {
            server.paused = true;
        }
        Some(next)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        crate::properties::all()
    }
}
