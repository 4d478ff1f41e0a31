//! The client of the model: an honest client as chapters 6, 7, 11 and 14
//! ask (it sends on channels it holds, waits for its hello's answer,
//! reads every answer, and leaves when told to), and, in the hostile
//! configurations, one frame that breaks a rule.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::model::{Action, Breach, Iip, Route, Setup, Wire, WireFrame, LONG, SHORT};
use crate::server::chunk;
use crate::tables::{Kind, Position};

/// The hello the client offers: `going_away` ([EXT-16]).
pub const HELLO: &[u8] = br#"{"revision":1,"extensions":{"going_away":{}}}"#;

/// Whether a hello body offers `going_away`.
pub fn offers_going_away(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).ok().is_some_and(|v| v["extensions"]["going_away"].is_object())
}

/// Where the client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Nothing sent yet.
    Fresh,
    /// Its hello is sent and not answered: it sends nothing else ([EXT-4]).
    Hello,
    Ready,
    /// Told to go away: sends nothing new, closes once answered ([EXT-16]).
    Leaving,
    /// Sent its close frame; still reads ([CLOSE-6]).
    Closed,
    /// Read the server's close frame or the end of the stream.
    Gone,
}

/// What a call asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum What {
    Echo { long: bool },
    Open,
    Delete,
    Hello,
}

/// A call waiting for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Call {
    pub id: u8,
    pub what: What,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Its own answer.
    Answered,
    /// A channel granted.
    Granted(u32),
    /// An error answer of this code.
    Refused(i64),
    /// The connection closed first ([CLOSE-5]).
    Failed,
    /// An answer that is not this call's.
    Wrong,
}

/// What the client may still do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Allowance {
    pub requests: u8,
    pub opens: u8,
    pub deletes: u8,
    pub breaches: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Client {
    pub stage: Stage,
    pub going_away: bool,
    /// Channels it may send on: 0 and those granted and not deleted.
    pub open: BTreeSet<u32>,
    /// Channels it deleted and was not granted again.
    pub deleted: BTreeSet<u32>,
    pub awaiting: BTreeMap<u32, VecDeque<Call>>,
    /// Frames of messages begun and not yet on the stream, per channel.
    pub unsent: BTreeMap<u32, VecDeque<WireFrame>>,
    /// Frames of an answer read so far, per channel.
    pub partial: BTreeMap<u32, Vec<u8>>,
    pub left: Allowance,
    pub next_call: u8,
    pub outcomes: BTreeMap<u8, Outcome>,
    // What the properties look at.
    /// A response that answers no request ([ORDER-7]).
    pub unexpected: bool,
    /// A grant of an id the client already holds.
    pub double_grant: bool,
}

/// The body of echo call `id`: its own bytes, so that an answer out of
/// order is seen.
pub fn echo_body(id: u8, long: bool) -> Vec<u8> {
    vec![b'a' + id % 26; if long { LONG } else { SHORT }]
}

impl Client {
    pub fn new(setup: &Setup) -> Client {
        Client {
            stage: Stage::Fresh,
            going_away: false,
            open: BTreeSet::from([0]),
            deleted: BTreeSet::new(),
            awaiting: BTreeMap::new(),
            unsent: BTreeMap::new(),
            partial: BTreeMap::new(),
            left: Allowance {
                requests: setup.requests,
                opens: setup.opens,
                deletes: setup.deletes,
                breaches: u8::from(setup.hostile),
            },
            next_call: 0,
            outcomes: BTreeMap::new(),
            unexpected: false,
            double_grant: false,
        }
    }

    fn idle(&self, channel: u32) -> bool {
        self.unsent.get(&channel).is_none_or(VecDeque::is_empty)
    }

    /// Calls without an outcome.
    pub fn outstanding(&self) -> usize {
        self.awaiting.values().map(VecDeque::len).sum()
    }

    pub fn actions(&self, setup: &Setup, input: &VecDeque<Wire>, actions: &mut Vec<Action>) {
        if self.stage == Stage::Gone {
            return;
        }
        if !input.is_empty() {
            actions.push(Action::ClientRead);
        }
        actions.extend(self.unsent.iter().filter(|(_, f)| !f.is_empty()).map(|(&channel, _)| Action::Send { channel }));
        let all_sent = self.unsent.values().all(VecDeque::is_empty);
        let may_close = setup.close && all_sent && (setup.close_early || self.outstanding() == 0);
        match self.stage {
            Stage::Fresh | Stage::Ready => {}
            Stage::Leaving if all_sent && self.outstanding() == 0 => {
                actions.push(Action::Close);
                return;
            }
            _ => return,
        }
        if self.stage == Stage::Fresh && setup.hello {
            actions.push(Action::Hello);
        }
        if self.left.requests > 0 {
            for &channel in self.open.iter().filter(|&&c| self.idle(c)) {
                actions.push(Action::Call { channel, long: false });
                if setup.chunked {
                    actions.push(Action::Call { channel, long: true });
                }
            }
        }
        if self.left.opens > 0 && self.idle(0) {
            actions.push(Action::Open);
        }
        if self.left.deletes > 0 {
            for &channel in self.open.iter().filter(|&&c| c != 0 && self.idle(c)) {
                actions.push(Action::Delete { channel });
            }
        }
        if self.left.breaches > 0 {
            actions.push(Action::Break(Breach::UnknownChannel));
            actions.push(Action::Break(Breach::Garbage));
            // Once its delete is on the stream.
            if self.deleted.first().is_some_and(|&c| self.idle(c)) {
                actions.push(Action::Break(Breach::DeletedChannel));
            }
            if self.idle(0) {
                actions.push(Action::Break(Breach::NoMessageOpen));
            }
        }
        if may_close {
            actions.push(Action::Close);
        }
    }

    /// Begins a call: its frames wait to be put on the stream.
    fn begin(&mut self, model: &Iip, channel: u32, route: Route, what: What, body: &[u8]) {
        let id = self.next_call;
        self.next_call += 1;
        let frames = chunk(&model.tables, Kind::Request, route, channel, body, Some(id));
        self.unsent.entry(channel).or_default().extend(frames);
        self.awaiting.entry(channel).or_default().push_back(Call { id, what });
        if self.stage == Stage::Fresh {
            self.stage = if what == What::Hello { Stage::Hello } else { Stage::Ready };
        }
    }

    pub fn act(&mut self, model: &Iip, action: Action, output: &mut VecDeque<Wire>) -> Option<()> {
        match action {
            Action::Hello => self.begin(model, 0, Route::Hello, What::Hello, HELLO),
            Action::Call { channel, long } => {
                self.left.requests -= 1;
                let body = echo_body(self.next_call, long);
                self.begin(model, channel, Route::Echo, What::Echo { long }, &body);
            }
            Action::Open => {
                self.left.opens -= 1;
                self.begin(model, 0, Route::NewChannel, What::Open, b"{}");
            }
            Action::Delete { channel } => {
                self.left.deletes -= 1;
                self.begin(model, channel, Route::Delete, What::Delete, b"{}");
                self.open.remove(&channel);
                self.deleted.insert(channel);
            }
            Action::Send { channel } => {
                let frame = self.unsent.get_mut(&channel)?.pop_front()?;
                output.push_back(Wire::Frame(frame));
            }
            Action::Close => {
                let frame = WireFrame { status: 8, route: None, channel: 0, data: Vec::new(), bad: false, call: None };
                output.push_back(Wire::Frame(frame));
                self.stage = Stage::Closed;
            }
            Action::Break(breach) => {
                self.left.breaches -= 1;
                let tables = &model.tables;
                let bad = |channel, position| WireFrame {
                    status: tables.status(Kind::Request, Some(position)),
                    route: Some(Route::Echo),
                    channel,
                    data: b"x".to_vec(),
                    bad: true,
                    call: None,
                };
                let wire = match breach {
                    Breach::UnknownChannel => Wire::Frame(bad(model.setup.max_channels + 5, Position::Whole)),
                    Breach::DeletedChannel => Wire::Frame(bad(*self.deleted.first()?, Position::Whole)),
                    Breach::NoMessageOpen => Wire::Frame(bad(0, Position::Last)),
                    Breach::Garbage => Wire::Garbage,
                };
                output.push_back(wire);
            }
            _ => return None,
        }
        Some(())
    }

    /// Every call still waiting fails ([CLOSE-5]).
    fn fail_all(&mut self) {
        for (_, calls) in std::mem::take(&mut self.awaiting) {
            for call in calls {
                self.outcomes.insert(call.id, Outcome::Failed);
            }
        }
        self.stage = Stage::Gone;
    }

    pub fn read(&mut self, model: &Iip, input: &mut VecDeque<Wire>) -> Option<()> {
        let frame = match input.pop_front()? {
            Wire::End | Wire::Garbage => {
                self.fail_all();
                return Some(());
            }
            Wire::Frame(frame) => frame,
        };
        let position = match model.tables.meaning(frame.status) {
            Some((Kind::Close, _)) => {
                self.fail_all();
                return Some(());
            }
            Some((Kind::Response, Some(position))) => position,
            _ => {
                self.unexpected = true;
                return Some(());
            }
        };
        let channel = frame.channel;
        if frame.route == Some(Route::GoingAway) && channel == 0 && self.going_away {
            if matches!(self.stage, Stage::Ready | Stage::Fresh) {
                self.stage = Stage::Leaving;
            }
            return Some(());
        }
        let Some(&call) = self.awaiting.get(&channel).and_then(VecDeque::front) else {
            self.unexpected = true;
            return Some(());
        };
        let partial = self.partial.entry(channel).or_default();
        partial.extend_from_slice(&frame.data);
        if !matches!(position, Position::Whole | Position::Last) {
            return Some(());
        }
        let body = self.partial.remove(&channel).unwrap_or_default();
        self.awaiting.get_mut(&channel)?.pop_front();
        let refused = || {
            serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["code"].as_i64()).filter(|&c| c != 0)
        };
        let outcome = match call.what {
            What::Echo { long } if body == echo_body(call.id, long) => Outcome::Answered,
            What::Open => match serde_json::from_slice::<serde_json::Value>(&body).ok() {
                Some(v) if v["code"] == 0 => {
                    let granted = v["channel_id"].as_u64().and_then(|n| u32::try_from(n).ok());
                    match granted {
                        Some(id) => {
                            if !self.open.insert(id) {
                                self.double_grant = true;
                            }
                            self.deleted.remove(&id);
                            Outcome::Granted(id)
                        }
                        None => Outcome::Wrong,
                    }
                }
                _ => refused().map_or(Outcome::Wrong, Outcome::Refused),
            },
            What::Delete if body == br#"{"code":0}"# => Outcome::Answered,
            What::Hello => {
                self.going_away = offers_going_away(&body);
                if self.stage == Stage::Hello {
                    self.stage = Stage::Ready;
                }
                refused().map_or(Outcome::Answered, Outcome::Refused)
            }
            _ => refused().map_or(Outcome::Wrong, Outcome::Refused),
        };
        self.outcomes.insert(call.id, outcome);
        Some(())
    }
}
