//! The client multiplexer: the sans-IO [`ClientConnection`] shared between
//! the callers, the reader and the writer of one connection.
//!
//! Callers submit requests and get an [`Inbox`] each; the writer drains the
//! frames to send; the reader delivers the server's frames, which land in
//! the inbox of the request they answer. Every frame of one message is
//! queued under one lock, so messages never interleave on a channel
//! (`[MSG-5]`). A caller that gives up drops its inbox, and the answer, when
//! it comes, is consumed and dropped (`[ORDER-5]`: the next caller still gets
//! its own). Closing fails every inbox still waiting (`[CLOSE-5]`).
//!
//! Built on the crate's `sync` switch (std or loom types), so `tests/loom.rs` model-checks this code.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::proto::client::{ClientConnection, ClientEvent, RequestError, RequestId};
use crate::proto::error::ProtocolError;
use crate::sync::{lock, Arc, Mutex};
use crate::wire::frame::{Frame, FrameLimits};

use super::ClientError;

/// Why requests are refused after a going-away frame (`[EXT-16]`).
const GOING_AWAY_REASON: &str = "[EXT-16] the server is going away";

/// Something that arrived for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// A frame's data of the response; `complete` on its last frame.
    Data {
        /// The data.
        data: Bytes,
        /// Whether the response is complete.
        complete: bool,
    },
    /// A `/sys/new_channel` request was granted this channel.
    Opened(u32),
    /// A `/sys/new_channel` request was refused.
    Refused {
        /// The code.
        code: i64,
        /// The message.
        message: String,
    },
    /// The request failed.
    Failed(ClientError),
}

impl Delivery {
    fn is_last(&self) -> bool {
        !matches!(self, Delivery::Data { complete: false, .. })
    }
}

#[derive(Debug, Default)]
struct InboxState {
    items: Deliveries,
    done: bool,
    waker: Option<Waker>,
}

/// A request's deliveries in the order they came. Most requests get one
/// (a whole answer): it is held in place, and only a chunked answer's
/// further frames take a queue.
#[derive(Debug, Default)]
struct Deliveries {
    head: Option<Delivery>,
    rest: VecDeque<Delivery>,
}

impl Deliveries {
    fn push_back(&mut self, delivery: Delivery) {
        if self.head.is_none() && self.rest.is_empty() {
            self.head = Some(delivery);
        } else {
            self.rest.push_back(delivery);
        }
    }

    fn pop_front(&mut self) -> Option<Delivery> {
        self.head.take().or_else(|| self.rest.pop_front())
    }
}

type Slot = Arc<Mutex<InboxState>>;

fn push(slot: &Slot, delivery: Delivery) {
    let waker = {
        let mut state = lock(slot);
        state.done |= delivery.is_last();
        state.items.push_back(delivery);
        state.waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

#[derive(Debug)]
struct State {
    core: ClientConnection,
    slots: rustc_hash::FxHashMap<RequestId, Slot>,
    outgoing: Vec<Frame>,
    closed: Option<String>,
    /// The newest request whose frames were queued.
    last_queued: Option<RequestId>,
    /// The newest request whose frames the writer has taken: it and every
    /// older one may have reached the server; newer ones have not.
    handed_over: Option<RequestId>,
    /// Frames received so far: the liveness timer's proof of life (`[EXT-7]`).
    frames_received: u64,
    /// The server sent a going-away frame (`[EXT-16]`): no new requests;
    /// the connection closes once the last answer is in.
    going_away: bool,
}

/// The shared state of one client connection.
#[derive(Debug)]
pub struct Mux {
    state: Mutex<State>,
}

/// What a caller waits on: the deliveries for one request.
#[derive(Debug)]
pub struct Inbox {
    id: RequestId,
    slot: Slot,
    mux: Arc<Mux>,
}

fn refused(err: RequestError) -> ClientError {
    match err {
        RequestError::Closed => ClientError::not_sent("connection closed"),
        other => ClientError::Refused(other),
    }
}

impl Mux {
    /// A multiplexer over a new connection.
    pub fn new(limits: FrameLimits) -> Arc<Mux> {
        Arc::new(Mux {
            state: Mutex::new(State {
                core: ClientConnection::new(limits),
                slots: rustc_hash::FxHashMap::default(),
                outgoing: Vec::new(),
                closed: None,
                last_queued: None,
                handed_over: None,
                frames_received: 0,
                going_away: false,
            }),
        })
    }

    fn submit(
        this: &Arc<Self>,
        send: impl FnOnce(&mut ClientConnection) -> Result<RequestId, RequestError>,
    ) -> Result<Inbox, ClientError> {
        let mut state = lock(&this.state);
        if let Some(reason) = &state.closed {
            return Err(ClientError::not_sent(reason.clone()));
        }
        if state.going_away {
            return Err(ClientError::not_sent(GOING_AWAY_REASON));
        }
        let id = send(&mut state.core).map_err(refused)?;
        state.last_queued = Some(id);
        let slot: Slot = Arc::new(Mutex::new(InboxState::default()));
        state.slots.insert(id, slot.clone());
        let State { core, outgoing, .. } = &mut *state;
        core.drain_transmit(outgoing);
        Ok(Inbox { id, slot, mux: this.clone() })
    }

    /// Queues a request for `path` with `body` on `channel`.
    pub fn call(this: &Arc<Self>, channel: u32, path: Bytes, body: Bytes) -> Result<Inbox, ClientError> {
        Self::submit(this, |core| core.request(channel, path, body))
    }

    /// Queues a request whose body already carries the metadata block and
    /// the marker in force ([`ClientConnection::request_marked`]).
    pub fn call_marked(this: &Arc<Self>, channel: u32, path: Bytes, body: Bytes) -> Result<Inbox, ClientError> {
        Self::submit(this, |core| core.request_marked(channel, path, body))
    }

    /// Queues a `/sys/new_channel` request on `via`.
    pub fn open_channel(this: &Arc<Self>, via: u32) -> Result<Inbox, ClientError> {
        Self::submit(this, |core| core.open_channel(via))
    }

    /// Queues the deletion of `channel`; it takes no more requests at once.
    pub fn delete_channel(&self, channel: u32) -> Result<(), ClientError> {
        let mut state = lock(&self.state);
        if let Some(reason) = &state.closed {
            return Err(ClientError::not_sent(reason.clone()));
        }
        state.core.delete_channel(channel).map_err(refused)?;
        let State { core, outgoing, .. } = &mut *state;
        core.drain_transmit(outgoing);
        Ok(())
    }

    /// Limits the size of one answer (see [`ClientConnection::set_max_answer`]).
    pub fn set_max_answer(&self, limit: usize) {
        lock(&self.state).core.set_max_answer(limit);
    }

    /// Moves the frames waiting to be sent into `out`, in order.
    pub fn take_outgoing(&self, out: &mut Vec<Frame>) {
        let mut state = lock(&self.state);
        out.append(&mut state.outgoing);
        state.handed_over = state.last_queued;
    }

    /// Hands the multiplexer one frame from the server. A protocol error
    /// closes the multiplexer and is returned for the shell to act on.
    pub fn deliver(&self, frame: Frame) -> Result<(), ProtocolError> {
        let mut state = lock(&self.state);
        state.frames_received += 1;
        let event = match state.core.receive(frame) {
            Ok(event) => event,
            Err(err) => {
                Self::break_off(&mut state, err.to_string());
                return Err(err);
            }
        };
        let (id, delivery) = match event {
            None => return Ok(()),
            Some(ClientEvent::Response { id, data, complete }) => (id, Delivery::Data { data, complete }),
            Some(ClientEvent::ChannelOpened { id, channel }) => (id, Delivery::Opened(channel)),
            Some(ClientEvent::ChannelRefused { id, code, message }) => (id, Delivery::Refused { code, message }),
            Some(ClientEvent::AnswerTooLarge { id, limit }) => {
                (id, Delivery::Failed(ClientError::AnswerTooLarge { limit }))
            }
            Some(ClientEvent::GoingAway { .. }) => {
                state.going_away = true;
                Self::close_if_drained(&mut state);
                return Ok(());
            }
            Some(ClientEvent::PeerClosed { reason }) => {
                let reason = format!("server closed the connection: {}", String::from_utf8_lossy(&reason));
                Self::fail_all(&mut state, reason);
                return Ok(());
            }
        };
        let last = delivery.is_last();
        // A caller that gave up has no slot: the answer is dropped.
        let slot = if last { state.slots.remove(&id) } else { state.slots.get(&id).cloned() };
        if last {
            Self::close_if_drained(&mut state);
        }
        drop(state);
        if let Some(slot) = slot {
            push(&slot, delivery);
        }
        Ok(())
    }

    /// Ends the connection on a rule the server broke (`reason` names it,
    /// `[CLOSE-4]`): every waiting request fails, and a close frame naming
    /// the rule is the last frame the writer sends.
    fn break_off(state: &mut State, reason: String) {
        Self::fail_all(state, reason.clone());
        state.outgoing.push(Frame::close_with_reason(&reason));
    }

    /// Ends the connection on a framing error in what the server sent
    /// (`reason` names the broken requirement, `[CLOSE-4]`), as a protocol
    /// error does.
    pub fn framing_error(&self, reason: &str) {
        let mut state = lock(&self.state);
        if state.closed.is_none() {
            Self::break_off(&mut state, reason.to_string());
        }
    }

    fn fail_all(state: &mut State, reason: String) {
        let error = |sent| ClientError::Closed { reason: reason.clone(), sent };
        Self::fail_all_with(state, &error);
        state.closed.get_or_insert(reason);
    }

    /// Fails every waiting request with `error(sent)`, in request order
    /// (deterministic, which loom needs).
    fn fail_all_with(state: &mut State, error: &dyn Fn(bool) -> ClientError) {
        state.core.close();
        state.outgoing.clear();
        let handed_over = state.handed_over;
        let mut waiting: Vec<(RequestId, Slot)> = std::mem::take(&mut state.slots).into_iter().collect();
        waiting.sort_unstable_by_key(|(id, _)| *id);
        for (id, slot) in waiting {
            let sent = handed_over.is_some_and(|newest| id <= newest);
            push(&slot, Delivery::Failed(error(sent)));
        }
    }

    /// After a going-away frame, once nothing is waiting: queues a close
    /// frame and closes (`[EXT-16]`). The writer sends what is queued.
    fn close_if_drained(state: &mut State) {
        if state.going_away && state.slots.is_empty() && state.closed.is_none() {
            state.core.close();
            state.outgoing.push(Frame::close_with_reason(GOING_AWAY_REASON));
            state.closed = Some(GOING_AWAY_REASON.to_string());
        }
    }

    /// Closes: every waiting request fails with `reason`, later ones are refused.
    pub fn close(&self, reason: &str) {
        let mut state = lock(&self.state);
        if state.closed.is_none() {
            Self::fail_all(&mut state, reason.to_string());
        }
    }

    /// Closes because the server went silent (`[EXT-7]`): every waiting
    /// request fails with [`ClientError::DeadPeer`], later ones are refused.
    pub fn close_dead(&self, silent: std::time::Duration) {
        let mut state = lock(&self.state);
        if state.closed.is_none() {
            Self::fail_all_with(&mut state, &|sent| ClientError::DeadPeer { silent, sent });
            state.closed = Some(format!("[EXT-7] dead peer: nothing received for {silent:?}"));
        }
    }

    /// Channels open or being deleted, channel 0 included.
    pub fn channel_count(&self) -> usize {
        lock(&self.state).core.channel_count()
    }

    /// Frames received so far.
    pub fn frames_received(&self) -> u64 {
        lock(&self.state).frames_received
    }

    /// Whether the server said it is going away (`[EXT-16]`).
    pub fn going_away(&self) -> bool {
        lock(&self.state).going_away
    }

    /// Puts the extensions agreed in the hello in force (see
    /// [`ClientConnection::set_extensions`]).
    pub fn set_extensions(
        &self,
        body_codec: Option<crate::proto::extensions::BodyCodec>,
        going_away: bool,
        metadata: bool,
    ) {
        lock(&self.state).core.set_extensions(body_codec, going_away, metadata);
    }

    /// Why the multiplexer closed, if it has.
    pub fn closed(&self) -> Option<String> {
        lock(&self.state).closed.clone()
    }

    /// Answers still to come on `channel` (see [`ClientConnection::awaiting`]).
    pub fn awaiting(&self, channel: u32) -> usize {
        lock(&self.state).core.awaiting(channel)
    }

    /// Requests whose callers still wait (for leak checks).
    pub fn waiting(&self) -> usize {
        lock(&self.state).slots.len()
    }

    fn cancel(&self, id: RequestId) {
        let mut state = lock(&self.state);
        state.slots.remove(&id);
        Self::close_if_drained(&mut state);
    }
}

impl Inbox {
    /// The request this inbox belongs to.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The next delivery if one is there.
    pub fn try_next(&self) -> Option<Delivery> {
        lock(&self.slot).items.pop_front()
    }

    /// Waits for the next delivery; `None` once the last one was taken.
    pub fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let mut state = lock(&self.slot);
        match state.items.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if state.done => Poll::Ready(None),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// The next delivery, `None` after the last.
    pub fn next(&self) -> impl Future<Output = Option<Delivery>> + '_ {
        NextDelivery { inbox: self }
    }

    /// Waits for the whole response body, or the failure.
    pub async fn body(&self) -> Result<Bytes, ClientError> {
        // A whole answer is its one frame's data, with nothing gathered.
        let mut parts: Vec<Bytes> = Vec::new();
        while let Some(delivery) = self.next().await {
            match delivery {
                Delivery::Data { data, complete: true } if parts.is_empty() => return Ok(data),
                Delivery::Data { data, complete } => {
                    parts.push(data);
                    if complete {
                        return Ok(Bytes::from(parts.concat()));
                    }
                }
                Delivery::Failed(err) => return Err(err),
                Delivery::Opened(_) | Delivery::Refused { .. } => break,
            }
        }
        Err(ClientError::Closed { reason: "no response".into(), sent: true })
    }
}

struct NextDelivery<'a> {
    inbox: &'a Inbox,
}

impl Future for NextDelivery<'_> {
    type Output = Option<Delivery>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.inbox.poll_next(cx)
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // Giving up (timeout, cancellation): forget the slot; the answer is
        // still read off the wire in order and dropped.
        if !lock(&self.slot).done {
            self.mux.cancel(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Deliveries, Delivery};
    use bytes::Bytes;

    fn data(text: &'static str, complete: bool) -> Delivery {
        Delivery::Data { data: Bytes::from_static(text.as_bytes()), complete }
    }

    fn text(delivery: Option<Delivery>) -> Option<Bytes> {
        match delivery {
            Some(Delivery::Data { data, .. }) => Some(data),
            _ => None,
        }
    }

    #[test]
    fn deliveries_come_out_in_the_order_they_went_in() {
        let mut queue = Deliveries::default();
        queue.push_back(data("a", false));
        queue.push_back(data("b", false));
        assert_eq!(text(queue.pop_front()).as_deref(), Some(&b"a"[..]));
        // The head is free again while "b" waits: "c" must queue behind it.
        queue.push_back(data("c", true));
        assert_eq!(text(queue.pop_front()).as_deref(), Some(&b"b"[..]));
        assert_eq!(text(queue.pop_front()).as_deref(), Some(&b"c"[..]));
        assert!(queue.pop_front().is_none());
        queue.push_back(data("d", true));
        assert_eq!(text(queue.pop_front()).as_deref(), Some(&b"d"[..]));
    }
}
