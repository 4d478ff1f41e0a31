//! The client's side of the `ping` extension (`[EXT-7]`), sans I/O: the
//! shell feeds in the time and how many frames have arrived so far; the
//! timer says when to ping and when the peer is dead. Nothing sleeps here.

use std::time::{Duration, Instant};

/// What the shell must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LivenessAction {
    /// Send `/sys/ping`.
    Ping,
    /// Nothing arrived within the timeout of a ping: the peer is dead.
    Dead {
        /// How long nothing has arrived.
        silent: Duration,
    },
}

/// When to ping and when to give up on a silent peer. A ping goes out after
/// `interval` with nothing received; the peer is dead when nothing at all
/// arrives within `timeout` of that ping. A dead peer is therefore found at
/// most `interval + timeout` after its last frame.
#[derive(Debug, Clone)]
pub struct Liveness {
    interval: Duration,
    timeout: Duration,
    heard_at: Instant,
    frames_seen: u64,
    ping_sent: Option<Instant>,
}

impl Liveness {
    /// A timer started at `now`, as if a frame had just arrived.
    pub fn new(interval: Duration, timeout: Duration, now: Instant) -> Liveness {
        Liveness { interval, timeout, heard_at: now, frames_seen: 0, ping_sent: None }
    }

    /// The ping interval: the client's own, but at most half the server's
    /// idle timeout, so that an idle connection is kept open (`[EXT-7]`).
    pub fn interval_for(own: Duration, idle_timeout_ms: Option<u64>) -> Duration {
        match idle_timeout_ms {
            Some(ms) => own.min(Duration::from_millis(ms / 2)).max(Duration::from_millis(1)),
            None => own,
        }
    }

    /// Records that `frames` frames have arrived in all by `now`; any new
    /// one proves the peer alive.
    pub fn observe(&mut self, now: Instant, frames: u64) {
        if frames != self.frames_seen {
            self.frames_seen = frames;
            self.heard_at = now;
            self.ping_sent = None;
        }
    }

    /// What to do at `now`, if anything.
    pub fn poll(&mut self, now: Instant) -> Option<LivenessAction> {
        match self.ping_sent {
            Some(sent) if now >= sent + self.timeout => {
                Some(LivenessAction::Dead { silent: now.saturating_duration_since(self.heard_at) })
            }
            Some(_) => None,
            None if now >= self.heard_at + self.interval => {
                self.ping_sent = Some(now);
                Some(LivenessAction::Ping)
            }
            None => None,
        }
    }

    /// When [`Liveness::poll`] next has something to say.
    pub fn deadline(&self) -> Instant {
        match self.ping_sent {
            Some(sent) => sent + self.timeout,
            None => self.heard_at + self.interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_silent_peer_is_dead_within_interval_plus_timeout() {
        let t0 = Instant::now();
        let mut live = Liveness::new(5 * S, 2 * S, t0);
        assert_eq!(live.poll(t0 + 4 * S), None);
        assert_eq!(live.deadline(), t0 + 5 * S);
        assert_eq!(live.poll(t0 + 5 * S), Some(LivenessAction::Ping));
        assert_eq!(live.poll(t0 + 6 * S), None, "one ping per silence");
        assert_eq!(live.poll(t0 + 7 * S), Some(LivenessAction::Dead { silent: 7 * S }));
    }

    #[test]
    fn any_frame_answers_a_ping_and_restarts_the_interval() {
        let t0 = Instant::now();
        let mut live = Liveness::new(5 * S, 2 * S, t0);
        assert_eq!(live.poll(t0 + 5 * S), Some(LivenessAction::Ping));
        live.observe(t0 + 6 * S, 1);
        assert_eq!(live.poll(t0 + 8 * S), None);
        assert_eq!(live.deadline(), t0 + 11 * S);
        live.observe(t0 + 9 * S, 1);
        assert_eq!(live.deadline(), t0 + 11 * S, "no new frame, no news");
    }

    #[test]
    fn the_interval_keeps_inside_half_the_idle_timeout() {
        assert_eq!(Liveness::interval_for(30 * S, Some(20_000)), 10 * S);
        assert_eq!(Liveness::interval_for(3 * S, Some(20_000)), 3 * S);
        assert_eq!(Liveness::interval_for(3 * S, None), 3 * S);
    }
}
