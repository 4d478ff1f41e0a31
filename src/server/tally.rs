//! A connection's tallies of its routes' statistics. A request answered in
//! its connection's turn is counted and measured here, with no atomic
//! operation and no lock; the tallies are added to the routes' shared
//! statistics once per write (and when the connection ends), so that a
//! statistics path read by any client lags by at most the answers of one
//! read, none of which it has received yet.
//!
//! [`Tally`] and [`Answered`] are public for shells of their own over the
//! sans-IO core that keep a route's statistics the way the server does.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustc_hash::FxHashMap;

use super::offload::SAMPLE_EVERY;
use super::stats::{Counts, Instant, MeasureBatch, RouteStats};
use super::Route;

/// One answered request, as its route's statistics record it.
#[derive(Debug, Clone, Copy)]
pub struct Answered {
    /// The handler's time.
    pub elapsed: Duration,
    /// When the handler ended, on the latency clock
    /// ([`latency_now`](super::stats::latency_now)): it places the request
    /// in its second.
    pub ended: Instant,
    /// Frames of the answer (`[SYS-8]`).
    pub frames: u64,
    /// Whole-frame bytes of the answer, headers included (`[SYS-8]`).
    pub bytes: u64,
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
/// tallies as routes. It also looks routes up for its connection.
#[derive(Default)]
pub(crate) struct RouteTallies {
    tallies: Vec<RouteTally>,
    /// The route looked up last and where its tally is: a connection
    /// mostly asks for the same route again, which then costs one
    /// comparison instead of a hash lookup and a search of the tallies.
    last: Option<(Bytes, usize)>,
}

/// A route and its tally.
struct RouteTally {
    route: Route,
    tally: Tally,
}

/// One route's counts and latencies not yet in its statistics: empty when
/// made, added to them by [`Tally::report_to`].
#[derive(Debug, Default)]
pub struct Tally {
    counts: Counts,
    measure: MeasureBatch,
    /// Requests seen, for sampling the handlers' busy time.
    requests: u32,
}

impl RouteTallies {
    /// The route named `name` in `routes` and its tally, if there is such
    /// a route.
    #[inline(always)]
    pub(crate) fn find(&mut self, routes: &FxHashMap<Bytes, Route>, name: &[u8]) -> Option<Found<'_>> {
        let known = matches!(&self.last, Some((last, _)) if crate::wire::scan::same_bytes(last, name));
        if !known {
            self.look_up(routes, name)?;
        }
        let (key, at) = self.last.as_ref()?;
        let RouteTally { route, tally } = self.tallies.get_mut(*at)?;
        Some(Found { name: key, route, tally })
    }

    /// Looks `name` up in `routes` and remembers it as the last route;
    /// `None` if there is no such route.
    #[inline(never)]
    fn look_up(&mut self, routes: &FxHashMap<Bytes, Route>, name: &[u8]) -> Option<()> {
        let (key, route) = routes.get_key_value(name)?;
        let at = position(&mut self.tallies, route);
        self.last = Some((key.clone(), at));
        Some(())
    }

    /// Adds every tally to its route's statistics and empties it.
    pub(crate) fn report(&mut self) {
        for RouteTally { route, tally } in &mut self.tallies {
            tally.report_to(&route.stats);
        }
    }
}

/// Where the tally of `route` is in `tallies`, made if there is none yet.
fn position(tallies: &mut Vec<RouteTally>, route: &Route) -> usize {
    match tallies.iter().position(|known| Arc::ptr_eq(&known.route.stats, &route.stats)) {
        Some(at) => at,
        None => {
            tallies.push(RouteTally { route: route.clone(), tally: Tally::default() });
            tallies.len() - 1
        }
    }
}

/// A route a connection looked up.
pub(crate) struct Found<'a> {
    /// Its name, as the server holds it: the same bytes as the name looked
    /// up, which an answer's frames may carry without a copy of their own.
    pub(crate) name: &'a Bytes,
    pub(crate) route: &'a Route,
    pub(crate) tally: &'a mut Tally,
}

impl Drop for RouteTallies {
    fn drop(&mut self) {
        self.report();
    }
}

impl Tally {
    /// Counts one request received in `frames` frames of `bytes` bytes.
    pub fn received(&mut self, frames: u64, bytes: u64) {
        self.counts.packets_received += frames;
        self.counts.whole_received += 1;
        self.counts.bytes_received += bytes;
    }

    /// Counts and measures one answer of the route whose statistics are `stats`.
    #[inline(always)]
    pub fn answered(&mut self, stats: &RouteStats, answered: &Answered) {
        stats.measure.record_into(&mut self.measure, answered.elapsed, answered.ended);
        self.counts.packets_sent += answered.frames;
        self.counts.whole_sent += 1;
        self.counts.bytes_sent += answered.bytes;
    }

    /// Adds what this tally holds to `stats`, its route's statistics, and
    /// empties it.
    pub fn report_to(&mut self, stats: &RouteStats) {
        if self.counts != Counts::default() {
            stats.count.add(&std::mem::take(&mut self.counts));
        }
        stats.measure.add_batch(&mut self.measure);
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
    use crate::server::handler::{Handler, HandlerError, SyncFnHandler};
    use crate::server::stats::ServerStats;

    /// Routes `/a` and `/b` with their statistics, as a server holds them.
    fn routes() -> (FxHashMap<Bytes, Route>, Arc<RouteStats>, Arc<RouteStats>) {
        let stats = ServerStats::new([Bytes::from_static(b"/a"), Bytes::from_static(b"/b")]);
        let (a, b) = (stats.route(b"/a").unwrap().clone(), stats.route(b"/b").unwrap().clone());
        let handler: Arc<dyn Handler> = Arc::new(SyncFnHandler(|_| Ok::<_, HandlerError>(Bytes::new())));
        let route = |stats: &Arc<RouteStats>| Route { handler: handler.clone(), stats: stats.clone() };
        let routes =
            FxHashMap::from_iter([(Bytes::from_static(b"/a"), route(&a)), (Bytes::from_static(b"/b"), route(&b))]);
        (routes, a, b)
    }

    #[test]
    fn tallies_reach_the_routes_statistics_when_reported_and_on_drop() {
        let (routes, a, b) = routes();
        let mut tallies = RouteTallies::default();
        let answered = Answered { elapsed: Duration::from_micros(1500), ended: Instant::now(), frames: 1, bytes: 20 };
        for _ in 0..3 {
            let Found { name, route, tally } = tallies.find(&routes, b"/a").unwrap();
            assert_eq!(&name[..], b"/a");
            assert!(Arc::ptr_eq(&route.stats, &a));
            tally.received(1, 17);
            tally.answered(&a, &answered);
        }
        tallies.find(&routes, b"/b").unwrap().tally.received(2, 40);
        assert!(tallies.find(&routes, b"/c").is_none(), "no such route");
        tallies.find(&routes, b"/a").unwrap();
        assert_eq!(tallies.tallies.len(), 2, "one tally per route, whatever the order of lookups");
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
        tallies.find(&routes, b"/a").unwrap().tally.received(1, 17);
        drop(tallies);
        assert_eq!(a.count.snapshot().whole_received, 4, "dropping reports");
        assert_eq!(b.count.snapshot().packets_received, 2);
    }

    #[test]
    fn one_request_in_eight_is_sampled_per_connection() {
        let (routes, _, _) = routes();
        let mut tallies = RouteTallies::default();
        let tally = tallies.find(&routes, b"/a").unwrap().tally;
        assert_eq!((0..64).filter(|_| tally.sample()).count(), 8);
    }
}
