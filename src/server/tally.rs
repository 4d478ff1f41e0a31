//! A connection's tallies of its routes' statistics. A request answered in
//! its connection's turn is counted and measured here, with no atomic
//! operation and no lock; the tallies are added to the routes' shared
//! statistics once per write (and when the connection ends), so that a
//! statistics path read by any client lags by at most the answers of one
//! read, none of which it has received yet.

use std::sync::Arc;
use std::time::Duration;

use super::offload::SAMPLE_EVERY;
use super::stats::{Counts, Instant, MeasureBatch, RouteStats};

/// One answered request, as its route's statistics record it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answered {
    /// The handler's time.
    pub(crate) elapsed: Duration,
    /// When the handler ended.
    pub(crate) ended: Instant,
    /// Frames and whole-frame bytes of the answer (`[SYS-8]`).
    pub(crate) frames: u64,
    pub(crate) bytes: u64,
}

impl Answered {
    /// Records the answer on the route's shared statistics at once (an
    /// answer computed outside the connection's turn).
    pub(crate) fn record_on(&self, stats: &RouteStats) {
        stats.measure.record_ended(self.elapsed, self.ended);
        stats.count.sent(self.frames, self.bytes);
    }
}

/// The tallies of every route a connection has served, added to the
/// routes' statistics by [`RouteTallies::report`] and on drop. A server's
/// routes are fixed when it is built, so there are at most as many
/// tallies as routes.
#[derive(Debug, Default)]
pub(crate) struct RouteTallies {
    tallies: Vec<RouteTally>,
}

/// One route's counts and latencies not yet in its statistics.
#[derive(Debug)]
pub(crate) struct RouteTally {
    stats: Arc<RouteStats>,
    counts: Counts,
    measure: MeasureBatch,
    /// Requests seen, for sampling the handlers' busy time.
    requests: u32,
}

impl RouteTallies {
    /// The tally of the route whose statistics are `stats`.
    pub(crate) fn of(&mut self, stats: &Arc<RouteStats>) -> &mut RouteTally {
        let at = match self.tallies.iter().position(|tally| Arc::ptr_eq(&tally.stats, stats)) {
            Some(at) => at,
            None => {
                self.tallies.push(RouteTally {
                    stats: stats.clone(),
                    counts: Counts::default(),
                    measure: MeasureBatch::default(),
                    requests: 0,
                });
                self.tallies.len() - 1
            }
        };
        &mut self.tallies[at]
    }

    /// Adds every tally to its route's statistics and empties it.
    pub(crate) fn report(&mut self) {
        for tally in &mut self.tallies {
            if tally.counts != Counts::default() {
                tally.stats.count.add(&std::mem::take(&mut tally.counts));
            }
            tally.stats.measure.add_batch(&mut tally.measure);
        }
    }
}

impl Drop for RouteTallies {
    fn drop(&mut self) {
        self.report();
    }
}

impl RouteTally {
    /// Counts one request received in `frames` frames of `bytes` bytes.
    pub(crate) fn received(&mut self, frames: u64, bytes: u64) {
        self.counts.packets_received += frames;
        self.counts.whole_received += 1;
        self.counts.bytes_received += bytes;
    }

    /// Counts and measures one answer.
    pub(crate) fn answered(&mut self, answered: &Answered) {
        self.stats.measure.record_into(&mut self.measure, answered.elapsed, answered.ended);
        self.counts.packets_sent += answered.frames;
        self.counts.whole_sent += 1;
        self.counts.bytes_sent += answered.bytes;
    }

    /// Whether this request is one of those that measure the route's busy
    /// time: one in [`SAMPLE_EVERY`] of each connection's.
    pub(crate) fn sample(&mut self) -> bool {
        let sampled = self.requests % SAMPLE_EVERY == 0;
        self.requests = self.requests.wrapping_add(1);
        sampled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::stats::ServerStats;

    #[test]
    fn tallies_reach_the_routes_statistics_when_reported_and_on_drop() {
        let stats = ServerStats::new([bytes::Bytes::from_static(b"/a"), bytes::Bytes::from_static(b"/b")]);
        let (a, b) = (stats.route(b"/a").unwrap().clone(), stats.route(b"/b").unwrap().clone());
        let mut tallies = RouteTallies::default();
        let answered = Answered { elapsed: Duration::from_micros(1500), ended: Instant::now(), frames: 1, bytes: 20 };
        for _ in 0..3 {
            let tally = tallies.of(&a);
            tally.received(1, 17);
            tally.answered(&answered);
        }
        tallies.of(&b).received(2, 40);
        assert_eq!(tallies.tallies.len(), 2, "one tally per route");
        assert_eq!(a.count.snapshot(), Counts::default(), "nothing reaches the route before a report");
        assert_eq!(a.measure.totals().0, 0);
        tallies.report();
        let counts = a.count.snapshot();
        assert_eq!((counts.whole_received, counts.packets_received, counts.bytes_received), (3, 3, 51));
        assert_eq!((counts.whole_sent, counts.packets_sent, counts.bytes_sent), (3, 3, 60));
        let (requests, total_ns, ranges) = a.measure.totals();
        assert_eq!((requests, total_ns), (3, 4_500_000));
        assert_eq!(ranges.range_count[0].count, 3, "1.5 ms is in the first range of a millisecond route");
        tallies.report();
        assert_eq!(a.count.snapshot().whole_received, 3, "a report empties the tallies");
        tallies.of(&a).received(1, 17);
        drop(tallies);
        assert_eq!(a.count.snapshot().whole_received, 4, "dropping reports");
        assert_eq!(b.count.snapshot().packets_received, 2);
    }

    #[test]
    fn one_request_in_eight_is_sampled_per_connection() {
        let stats = ServerStats::new([bytes::Bytes::from_static(b"/a")]);
        let route = stats.route(b"/a").unwrap().clone();
        let mut tallies = RouteTallies::default();
        let tally = tallies.of(&route);
        assert_eq!((0..64).filter(|_| tally.sample()).count(), 8);
    }
}
