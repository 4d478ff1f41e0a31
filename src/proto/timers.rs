//! The time limits of a server connection, sans I/O: the shell feeds in
//! the current [`Instant`] and what it observed, and asks for the next
//! deadline and whether one has passed (`[RES-5]`, `[RES-6]`). Nothing here
//! sleeps, so tests drive it with made-up instants.

use std::time::{Duration, Instant};

/// Time limits of a server connection; `None` switches one off (in a
/// configuration file: seconds, `0` for off).
///
/// Start from `default()` and set the fields to change: the struct is
/// `#[non_exhaustive]`, so a field added later breaks no caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Timeouts {
    /// Idle timeout (`[RES-5]`): with nothing in flight and no frame
    /// received for this long, the server sends a close frame and closes.
    /// Default 60 s.
    #[serde(with = "crate::seconds::optional")]
    pub idle: Option<Duration>,
    /// Frame read timeout (`[RES-6]`): a frame whose first byte has arrived
    /// must be complete within this long, or the connection closes (a
    /// slow-loris defence). Default 30 s.
    #[serde(with = "crate::seconds::optional")]
    pub frame: Option<Duration>,
    /// Write timeout (`[RES-7]`): with answers waiting to be written, a
    /// write that makes no progress for this long closes the connection.
    /// Default 30 s.
    #[serde(with = "crate::seconds::optional")]
    pub write: Option<Duration>,
    /// Hello timeout (`[RES-10]`): where authentication is required, a
    /// connection that has not authenticated within this long of opening
    /// closes, so that a client that never says hello, or says it a byte at
    /// a time, holds its place for no longer. Has no effect where
    /// authentication is not required. Default 10 s.
    #[serde(with = "crate::seconds::optional")]
    pub hello: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            idle: Some(Duration::from_secs(60)),
            frame: Some(Duration::from_secs(30)),
            write: Some(Duration::from_secs(30)),
            hello: Some(Duration::from_secs(10)),
        }
    }
}

/// Which time limit passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expiry {
    /// Nothing in flight and no frame for the idle timeout.
    Idle,
    /// A frame begun and not finished within the frame read timeout.
    FrameRead,
    /// Authentication required and not done within the hello timeout.
    Hello,
}

impl Expiry {
    /// The reason carried by the close frame.
    pub fn reason(self) -> &'static str {
        match self {
            Expiry::Idle => "[RES-5] idle timeout",
            Expiry::FrameRead => "[RES-6] frame read timeout",
            Expiry::Hello => "[RES-10] hello timeout",
        }
    }
}

/// The idle, frame-read and hello deadlines of one connection.
#[derive(Debug, Clone)]
pub struct ConnectionTimers {
    timeouts: Timeouts,
    /// Since when the connection has had nothing in flight; `None` while
    /// it has.
    idle_since: Option<Instant>,
    /// When the connection closes unless it has authenticated by then;
    /// `None` where authentication is not required or has happened.
    hello_by: Option<Instant>,
}

impl ConnectionTimers {
    /// Timers of a connection accepted at `now`: idle from the start.
    pub fn new(timeouts: Timeouts, now: Instant) -> ConnectionTimers {
        ConnectionTimers { timeouts, idle_since: Some(now), hello_by: None }
    }

    /// Timers of a connection accepted at `now` on a server that requires
    /// authentication: the hello timeout runs from the start.
    pub fn awaiting_hello(timeouts: Timeouts, now: Instant) -> ConnectionTimers {
        ConnectionTimers { hello_by: timeouts.hello.map(|d| now + d), ..ConnectionTimers::new(timeouts, now) }
    }

    /// The client has authenticated: the hello timeout no longer applies.
    pub fn authenticated(&mut self) {
        self.hello_by = None;
    }

    /// The limits in force.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Records what the shell saw at `now`: whether anything is in flight
    /// (requests unanswered, answers unwritten) and whether a frame arrived
    /// since the last call. A frame or the end of the last request restarts
    /// the idle clock.
    pub fn observe(&mut self, now: Instant, busy: bool, frame_received: bool) {
        if busy {
            self.idle_since = None;
        } else if frame_received || self.idle_since.is_none() {
            self.idle_since = Some(now);
        }
    }

    /// The next deadline and what it is, given since when the first byte of
    /// an unfinished frame has been waiting (`None` between frames).
    pub fn deadline(&self, frame_pending_since: Option<Instant>) -> Option<(Instant, Expiry)> {
        let frame = frame_pending_since.zip(self.timeouts.frame).map(|(t, d)| (t + d, Expiry::FrameRead));
        let idle = match frame_pending_since {
            // A frame in progress is not idleness; its own limit applies.
            Some(_) => None,
            None => self.idle_since.zip(self.timeouts.idle).map(|(t, d)| (t + d, Expiry::Idle)),
        };
        let hello = self.hello_by.map(|at| (at, Expiry::Hello));
        [frame, idle, hello].into_iter().flatten().min_by_key(|(at, _)| *at)
    }

    /// The limit that has passed at `now`, if any.
    pub fn expired(&self, now: Instant, frame_pending_since: Option<Instant>) -> Option<Expiry> {
        self.deadline(frame_pending_since).filter(|(at, _)| *at <= now).map(|(_, what)| what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            idle: Some(Duration::from_secs(10)),
            frame: Some(Duration::from_secs(3)),
            write: Some(Duration::from_secs(5)),
            hello: Some(Duration::from_secs(4)),
        }
    }

    #[test]
    fn idle_counts_from_the_last_frame_or_the_end_of_work() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut timers = ConnectionTimers::new(timeouts(), t0);
        assert_eq!(timers.deadline(None), Some((t0 + s(10), Expiry::Idle)));
        assert_eq!(timers.expired(t0 + s(9), None), None);
        assert_eq!(timers.expired(t0 + s(10), None), Some(Expiry::Idle));
        // A request arrives and is handled for a long time: never idle.
        timers.observe(t0 + s(4), true, true);
        assert_eq!(timers.deadline(None), None);
        assert_eq!(timers.expired(t0 + s(100), None), None);
        // Its answer is written at 100 s: idle from then.
        timers.observe(t0 + s(100), false, false);
        timers.observe(t0 + s(105), false, false);
        assert_eq!(timers.deadline(None), Some((t0 + s(110), Expiry::Idle)));
        // A frame at 107 s restarts the clock.
        timers.observe(t0 + s(107), false, true);
        assert_eq!(timers.expired(t0 + s(116), None), None);
        assert_eq!(timers.expired(t0 + s(117), None), Some(Expiry::Idle));
    }

    #[test]
    fn an_unfinished_frame_has_its_own_shorter_limit() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut timers = ConnectionTimers::new(timeouts(), t0);
        timers.observe(t0 + s(1), true, true);
        // Busy, and a frame began at 2 s: the frame limit still applies.
        assert_eq!(timers.deadline(Some(t0 + s(2))), Some((t0 + s(5), Expiry::FrameRead)));
        assert_eq!(timers.expired(t0 + s(5), Some(t0 + s(2))), Some(Expiry::FrameRead));
        // Idle, and a frame began at 9 s: it gets 3 s, not the idle rest.
        timers.observe(t0 + s(8), false, false);
        assert_eq!(timers.deadline(Some(t0 + s(9))), Some((t0 + s(12), Expiry::FrameRead)));
    }

    #[test]
    fn a_connection_that_must_authenticate_has_until_the_hello_timeout() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut timers = ConnectionTimers::awaiting_hello(timeouts(), t0);
        // Busy or sending frames, it still closes at 4 s.
        timers.observe(t0 + s(1), true, true);
        assert_eq!(timers.deadline(Some(t0 + s(2))), Some((t0 + s(4), Expiry::Hello)));
        assert_eq!(timers.expired(t0 + s(4), Some(t0 + s(2))), Some(Expiry::Hello));
        timers.authenticated();
        assert_eq!(timers.expired(t0 + s(4), None), None);
        assert_eq!(timers.deadline(Some(t0 + s(2))), Some((t0 + s(5), Expiry::FrameRead)));
        // Without authentication required there is no hello timeout.
        let plain = ConnectionTimers::new(timeouts(), t0);
        assert_eq!(plain.deadline(None), Some((t0 + s(10), Expiry::Idle)));
    }

    #[test]
    fn switched_off_limits_never_pass() {
        let t0 = Instant::now();
        let timers = ConnectionTimers::new(Timeouts { idle: None, frame: None, write: None, hello: None }, t0);
        assert_eq!(timers.deadline(Some(t0)), None);
        assert_eq!(timers.expired(t0 + Duration::from_secs(1 << 20), Some(t0)), None);
    }
}
