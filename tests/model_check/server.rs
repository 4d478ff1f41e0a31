//! The server of the model, as chapters 6, 7, 11 and 13 say it behaves:
//! channels by the life-cycle table, messages by the transition table,
//! answers in each channel's order, the budget of chapter 13 with its
//! costs, and the endings of chapter 11.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use iip::proto::server::{CHANNEL_COST, WAITING_REQUEST_COST};

use crate::model::{Action, Defect, Iip, Route, Wire, WireFrame, MAX_DATA};
use crate::tables::{Kind, LifeAction, Position, Step};
use crate::wire::encoded_len;

/// The grace a going-away frame announces, in milliseconds.
pub const GRACE_MS: u64 = 1000;

/// How a server that stopped reading ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ending {
    /// A graceful shutdown: a close frame that cites nothing ([CLOSE-3]).
    Shutdown,
    /// The client's close frame: no close frame back ([CLOSE-10]).
    PeerClosed,
    /// A framing or protocol error: a close frame citing the requirement ([CLOSE-4]).
    Error(&'static str),
}

/// Where the server stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Reading,
    /// Reads no more frames; answers what it received, then ends.
    Stopped(Ending),
    /// Closed.
    Done,
}

/// The connection's hello ([EXT-1]–[EXT-4]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hello {
    Fresh,
    Pending,
    Done { going_away: bool },
}

/// The bytes held, by where they are ([RES-1], [RES-9]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Held {
    pub assembling: usize,
    pub handed_out: usize,
    pub answers: usize,
    pub waiting: usize,
    pub channels: usize,
}

impl Held {
    pub fn total(&self) -> usize {
        self.assembling + self.handed_out + self.answers + self.waiting + self.channels
    }

    /// What pauses reading ([RES-3]).
    pub fn outbound(&self) -> usize {
        self.handed_out + self.answers + self.waiting
    }
}

/// A request's place in its channel's order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slot {
    pub seq: u64,
    pub route: Route,
    pub answer: Answer,
    /// The model's note of the client's call this answers.
    pub call: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Answer {
    /// In a handler, holding its body.
    Waiting { body: Vec<u8> },
    /// Given, waiting for the answers before it; `deletes` ends the channel.
    Ready { body: Vec<u8>, deletes: bool },
}

/// One channel ([CHAN-1]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Channel {
    pub deleting: bool,
    /// The message being assembled: its route, and its body unless refused.
    pub inbound: Option<(Route, Option<Vec<u8>>)>,
    pub next_seq: u64,
    pub slots: VecDeque<Slot>,
}

impl Channel {
    fn new() -> Channel {
        Channel { deleting: false, inbound: None, next_seq: 0, slots: VecDeque::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Server {
    pub stage: Stage,
    pub hello: Hello,
    pub shutting_down: bool,
    pub going_away_sent: bool,
    pub channels: BTreeMap<u32, Channel>,
    /// Ids deleted and not granted since ([CHAN-10]).
    pub deleted: BTreeSet<u32>,
    /// Requests in handlers: (channel, seq).
    pub handlers: BTreeSet<(u32, u64)>,
    pub outbox: VecDeque<WireFrame>,
    pub held: Held,
    /// The client's calls the server received completely while reading.
    pub received: BTreeSet<u8>,
    // What the properties look at.
    /// A grant was not of the lowest free id.
    pub misgranted: bool,
    /// A frame that broke a rule was taken as a good one.
    pub breach_missed: bool,
    // What the reachability properties look at.
    pub paused: bool,
    pub resumed: bool,
    pub reused_id: bool,
}

impl Server {
    pub fn new() -> Server {
        Server {
            stage: Stage::Reading,
            hello: Hello::Fresh,
            shutting_down: false,
            going_away_sent: false,
            channels: BTreeMap::from([(0, Channel::new())]),
            deleted: BTreeSet::new(),
            handlers: BTreeSet::new(),
            outbox: VecDeque::new(),
            held: Held::default(),
            received: BTreeSet::new(),
            misgranted: false,
            breach_missed: false,
            paused: false,
            resumed: false,
            reused_id: false,
        }
    }

    /// Whether the next frame may be read ([RES-3]).
    pub fn may_read(&self, model: &Iip) -> bool {
        let held = match model.setup.defect {
            Some(Defect::PausesOnAllHeld) => self.held.total(),
            _ => self.held.outbound(),
        };
        held < model.setup.budget
    }

    /// Whether the server owes nothing more: no handler, no answer.
    pub fn owes_nothing(&self) -> bool {
        self.handlers.is_empty() && self.outbox.is_empty() && self.channels.values().all(|c| c.slots.is_empty())
    }

    pub fn actions(&self, model: &Iip, input: &VecDeque<Wire>, actions: &mut Vec<Action>) {
        if self.stage == Stage::Done {
            return;
        }
        let reading = self.stage == Stage::Reading;
        if !input.is_empty() && (!reading || self.may_read(model)) {
            actions.push(Action::ServerRead);
        }
        actions.extend(self.handlers.iter().map(|&(channel, seq)| Action::Answer { channel, seq }));
        if !self.outbox.is_empty() {
            actions.push(Action::Write);
        }
        if reading && model.setup.shutdown && !self.shutting_down {
            actions.push(Action::Shutdown);
        }
        if reading && self.going_away_sent {
            actions.push(Action::GraceOver);
        }
        if !reading && self.owes_nothing() {
            actions.push(Action::Finish);
        }
    }

    fn stop(&mut self, ending: Ending) {
        if self.stage == Stage::Reading {
            self.stage = Stage::Stopped(ending);
        }
    }

    /// Reads one frame. `None` when the model has no such step.
    pub fn read(&mut self, model: &Iip, input: &mut VecDeque<Wire>) -> Option<()> {
        let wire = input.pop_front()?;
        if self.paused {
            self.resumed = true;
        }
        if self.stage != Stage::Reading {
            // Read and discarded ([CLOSE-11]).
            return Some(());
        }
        let frame = match wire {
            Wire::Garbage => {
                self.stop(Ending::Error("STATUS-2"));
                return Some(());
            }
            Wire::End => {
                self.stop(Ending::PeerClosed);
                return Some(());
            }
            Wire::Frame(frame) => frame,
        };
        let bad = frame.bad;
        self.frame(model, frame);
        if bad && !matches!(self.stage, Stage::Stopped(Ending::Error(_))) {
            self.breach_missed = true;
        }
        Some(())
    }

    fn frame(&mut self, model: &Iip, frame: WireFrame) {
        let tables = &model.tables;
        let Some((kind, position)) = tables.meaning(frame.status) else {
            self.stop(Ending::Error("STATUS-2"));
            return;
        };
        let position = match (kind, position) {
            (Kind::Close, _) => {
                if model.setup.defect == Some(Defect::CloseDropsAnswers) {
                    self.drop_answers();
                }
                self.stop(Ending::PeerClosed);
                return;
            }
            (Kind::Response, _) | (_, None) => {
                self.stop(Ending::Error("STATUS-3"));
                return;
            }
            (Kind::Request, Some(position)) => position,
        };
        let id = frame.channel;
        let state = match self.channels.get(&id) {
            None => "absent",
            Some(c) if c.deleting && model.setup.defect != Some(Defect::AcceptsOnDeleted) => "deleting",
            Some(_) => "open",
        };
        match tables.life(state, "request-frame") {
            Some((_, LifeAction::Assemble)) => {}
            _ => {
                // The more specific citation of the two ([CLOSE-4]).
                let cited = if state == "deleting" || self.deleted.contains(&id) { "CHAN-10" } else { "CHAN-6" };
                self.stop(Ending::Error(cited));
                return;
            }
        }
        let budget = model.setup.budget;
        let total = self.held.total();
        let Some(channel) = self.channels.get_mut(&id) else { return };
        let Some((_, step)) = tables.message(channel.inbound.is_some(), position) else {
            self.stop(Ending::Error("MSG-6"));
            return;
        };
        let route = frame.route.unwrap_or(Route::Echo);
        let data = frame.data;
        // Assembly within the budget ([RES-2]); a whole request was read
        // already and is only held to the message limit, which the model's
        // bodies are far below.
        let append = |body: Option<Vec<u8>>, held: &mut Held| -> Option<Vec<u8>> {
            let mut body = body?;
            if total + data.len() > budget {
                held.assembling -= body.len();
                return None;
            }
            held.assembling += data.len();
            body.extend_from_slice(&data);
            Some(body)
        };
        let (route, body) = match (step, channel.inbound.take()) {
            (Step::Complete, None) => (route, Some(data.clone())),
            (Step::Started, None) => {
                channel.inbound = Some((route, append(Some(Vec::new()), &mut self.held)));
                return;
            }
            (Step::Continues, Some((route, body))) => {
                channel.inbound = Some((route, append(body, &mut self.held)));
                return;
            }
            (Step::Complete, Some((route, body))) => {
                let body = append(body, &mut self.held);
                if let Some(body) = &body {
                    self.held.assembling -= body.len();
                }
                (route, body)
            }
            _ => {
                self.stop(Ending::Error("MSG-6"));
                return;
            }
        };
        if let Some(call) = frame.call {
            self.received.insert(call);
        }
        self.complete(model, id, route, body, frame.call);
    }

    /// A complete request on channel `id` ([MSG-3]).
    fn complete(&mut self, model: &Iip, id: u32, route: Route, body: Option<Vec<u8>>, call: Option<u8>) {
        let tables = model.tables.clone();
        // The hello comes first and alone ([EXT-1], [EXT-4]).
        match (self.hello, route) {
            (Hello::Pending, _) => {
                self.stop(Ending::Error("EXT-4"));
                return;
            }
            (Hello::Fresh, Route::Hello) if id == 0 && body.is_some() => {
                self.hello = Hello::Pending;
                let body = body.unwrap_or_default();
                self.hand_out(id, route, body, call);
                return;
            }
            (_, Route::Hello) => {
                self.hello = Hello::Done { going_away: false };
                let seq = self.place(id, route, call);
                self.give(model, id, seq, tables.error_body(102), false);
                return;
            }
            (Hello::Fresh, _) => self.hello = Hello::Done { going_away: false },
            (Hello::Done { .. }, _) => {}
        }
        let Some(body) = body else {
            let seq = self.place(id, route, call);
            self.give(model, id, seq, tables.error_body(110), false);
            return;
        };
        match route {
            Route::NewChannel => {
                // Answered in the turn it arrived in: its place costs
                // nothing against the budget it is checked by ([RES-9]).
                let answer = self.grant(model);
                let seq = self.place(id, route, call);
                self.give(model, id, seq, answer, false);
            }
            Route::Delete => {
                let seq = self.place(id, route, call);
                let event = if id == 0 { "delete-request-channel-0" } else { "delete-request" };
                let (next, action) = tables.life("open", event).expect("the life-cycle table has the delete rows");
                let answer = match action {
                    LifeAction::Answer(body) => body.clone().into_bytes(),
                    LifeAction::ErrorAnswer(code) => tables.error_body(*code),
                    other => panic!("delete action {other:?}"),
                };
                let deletes = next == "deleting";
                if let Some(channel) = self.channels.get_mut(&id) {
                    channel.deleting |= deletes;
                }
                self.give(model, id, seq, answer, deletes);
            }
            _ => self.hand_out(id, route, body, call),
        }
    }

    /// Gives a request its place in the order, holding `body` in a handler.
    fn hand_out(&mut self, id: u32, route: Route, body: Vec<u8>, call: Option<u8>) {
        let Some(channel) = self.channels.get_mut(&id) else { return };
        let seq = channel.next_seq;
        channel.next_seq += 1;
        self.held.handed_out += body.len();
        self.held.waiting += WAITING_REQUEST_COST;
        channel.slots.push_back(Slot { seq, route, answer: Answer::Waiting { body }, call });
        self.handlers.insert((id, seq));
    }

    /// Gives a request answered as it arrives its place in the order.
    fn place(&mut self, id: u32, route: Route, call: Option<u8>) -> u64 {
        self.hand_out(id, route, Vec::new(), call);
        let Some(channel) = self.channels.get(&id) else { return 0 };
        let seq = channel.next_seq - 1;
        self.handlers.remove(&(id, seq));
        seq
    }

    /// The answer to `/sys/new_channel`: the lowest free id, if one is
    /// free and fits the budget ([CHAN-4], [CHAN-9], [RES-9]).
    fn grant(&mut self, model: &Iip) -> Vec<u8> {
        let tables = model.tables.clone();
        let in_use: BTreeSet<u32> = self.channels.keys().copied().collect();
        let fits = self.held.total() + CHANNEL_COST <= model.setup.budget;
        let mut free = (1..model.setup.max_channels).filter(|id| !in_use.contains(id));
        let id = if (in_use.len() as u32) < model.setup.max_channels && fits {
            match model.setup.defect {
                Some(Defect::HighestFreeId) => free.next_back(),
                _ => free.next(),
            }
        } else {
            None
        };
        let Some(id) = id else { return tables.error_body(106) };
        let Some((_, LifeAction::Answer(template))) = tables.life("absent", "new-channel-granted") else {
            panic!("the life-cycle table grants channels with an answer");
        };
        if Some(id) != (1..).find(|id| !in_use.contains(id)) {
            self.misgranted = true;
        }
        if self.deleted.remove(&id) {
            self.reused_id = true;
        }
        self.channels.insert(id, Channel::new());
        self.held.channels += CHANNEL_COST;
        template.replace('N', &id.to_string()).into_bytes()
    }

    /// The handler of request `seq` on `channel` answers: an echo gives
    /// its body back, the hello accepts `going_away` ([EXT-16]).
    pub fn answer(&mut self, model: &Iip, channel: u32, seq: u64) -> Option<()> {
        if !self.handlers.remove(&(channel, seq)) {
            return None;
        }
        let slot = self.channels.get(&channel)?.slots.iter().find(|s| s.seq == seq)?;
        let Answer::Waiting { body } = &slot.answer else { return None };
        let answer = if slot.route == Route::Hello {
            let going_away = crate::client::offers_going_away(body);
            self.hello = Hello::Done { going_away };
            if going_away {
                br#"{"revision":1,"extensions":{"going_away":{}}}"#.to_vec()
            } else {
                br#"{"revision":1,"extensions":{}}"#.to_vec()
            }
        } else {
            body.clone()
        };
        self.give(model, channel, seq, answer, false);
        Some(())
    }

    /// Answers request `seq` of channel `id` and sends what is ready in order ([ORDER-1]).
    fn give(&mut self, model: &Iip, id: u32, seq: u64, answer: Vec<u8>, deletes: bool) {
        let Some(channel) = self.channels.get_mut(&id) else { return };
        let Some(slot) = channel.slots.iter_mut().find(|s| s.seq == seq) else { return };
        if let Answer::Waiting { body } = &slot.answer {
            self.held.handed_out -= body.len();
        }
        self.held.answers += answer.len();
        slot.answer = Answer::Ready { body: answer, deletes };
        self.flush(model, id);
    }

    /// Moves the ready answers at the front of a channel to the outbox.
    fn flush(&mut self, model: &Iip, id: u32) {
        let tables = model.tables.clone();
        let any_order = model.setup.defect == Some(Defect::AnswersOutOfOrder);
        loop {
            let Some(channel) = self.channels.get_mut(&id) else { return };
            let next = if any_order {
                channel.slots.iter().position(|s| matches!(s.answer, Answer::Ready { .. }))
            } else {
                channel.slots.front().filter(|s| matches!(s.answer, Answer::Ready { .. })).map(|_| 0)
            };
            let Some(at) = next else { return };
            let Some(Slot { route, answer: Answer::Ready { body, deletes }, .. }) = channel.slots.remove(at) else {
                return;
            };
            self.held.waiting -= WAITING_REQUEST_COST;
            self.held.answers -= body.len();
            for frame in chunk(&tables, Kind::Response, route, id, &body, None) {
                self.held.answers += encoded_len(&frame);
                self.outbox.push_back(frame);
            }
            if deletes {
                // The delete answer is queued: the id is free ([CHAN-11]).
                self.channels.remove(&id);
                self.held.channels -= CHANNEL_COST;
                self.deleted.insert(id);
                return;
            }
        }
    }

    /// What [`Defect::CloseDropsAnswers`] does: forgets every answer owed.
    fn drop_answers(&mut self) {
        self.outbox.clear();
        self.handlers.clear();
        for channel in self.channels.values_mut() {
            channel.slots.clear();
        }
        self.held = Held { channels: self.held.channels, assembling: self.held.assembling, ..Held::default() };
    }

    pub fn write(&mut self, output: &mut VecDeque<Wire>) {
        for frame in self.outbox.drain(..) {
            self.held.answers -= encoded_len(&frame);
            output.push_back(Wire::Frame(frame));
        }
    }

    /// A graceful shutdown begins: a client that agreed to `going_away` is
    /// told so and the server goes on reading; any other stops reading.
    pub fn shutdown(&mut self, model: &Iip) {
        self.shutting_down = true;
        if matches!(self.hello, Hello::Done { going_away: true }) {
            let status = model.tables.status(Kind::Response, Some(Position::Whole));
            let data = format!("{{\"grace_ms\":{GRACE_MS}}}").into_bytes();
            let frame = WireFrame { status, route: Some(Route::GoingAway), channel: 0, data, bad: false, call: None };
            self.held.answers += encoded_len(&frame);
            self.outbox.push_back(frame);
            self.going_away_sent = true;
        } else {
            self.stop(Ending::Shutdown);
        }
    }

    pub fn grace_over(&mut self) {
        self.stop(Ending::Shutdown);
    }

    /// Ends the connection: the close frame its ending calls for, then the
    /// end of the stream.
    pub fn finish(&mut self, output: &mut VecDeque<Wire>) {
        let Stage::Stopped(ending) = self.stage else { return };
        let reason = match ending {
            Ending::Shutdown => Some("server shutting down".to_string()),
            Ending::PeerClosed => None,
            Ending::Error(id) => Some(format!("[{id}]")),
        };
        if let Some(reason) = reason {
            let frame =
                WireFrame { status: 8, route: None, channel: 0, data: reason.into_bytes(), bad: false, call: None };
            output.push_back(Wire::Frame(frame));
        }
        output.push_back(Wire::End);
        self.stage = Stage::Done;
    }
}

/// The frames of a message: one whole frame, or chunks of [`MAX_DATA`]
/// bytes ([MSG-11]).
pub fn chunk(
    tables: &crate::tables::Tables,
    kind: Kind,
    route: Route,
    channel: u32,
    body: &[u8],
    call: Option<u8>,
) -> Vec<WireFrame> {
    let max = MAX_DATA as usize;
    let frame = |position, data: &[u8]| WireFrame {
        status: tables.status(kind, Some(position)),
        route: Some(route),
        channel,
        data: data.to_vec(),
        bad: false,
        call,
    };
    if body.len() <= max {
        return vec![frame(Position::Whole, body)];
    }
    let pieces: Vec<&[u8]> = body.chunks(max).collect();
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let position = match i {
                0 => Position::FirstMore,
                i if i == last => Position::Last,
                _ => Position::ContinueMore,
            };
            frame(position, piece)
        })
        .collect()
}
