//! `iip bench --raw`: load from bare frames, one task per connection and no
//! client library, so that the load generator spends as little CPU per
//! request as it can (as h2load does for HTTP/2) and the server's share of
//! the machine shows.
//!
//! Each connection opens its channels through the sans-IO client core, then
//! keeps `channels × depth` requests in flight by hand: it reads what the
//! socket has, checks every answer against the body sent, and answers the
//! answers of one read with one write of as many new requests. The clock is
//! read once per read: a request's latency runs from the read whose answers
//! made room for it (or the start) to the read that brought its answer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::cli::loadgen::{wrong_body, LoadPlan, LoadReport, Tally, WorkerOutcome};
use crate::proto::client::{ClientConnection, ClientEvent};
use crate::wire::decode::FrameDecoder;
use crate::wire::encode::encode_frame;
use crate::{Frame, FrameLimits, Status};

/// Why a raw load could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RawLoadError {
    /// The plan asks for what bare frames do not do.
    #[error("--raw: {0}")]
    Unsupported(String),
    /// Connecting, or the socket while channels were opened, failed.
    #[error("{addr}: {source}")]
    Io {
        /// The server.
        addr: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The server did not grant the channels asked for.
    #[error("{addr}: opening channels: {detail}")]
    Channels {
        /// The server.
        addr: String,
        /// What went wrong.
        detail: String,
    },
}

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 64 * 1024;

/// Runs `plan` with bare frames: plain TCP targets only, no balancer, no
/// hello but one offering `metadata` alone when the plan's extensions
/// offer it (then every request carries the same block). `progress` hears the requests done so far about ten times a
/// second.
pub async fn run(plan: &LoadPlan, progress: impl Fn(u64) + Send + Sync + 'static) -> Result<LoadReport, RawLoadError> {
    if plan.balance.is_some() {
        return Err(RawLoadError::Unsupported("it drives fixed connections and takes no --balance".into()));
    }
    let payload = plan.request_body();
    let limits = FrameLimits::default();
    let mut streams = Vec::new();
    for i in 0..plan.connections.max(1) {
        let target = &plan.targets[i % plan.targets.len().max(1)];
        if target.tls.is_some() || target.addr.starts_with("unix:") {
            return Err(RawLoadError::Unsupported(format!("it speaks plain TCP only, not to {}", target.addr)));
        }
        let io = |source| RawLoadError::Io { addr: target.addr.clone(), source };
        let mut stream = TcpStream::connect(&target.addr).await.map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let refused = |detail| RawLoadError::Channels { addr: target.addr.clone(), detail };
        // With --metadata: a hello offering it alone, and a block before
        // every request where it is agreed.
        let metadata = plan.extensions.metadata;
        let block = match metadata && offer_metadata(&mut stream, limits, plan.timeout).await.map_err(refused)? {
            true => Some(request_block(plan)?),
            false => None,
        };
        let channels =
            open_channels(&mut stream, plan.channels, limits, plan.timeout, block.is_some()).await.map_err(refused)?;
        streams.push((stream, channels, block));
    }
    let tally = Tally::start(plan.server_pid);
    let done = Arc::new(AtomicU64::new(0));
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = tally.started + plan.duration;
    let mut workers = Vec::new();
    for (stream, channels, block) in streams {
        let driver =
            Driver::new(plan, &payload, channels, block, limits, deadline).map_err(RawLoadError::Unsupported)?;
        let (done, issued) = (done.clone(), issued.clone());
        workers.push(tokio::spawn(async move { driver.drive(stream, &done, &issued).await }));
    }
    let (histogram, errors, first_error) = crate::cli::loadgen::gather(workers, &done, progress).await;
    Ok(tally.report(done.load(Ordering::Relaxed), errors, first_error, &histogram, payload.len()))
}

/// Says hello offering `metadata` alone (`[EXT-17]`); whether it was agreed.
async fn offer_metadata(stream: &mut TcpStream, limits: FrameLimits, timeout: Duration) -> Result<bool, String> {
    let hello =
        Frame::new(Status::RequestWhole, &b"/sys/hello"[..], 0, &br#"{"revision":1,"extensions":{"metadata":{}}}"#[..]);
    let mut out = BytesMut::new();
    encode_frame(&hello, &limits, &mut out).map_err(|e| e.to_string())?;
    tokio::io::AsyncWriteExt::write_all(stream, &out).await.map_err(|e| e.to_string())?;
    let (mut decoder, mut input) = (FrameDecoder::new(limits), BytesMut::new());
    let until = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(frame) = decoder.decode(&mut input).map_err(|e| e.to_string())? {
            let answer = serde_json::from_slice::<crate::proto::extensions::HelloAnswer>(&frame.data).ok();
            return Ok(answer.is_some_and(|a| a.extensions.metadata.is_some()));
        }
        read_more(stream, &mut input, until, || format!("no answer to the hello within {timeout:?}")).await?;
    }
}

/// Reads what the server sent next into `input`, by `until`; `late`
/// says what did not come in time.
async fn read_more(
    stream: &mut TcpStream,
    input: &mut BytesMut,
    until: tokio::time::Instant,
    late: impl FnOnce() -> String,
) -> Result<(), String> {
    let read = tokio::time::timeout_at(until, tokio::io::AsyncReadExt::read_buf(stream, input))
        .await
        .map_err(|_| late())?
        .map_err(|e| e.to_string())?;
    if read == 0 {
        return Err("the server closed the connection".into());
    }
    Ok(())
}

/// The block every request of `plan` carries: its entries and its
/// timeout as the deadline (`[EXT-18]`, `[EXT-22]`).
fn request_block(plan: &LoadPlan) -> Result<Bytes, RawLoadError> {
    let mut block = BytesMut::new();
    plan.metadata
        .encode_with_deadline(Some(plan.timeout), usize::from(u16::MAX), &mut block)
        .map_err(|e| RawLoadError::Unsupported(e.to_string()))?;
    Ok(block.freeze())
}

/// Opens `count` channels with `/sys/new_channel` on channel 0, all asked
/// at once (each behind an empty block when `metadata` is in force); no
/// channels asked means channel 0 alone.
async fn open_channels(
    stream: &mut TcpStream,
    count: usize,
    limits: FrameLimits,
    timeout: Duration,
    metadata: bool,
) -> Result<Vec<u32>, String> {
    if count == 0 {
        return Ok(vec![0]);
    }
    let mut core = ClientConnection::new(limits);
    core.set_extensions(None, false, metadata);
    for _ in 0..count {
        core.open_channel(0).map_err(|e| e.to_string())?;
    }
    let mut out = BytesMut::new();
    while let Some(frame) = core.poll_transmit() {
        encode_frame(&frame, &limits, &mut out).map_err(|e| e.to_string())?;
    }
    tokio::io::AsyncWriteExt::write_all(stream, &out).await.map_err(|e| e.to_string())?;
    let (mut decoder, mut input, mut channels) = (FrameDecoder::new(limits), BytesMut::new(), Vec::new());
    let until = tokio::time::Instant::now() + timeout;
    while channels.len() < count {
        read_more(stream, &mut input, until, || format!("no grant within {timeout:?}")).await?;
        while let Some(frame) = decoder.decode(&mut input).map_err(|e| e.to_string())? {
            match core.receive(frame).map_err(|e| e.to_string())? {
                Some(ClientEvent::ChannelOpened { channel, .. }) => channels.push(channel),
                Some(ClientEvent::ChannelRefused { code, message, .. }) => {
                    return Err(format!("refused with {code}: {message}"))
                }
                _ => {}
            }
        }
    }
    Ok(channels)
}

/// One channel's requests in flight, oldest first (answers come in order).
#[derive(Default)]
struct InFlight {
    /// When each was written.
    sent: VecDeque<Instant>,
    /// Bytes of a chunked answer so far.
    partial: BytesMut,
}

/// One connection's load: the encoded request of each channel, what is in
/// flight, and the bytes to write.
struct Driver {
    requests: Vec<Bytes>,
    in_flight: Vec<InFlight>,
    /// Channel id to index in `requests` and `in_flight`.
    index: rustc_hash::FxHashMap<u32, usize>,
    payload: Bytes,
    depth: usize,
    limits: FrameLimits,
    deadline: Instant,
    limit: Option<u64>,
    timeout: Duration,
}

impl Driver {
    fn new(
        plan: &LoadPlan,
        payload: &Bytes,
        channels: Vec<u32>,
        block: Option<Bytes>,
        limits: FrameLimits,
        deadline: Instant,
    ) -> Result<Driver, String> {
        let mut requests = Vec::with_capacity(channels.len());
        let data = match &block {
            Some(block) => Bytes::from([&block[..], &payload[..]].concat()),
            None => payload.clone(),
        };
        for &channel in &channels {
            let frame = Frame::new(Status::RequestWhole, Bytes::from(plan.path.clone()), channel, data.clone());
            let mut encoded = BytesMut::new();
            encode_frame(&frame, &limits, &mut encoded)
                .map_err(|e| format!("it sends each request in one frame: {e}"))?;
            requests.push(encoded.freeze());
        }
        Ok(Driver {
            requests,
            in_flight: channels.iter().map(|_| InFlight::default()).collect(),
            index: channels.iter().enumerate().map(|(i, &c)| (c, i)).collect(),
            payload: payload.clone(),
            depth: plan.depth.max(1),
            limits,
            deadline,
            limit: plan.requests,
            timeout: plan.timeout,
        })
    }

    /// Takes one more request of the whole run, unless the run is over.
    fn may_issue(&self, now: Instant, issued: &AtomicU64) -> bool {
        now < self.deadline && self.limit.is_none_or(|n| issued.fetch_add(1, Ordering::Relaxed) < n)
    }

    /// Runs until the deadline (or the request limit) and every answer is
    /// in; a broken or silent connection ends it with its requests in
    /// flight counted as errors.
    async fn drive(mut self, stream: TcpStream, done: &AtomicU64, issued: &AtomicU64) -> WorkerOutcome {
        let mut outcome = WorkerOutcome::new();
        let (mut input, mut output) = (BytesMut::with_capacity(READ_SIZE), BytesMut::new());
        let mut decoder = FrameDecoder::new(self.limits);
        let now = Instant::now();
        for index in 0..self.requests.len() {
            for _ in 0..self.depth {
                if self.may_issue(now, issued) {
                    output.extend_from_slice(&self.requests[index]);
                    self.in_flight[index].sent.push_back(now);
                }
            }
        }
        let mut outstanding: usize = self.in_flight.iter().map(|f| f.sent.len()).sum();
        let failure = loop {
            if outstanding == 0 && output.is_empty() {
                break None;
            }
            let interest = if output.is_empty() { Interest::READABLE } else { Interest::READABLE | Interest::WRITABLE };
            let ready = match tokio::time::timeout(self.timeout, stream.ready(interest)).await {
                Ok(Ok(ready)) => ready,
                Ok(Err(err)) => break Some(err.to_string()),
                Err(_) => break Some(format!("no answer within {:?}", self.timeout)),
            };
            if ready.is_writable() {
                if let Err(err) = write_some(&stream, &mut output) {
                    break Some(err.to_string());
                }
            }
            if !ready.is_readable() {
                continue;
            }
            input.reserve(READ_SIZE);
            match stream.try_read_buf(&mut input) {
                Ok(0) => break Some("the server closed the connection".into()),
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(err) => break Some(err.to_string()),
            }
            let now = Instant::now();
            let mut answered = 0u64;
            loop {
                let frame = match decoder.decode(&mut input) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(err) => return outcome.fail(err.to_string(), outstanding),
                };
                if frame.status == Status::Close {
                    let reason = String::from_utf8_lossy(&frame.data).into_owned();
                    return outcome.fail(format!("the server closed the connection: {reason}"), outstanding);
                }
                let Some(&index) = self.index.get(&frame.channel) else {
                    return outcome.fail(format!("a frame on channel {} never used", frame.channel), outstanding);
                };
                let Some(body) = self.in_flight[index].take_answer(frame) else { continue };
                let Some(sent) = self.in_flight[index].sent.pop_front() else {
                    return outcome.fail("an answer to no request".into(), outstanding);
                };
                outstanding -= 1;
                match body {
                    Ok(body) if body == self.payload => {
                        outcome.answered(
                            u64::try_from(now.saturating_duration_since(sent).as_micros()).unwrap_or(u64::MAX),
                        );
                        answered += 1;
                    }
                    Ok(body) => outcome.error(wrong_body(body.len(), self.payload.len())),
                    Err(message) => outcome.error(message),
                }
                if self.may_issue(now, issued) {
                    output.extend_from_slice(&self.requests[index]);
                    self.in_flight[index].sent.push_back(now);
                    outstanding += 1;
                }
            }
            done.fetch_add(answered, Ordering::Relaxed);
            // The answers of this read, answered in one write.
            if let Err(err) = write_some(&stream, &mut output) {
                break Some(err.to_string());
            }
        };
        match failure {
            Some(message) => outcome.fail(message, outstanding),
            None => outcome,
        }
    }
}

/// Writes what of `output` the socket takes now, if there is anything.
fn write_some(stream: &TcpStream, output: &mut BytesMut) -> std::io::Result<()> {
    if output.is_empty() {
        return Ok(());
    }
    match stream.try_write(output) {
        Ok(written) => output.advance(written),
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(err) => return Err(err),
    }
    Ok(())
}

impl InFlight {
    /// Takes one answer frame: the whole body once the answer is complete,
    /// `None` while a chunked answer goes on, an error for a frame that is
    /// not an answer.
    fn take_answer(&mut self, frame: Frame) -> Option<Result<Bytes, String>> {
        match frame.status {
            Status::ResponseWhole => Some(Ok(frame.data)),
            Status::ResponseFirst | Status::ResponseContinue => {
                self.partial.extend_from_slice(&frame.data);
                None
            }
            Status::ResponseLast => {
                self.partial.extend_from_slice(&frame.data);
                Some(Ok(self.partial.split().freeze()))
            }
            other => Some(Err(format!("status {} where an answer was due", other.byte()))),
        }
    }
}
