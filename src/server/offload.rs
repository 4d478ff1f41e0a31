//! Where a route's handlers run. A handler runs inside its connection's
//! task by default: no spawn, no cross-thread wake-up per request, which is
//! what cheap handlers want. But then one connection — the common case for
//! a multiplexed protocol — uses one core however many channels it
//! carries. A [`BusyMeter`] per route measures, on a sample of requests,
//! the time its handlers spend inside `poll` (their CPU, not their waits);
//! once that passes the server's `offload_after`, the route's handlers are
//! spawned onto the runtime's other workers instead, and brought back
//! inline when it falls under half of it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// One request in this many is measured (counted per connection).
pub(crate) const SAMPLE_EVERY: u32 = 8;

/// The time a route's handlers spend in `poll`, as a moving average.
#[derive(Debug, Default)]
pub(crate) struct BusyMeter {
    /// Exponential moving average of the busy time per request, in ns.
    average_ns: AtomicU64,
    /// Whether the route's handlers run spawned.
    offloaded: AtomicBool,
}

impl BusyMeter {
    /// Whether this route's handlers run on other workers now.
    pub(crate) fn offloaded(&self) -> bool {
        self.offloaded.load(Ordering::Relaxed)
    }

    /// The moving average of busy time per request.
    #[cfg(test)]
    pub(crate) fn average(&self) -> Duration {
        Duration::from_nanos(self.average_ns.load(Ordering::Relaxed))
    }

    /// Records one measured request, and moves the route out when its
    /// average passes `after`, back in under half of it.
    pub(crate) fn record(&self, busy: Duration, after: Duration) {
        // A poll the thread was descheduled in measures the preemption, not
        // the handler: one sample counts for at most twice the threshold,
        // so only requests that are slow again and again move the route.
        let busy = busy.min(after * 2).as_nanos().min(u128::from(u64::MAX)) as u64;
        let old = self.average_ns.load(Ordering::Relaxed);
        // Weight 1/4: a few samples settle it; races only lose a sample.
        let new = if old == 0 { busy } else { old - old / 4 + busy / 4 };
        self.average_ns.store(new, Ordering::Relaxed);
        let after = after.as_nanos().min(u128::from(u64::MAX)) as u64;
        if new > after {
            self.offloaded.store(true, Ordering::Relaxed);
        } else if new < after / 2 {
            self.offloaded.store(false, Ordering::Relaxed);
        }
    }
}

/// A future whose time inside `poll` is added up and recorded in a
/// [`BusyMeter`] when it completes.
pub(crate) struct Timed<F> {
    inner: Pin<Box<F>>,
    busy: Duration,
    meter: Arc<BusyMeter>,
    after: Duration,
}

impl<F: Future> Timed<F> {
    pub(crate) fn new(inner: F, meter: Arc<BusyMeter>, after: Duration) -> Timed<F> {
        Timed { inner: Box::pin(inner), busy: Duration::ZERO, meter, after }
    }

    /// Counts `busy` as spent already: a first poll made before wrapping.
    pub(crate) fn already_busy(mut self, busy: Duration) -> Timed<F> {
        self.busy += busy;
        self
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = Instant::now();
        let polled = self.inner.as_mut().poll(cx);
        self.busy += started.elapsed();
        if polled.is_ready() {
            self.meter.record(self.busy, self.after);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_moves_out_past_the_threshold_and_back_under_half_of_it() {
        let meter = BusyMeter::default();
        let after = Duration::from_micros(10);
        meter.record(Duration::from_micros(2), after);
        assert!(!meter.offloaded());
        // Two preempted polls do not move a cheap route.
        meter.record(Duration::from_millis(5), after);
        meter.record(Duration::from_millis(5), after);
        assert!(!meter.offloaded(), "{:?}", meter.average());
        for _ in 0..12 {
            meter.record(Duration::from_micros(1), after);
        }
        for _ in 0..8 {
            meter.record(Duration::from_micros(20), after);
        }
        assert!(meter.offloaded(), "{:?}", meter.average());
        for _ in 0..3 {
            meter.record(Duration::from_micros(8), after);
        }
        assert!(meter.offloaded(), "between half and the threshold it stays: {:?}", meter.average());
        for _ in 0..12 {
            meter.record(Duration::from_micros(1), after);
        }
        assert!(!meter.offloaded(), "{:?}", meter.average());
    }
}
