//! Handing a request to its route's handler, and finishing it.

use super::*;

/// What became of a request handed to its handler.
pub(super) enum Started {
    /// The handler answered on its first poll: the answer's body.
    Answered(Bytes),
    /// The handler waits; the connection polls it with its others.
    Waiting(BoxFuture<'static, Done>),
    /// The route is slow: the handler runs on a task of its own, so that
    /// another worker may take it.
    Offloaded(BoxFuture<'static, Done>),
}

/// The request a handler is given, from a connection with `peer` and
/// `identity`, with its metadata, if it has any (`[EXT-18]`).
#[inline(always)]
pub(super) fn request_from(
    peer: &Peer,
    identity: &Option<Arc<str>>,
    channel: u32,
    route: Bytes,
    query: Option<Bytes>,
    body: Bytes,
    meta: Option<Box<RequestMeta>>,
) -> Request {
    Request { channel, route, query, body, peer: peer.clone(), identity: identity.clone(), meta }
}

/// Hands a request to its route's handler and polls it once. Most handlers
/// answer on their first poll: such an answer is taken at once, borrowing
/// what it is counted in, with no future kept and no turn through the set
/// of running handlers; any other comes back as a future that owns what it
/// needs. `(frames, bytes)` are the request's frames and their bytes; the
/// handler's time begins where `clock` says, and a handler that answers at
/// once ends it there.
pub(super) fn start_handler(
    shared: &Arc<Shared>,
    crate::server::Route { handler, stats: route_stats }: &crate::server::Route,
    tally: &mut Tally,
    request: Request,
    seq: u64,
    (frames, bytes): (u64, u64),
    clock: &mut TurnClock,
) -> Started {
    tally.received(frames, bytes);
    // Sampled requests measure the route's busy time, which decides
    // whether its handlers run here or on another worker: theirs begins
    // with a reading of its own, so that it is the handler's alone.
    let meter = &route_stats.busy;
    let offload_after = shared.config.offload_after;
    let sampled = offload_after.filter(|_| tally.sample());
    let finish = Finish {
        route_len: request.route.len(),
        channel: request.channel,
        seq,
        frame_limit: shared.config.core.frame_limits.max_data,
        started: if sampled.is_some() { latency_now() } else { clock.start() },
    };
    // A request whose deadline has passed is answered 103 without its
    // handler ([EXT-22]). It starts as it arrives: only a deadline of 0
    // has passed by now, and no clock is read to know it.
    if request.meta.as_ref().is_some_and(|m| m.expired) {
        return expired(finish, route_stats, tally, clock);
    }
    // A span per request only when someone listens at debug level.
    let span = tracing::enabled!(tracing::Level::DEBUG).then(|| request_span(&request));
    let offloaded = offload_after.is_some() && meter.offloaded();
    let deadline = request.deadline();
    // A sampled request's time inside the handler so far.
    let mut busy = Duration::ZERO;
    let call = if offloaded {
        // The handler is called inside the task that another worker takes.
        let handler = handler.clone();
        let future: crate::server::handler::HandlerFuture = Box::pin(async move { handler.call(request).await });
        AssertUnwindSafe(future).catch_unwind()
    } else {
        let entered = span.as_ref().map(tracing::Span::enter);
        let (first, waiting) = match std::panic::catch_unwind(AssertUnwindSafe(|| handler.reply(request))) {
            Ok(Reply::Ready(result)) => (Some(Ok(result)), None),
            Err(panic) => (Some(Err(panic)), None),
            Ok(Reply::Pending(future)) => {
                let mut call = AssertUnwindSafe(future).catch_unwind();
                match (&mut call).now_or_never() {
                    Some(outcome) => (Some(outcome), None),
                    None => (None, Some(call)),
                }
            }
        };
        if sampled.is_some() {
            busy = finish.started.elapsed();
        }
        let Some(call) = waiting else {
            if let Some(after) = sampled {
                meter.record(busy, after);
            }
            let (body, answered) = finish.done(route_stats, first);
            tally.answered(route_stats, &answered);
            clock.ended(answered.ended);
            return Started::Answered(body);
        };
        drop(entered);
        call
    };
    // The handler runs on past this turn: its time is its own.
    clock.lapse();
    let answering = Answering { shared: shared.clone(), route_stats: route_stats.clone(), finish };
    let timed = sampled.map(|after| (meter.clone(), after));
    let work = async move {
        // The server's own limit and the request's deadline, whichever
        // ends first ([ANSWER-8], [EXT-22]); the handler is dropped there.
        let own = answering.shared.config.handler_timeout.map(|limit| {
            let left = limit.saturating_sub(answering.finish.started.elapsed());
            tokio::time::Instant::now() + left
        });
        let until = match (own, deadline.map(tokio::time::Instant::from_std)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let outcome = match until {
            Some(until) => tokio::time::timeout_at(until, call).await.ok(),
            None => Some(call.await),
        };
        let (channel, seq) = (answering.finish.channel, answering.finish.seq);
        let (body, answered) = answering.finish.done(&answering.route_stats, outcome);
        answered.record_on(&answering.route_stats);
        Done::answer(channel, seq, body)
    };
    let work: BoxFuture<'static, Done> = match span {
        Some(span) => Box::pin(work.instrument(span)),
        None => Box::pin(work),
    };
    let work: BoxFuture<'static, Done> = match timed {
        Some((meter, after)) => Box::pin(Timed::new(work, meter, after).already_busy(busy)),
        None => work,
    };
    if offloaded {
        Started::Offloaded(work)
    } else {
        Started::Waiting(work)
    }
}

/// The `request` span of one request: its channel and route, and the
/// caller's `request_id` and `trace_id` when its metadata names them
/// (`[EXT-23]`); with the `otel` feature, the child of the caller's span.
fn request_span(request: &Request) -> tracing::Span {
    let span = tracing::debug_span!(
        "request",
        channel = request.channel,
        route = %String::from_utf8_lossy(&request.route),
        request_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    if let Some(id) = request.metadata().request_id() {
        span.record("request_id", tracing::field::display(id));
    }
    if let Some(parent) = request.metadata().traceparent() {
        span.record("trace_id", tracing::field::display(parent.trace_id_hex()));
    }
    #[cfg(feature = "otel")]
    crate::otel::adopt(&span, request.metadata());
    span
}

/// The answer to a request whose deadline passed before its handler ran:
/// 103, counted as the handler's would be ([EXT-22]).
#[cold]
#[inline(never)]
fn expired(finish: Finish, route_stats: &RouteStats, tally: &mut Tally, clock: &mut TurnClock) -> Started {
    let (body, answered) = finish.done(route_stats, None);
    tally.answered(route_stats, &answered);
    clock.ended(answered.ended);
    Started::Answered(body)
}

/// What a handler that waits owns until it answers: the server and its
/// route's statistics, besides where the answer goes.
pub(super) struct Answering {
    pub(super) shared: Arc<Shared>,
    pub(super) route_stats: Arc<RouteStats>,
    pub(super) finish: Finish,
}

/// Where one handler's answer goes, how it is counted, and when the
/// handler began.
pub(super) struct Finish {
    pub(super) route_len: usize,
    pub(super) channel: u32,
    pub(super) seq: u64,
    pub(super) frame_limit: u32,
    pub(super) started: LatencyInstant,
}

impl Finish {
    /// The answer's body for a handler that returned, panicked (`Some(Err)`)
    /// or ran out of time (`None`), and what its route's statistics record of it
    /// (given to the route's `metrics` handles at once).
    #[inline(always)]
    pub(super) fn done(
        self,
        route_stats: &RouteStats,
        outcome: Option<std::thread::Result<Result<Bytes, HandlerError>>>,
    ) -> (Bytes, Answered) {
        let result = match outcome {
            Some(Ok(result)) => result,
            Some(Err(_panic)) => Err(HandlerError::crashed("handler panicked")),
            None => Err(HandlerError::timeout()),
        };
        let (answer, code) = match result {
            Ok(body) => (body, 0),
            Err(err) => (err.to_answer().to_body(), err.code()),
        };
        let ended = latency_now();
        let elapsed = ended.saturating_duration_since(self.started);
        tracing::debug!(code, latency_us = elapsed.as_micros() as u64, "answered");
        route_stats.metrics.answered(code, elapsed);
        let (frames, bytes) = answer_size(self.frame_limit, self.route_len, &answer);
        (answer, Answered { elapsed, ended, frames, bytes })
    }
}
