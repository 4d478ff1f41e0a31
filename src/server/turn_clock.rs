//! The clock of a connection's turn. Reading the clock is one of the
//! dearer steps of serving a small request, so a connection that serves
//! requests one after another reads it once per request where it may: the
//! reading that ends one handler's time begins the next one's
//! (`[SYS-15]`).

use super::stats::{latency_now, Instant};

/// The last clock reading of a connection's turn, kept only while nothing
/// but the connection's own work on requests (decoding, ordering,
/// counting, encoding) has run since it was taken.
#[derive(Debug, Default)]
pub(crate) struct TurnClock {
    last: Option<Instant>,
}

impl TurnClock {
    /// Where the time of a handler starting now begins: the last reading
    /// while it stands, otherwise a new one.
    #[inline(always)]
    pub(crate) fn start(&mut self) -> Instant {
        match self.last {
            Some(at) => at,
            None => latency_now(),
        }
    }

    /// A handler's time ended at the reading `at`, the last thing it did.
    #[inline(always)]
    pub(crate) fn ended(&mut self, at: Instant) {
        self.last = Some(at);
    }

    /// Something other than the connection's own work has run or is about
    /// to (a wait, another handler's poll, a handler that did not answer at
    /// once, a statistics answer): the next handler reads the clock anew.
    #[inline(always)]
    pub(crate) fn lapse(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reading_ends_a_handler_and_begins_the_next_until_a_lapse() {
        let mut clock = TurnClock::default();
        let first = clock.start();
        let ended = latency_now();
        assert!(ended >= first);
        clock.ended(ended);
        assert_eq!(clock.start(), ended, "the next handler begins where the last ended");
        assert_eq!(clock.start(), ended, "starting takes no new reading");
        clock.lapse();
        let later = clock.start();
        assert!(later >= ended, "after a lapse the clock is read anew");
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(clock.start() > later, "and it is read again until a handler ends");
    }
}
