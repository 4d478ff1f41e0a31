//! Session vectors (`vectors/sessions/*.toml`): scripted exchanges with a
//! server — frames or raw bytes to send, and the frames, or the close, that
//! must come back. Each file holds the cases of one spec chapter.

use serde::Deserialize;

use crate::conformance::vector::{read_tomls, Blob, FrameSpec, VectorError};

/// How binding a case is.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CaseLevel {
    /// A MUST of the spec.
    Must,
    /// A SHOULD of the spec.
    Should,
    /// Behaviour the compatibility appendix asks for.
    Compat,
}

impl CaseLevel {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            CaseLevel::Must => "must",
            CaseLevel::Should => "should",
            CaseLevel::Compat => "compat",
        }
    }
}

/// A frame as a case expects it; absent fields match anything.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ExpectFrame {
    /// The status byte.
    pub status: Option<u8>,
    /// The path, exactly.
    pub path: Option<Blob>,
    /// The channel.
    pub channel: Option<u32>,
    /// The data, exactly.
    pub data: Option<Blob>,
    /// The data is a JSON object with (at least) these members and values.
    pub json: Option<toml::Table>,
    /// The data is a JSON object that has these members (dotted paths,
    /// e.g. `extensions.metadata.max_size`).
    pub json_keys: Option<Vec<String>>,
    /// The data is a JSON object that has none of these members (dotted
    /// paths, e.g. `extensions.auth`).
    pub json_absent: Option<Vec<String>>,
    /// The data starts with a metadata block (`[EXT-18]`) with these
    /// entries: a string is the value exactly, `true` any value, `false`
    /// no such key.
    pub metadata: Option<toml::Table>,
    /// The data after its metadata block, exactly.
    pub after_block: Option<Blob>,
    /// The data is an error answer with this code.
    pub code: Option<i64>,
    /// The data (a close frame's reason) cites this requirement id as
    /// `[ID]`, wherever and whatever the rest of the text says.
    pub cites: Option<String>,
    /// The data is JSON in which each member (a dotted path, e.g.
    /// `all_timecount.range_count`) is an array of exactly this length.
    pub json_len: Option<toml::Table>,
    /// The data is a JSON object whose arrays of integers at these dotted
    /// paths add up to at least these values.
    pub json_sum_at_least: Option<toml::Table>,
    /// The data is JSON whose integer members (dotted paths) have grown by
    /// at least these amounts since the frame captured as `since`.
    pub json_increase: Option<toml::Table>,
    /// With `json_increase` or `json_delta`: the name of the captured frame
    /// to compare with.
    pub since: Option<String>,
    /// With `since`: the data is JSON whose integer members (dotted paths)
    /// have grown by exactly these amounts (0: unchanged) since the
    /// captured frame.
    pub json_delta: Option<toml::Table>,
    /// With `since`: each of these arrays (dotted paths) is non-zero only
    /// at indices where the captured frame's array is non-zero too.
    pub json_nonzero_within: Option<Vec<String>>,
    /// The data is JSON with these values at these dotted paths; a `*`
    /// part stands for an object's only member, a number for an array's
    /// index (`*.Channels.0.ReceiveQueue`).
    pub json_paths: Option<toml::Table>,
    /// Keep this frame's JSON under this name for a later `json_increase`.
    pub capture: Option<String>,
}

/// A whole message expected on one channel, possibly in several frames.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExpectMessage {
    /// The channel.
    pub channel: u32,
    /// The path every frame carries.
    pub path: Option<Blob>,
    /// The whole body.
    pub body: Blob,
    /// The least number of frames the message must take.
    #[serde(default)]
    pub min_frames: Option<usize>,
}

/// How the connection must end.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CloseExpect {
    /// The server closes; a close frame before it is allowed, nothing else.
    Any,
    /// The server sends a close frame, then closes (`[CLOSE-4]`).
    WithFrame,
    /// The server closes, after any frames (e.g. error answers to what
    /// came before the protocol error, which the case does not judge).
    AfterAnyFrames,
    /// The server closes as on an orderly close, not a protocol error: a
    /// close frame before it is allowed only if it cites no requirement id
    /// (`[CLOSE-8]`).
    Clean,
    /// As `clean`, and the close frame is required (`[CLOSE-3]`).
    CleanWithFrame,
}

/// One step of a case.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Send a frame, written as is (invalid frames included).
    pub send: Option<FrameSpec>,
    /// Send raw bytes.
    pub send_raw: Option<Blob>,
    /// With `send`/`send_raw`: write in pieces of this many bytes, flushing each.
    pub split: Option<usize>,
    /// After what the step sends: end the stream (the client's half of
    /// the connection), as a client that leaves does (`[RES-11]`).
    pub end_stream: Option<bool>,
    /// Send this many copies of the frame, or expect this many copies of
    /// the expected frame.
    pub repeat: Option<usize>,
    /// Expect this frame next.
    pub expect: Option<ExpectFrame>,
    /// Expect these frames next, in any order.
    pub expect_unordered: Option<Vec<ExpectFrame>>,
    /// Expect a whole message, possibly chunked.
    pub expect_message: Option<ExpectMessage>,
    /// Expect the server to close the connection.
    pub expect_close: Option<CloseExpect>,
    /// Expect nothing to arrive for this many milliseconds.
    pub expect_silence_ms: Option<u64>,
    /// Wait this many milliseconds before anything else in the step.
    pub sleep_ms: Option<u64>,
    /// With `expect`: the frame must arrive within this many milliseconds,
    /// rather than within the step's limit (a deadline the server keeps).
    pub within_ms: Option<u64>,
    /// The connection the step runs on (server cases): `a` unless named;
    /// a new name opens another connection to the same server.
    pub on: Option<String>,
    /// With a new `on`: the server must not serve that connection, being
    /// refused, reset, or closed before any frame (a server shutting
    /// down accepts no connection, `[CLOSE-3]`). The step does nothing else.
    pub expect_refused: Option<bool>,
}

/// What a case needs of the server beyond the profile's `/echo`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// The server declares its channel limit (`max-channels=N`); the
    /// case's steps are generated for that N.
    #[serde(default)]
    pub max_channels: bool,
    /// The server declares its request-size limit (`max-message=N`); the
    /// case's steps are generated for that N.
    #[serde(default)]
    pub max_message: bool,
    /// The server declares its connection limit (`max-connections=N`);
    /// the case's steps are generated for that N, and it needs the server
    /// to itself.
    #[serde(default)]
    pub max_connections: bool,
    /// The server offers `/fail` (answers every request by failing).
    #[serde(default)]
    pub fail_route: bool,
    /// The server offers `/fail_code` (fails with the application code and
    /// message its body names, `CODE MESSAGE`).
    #[serde(default)]
    pub fail_code_route: bool,
    /// The server declares its idle timeout (`idle-timeout-ms=N`); the
    /// case's steps are generated for that N.
    #[serde(default)]
    pub idle_timeout: bool,
    /// The server declares its frame read timeout (`frame-timeout-ms=N`);
    /// the case's steps are generated for that N.
    #[serde(default)]
    pub frame_timeout: bool,
    /// `true`: the server declares an authenticator and the credentials
    /// it accepts (`auth=SCHEME:CREDENTIALS`); `false`: the case is for a
    /// server that has none, and is skipped where one is declared.
    #[serde(default)]
    pub auth: Option<bool>,
    /// The server declares a listener that requires authentication
    /// (`auth-required=HOST:PORT`); every connection of the case goes there.
    #[serde(default)]
    pub auth_required: bool,
    /// The server declares how it paces failed authentications
    /// (`auth-pace=K/N`); the case's steps are generated for them, and it
    /// needs the server to itself.
    #[serde(default)]
    pub auth_pace: bool,
    /// That listener declares its hello timeout (`hello-timeout-ms=N`); the
    /// case's steps are generated for that N.
    #[serde(default)]
    pub hello_timeout: bool,
    /// The server declares its budget of bytes per connection
    /// (`connection-budget=N`); the case's steps are generated for that N.
    #[serde(default)]
    pub connection_budget: bool,
    /// The server declares its server-wide budget (`server-budget=N`); the
    /// case's steps are generated for that N, and it needs the server to
    /// itself.
    #[serde(default)]
    pub server_budget: bool,
    /// The server declares its handler limit (`max-in-flight=N`); the
    /// case's steps are generated for that N.
    #[serde(default)]
    pub max_in_flight: bool,
    /// The server declares a listener whose `/shutdown` route begins a
    /// graceful shutdown and that listens again once it has exited
    /// (`shutdown=HOST:PORT`); every connection of the case goes there,
    /// and the case needs that server to itself.
    #[serde(default)]
    pub shutdown: bool,
    /// The server declares these extensions of chapter 14 (`hello` for
    /// the hello itself, then `ping`, `lz4`, `zstd`, `limits`): profile
    /// item `extensions=hello+ping+lz4`.
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// A case whose steps depend on what the server declares: the runner
/// generates them for the declared value (see
/// [`Profile::instantiate`](super::Profile::instantiate)).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Generator {
    /// Opens channels up to the declared limit N (ids 1 to N-1 granted),
    /// expects 106 for one more, and a close for a frame on id N.
    ChannelLimit,
    /// Sends a chunked request of N+1 bytes, expects 110, then a request
    /// on the same connection is served.
    MessageLimit,
    /// Sends a request of N+1 bytes to `/echo`, expects 110, and finds the
    /// route's Count unchanged (`[SYS-9]`).
    MessageLimitUncounted,
    /// Sends `/sys/new_channel` with a body of N+1 bytes, expects 110 and
    /// no channel allocated: the next grant is channel 1 (`[MSG-12]`).
    SysMessageLimit,
    /// With `lz4` agreed, sends `/sys/new_channel` with a marked body of N
    /// bytes, expects a grant, then one of N+1 bytes and expects 110
    /// (`[EXT-15]`: the marker is not counted).
    CompressedMessageLimit,
    /// As `compressed-message-limit` with `metadata` agreed too: each body
    /// starts with a block of 16 bytes, counted in the N (`[EXT-20]`).
    MetadataCompressedMessageLimit,
    /// Opens the declared N connections, each answered, and one more,
    /// which is refused with 107 and closed (`[ANSWER-5]`).
    ConnectionLimit,
    /// Serves requests spread over more than the declared idle timeout N,
    /// then expects a close frame citing `[RES-5]` about N after the last.
    IdleTimeout,
    /// Sends `/sleep` for 1.2 times the declared idle timeout N and
    /// expects it answered and the connection still open (`[RES-5]`).
    BusyNotIdle,
    /// Sends an `/echo` of 16 MiB, leaves its answer unread for 1.2 times
    /// the declared idle timeout N, and expects it whole and the
    /// connection still open (`[RES-5]`).
    AnswerUnreadNotIdle,
    /// Sends part of a frame and expects a close frame citing `[RES-6]`
    /// about the declared frame read timeout N later.
    FrameTimeout,
    /// Offers the declared credentials in a hello and expects them
    /// accepted with an identity, then a request served (`[EXT-8]`).
    AuthAccepted,
    /// As `auth-accepted` with the scheme's ASCII case changed (`[EXT-8]`).
    AuthSchemeWithoutCase,
    /// Offers credentials that differ from the declared ones and expects
    /// 112, then a close frame citing `[EXT-8]`.
    AuthRefused,
    /// Fails the declared K authentications, then expects two good hellos
    /// sent together checked no sooner than the source's turn (`[RES-10]`).
    AuthFailurePace,
    /// On the listener that requires authentication, says hello with the
    /// declared credentials; then requests and channels are served (`[EXT-9]`).
    AuthRequiredAccepts,
    /// On the listener that requires authentication, sends nothing and
    /// expects a close frame citing `[RES-10]` about the declared hello
    /// timeout N later.
    HelloTimeout,
    /// On that listener, authenticates, then waits past the declared hello
    /// timeout N and is still served (`[RES-10]`).
    AuthenticatedNotTimedOut,
    /// Parks a `/sleep` whose body is the declared budget N, and expects
    /// a request behind it unanswered until the sleep is (`[RES-3]`).
    PausedAtBudget,
    /// Parks a `/sleep` of 20 s holding the declared budget N, ends the
    /// stream, and expects the close at once (`[RES-11]`).
    LeavingWhilePaused,
    /// Parks a `/sleep` holding all but 2 MiB of the declared budget N, and
    /// expects a chunked request of 4 MiB beside it answered 110 (`[RES-2]`).
    ChunkedPastBudget,
    /// Parks `/sleep` requests on several connections until together they
    /// hold the declared server-wide budget, and expects a connection
    /// holding nothing served, one holding bytes not read (`[RES-4]`).
    ServerFull,
    /// Runs the declared N handlers at once on one connection, and expects
    /// a request behind them unanswered until one ends (`[RES-3]`).
    HandlerLimit,
    /// Sends 65,536 requests that wait for their answers, in windows of
    /// 64, and expects every one answered in order (`[RES-1]`, `[RES-3]`);
    /// needs no declared value.
    WaitingRequests,
}

/// One conformance case.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Short name, unique in its file.
    pub name: String,
    /// What it checks.
    pub description: String,
    /// Requirement ids checked.
    pub requirements: Vec<String>,
    /// How binding it is.
    pub level: CaseLevel,
    /// What the server must offer.
    #[serde(default)]
    pub requires: Requires,
    /// Appendix A entries (`COMPAT-n`) that excuse a failure of this case
    /// by a peer declared to be the deployed implementation (`go-iip`):
    /// such a failure is reported as a deviation, not a failure.
    #[serde(default)]
    pub excused_by: Vec<String>,
    /// Steps generated from the declared profile instead of `steps`.
    #[serde(default)]
    pub generate: Option<Generator>,
    /// The script.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// A file of cases: one spec chapter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    /// The chapter's title.
    pub chapter: String,
    /// The cases.
    pub case: Vec<Case>,
}

/// A case with its chapter, named `file::case`.
#[derive(Debug, Clone)]
pub struct NamedCase {
    /// `file-stem::case-name`.
    pub id: String,
    /// The chapter title.
    pub chapter: String,
    /// The case.
    pub case: Case,
}

/// Loads every session file of `dir` (on disk or embedded), cases in file
/// then script order.
pub fn load_sessions(dir: impl Into<crate::conformance::files::DataDir>) -> Result<Vec<NamedCase>, VectorError> {
    let mut cases = Vec::new();
    for (path, file) in read_tomls::<SessionFile>(&dir.into())? {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        for case in file.case {
            let id = format!("{stem}::{}", case.name);
            if cases.iter().any(|c: &NamedCase| c.id == id) {
                return Err(VectorError::Format(format!("duplicate case {id}")));
            }
            cases.push(NamedCase { id, chapter: file.chapter.clone(), case });
        }
    }
    Ok(cases)
}
