//! The server's memory accounting (`[RES-1]`): every connection adds what
//! it holds to one total, so that a server-wide budget can be enforced and
//! read back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes held by all connections of a server, and the highest figures seen.
#[derive(Debug)]
pub struct MemoryStats {
    budget: usize,
    held: AtomicUsize,
    peak: AtomicUsize,
    peak_connection: AtomicUsize,
}

impl MemoryStats {
    /// Accounting against a server-wide budget of `budget` bytes.
    pub fn new(budget: usize) -> MemoryStats {
        MemoryStats {
            budget,
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            peak_connection: AtomicUsize::new(0),
        }
    }

    /// The server-wide budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes held now by all connections: requests being assembled or
    /// handled, answers not yet written, unfinished frames read.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The most [`MemoryStats::held`] has been.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// The most one connection has held.
    pub fn peak_connection(&self) -> usize {
        self.peak_connection.load(Ordering::Relaxed)
    }

    /// The highest figures since the last call, as (server total, one
    /// connection); both start again from what is held now.
    pub fn take_peaks(&self) -> (usize, usize) {
        let now = self.held();
        (self.peak.swap(now, Ordering::Relaxed), self.peak_connection.swap(0, Ordering::Relaxed))
    }

    /// Whether the server holds its budget or more.
    pub fn full(&self) -> bool {
        self.held() >= self.budget
    }
}

/// The pace of compression work the server does for its peers: one
/// schedule shared by every connection, each body's work taking its time
/// on it at the rate allowed (`[RES-9]`).
#[derive(Debug)]
pub(crate) struct CodecPace {
    /// Bytes per second; 0 for no pace.
    rate: u64,
    epoch: std::time::Instant,
    /// Nanoseconds after `epoch` when the schedule is free again.
    free_at: std::sync::atomic::AtomicU64,
}

impl CodecPace {
    pub(crate) fn new(rate: usize) -> CodecPace {
        CodecPace { rate: rate as u64, epoch: std::time::Instant::now(), free_at: std::sync::atomic::AtomicU64::new(0) }
    }

    /// Books `bytes` of work done now; the instant until which the
    /// connection that asked for it waits, `None` when it need not.
    pub(crate) fn book(&self, bytes: u64) -> Option<std::time::Instant> {
        if self.rate == 0 || bytes == 0 {
            return None;
        }
        let cost = u64::try_from(u128::from(bytes) * 1_000_000_000 / u128::from(self.rate)).unwrap_or(u64::MAX);
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let booked = |free: u64| Some(free.max(now).saturating_add(cost));
        let before = self.free_at.fetch_update(Ordering::Relaxed, Ordering::Relaxed, booked).unwrap_or(now);
        let end = before.max(now).saturating_add(cost);
        // Work within the allowance so far costs no wait.
        (end > now.saturating_add(cost)).then(|| self.epoch + std::time::Duration::from_nanos(end))
    }
}

/// One connection's share of [`MemoryStats`]; gives its bytes back when
/// dropped.
#[derive(Debug)]
pub(crate) struct HeldShare {
    stats: Arc<MemoryStats>,
    reported: usize,
}

impl HeldShare {
    pub(crate) fn new(stats: Arc<MemoryStats>) -> HeldShare {
        HeldShare { stats, reported: 0 }
    }

    /// What this connection last reported.
    pub(crate) fn reported(&self) -> usize {
        self.reported
    }

    /// Sets what this connection holds now.
    pub(crate) fn set(&mut self, held: usize) {
        if held == self.reported {
            return;
        }
        if held > self.reported {
            let total = self.stats.held.fetch_add(held - self.reported, Ordering::Relaxed) + held - self.reported;
            self.stats.peak.fetch_max(total, Ordering::Relaxed);
            self.stats.peak_connection.fetch_max(held, Ordering::Relaxed);
        } else {
            self.stats.held.fetch_sub(self.reported - held, Ordering::Relaxed);
        }
        self.reported = held;
    }
}

impl Drop for HeldShare {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_are_given_back() {
        let stats = Arc::new(MemoryStats::new(100));
        let mut a = HeldShare::new(stats.clone());
        let mut b = HeldShare::new(stats.clone());
        a.set(60);
        b.set(30);
        assert_eq!((stats.held(), stats.full()), (90, false));
        b.set(50);
        assert_eq!((stats.held(), stats.full(), stats.peak(), stats.peak_connection()), (110, true, 110, 60));
        a.set(10);
        drop(b);
        assert_eq!((stats.held(), stats.peak()), (10, 110));
        drop(a);
        assert_eq!(stats.held(), 0);
    }

    #[test]
    fn codec_work_past_the_rate_waits_its_turn() {
        let pace = CodecPace::new(1 << 20);
        assert_eq!(pace.book(0), None);
        assert_eq!(pace.book(1 << 20), None, "the first second's work is free");
        let wait = pace.book(1 << 20).expect("the next second's work waits");
        let ahead = wait.saturating_duration_since(std::time::Instant::now());
        assert!(
            ahead > std::time::Duration::from_millis(900) && ahead <= std::time::Duration::from_secs(2),
            "{ahead:?}"
        );
        assert_eq!(CodecPace::new(0).book(u64::MAX), None, "no pace");
    }
}
