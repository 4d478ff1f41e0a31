//! A proptest state-machine test of the server core against a small
//! reference model whose message transitions are read from the spec's
//! `message-transitions` table: random interleavings of opening channels,
//! whole and chunked requests, answers in any order, deletes and close. Model
//! and core must agree on every frame sent and every error.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use iip::conformance::spec::table;
use iip::proto::server::{ServerConfig, ServerConnection, ServerEvent};
use iip::{Frame, FrameDecoder, FrameLimits, MessageKind, Position, Status};
use proptest::prelude::*;

const MAX_CHANNELS: u32 = 4;
const CHANNELS: [u32; 5] = [0, 1, 2, 3, 7];

#[derive(Debug, Clone, Copy)]
enum Route {
    Echo,
    NewChannel,
    Delete,
}

impl Route {
    fn path(self) -> &'static [u8] {
        match self {
            Route::Echo => b"/echo",
            Route::NewChannel => b"/sys/new_channel",
            Route::Delete => b"/sys/delete_channel",
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Send { channel: u32, position: Position, route: Route, body: Vec<u8> },
    Answer { pick: usize },
    Close,
}

fn arb_op() -> impl Strategy<Value = Op> {
    let position = prop_oneof![
        6 => Just(Position::Whole),
        2 => Just(Position::FirstMore),
        2 => Just(Position::ContinueMore),
        2 => Just(Position::Last),
    ];
    let route = prop_oneof![6 => Just(Route::Echo), 3 => Just(Route::NewChannel), 2 => Just(Route::Delete)];
    prop_oneof![
        10 => (prop_oneof![3 => Just(0u32), 2 => proptest::sample::select(&CHANNELS[..])], position, route, proptest::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(channel, position, route, body)| Op::Send { channel, position, route, body }),
        5 => any::<usize>().prop_map(|pick| Op::Answer { pick }),
        1 => Just(Op::Close),
    ]
}

/// The message transitions, as the spec's table states them.
fn transitions() -> HashMap<(String, String), String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec/07-messages.md");
    let t = table(&std::fs::read_to_string(path).unwrap(), "message-transitions").unwrap();
    t.rows.iter().map(|r| ((r[0].clone(), r[1].clone()), r[2].clone())).collect()
}

fn position_name(p: Position) -> &'static str {
    match p {
        Position::FirstMore => "first-more",
        Position::Whole => "whole",
        Position::ContinueMore => "continue-more",
        Position::Last => "last",
    }
}

/// A response frame: channel, path, data.
type Sent = (u32, Vec<u8>, Vec<u8>);

#[derive(Debug)]
enum Pending {
    /// An application request waiting for its answer, by id.
    App(u64),
    /// A ready system answer; `deletes` when sending it removes the channel.
    Ready { body: Vec<u8>, deletes: bool },
    /// An application answer given and not yet sent.
    Answered(Vec<u8>),
}

#[derive(Debug, Default)]
struct ModelChannel {
    message: String,
    deleting: bool,
    path: Vec<u8>,
    body: Vec<u8>,
    queue: VecDeque<(Vec<u8>, Pending)>,
}

#[derive(Debug)]
struct Model {
    table: HashMap<(String, String), String>,
    channels: BTreeMap<u32, ModelChannel>,
    next_app: u64,
    /// Unanswered application requests: model id → (channel).
    open_apps: BTreeMap<u64, u32>,
    closed: bool,
}

impl Model {
    fn new() -> Model {
        let mut channels = BTreeMap::new();
        channels.insert(0, ModelChannel { message: "idle".into(), ..ModelChannel::default() });
        Model { table: transitions(), channels, next_app: 0, open_apps: BTreeMap::new(), closed: false }
    }

    /// Returns Err on a protocol error, else the frames now due.
    fn send(&mut self, channel: u32, position: Position, route: Route, body: &[u8]) -> Result<Vec<Sent>, ()> {
        let Some(ch) = self.channels.get_mut(&channel) else { return Err(()) };
        if ch.deleting {
            return Err(());
        }
        let next = self.table.get(&(ch.message.clone(), position_name(position).to_string())).ok_or(())?.clone();
        if matches!(position, Position::Whole | Position::FirstMore) {
            ch.path = route.path().to_vec();
            ch.body.clear();
        }
        ch.body.extend_from_slice(body);
        ch.message = next;
        if !matches!(position, Position::Whole | Position::Last) {
            return Ok(vec![]);
        }
        let (path, body) = (ch.path.clone(), std::mem::take(&mut ch.body));
        match path.as_slice() {
            b"/sys/new_channel" => {
                let body = if (self.channels.len() as u32) < MAX_CHANNELS {
                    let id = (1..).find(|i| !self.channels.contains_key(i)).unwrap_or(u32::MAX);
                    self.channels.insert(id, ModelChannel { message: "idle".into(), ..ModelChannel::default() });
                    format!("{{\"code\":0,\"channel_id\":{id}}}").into_bytes()
                } else {
                    br#"{"code":106,"message":"channel create limited"}"#.to_vec()
                };
                self.queue(channel, path, Pending::Ready { body, deletes: false });
            }
            b"/sys/delete_channel" if channel == 0 => {
                self.queue(
                    0,
                    path,
                    Pending::Ready {
                        body: br#"{"code":109,"message":"channel not deletable"}"#.to_vec(),
                        deletes: false,
                    },
                );
            }
            b"/sys/delete_channel" => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.deleting = true;
                }
                self.queue(channel, path, Pending::Ready { body: br#"{"code":0}"#.to_vec(), deletes: true });
            }
            _ => {
                self.next_app += 1;
                self.open_apps.insert(self.next_app, channel);
                let _ = body;
                self.queue(channel, path, Pending::App(self.next_app));
            }
        }
        Ok(self.flush())
    }

    fn queue(&mut self, channel: u32, path: Vec<u8>, pending: Pending) {
        if let Some(ch) = self.channels.get_mut(&channel) {
            ch.queue.push_back((path, pending));
        }
    }

    fn answer(&mut self, app: u64, body: Vec<u8>) -> Vec<Sent> {
        if let Some(channel) = self.open_apps.remove(&app) {
            if let Some(ch) = self.channels.get_mut(&channel) {
                for (_, pending) in ch.queue.iter_mut() {
                    if matches!(pending, Pending::App(id) if *id == app) {
                        *pending = Pending::Answered(body);
                        break;
                    }
                }
            }
        }
        self.flush()
    }

    /// Sends what is due, in request order per channel ([ORDER-2]).
    fn flush(&mut self) -> Vec<Sent> {
        let mut out = Vec::new();
        let ids: Vec<u32> = self.channels.keys().copied().collect();
        for id in ids {
            while let Some(ch) = self.channels.get_mut(&id) {
                let ready = matches!(ch.queue.front(), Some((_, Pending::Ready { .. } | Pending::Answered(_))));
                if !ready {
                    break;
                }
                let Some((path, pending)) = ch.queue.pop_front() else { break };
                match pending {
                    Pending::Ready { body, deletes } => {
                        out.push((id, path, body));
                        if deletes {
                            self.channels.remove(&id);
                            break;
                        }
                    }
                    Pending::Answered(body) => out.push((id, path, body)),
                    Pending::App(_) => unreachable!("checked ready above"),
                }
            }
        }
        out
    }
}

/// The frames written into `out`, as `drain` gives them.
fn decode_all(out: &mut BytesMut) -> BTreeSet<Sent> {
    let mut decoder = FrameDecoder::new(FrameLimits::default());
    std::iter::from_fn(|| decoder.decode(out).ok().flatten())
        .map(|f| (f.channel, f.path.to_vec(), f.data.to_vec()))
        .collect()
}

fn drain(core: &mut ServerConnection) -> BTreeSet<Sent> {
    core.transmit().map(|f| (f.channel, f.path.to_vec(), f.data.to_vec())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn core_agrees_with_the_model(ops in proptest::collection::vec(arb_op(), 1..60)) {
        let mut model = Model::new();
        let mut core = ServerConnection::new({ let mut cfg = ServerConfig::default(); cfg.max_channels = MAX_CHANNELS; cfg });
        // Core request (channel, seq) for each model application id.
        let mut handed_out: BTreeMap<u64, (u32, u64, Vec<u8>)> = BTreeMap::new();
        let mut next_app = 0u64;
        let mut compared = 0usize;
        for op in ops {
            if model.closed {
                // A protocol error or close ends a connection: go on with a new one.
                model = Model::new();
                core = ServerConnection::new({ let mut cfg = ServerConfig::default(); cfg.max_channels = MAX_CHANNELS; cfg });
                handed_out.clear();
                next_app = 0;
            }
            compared += 1;
            match op {
                Op::Send { channel, position, route, body } => {
                    let status = Status::message(MessageKind::Request, position);
                    let frame = Frame::new(status, Bytes::from_static(route.path()), channel, Bytes::from(body.clone()));
                    let expected = model.send(channel, position, route, &body);
                    // Every frame is offered for a direct answer first; a
                    // frame that is not direct goes the usual way. A direct
                    // request with an even first byte is answered at once
                    // (written out, or queued when it may not be), one with
                    // an odd first byte deferred to be answered later.
                    let mut written = BytesMut::new();
                    let (actual, direct) = match core.direct(&frame) {
                        Some(direct) => {
                            prop_assert_eq!(direct.channel(), channel);
                            let route = Bytes::from_static(route.path());
                            let outcome = if body[0] % 2 == 0 {
                                direct.answer(&route, Bytes::from(body.clone()), Some(&mut written));
                                None
                            } else {
                                Some(direct.defer(route, body.len()))
                            };
                            (Ok(None), Some(outcome))
                        }
                        None => (core.receive(frame), None),
                    };
                    match (&expected, &actual) {
                        (Err(()), Err(_)) => {
                            model.closed = true;
                            continue;
                        }
                        (Ok(_), Ok(_)) => {}
                        _ => prop_assert!(false, "model {expected:?} but core {actual:?} for {status} on {channel}"),
                    }
                    if let Ok(Some(ServerEvent::Request(r))) = actual {
                        next_app += 1;
                        handed_out.insert(next_app, (r.channel, r.seq, r.body.to_vec()));
                    }
                    let mut expected: BTreeSet<_> = expected.unwrap_or_default().into_iter().collect();
                    let mut sent = decode_all(&mut written);
                    sent.extend(drain(&mut core));
                    match direct {
                        Some(None) => {
                            next_app += 1;
                            expected.extend(model.answer(next_app, body));
                        }
                        Some(Some(seq)) => {
                            next_app += 1;
                            handed_out.insert(next_app, (channel, seq, body));
                        }
                        None => {}
                    }
                    prop_assert_eq!(sent, expected);
                }
                Op::Answer { pick } => {
                    if handed_out.is_empty() {
                        continue;
                    }
                    let key = *handed_out.keys().nth(pick % handed_out.len()).unwrap_or(&0);
                    let Some((channel, seq, body)) = handed_out.remove(&key) else { continue };
                    prop_assert!(core.respond(channel, seq, Bytes::from(body.clone())));
                    let expected: BTreeSet<_> = model.answer(key, body).into_iter().collect();
                    prop_assert_eq!(drain(&mut core), expected);
                }
                Op::Close => {
                    let closed = matches!(core.receive(Frame::close(0)), Ok(Some(ServerEvent::PeerClosed { .. })));
                    prop_assert!(closed, "a close frame must close");
                    model.closed = true;
                }
            }
        }
        prop_assert!(compared > 0);
    }
}
