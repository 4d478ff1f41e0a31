//! The pace of failed authentication per source address (`[RES-10]`):
//! each source has a few failures free, then one check per interval, so
//! that guessing credentials costs time however many connections it uses.
//! Failures are logged as a summary once a minute, never once per attempt.
//!
//! Each source is one instant, the time at which its failures would have
//! been paid off (a generic cell rate algorithm): a check may run once that
//! instant is at most `FREE_FAILURES` intervals away.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures a source may have before its checks are paced.
pub(crate) const FREE_FAILURES: u32 = 4;

/// The longest a hello waits for its source's turn; a hello from a source
/// further behind is held this long, then its connection closes with
/// neither a check nor an answer.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(10);

/// Sources remembered at once; past it, the ones whose failures are paid
/// off are forgotten, and sources that still do not fit share one account.
const MAX_SOURCES: usize = 16_384;

/// How often, at most, a full table looks for sources to forget.
const PURGE_EVERY: Duration = Duration::from_secs(1);

/// How often a summary of failures is logged.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// When a hello's credentials may be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Check them after waiting this long (zero for a source in good standing).
    After(Duration),
    /// The source is too far behind: close without checking.
    Refused,
}

/// Failed authentications by source, shared by the server's connections.
#[derive(Debug)]
pub(crate) struct AuthPace {
    /// The interval a failure costs once the free ones are spent; zero
    /// switches the pace off.
    interval: Duration,
    state: Mutex<Sources>,
}

#[derive(Debug)]
struct Sources {
    /// When each source's failures are paid off; `None` is the account
    /// shared by sources that did not fit.
    paid_at: HashMap<Option<IpAddr>, Instant>,
    /// Failures since the last summary, by source.
    since_log: HashMap<Option<IpAddr>, u32>,
    last_log: Instant,
    /// When sources whose failures are paid off were last forgotten.
    last_purge: Instant,
}

impl AuthPace {
    /// A pace of one check per `interval` past the free failures; zero: off.
    pub(crate) fn new(interval: Duration) -> AuthPace {
        let now = Instant::now();
        let sources = Sources { paid_at: HashMap::new(), since_log: HashMap::new(), last_log: now, last_purge: now };
        AuthPace { interval, state: Mutex::new(sources) }
    }

    /// When a hello from `source` may have its credentials checked, at
    /// `now`. A check given a turn is booked as a failure in advance, so
    /// that hellos arriving together wait for each other; call
    /// [`AuthPace::succeeded`] or [`AuthPace::failed`] with its outcome.
    pub(crate) fn turn(&self, source: Option<IpAddr>, now: Instant) -> Turn {
        if self.interval.is_zero() {
            return Turn::After(Duration::ZERO);
        }
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let full = !state.paid_at.contains_key(&source) && state.paid_at.len() >= MAX_SOURCES;
        if full && now.saturating_duration_since(state.last_purge) >= PURGE_EVERY {
            state.paid_at.retain(|_, paid_at| *paid_at > now);
            state.last_purge = now;
        }
        let key = state.key(source);
        let paid_at = state.paid_at.get(&key).copied().unwrap_or(now).max(now);
        let allowed_from = paid_at.checked_sub(self.interval * FREE_FAILURES).unwrap_or(now);
        let wait = allowed_from.saturating_duration_since(now);
        if wait > MAX_WAIT {
            return Turn::Refused;
        }
        state.paid_at.insert(key, paid_at + self.interval);
        Turn::After(wait)
    }

    /// The check `source` was given a turn for accepted its credentials:
    /// the failure booked for it is given back.
    pub(crate) fn succeeded(&self, source: Option<IpAddr>) {
        if self.interval.is_zero() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = state.key(source);
        if let Some(paid_at) = state.paid_at.get_mut(&key) {
            *paid_at = paid_at.checked_sub(self.interval).unwrap_or(*paid_at);
        }
    }

    /// The check `source` was given a turn for refused its credentials at
    /// `now`; logs the summary of the last minute when it is due.
    pub(crate) fn failed(&self, source: Option<IpAddr>, now: Instant) {
        if self.interval.is_zero() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = state.key(source);
        let logged = match state.since_log.contains_key(&key) || state.since_log.len() < MAX_SOURCES {
            true => key,
            false => None,
        };
        *state.since_log.entry(logged).or_insert(0) += 1;
        if now.saturating_duration_since(state.last_log) >= LOG_EVERY {
            state.log(now);
        }
    }
}

impl Sources {
    /// The account of `source`: its own, or the shared one when the table
    /// is full.
    fn key(&self, source: Option<IpAddr>) -> Option<IpAddr> {
        match self.paid_at.contains_key(&source) || self.paid_at.len() < MAX_SOURCES {
            true => source,
            false => None,
        }
    }

    /// One line for the failures since the last one: how many, from how
    /// many sources, and the sources with the most.
    fn log(&mut self, now: Instant) {
        let total: u64 = self.since_log.values().map(|n| u64::from(*n)).sum();
        let mut top: Vec<_> = self.since_log.iter().map(|(source, n)| (*n, *source)).collect();
        top.sort_unstable_by_key(|(n, _)| std::cmp::Reverse(*n));
        let top: Vec<String> = top
            .iter()
            .take(5)
            .map(|(n, source)| match source {
                Some(ip) => format!("{ip}: {n}"),
                None => format!("others: {n}"),
            })
            .collect();
        tracing::warn!(
            failures = total,
            sources = self.since_log.len(),
            top = %top.join(", "),
            seconds = now.saturating_duration_since(self.last_log).as_secs(),
            "authentication failures"
        );
        self.since_log.clear();
        self.last_log = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_source_has_free_failures_then_one_check_per_interval() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let pace = AuthPace::new(s(1));
        for _ in 0..=FREE_FAILURES {
            assert_eq!(pace.turn(ip(1), t0), Turn::After(Duration::ZERO));
            pace.failed(ip(1), t0);
        }
        // The free failures are spent: the next check waits an interval.
        assert_eq!(pace.turn(ip(1), t0), Turn::After(s(1)));
        // Another source is not held back.
        assert_eq!(pace.turn(ip(2), t0), Turn::After(Duration::ZERO));
        // Waiting pays failures off.
        assert_eq!(pace.turn(ip(1), t0 + s(60)), Turn::After(Duration::ZERO));
    }

    #[test]
    fn checks_at_once_wait_for_each_other_and_success_gives_the_turn_back() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let pace = AuthPace::new(s(1));
        // Hellos arriving together, before any outcome is known.
        let turns: Vec<Turn> = (0..7).map(|_| pace.turn(ip(1), t0)).collect();
        let zero = Turn::After(Duration::ZERO);
        assert_eq!(turns, [zero, zero, zero, zero, zero, Turn::After(s(1)), Turn::After(s(2))]);
        // Successes cost nothing: a client that authenticates again and
        // again is never held back.
        let pace = AuthPace::new(s(1));
        for _ in 0..100 {
            assert_eq!(pace.turn(ip(1), t0), zero);
            pace.succeeded(ip(1));
        }
    }

    #[test]
    fn a_source_far_behind_is_refused_without_a_check() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let pace = AuthPace::new(s(1));
        // Many connections failing at once put the source 10 s behind.
        let turns: Vec<Turn> = (0..30).map(|_| pace.turn(ip(1), t0)).collect();
        assert_eq!(turns[FREE_FAILURES as usize + 10], Turn::After(s(10)));
        assert!(turns[FREE_FAILURES as usize + 11..].iter().all(|t| *t == Turn::Refused), "{turns:?}");
        // Refusals are not booked: the source catches up by waiting.
        assert_eq!(pace.turn(ip(1), t0 + s(11)), Turn::After(Duration::ZERO));
    }

    #[test]
    fn the_table_of_sources_is_bounded() {
        let t0 = Instant::now();
        let pace = AuthPace::new(Duration::from_secs(1));
        for n in 0..(MAX_SOURCES as u32 + 100) {
            let _ = pace.turn(Some(IpAddr::from(n.to_be_bytes())), t0);
        }
        let state = pace.state.lock().unwrap();
        assert!(state.paid_at.len() <= MAX_SOURCES + 1, "{} sources", state.paid_at.len());
        // The sources that did not fit share one account, paced as one
        // source: its free failures and ten seconds' worth of checks.
        let behind = Duration::from_secs(u64::from(FREE_FAILURES) + 11);
        assert_eq!(state.paid_at.get(&None), Some(&(t0 + behind)));
    }

    #[test]
    fn switched_off_it_never_waits() {
        let t0 = Instant::now();
        let pace = AuthPace::new(Duration::ZERO);
        for _ in 0..100 {
            assert_eq!(pace.turn(ip(1), t0), Turn::After(Duration::ZERO));
            pace.failed(ip(1), t0);
        }
    }
}
