//! The implementation held to the model: every path the checker visits is
//! played again, step by step, into the crate's sans-IO cores
//! (`proto::server::ServerConnection`, `proto::client::ClientConnection`)
//! over real byte streams (the crate's encoder and decoder), and what the
//! cores do must be what the model did: the frames, the requests handed
//! to handlers, the errors and the requirement they cite, the channels,
//! and every count of the bytes held. A difference is printed with the
//! path as a session vector, to become a conformance case.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use iip::proto::client::{ClientConnection, ClientEvent, RequestId};
use iip::proto::extensions::{HelloRequest, ServerExtensions};
use iip::proto::server::{ServerConfig, ServerConnection, ServerEvent};
use iip::wire::encode::encode_frame;
use iip::{Frame, FrameDecoder, FrameLimits};
use stateright::Path;

use crate::client::{Outcome, Stage as ClientStage, HELLO};
use crate::model::{Action, Setup, State, Wire, WireFrame, MAX_DATA};
use crate::server::{Ending, Stage as ServerStage, GRACE_MS};
use crate::wire::{from_frame, to_frame};

/// Undecodable bytes: a status byte past the table ([STATUS-2]).
const GARBAGE: [u8; 1] = [9];
/// The most differences kept for the report.
const KEEP: usize = 5;

fn limits() -> FrameLimits {
    let mut cfg = FrameLimits::default();
    cfg.max_data = MAX_DATA;
    cfg
}

/// Plays paths into the cores and keeps what differed.
#[derive(Clone)]
pub struct Replayer {
    setup: Setup,
    differences: Arc<Mutex<Vec<String>>>,
    replayed: Arc<AtomicUsize>,
}

impl Replayer {
    pub fn new(setup: Setup) -> Replayer {
        Replayer { setup, differences: Arc::default(), replayed: Arc::default() }
    }

    /// The checker's visitor: replays each path it is given.
    pub fn visitor(&self) -> impl Fn(Path<State, Action>) + Send + Sync + 'static {
        let me = self.clone();
        move |path| me.visit(path)
    }

    fn visit(&self, path: Path<State, Action>) {
        // A planted defect is the model's, not the implementation's.
        if self.setup.defect.is_some() {
            return;
        }
        self.replayed.fetch_add(1, Ordering::Relaxed);
        let steps = path.into_vec();
        if let Err(difference) = replay(self.setup, &steps) {
            let mut kept = self.differences.lock().unwrap_or_else(|e| e.into_inner());
            if kept.len() < KEEP {
                kept.push(format!("{difference}\n{}", session_vector(&steps)));
            }
        }
    }

    pub fn replayed(&self) -> usize {
        self.replayed.load(Ordering::Relaxed)
    }

    pub fn differences(&self) -> Vec<String> {
        let kept = self.differences.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().map(|d| format!("the implementation differs from the model: {d}")).collect()
    }
}

/// The two cores and the bytes between them.
struct Real {
    server: ServerConnection,
    client: ClientConnection,
    to_server: BytesMut,
    to_client: BytesMut,
    server_decoder: FrameDecoder,
    client_decoder: FrameDecoder,
    /// Frames the client core produced for messages not yet on the stream.
    unsent: BTreeMap<u32, VecDeque<Frame>>,
    /// The model's call ids and the client core's.
    ids: HashMap<RequestId, u8>,
    /// Requests in handlers: (channel, seq) → body.
    handlers: HashMap<(u32, u64), (Bytes, Bytes)>,
    /// What ended the server's reading, as its close frame will say.
    ending: Option<String>,
    /// Answer bytes the client core delivered so far, per call.
    delivered: HashMap<u8, Vec<u8>>,
}

/// Frames are chunked by the cores' limits; the streams take any frame
/// within the defaults (a close frame's reason may be longer than a chunk).
fn encode(frame: &Frame, out: &mut BytesMut) -> Result<(), String> {
    encode_frame(frame, &FrameLimits::default(), out).map_err(|e| format!("the encoder refuses {frame:?}: {e}"))
}

/// The model's frame without its notes, to compare with a core's.
fn plain(frame: &WireFrame) -> WireFrame {
    WireFrame { bad: false, call: None, ..frame.clone() }
}

fn check<T: PartialEq + std::fmt::Debug>(what: &str, real: T, model: T) -> Result<(), String> {
    if real == model {
        Ok(())
    } else {
        Err(format!("{what}: the core has {real:?}, the model {model:?}"))
    }
}

fn held_of(state: &State) -> [usize; 5] {
    let h = state.server.held;
    [h.assembling, h.handed_out, h.answers, h.waiting, h.channels]
}

impl Real {
    fn new(setup: Setup) -> Real {
        let config = {
            let mut cfg = ServerConfig::default();
            cfg.frame_limits = limits();
            cfg.max_channels = setup.max_channels;
            cfg.max_message = ServerConfig::default().max_message;
            cfg.max_held_bytes = setup.budget;
            cfg
        };
        Real {
            server: ServerConnection::new(config),
            client: ClientConnection::new(limits()),
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
            server_decoder: FrameDecoder::new(limits()),
            client_decoder: FrameDecoder::new(FrameLimits::default()),
            unsent: BTreeMap::new(),
            ids: HashMap::new(),
            handlers: HashMap::new(),
            ending: None,
            delivered: HashMap::new(),
        }
    }

    fn held(&self) -> [usize; 5] {
        let h = self.server.held();
        [h.assembling, h.handed_out, h.answers, h.waiting, h.channels]
    }

    /// The client core begins the call the model began: its frames must be
    /// the model's.
    fn begin(&mut self, before: &State, after: &State, channel: u32) -> Result<(), String> {
        let call = after.client.next_call - 1;
        let result = match after.client.awaiting.get(&channel).and_then(|c| c.back()).map(|c| c.what) {
            Some(crate::client::What::Hello) => self.client.request(0, "/sys/hello", Bytes::from_static(HELLO)),
            Some(crate::client::What::Echo { long }) => {
                self.client.request(channel, "/echo", Bytes::from(crate::client::echo_body(call, long)))
            }
            Some(crate::client::What::Open) => self.client.open_channel(0),
            Some(crate::client::What::Delete) => {
                self.client.delete_channel(channel).map(|()| RequestId(u64::MAX - u64::from(call)))
            }
            None => return Err("the model began no call".into()),
        };
        let id = result.map_err(|e| format!("the client core refuses call {call}: {e}"))?;
        self.ids.insert(id, call);
        let mut frames = Vec::new();
        self.client.drain_transmit(&mut frames);
        let skip = before.client.unsent.get(&channel).map_or(0, VecDeque::len);
        let model: Vec<WireFrame> =
            after.client.unsent.get(&channel).into_iter().flatten().skip(skip).map(plain).collect();
        check(
            "the frames of a call",
            frames.iter().map(from_frame).collect::<Vec<_>>(),
            model.into_iter().map(Some).collect(),
        )?;
        self.unsent.entry(channel).or_default().extend(frames);
        Ok(())
    }

    fn step(&mut self, before: &State, action: &Action, after: &State) -> Result<(), String> {
        match action {
            Action::Hello => self.begin(before, after, 0)?,
            Action::Call { channel, .. } | Action::Delete { channel } => self.begin(before, after, *channel)?,
            Action::Open => self.begin(before, after, 0)?,
            Action::Send { channel } => {
                let frame = self.unsent.get_mut(channel).and_then(VecDeque::pop_front).ok_or("no frame to send")?;
                encode(&frame, &mut self.to_server)?;
            }
            Action::Close => encode(&Frame::close(0), &mut self.to_server)?,
            Action::Break(_) => match after.to_server.back() {
                Some(Wire::Frame(frame)) => encode(&to_frame(frame), &mut self.to_server)?,
                Some(Wire::Garbage) => self.to_server.extend_from_slice(&GARBAGE),
                other => return Err(format!("a breach put {other:?} on the stream")),
            },
            Action::ClientRead => self.client_read(before, after)?,
            Action::ServerRead => self.server_read(before, after)?,
            Action::Answer { channel, seq } => self.answer(before, after, *channel, *seq)?,
            Action::Write => {
                let frames: Vec<Option<WireFrame>> = self.server.transmit().map(|f| from_frame(&f)).collect();
                // As the tokio shell: the hello is sent once nothing of the
                // client's is left unread ([EXT-4]).
                if self.to_server.is_empty() {
                    self.server.hello_sent();
                }
                let model: Vec<Option<WireFrame>> = before.server.outbox.iter().map(|f| Some(plain(f))).collect();
                check("the frames written", frames.clone(), model)?;
                for frame in before.server.outbox.iter() {
                    encode(&to_frame(frame), &mut self.to_client)?;
                }
            }
            Action::Shutdown => {
                if after.server.going_away_sent {
                    self.server.going_away(GRACE_MS);
                }
            }
            Action::GraceOver => {}
            Action::Finish => {
                let reason = match before.server.stage {
                    ServerStage::Stopped(Ending::PeerClosed) => None,
                    ServerStage::Stopped(Ending::Shutdown) => Some("server shutting down".to_string()),
                    _ => Some(self.ending.clone().ok_or("the server ended with no reason")?),
                };
                if let Some(reason) = reason {
                    let frame = ServerConnection::close_frame(&reason);
                    let Some(Wire::Frame(model)) = after.to_client.iter().rev().nth(1) else {
                        return Err(format!("the core sends the close frame {reason:?}, the model none"));
                    };
                    if !frame.data.starts_with(&model.data) {
                        return Err(format!(
                            "close frame {reason:?}, the model's begins {:?}",
                            String::from_utf8_lossy(&model.data)
                        ));
                    }
                    encode(&frame, &mut self.to_client)?;
                }
            }
        }
        check("the bytes held [assembling, handed out, answers, waiting, channels]", self.held(), held_of(after))?;
        Ok(())
    }

    fn server_read(&mut self, before: &State, after: &State) -> Result<(), String> {
        let decoded = self.server_decoder.decode(&mut self.to_server);
        if before.server.stage != ServerStage::Reading {
            // Read and discarded ([CLOSE-11]): a shell that stopped reading
            // on its own (a shutdown) gives the core nothing; a core that
            // stopped on a close frame or an error acts on nothing it is given.
            if let (true, Ok(Some(frame))) = (self.server.is_closed(), decoded) {
                let queued = self.server.queued_frames();
                let result = self.server.receive(frame);
                if !matches!(result, Ok(None)) || self.server.queued_frames() != queued {
                    return Err(format!("a frame after the end was acted on: {result:?}"));
                }
            }
            return Ok(());
        }
        let frame = match decoded {
            Err(e) => {
                check("the framing error cited", Some(e.kind.requirement()), model_error(after))?;
                self.ending = Some(e.to_string());
                return Ok(());
            }
            Ok(None) => return Err("the decoder found no whole frame where the model read one".into()),
            Ok(Some(frame)) => frame,
        };
        let new_handlers: Vec<(u32, u64)> =
            after.server.handlers.difference(&before.server.handlers).copied().collect();
        match self.server.receive(frame) {
            Err(e) => {
                check("the protocol error cited", Some(e.requirement()), model_error(after))?;
                self.ending = Some(e.to_string());
            }
            Ok(Some(ServerEvent::PeerClosed { .. })) => {
                check("the server's stage", ServerStage::Stopped(Ending::PeerClosed), after.server.stage)?;
            }
            Ok(Some(ServerEvent::Request(request))) => {
                check("the request handed out", vec![(request.channel, request.seq)], new_handlers)?;
                self.handlers.insert((request.channel, request.seq), (request.route, request.body));
            }
            Ok(None) => {
                check("requests handed out", Vec::<(u32, u64)>::new(), new_handlers)?;
                check("the server's stage", before.server.stage, after.server.stage)?;
            }
            Ok(Some(other)) => return Err(format!("an event the model has no step for: {other:?}")),
        }
        let channels: Vec<u32> = after.server.channels.keys().copied().collect();
        if self.server.is_closed() != (after.server.stage != ServerStage::Reading) {
            return Err(format!(
                "the core is closed: {}, the model's server {:?}",
                self.server.is_closed(),
                after.server.stage
            ));
        }
        if after.server.stage == ServerStage::Reading {
            check("the channels", self.server.channel_ids(), channels)?;
        }
        Ok(())
    }

    fn answer(&mut self, before: &State, after: &State, channel: u32, seq: u64) -> Result<(), String> {
        let (route, body) = self.handlers.remove(&(channel, seq)).ok_or("the core handed out no such request")?;
        if &route[..] == b"/sys/hello" {
            // What the server shell answers and then puts in force.
            let offer = HelloRequest::parse(&body).ok_or("the hello offer does not parse")?;
            let answer = ServerExtensions::default().agree(&offer);
            let text = serde_json::to_vec(&answer).map_err(|e| e.to_string())?;
            let model = after.server.channels.get(&channel).and_then(|c| {
                c.slots.iter().find(|s| s.seq == seq).map(|s| match &s.answer {
                    crate::server::Answer::Ready { body, .. } => body.clone(),
                    crate::server::Answer::Waiting { body } => body.clone(),
                })
            });
            let sent = after.server.outbox.iter().skip(before.server.outbox.len()).find(|f| f.channel == channel);
            let model = model.or_else(|| sent.map(|f| f.data.clone()));
            check("the hello's answer", Some(text.clone()), model)?;
            self.server.respond(channel, seq, Bytes::from(text));
            self.server.hello_completed(
                false,
                answer.extensions.body_codec(ServerConfig::default().max_message),
                answer.extensions.metadata_max(),
            );
        } else if !self.server.respond(channel, seq, body) {
            return Err(format!("the core takes no answer for ({channel}, {seq})"));
        }
        Ok(())
    }

    fn client_read(&mut self, before: &State, after: &State) -> Result<(), String> {
        let decoded = self.client_decoder.decode(&mut self.to_client).map_err(|e| format!("the client decodes {e}"))?;
        // A delete's answer is not awaited by the client core ([COMPAT-2]):
        // it fails no call when the connection ends.
        let deletes: BTreeSet<u8> = before
            .client
            .awaiting
            .values()
            .flatten()
            .filter(|c| c.what == crate::client::What::Delete)
            .map(|c| c.id)
            .collect();
        let newly_failed = |state: &State| -> BTreeSet<u8> {
            state.client.outcomes.iter().filter(|(_, o)| **o == Outcome::Failed).map(|(&id, _)| id).collect()
        };
        let failed: BTreeSet<u8> =
            newly_failed(after).difference(&newly_failed(before)).filter(|id| !deletes.contains(id)).copied().collect();
        let Some(frame) = decoded else {
            // The end of the stream: every call still waiting fails ([CLOSE-5]).
            let ids = self.client.close();
            return check("the calls failed", self.model_ids(&ids), failed);
        };
        let event = self.client.receive(frame).map_err(|e| format!("the client core refuses a frame: {e}"))?;
        let new: Vec<(u8, Outcome)> = after
            .client
            .outcomes
            .iter()
            .filter(|(id, o)| before.client.outcomes.get(id) != Some(o))
            .map(|(&id, &o)| (id, o))
            .collect();
        match event {
            Some(ClientEvent::PeerClosed { .. }) => {
                let ids = self.client.close();
                check("the calls failed", self.model_ids(&ids), failed)?;
            }
            Some(ClientEvent::GoingAway { .. }) => {
                let model = matches!(before.to_client.front(), Some(Wire::Frame(f)) if f.route == Some(crate::model::Route::GoingAway));
                check("a going-away frame", true, model)?;
            }
            Some(ClientEvent::Response { id, data, complete }) => {
                let call = *self.ids.get(&id).ok_or("a response to a call the model did not make")?;
                self.delivered.entry(call).or_default().extend_from_slice(&data);
                if complete {
                    let body = self.delivered.remove(&call).unwrap_or_default();
                    let expected = match before.to_client.front() {
                        Some(Wire::Frame(f)) => {
                            let mut b = before.client.partial.get(&f.channel).cloned().unwrap_or_default();
                            b.extend_from_slice(&f.data);
                            b
                        }
                        _ => Vec::new(),
                    };
                    check("the answer delivered", body.clone(), expected)?;
                    check("the call answered", Some(call), new.first().map(|(id, _)| *id))?;
                    if before.client.stage == ClientStage::Hello {
                        let going_away = crate::client::offers_going_away(&body);
                        self.client.set_extensions(None, going_away, false);
                    }
                } else {
                    check("outcomes", Vec::new(), new)?;
                }
            }
            Some(ClientEvent::ChannelOpened { id, channel }) => {
                let call = self.ids.get(&id).copied();
                check("the grant", vec![(call.unwrap_or(u8::MAX), Outcome::Granted(channel))], new)?;
            }
            Some(ClientEvent::ChannelRefused { id, code, .. }) => {
                let call = self.ids.get(&id).copied();
                check("the refusal", vec![(call.unwrap_or(u8::MAX), Outcome::Refused(code))], new)?;
            }
            None => {
                // A delete's answer, or a part of a grant.
                let deletes: Vec<(u8, Outcome)> = new.into_iter().filter(|(_, o)| *o != Outcome::Answered).collect();
                check("outcomes of a frame the core keeps to itself", Vec::new(), deletes)?;
            }
            Some(other) => return Err(format!("unexpected client event {other:?}")),
        }
        Ok(())
    }

    fn model_ids(&self, ids: &[RequestId]) -> BTreeSet<u8> {
        ids.iter().filter_map(|id| self.ids.get(id).copied()).collect()
    }
}

/// The requirement the model's server stopped on, if an error stopped it.
fn model_error(state: &State) -> Option<&'static str> {
    match state.server.stage {
        ServerStage::Stopped(Ending::Error(id)) => Some(id),
        _ => None,
    }
}

/// Replays one path from its first state.
fn replay(setup: Setup, steps: &[(State, Option<Action>)]) -> Result<(), String> {
    let mut real = Real::new(setup);
    for (i, pair) in steps.windows(2).enumerate() {
        let [(before, Some(action)), (after, _)] = pair else { continue };
        real.step(before, action, after).map_err(|e| format!("step {} ({action:?}): {e}", i + 1))?;
    }
    Ok(())
}

/// Data as a vector writes it: text when it is printable ASCII, else hex.
fn data_field(data: &[u8]) -> String {
    if data.iter().all(|b| (0x20..0x7f).contains(b) && *b != b'"' && *b != b'\\') {
        format!("\"{}\"", String::from_utf8_lossy(data))
    } else {
        let hex: Vec<String> = data.iter().map(|b| format!("{b:02x}")).collect();
        format!("{{ hex = \"{}\" }}", hex.join(" "))
    }
}

fn frame_fields(frame: &WireFrame) -> String {
    let path = frame.route.map_or(String::new(), |r| String::from_utf8_lossy(r.path()).into_owned());
    format!(
        "status = {}, path = \"{path}\", channel = {}, data = {}",
        frame.status,
        frame.channel,
        data_field(&frame.data)
    )
}

/// A path as a session vector (`vectors/sessions/`): what the client sends
/// and what the server answers, frame by frame, in the path's order.
pub fn session_vector(steps: &[(State, Option<Action>)]) -> String {
    let mut out =
        String::from("[[case]]\nname = \"model-path\"\ndescription = \"A path of the model checker.\"\nsteps = [\n");
    for pair in steps.windows(2) {
        let [(before, Some(action)), (after, _)] = pair else { continue };
        let line = match action {
            Action::Send { .. } | Action::Close | Action::Break(_) => match after.to_server.back() {
                Some(Wire::Frame(frame)) => format!("  {{ send = {{ {} }} }},", frame_fields(frame)),
                Some(Wire::Garbage) => format!("  {{ send_raw = {{ hex = \"{:02x}\" }} }},", GARBAGE[0]),
                _ => continue,
            },
            Action::ClientRead => match before.to_client.front() {
                Some(Wire::Frame(frame)) => format!("  {{ expect = {{ {} }} }},", frame_fields(frame)),
                Some(Wire::End) => "  # the server closes the connection".to_string(),
                _ => continue,
            },
            other => format!("  # {other:?}"),
        };
        let _ = writeln!(out, "{line}");
    }
    out.push_str("]\n");
    out
}

/// A counterexample path as a session vector.
pub fn describe(path: &Path<State, Action>) -> String {
    session_vector(&path.clone().into_vec())
}
