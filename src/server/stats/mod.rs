//! Statistics behind the `/sys/*_count`, `/sys/*_measure` and `/sys/statis`
//! paths (spec chapter "System paths", `[SYS-4]`, `[SYS-5]`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The clock of handler latencies: the CPU's time-stamp counter where it
/// is steady (a third of the cost of the system's monotonic clock here,
/// read twice per request), the monotonic clock elsewhere. Read it with
/// [`latency_now`].
pub use quanta::Instant;

/// The time now on the latency clock: [`Instant::now`] without its look
/// for a clock that a test of quanta's own set on the thread, which costs
/// as much as reading the counter (this crate sets none).
pub fn latency_now() -> Instant {
    static CLOCK: std::sync::OnceLock<quanta::Clock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new).now()
}

use bytes::Bytes;

/// The statistics paths: routes of the server itself, counted and measured
/// like application routes, their latency ranges in microseconds
/// (`[SYS-9]`).
pub const STATISTICS_PATHS: [&str; 6] = [
    "/sys/server_count",
    "/sys/server_measure",
    "/sys/path_count",
    "/sys/path_measure",
    "/sys/connection_statis",
    "/sys/statis",
];

/// The six counters of a Count object.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Count {
    /// Frames sent.
    pub packets_sent: AtomicU64,
    /// Frames received.
    pub packets_received: AtomicU64,
    /// Complete messages sent.
    pub whole_sent: AtomicU64,
    /// Complete messages received.
    pub whole_received: AtomicU64,
    /// Bytes sent.
    pub bytes_sent: AtomicU64,
    /// Bytes received.
    pub bytes_received: AtomicU64,
}

impl Count {
    /// Counts one message received in `frames` frames of `bytes` bytes.
    pub fn received(&self, frames: u64, bytes: u64) {
        self.packets_received.fetch_add(frames, Ordering::Relaxed);
        self.whole_received.fetch_add(1, Ordering::Relaxed);
        self.bytes_received.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Adds counts gathered elsewhere (a connection's, once per write).
    pub(crate) fn add(&self, counts: &Counts) {
        let add = |counter: &AtomicU64, n: u64| {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.packets_sent, counts.packets_sent);
        add(&self.packets_received, counts.packets_received);
        add(&self.whole_sent, counts.whole_sent);
        add(&self.whole_received, counts.whole_received);
        add(&self.bytes_sent, counts.bytes_sent);
        add(&self.bytes_received, counts.bytes_received);
    }

    /// Counts one message sent in `frames` frames of `bytes` bytes.
    pub fn sent(&self, frames: u64, bytes: u64) {
        self.packets_sent.fetch_add(frames, Ordering::Relaxed);
        self.whole_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counters as they are now.
    pub fn snapshot(&self) -> Counts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            packets_sent: get(&self.packets_sent),
            packets_received: get(&self.packets_received),
            whole_sent: get(&self.whole_sent),
            whole_received: get(&self.whole_received),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
        }
    }

    /// The Count object, compact, members in the deployed order (`[SYS-5]`).
    pub fn to_json(&self) -> String {
        self.snapshot().to_json()
    }
}

/// The six counters of a Count object as plain numbers, for counts that one
/// task owns (a connection, a channel). Serialised as the Count object:
/// the spec's member names in the deployed implementation's order
/// (`[SYS-5]`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Counts {
    /// Frames sent.
    #[serde(rename = "PacketsSent")]
    pub packets_sent: u64,
    /// Frames received.
    #[serde(rename = "PacketReceived")]
    pub packets_received: u64,
    /// Complete messages sent.
    #[serde(rename = "WholePacketSent")]
    pub whole_sent: u64,
    /// Complete messages received.
    #[serde(rename = "WholePacketReceived")]
    pub whole_received: u64,
    /// Bytes sent, whole frames (`[SYS-8]`).
    #[serde(rename = "BytesSent")]
    pub bytes_sent: u64,
    /// Bytes received, whole frames (`[SYS-8]`).
    #[serde(rename = "BytesReceived")]
    pub bytes_received: u64,
}

impl Counts {
    /// Counts one frame of `bytes` bytes received.
    pub fn frame_received(&mut self, bytes: u64) {
        self.packets_received += 1;
        self.bytes_received += bytes;
    }

    /// Counts one message of `frames` frames and `bytes` bytes in all
    /// sent: as many calls of [`Counts::frame_sent`], the last whole.
    pub fn message_sent(&mut self, frames: u64, bytes: u64) {
        self.packets_sent += frames;
        self.bytes_sent += bytes;
        self.whole_sent += 1;
    }

    /// Counts one frame of `bytes` bytes sent; `whole` when it completes a message.
    pub fn frame_sent(&mut self, bytes: u64, whole: bool) {
        self.packets_sent += 1;
        self.bytes_sent += bytes;
        self.whole_sent += u64::from(whole);
    }

    /// The Count object, compact, members in the deployed order (`[SYS-5]`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// These counts less `other`'s, member by member (none below zero):
    /// what was counted since the counts were `other`.
    pub fn minus(self, other: Counts) -> Counts {
        self.combine(other, u64::saturating_sub)
    }

    /// These counts and `other`'s, member by member.
    pub fn plus(self, other: Counts) -> Counts {
        self.combine(other, |a, b| a + b)
    }

    fn combine(self, other: Counts, op: impl Fn(u64, u64) -> u64) -> Counts {
        Counts {
            packets_sent: op(self.packets_sent, other.packets_sent),
            packets_received: op(self.packets_received, other.packets_received),
            whole_sent: op(self.whole_sent, other.whole_sent),
            whole_received: op(self.whole_received, other.whole_received),
            bytes_sent: op(self.bytes_sent, other.bytes_sent),
            bytes_received: op(self.bytes_received, other.bytes_received),
        }
    }
}

/// Upper bounds of the seven latency ranges of a Measure object, in the
/// route's unit (`[SYS-7]`); the eighth range holds the rest.
pub const RANGE_BOUNDS: [u64; 7] = [100, 200, 300, 500, 700, 1000, 1500];
/// Per-second buckets of the five-minute window.
pub const WINDOW_SECONDS: usize = 301;

/// The requests of one latency range: their summed handler time in
/// nanoseconds, and how many.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RangeSum {
    /// Summed handler time, nanoseconds.
    #[serde(rename = "Duration")]
    pub duration_ns: u64,
    /// Requests.
    #[serde(rename = "Count")]
    pub count: u64,
}

/// The eight ranges, as `{"range_count":[…]}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TimeCount {
    /// The ranges, shortest first.
    pub range_count: [RangeSum; 8],
}

impl TimeCount {
    fn add(&mut self, range: usize, ns: u64) {
        let slot = &mut self.range_count[range];
        slot.duration_ns = slot.duration_ns.saturating_add(ns);
        slot.count += 1;
    }

    fn plus(&mut self, other: &TimeCount) {
        for (mine, theirs) in self.range_count.iter_mut().zip(&other.range_count) {
            mine.duration_ns = mine.duration_ns.saturating_add(theirs.duration_ns);
            mine.count += theirs.count;
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Second {
    epoch: u64,
    requests: u64,
    duration_ns: u64,
    ranges: TimeCount,
}

impl Second {
    /// Adds `other`'s requests to this second, which becomes `other`'s.
    fn absorb(&mut self, other: &Second) {
        self.epoch = other.epoch;
        self.requests += other.requests;
        self.duration_ns = self.duration_ns.saturating_add(other.duration_ns);
        self.ranges.plus(&other.ranges);
    }
}

/// Requests recorded by one connection and not yet added to their
/// measure, all of one second: a connection adds them once per write
/// rather than taking the measure's lock per request.
#[derive(Debug, Default)]
pub(crate) struct MeasureBatch {
    second: Second,
}

/// Parts of a measure: a request is recorded in the part of the thread
/// that handled it, so that worker threads seldom wait on one another's
/// lock; a reader adds the parts up.
const MEASURE_PARTS: usize = 8;

std::thread_local! {
    /// This thread's part of every measure, given out in turn.
    static PART: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % MEASURE_PARTS
    };
}

/// Request counts and handler latencies: totals and a five-minute window
/// of per-second buckets kept as a ring (`[SYS-7]`).
#[derive(Debug)]
pub struct Measure {
    start: Instant,
    unit: Duration,
    /// Each range's exclusive upper bound in nanoseconds: a duration is in
    /// range i when its whole units are at most `RANGE_BOUNDS[i]`.
    range_ends_ns: [u64; 7],
    /// The parts, one per group of threads; a part's window is allocated
    /// when it records its first request.
    parts: [Mutex<MeasureInner>; MEASURE_PARTS],
}

#[derive(Debug, Default)]
struct MeasureInner {
    /// Empty until the first request, then [`WINDOW_SECONDS`] long.
    window: Vec<Second>,
    /// Every request since the start (its epoch unused).
    all: Second,
}

/// A measure as read at one moment: the seconds of the window still in it
/// (older ones read as empty) and the totals; the server's adds up its
/// routes' at one moment.
#[derive(Debug, Clone)]
pub struct MeasureSnapshot {
    /// The seconds since the measure began when it was read.
    now: u64,
    window: Vec<Second>,
    /// Every request since the start (its epoch unused).
    all: Second,
}

/// The Measure object as it is serialised: members in the deployed order.
#[derive(serde::Serialize)]
struct MeasureJson {
    five_minute_requests: Vec<u64>,
    five_minute_duration: Vec<u64>,
    all_requests: u64,
    all_duration: u64,
    five_minute_timecount: Vec<TimeCount>,
    all_timecount: TimeCount,
}

impl MeasureSnapshot {
    /// Nothing recorded, read `now` seconds after the start.
    fn empty(now: u64) -> MeasureSnapshot {
        MeasureSnapshot { now, window: vec![Second::default(); WINDOW_SECONDS], all: Second::default() }
    }

    /// Adds one part's totals and the seconds of its window still in the
    /// window: buckets older than 299 seconds read 0, so the bucket after
    /// the cursor, the next to be reused, is always 0.
    fn add(&mut self, part: &MeasureInner) {
        let now = self.now;
        let live =
            |slot: &Second| slot.requests > 0 && slot.epoch <= now && now - slot.epoch < WINDOW_SECONDS as u64 - 1;
        for (sum, slot) in self.window.iter_mut().zip(&part.window).filter(|(_, slot)| live(slot)) {
            sum.absorb(slot);
        }
        self.all.absorb(&part.all);
    }

    /// The Measure object, compact (`[SYS-7]`): the per-second arrays are
    /// the ring itself, the current second at index (seconds since start)
    /// mod 301.
    pub fn to_json(&self) -> String {
        let window = &self.window;
        let json = MeasureJson {
            five_minute_requests: window.iter().map(|s| s.requests).collect(),
            five_minute_duration: window.iter().map(|s| s.duration_ns).collect(),
            all_requests: self.all.requests,
            all_duration: self.all.duration_ns,
            five_minute_timecount: window.iter().map(|s| s.ranges).collect(),
            all_timecount: self.all.ranges,
        };
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// Totals: requests, handler nanoseconds, and the ranges.
    pub fn totals(&self) -> (u64, u64, TimeCount) {
        (self.all.requests, self.all.duration_ns, self.all.ranges)
    }
}

impl Default for Measure {
    /// Latency ranges in milliseconds, as for application routes.
    fn default() -> Self {
        Measure::with_unit(Duration::from_millis(1))
    }
}

impl Measure {
    /// A measure whose latency ranges are counted in `unit`
    /// (milliseconds for application routes, microseconds for the
    /// statistics paths).
    pub fn with_unit(unit: Duration) -> Measure {
        Measure::since(unit, latency_now())
    }

    /// A measure whose window began at `start`: measures that share it
    /// add up second by second.
    fn since(unit: Duration, start: Instant) -> Measure {
        let unit_ns = u64::try_from(unit.as_nanos()).unwrap_or(u64::MAX).max(1);
        Measure {
            start,
            unit,
            range_ends_ns: RANGE_BOUNDS.map(|bound| bound.saturating_add(1).saturating_mul(unit_ns)),
            parts: Default::default(),
        }
    }

    /// The range of a duration of `ns` nanoseconds: the first whose bound
    /// its whole units do not pass, else the eighth.
    fn range_of(&self, ns: u64) -> usize {
        self.range_ends_ns.iter().position(|&end| ns < end).unwrap_or(7)
    }

    /// Records one request whose handler took `duration`, ending now.
    pub fn record(&self, duration: Duration) {
        self.record_ended(duration, latency_now())
    }

    /// Records one request whose handler took `duration` and ended at
    /// `ended` (which places it in its second): a caller that has the
    /// clock's reading already saves reading it again.
    pub(crate) fn record_ended(&self, duration: Duration, ended: Instant) {
        let mut batch = MeasureBatch::default();
        self.record_into(&mut batch, duration, ended);
        self.add_batch(&mut batch);
    }

    /// Records one request in `batch` rather than in the measure itself;
    /// a batch holding requests of an earlier second is added to the
    /// measure first, so that every request stays in its second.
    pub(crate) fn record_into(&self, batch: &mut MeasureBatch, duration: Duration, ended: Instant) {
        let epoch = ended.saturating_duration_since(self.start).as_secs();
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        if batch.second.requests > 0 && batch.second.epoch != epoch {
            self.add_batch(batch);
        }
        let second = &mut batch.second;
        second.epoch = epoch;
        second.requests += 1;
        second.duration_ns = second.duration_ns.saturating_add(ns);
        second.ranges.add(self.range_of(ns), ns);
    }

    /// Adds what `batch` holds to the measure, under one lock, and empties it.
    pub(crate) fn add_batch(&self, batch: &mut MeasureBatch) {
        let batch = std::mem::take(&mut batch.second);
        if batch.requests == 0 {
            return;
        }
        let part = PART.with(|part| *part);
        let Some(Ok(mut inner)) = self.parts.get(part).map(Mutex::lock) else { return };
        if inner.window.is_empty() {
            inner.window = vec![Second::default(); WINDOW_SECONDS];
        }
        let Some(slot) = inner.window.get_mut((batch.epoch % WINDOW_SECONDS as u64) as usize) else { return };
        if slot.epoch != batch.epoch || slot.requests == 0 {
            *slot = Second { epoch: batch.epoch, ..Second::default() };
        }
        slot.absorb(&batch);
        inner.all.absorb(&batch);
    }

    /// What the measure holds now, all parts added up.
    pub fn snapshot(&self) -> MeasureSnapshot {
        let mut snapshot = MeasureSnapshot::empty(self.start.elapsed().as_secs());
        self.add_to(&mut snapshot);
        snapshot
    }

    /// Adds every part to `snapshot`, read from a measure that began at
    /// the same instant (one of the same server).
    fn add_to(&self, snapshot: &mut MeasureSnapshot) {
        for part in &self.parts {
            if let Ok(inner) = part.lock() {
                snapshot.add(&inner);
            }
        }
    }

    /// The Measure object, compact (`[SYS-7]`); see [`MeasureSnapshot::to_json`].
    pub fn to_json(&self) -> String {
        self.snapshot().to_json()
    }

    /// Totals: requests, handler nanoseconds, and the ranges.
    pub fn totals(&self) -> (u64, u64, TimeCount) {
        self.snapshot().totals()
    }

    /// The unit of the latency ranges.
    pub fn unit(&self) -> Duration {
        self.unit
    }
}

/// Count and Measure of one route.
#[derive(Debug)]
#[non_exhaustive]
pub struct RouteStats {
    /// Messages, frames and bytes of the route.
    pub count: Count,
    /// Handler latencies of the route.
    pub measure: Measure,
    /// The route's handles in the `metrics` facade.
    pub(crate) metrics: super::metrics::RouteMetrics,
    /// The handlers' busy time, which decides where they run.
    pub(crate) busy: std::sync::Arc<super::offload::BusyMeter>,
}

impl RouteStats {
    fn new(route: &[u8], unit: Duration, start: Instant) -> RouteStats {
        RouteStats {
            count: Count::default(),
            measure: Measure::since(unit, start),
            metrics: super::metrics::RouteMetrics::new(route),
            busy: Default::default(),
        }
    }
}

/// All statistics of one server.
#[derive(Debug)]
pub struct ServerStats {
    /// Handler latencies of the statistics paths, in the server's
    /// milliseconds; the server's Measure is this and its application
    /// routes' added up. Every measure of the server began at one instant.
    system: Measure,
    /// One entry per route with a handler, fixed when the server is built,
    /// so clients cannot grow it and no lock is taken per request.
    routes: rustc_hash::FxHashMap<Bytes, Arc<RouteStats>>,
    /// The server's handles in the `metrics` facade.
    pub(crate) metrics: super::metrics::ServerMetrics,
}

impl Default for ServerStats {
    /// Statistics for a server with no application route.
    fn default() -> Self {
        ServerStats::new([])
    }
}

impl ServerStats {
    /// Statistics for a server with these application routes, and the
    /// statistics paths (`[SYS-9]`).
    pub fn new(routes: impl IntoIterator<Item = Bytes>) -> ServerStats {
        let start = latency_now();
        let application = routes.into_iter().map(|route| (route, Duration::from_millis(1)));
        let statistics = STATISTICS_PATHS.iter().map(|p| (Bytes::from_static(p.as_bytes()), Duration::from_micros(1)));
        ServerStats {
            system: Measure::since(Duration::from_millis(1), start),
            routes: application
                .chain(statistics)
                .map(|(route, unit)| {
                    let stats = Arc::new(RouteStats::new(&route, unit, start));
                    (route, stats)
                })
                .collect(),
            metrics: super::metrics::ServerMetrics::default(),
        }
    }

    /// The server's Measure (`[SYS-5]`): every request answered by a
    /// handler or a statistics path, in milliseconds.
    pub fn measure(&self) -> MeasureSnapshot {
        let mut sum = self.system.snapshot();
        for (_, stats) in self.routes.iter().filter(|(route, _)| !route.starts_with(b"/sys/")) {
            stats.measure.add_to(&mut sum);
        }
        sum
    }

    /// Records a statistics path's answer in the server's Measure (the
    /// path's own measure is recorded apart, in microseconds).
    pub(crate) fn record_system(&self, elapsed: Duration) {
        self.system.record(elapsed);
    }

    /// The server's Count: the sum of its routes' (`[SYS-9]`), so that a
    /// request is counted once, on its route.
    pub fn count(&self) -> Counts {
        self.routes.values().map(|route| route.count.snapshot()).fold(Counts::default(), Counts::plus)
    }

    /// The statistics of `route`, if it has a handler.
    pub fn route(&self, route: &[u8]) -> Option<&Arc<RouteStats>> {
        self.routes.get(route)
    }

    /// The `/sys/statis` text, durations in `time_unit` (`nanosecond`,
    /// `microsecond`, `millisecond`, `second`; anything else, or none,
    /// reads as `microsecond`, `[SYS-12]`).
    pub fn summary(&self, time_unit: &str) -> String {
        let (unit, divisor): (&str, f64) = match time_unit {
            "nanosecond" => ("nanosecond", 1.0),
            "millisecond" => ("millisecond", 1e6),
            "second" => ("second", 1e9),
            _ => ("microsecond", 1e3),
        };
        let mut out = String::new();
        let describe =
            |out: &mut String, name: &str, count: Counts, measure: MeasureSnapshot, measure_unit: Duration| {
                let (requests, total_ns, ranges) = measure.totals();
                let avg = if requests == 0 { 0.0 } else { total_ns as f64 / requests as f64 / divisor };
                let _ = writeln!(out, "{name} count: {}", count.to_json());
                let _ = writeln!(out, "{name} measure: {requests} requests, average {avg:.3} {unit}");
                let range_unit = measure_unit.as_nanos() as f64 / divisor;
                let mut lower = 0.0;
                for (i, range) in ranges.range_count.iter().enumerate() {
                    let average =
                        if range.count == 0 { 0.0 } else { range.duration_ns as f64 / range.count as f64 / divisor };
                    let _ = match RANGE_BOUNDS.get(i) {
                        Some(&bound) => {
                            let upper = bound as f64 * range_unit;
                            let line = writeln!(
                                out,
                                "  ({lower:.3}, {upper:.3}] {unit}: {} requests, average {average:.3}",
                                range.count
                            );
                            lower = upper;
                            line
                        }
                        None => writeln!(out, "  > {lower:.3} {unit}: {} requests, average {average:.3}", range.count),
                    };
                }
            };
        describe(&mut out, "total", self.count(), self.measure(), self.system.unit());
        let mut names: Vec<&Bytes> = self.routes.keys().collect();
        names.sort();
        for name in names {
            let stats = &self.routes[name];
            let measure = stats.measure.snapshot();
            describe(&mut out, &String::from_utf8_lossy(name), stats.count.snapshot(), measure, stats.measure.unit());
        }
        out
    }
}

#[cfg(test)]
mod tests;
