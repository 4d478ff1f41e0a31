//! Statistics behind the `/sys/*_count`, `/sys/*_measure` and `/sys/statis`
//! paths (spec chapter "System paths", `[SYS-4]`, `[SYS-5]`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

/// Upper bounds of the latency ranges of a Measure object, in milliseconds.
pub const RANGE_BOUNDS_MS: [u64; 7] = [1, 5, 10, 50, 100, 500, 1000];
/// Per-second buckets kept for the five-minute window.
pub const WINDOW_SECONDS: usize = 301;

/// The six counters of a Count object.
#[derive(Debug, Default)]
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

    /// Counts one message sent in `frames` frames of `bytes` bytes.
    pub fn sent(&self, frames: u64, bytes: u64) {
        self.packets_sent.fetch_add(frames, Ordering::Relaxed);
        self.whole_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Adds counts gathered elsewhere.
    pub fn add(&self, counts: &Counts) {
        self.packets_sent.fetch_add(counts.packets_sent, Ordering::Relaxed);
        self.packets_received.fetch_add(counts.packets_received, Ordering::Relaxed);
        self.whole_sent.fetch_add(counts.whole_sent, Ordering::Relaxed);
        self.whole_received.fetch_add(counts.whole_received, Ordering::Relaxed);
        self.bytes_sent.fetch_add(counts.bytes_sent, Ordering::Relaxed);
        self.bytes_received.fetch_add(counts.bytes_received, Ordering::Relaxed);
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

    /// The Count object with the spec's member names (`[SYS-5]`).
    pub fn to_json(&self) -> Value {
        self.snapshot().to_json()
    }
}

/// The six counters of a Count object as plain numbers, for counts that one
/// task owns (a connection, a channel).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Frames sent.
    pub packets_sent: u64,
    /// Frames received.
    pub packets_received: u64,
    /// Complete messages sent.
    pub whole_sent: u64,
    /// Complete messages received.
    pub whole_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

impl Counts {
    /// Counts one frame of `bytes` bytes received.
    pub fn frame_received(&mut self, bytes: u64) {
        self.packets_received += 1;
        self.bytes_received += bytes;
    }

    /// Counts one frame of `bytes` bytes sent; `whole` when it completes a message.
    pub fn frame_sent(&mut self, bytes: u64, whole: bool) {
        self.packets_sent += 1;
        self.bytes_sent += bytes;
        self.whole_sent += u64::from(whole);
    }

    /// The Count object with the spec's member names (`[SYS-5]`).
    pub fn to_json(&self) -> Value {
        json!({
            "PacketsSent": self.packets_sent,
            "PacketReceived": self.packets_received,
            "WholePacketSent": self.whole_sent,
            "WholePacketReceived": self.whole_received,
            "BytesSent": self.bytes_sent,
            "BytesReceived": self.bytes_received,
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Second {
    epoch: u64,
    requests: u64,
    duration_ns: u64,
    ranges: [u64; 8],
}

/// Request counts and handler latencies: totals and a five-minute window.
#[derive(Debug)]
pub struct Measure {
    start: Instant,
    inner: Mutex<MeasureInner>,
}

#[derive(Debug)]
struct MeasureInner {
    window: Vec<Second>,
    all_requests: u64,
    all_duration_ns: u64,
    all_ranges: [u64; 8],
}

fn range_index(duration: Duration) -> usize {
    let ms = duration.as_secs_f64() * 1000.0;
    RANGE_BOUNDS_MS.iter().position(|&b| ms <= b as f64).unwrap_or(7)
}

impl Default for Measure {
    fn default() -> Self {
        Measure {
            start: Instant::now(),
            inner: Mutex::new(MeasureInner {
                window: vec![Second::default(); WINDOW_SECONDS],
                all_requests: 0,
                all_duration_ns: 0,
                all_ranges: [0; 8],
            }),
        }
    }
}

impl Measure {
    fn now_epoch(&self) -> u64 {
        self.start.elapsed().as_secs() + 1
    }

    /// Records one request whose handler took `duration`.
    pub fn record(&self, duration: Duration) {
        let epoch = self.now_epoch();
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let range = range_index(duration);
        let Ok(mut inner) = self.inner.lock() else { return };
        let slot = &mut inner.window[(epoch % WINDOW_SECONDS as u64) as usize];
        if slot.epoch != epoch {
            *slot = Second { epoch, ..Second::default() };
        }
        slot.requests += 1;
        slot.duration_ns = slot.duration_ns.saturating_add(ns);
        slot.ranges[range] += 1;
        inner.all_requests += 1;
        inner.all_duration_ns = inner.all_duration_ns.saturating_add(ns);
        inner.all_ranges[range] += 1;
    }

    fn range_json(ranges: &[u64; 8]) -> Value {
        let entries: Vec<Value> = (0..8)
            .map(|i| {
                let bound = RANGE_BOUNDS_MS.get(i).map(|ms| ms * 1_000_000).unwrap_or(0);
                json!({"Duration": bound, "Count": ranges[i]})
            })
            .collect();
        json!({ "range_count": entries })
    }

    /// The Measure object (spec section 9.2).
    pub fn to_json(&self) -> Value {
        let now = self.now_epoch();
        let Ok(inner) = self.inner.lock() else { return Value::Null };
        let mut requests = Vec::with_capacity(WINDOW_SECONDS);
        let mut durations = Vec::with_capacity(WINDOW_SECONDS);
        let mut window_ranges = [0u64; 8];
        for back in (0..WINDOW_SECONDS as u64).rev() {
            let epoch = now.saturating_sub(back);
            let slot = inner.window[(epoch % WINDOW_SECONDS as u64) as usize];
            let live = epoch > 0 && slot.epoch == epoch;
            requests.push(if live { slot.requests } else { 0 });
            durations.push(if live { slot.duration_ns } else { 0 });
            if live {
                for (total, n) in window_ranges.iter_mut().zip(slot.ranges) {
                    *total += n;
                }
            }
        }
        json!({
            "five_minute_requests": requests,
            "five_minute_duration": durations,
            "all_requests": inner.all_requests,
            "all_duration": inner.all_duration_ns,
            "five_minute_timecount": Self::range_json(&window_ranges),
            "all_timecount": Self::range_json(&inner.all_ranges),
        })
    }

    /// Totals: requests, handler nanoseconds, and counts per range.
    pub fn totals(&self) -> (u64, u64, [u64; 8]) {
        self.inner.lock().map(|i| (i.all_requests, i.all_duration_ns, i.all_ranges)).unwrap_or_default()
    }
}

/// Count and Measure of one route.
#[derive(Debug)]
pub struct RouteStats {
    /// Messages, frames and bytes of the route.
    pub count: Count,
    /// Handler latencies of the route.
    pub measure: Measure,
    /// The route's handles in the `metrics` facade.
    pub(crate) metrics: super::metrics::RouteMetrics,
}

impl RouteStats {
    fn new(route: &[u8]) -> RouteStats {
        RouteStats {
            count: Count::default(),
            measure: Measure::default(),
            metrics: super::metrics::RouteMetrics::new(route),
        }
    }
}

/// All statistics of one server.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Messages, frames and bytes of the whole server.
    pub count: Count,
    /// Handler latencies of the whole server.
    pub measure: Measure,
    /// One entry per route with a handler, fixed when the server is built,
    /// so clients cannot grow it and no lock is taken per request.
    routes: HashMap<Bytes, Arc<RouteStats>>,
    /// The server's handles in the `metrics` facade.
    pub(crate) metrics: super::metrics::ServerMetrics,
}

impl ServerStats {
    /// Statistics for a server with these routes.
    pub fn new(routes: impl IntoIterator<Item = Bytes>) -> ServerStats {
        ServerStats {
            count: Count::default(),
            measure: Measure::default(),
            routes: routes
                .into_iter()
                .map(|route| {
                    let stats = Arc::new(RouteStats::new(&route));
                    (route, stats)
                })
                .collect(),
            metrics: super::metrics::ServerMetrics::default(),
        }
    }

    /// The statistics of `route`, if it has a handler.
    pub fn route(&self, route: &[u8]) -> Option<&Arc<RouteStats>> {
        self.routes.get(route)
    }

    /// The `/sys/statis` text, durations in `unit` (`[SYS-4]`).
    pub fn summary(&self, unit: &str) -> String {
        let divisor: f64 = match unit {
            "nanosecond" => 1.0,
            "microsecond" => 1e3,
            "second" => 1e9,
            _ => 1e6,
        };
        let unit = if matches!(unit, "nanosecond" | "microsecond" | "second") { unit } else { "millisecond" };
        let mut out = String::new();
        let describe = |out: &mut String, name: &str, count: &Count, measure: &Measure| {
            let (requests, total_ns, ranges) = measure.totals();
            let avg = if requests == 0 { 0.0 } else { total_ns as f64 / requests as f64 / divisor };
            let _ = writeln!(out, "{name}: {} avg {avg:.3} {unit}", count.to_json());
            let mut lower = 0u64;
            for (i, n) in ranges.iter().enumerate() {
                match RANGE_BOUNDS_MS.get(i) {
                    Some(&ms) => {
                        let upper = ms as f64 * 1e6 / divisor;
                        let _ = writeln!(
                            out,
                            "  ({lower:.3}, {upper:.3}] {unit}: {n}",
                            lower = lower as f64 * 1e6 / divisor
                        );
                        lower = ms;
                    }
                    None => {
                        let _ = writeln!(out, "  > {:.3} {unit}: {n}", lower as f64 * 1e6 / divisor);
                    }
                }
            }
        };
        describe(&mut out, "server", &self.count, &self.measure);
        let mut names: Vec<&Bytes> = self.routes.keys().collect();
        names.sort();
        for name in names {
            let stats = &self.routes[name];
            describe(&mut out, &String::from_utf8_lossy(name), &stats.count, &stats.measure);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_has_the_spec_shape() {
        let m = Measure::default();
        m.record(Duration::from_micros(500));
        m.record(Duration::from_millis(7));
        m.record(Duration::from_secs(2));
        let v = m.to_json();
        assert_eq!(v["five_minute_requests"].as_array().map(Vec::len), Some(WINDOW_SECONDS));
        assert_eq!(v["all_requests"], 3);
        let ranges = v["all_timecount"]["range_count"].as_array().cloned().unwrap_or_default();
        assert_eq!(ranges.len(), 8);
        assert_eq!(
            (ranges[0]["Count"].clone(), ranges[2]["Count"].clone(), ranges[7]["Count"].clone()),
            (json!(1), json!(1), json!(1))
        );
        assert_eq!(
            v["five_minute_requests"].as_array().map(|a| a.iter().filter_map(Value::as_u64).sum::<u64>()),
            Some(3)
        );
    }
}
