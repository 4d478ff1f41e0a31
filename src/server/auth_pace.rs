//! The pace of failed authentication per source address (`[RES-10]`):
//! each source has a few failures free, then one check per interval, so
//! that guessing credentials costs time however many connections it uses.
//! Failures are logged as a summary once a minute, never once per attempt.
//!
//! Each source is one instant, the time at which its failures would have
//! been paid off (a generic cell rate algorithm): a check may run once that
//! instant is at most `FREE_FAILURES` intervals away. So that hellos
//! arriving together cannot all be checked before the first failure is
//! known, a source has at most `FREE_FAILURES` checks running at once, and
//! one once it has failed.

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
    /// The source has as many checks running as it may: ask again soon.
    Busy,
    /// The source is too far behind: close without checking.
    Refused,
}

/// What is known of one source.
#[derive(Debug, Clone, Copy)]
struct Source {
    /// When its failures are paid off.
    paid_at: Instant,
    /// Its checks running now.
    running: u32,
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
    /// Each source's account; `None` is the one shared by sources that
    /// did not fit.
    paid_at: HashMap<Option<IpAddr>, Source>,
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
    /// `now`. A check given a turn runs until [`AuthPace::succeeded`] or
    /// [`AuthPace::failed`] is called with its outcome.
    pub(crate) fn turn(&self, source: Option<IpAddr>, now: Instant) -> Turn {
        if self.interval.is_zero() {
            return Turn::After(Duration::ZERO);
        }
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let full = !state.paid_at.contains_key(&source) && state.paid_at.len() >= MAX_SOURCES;
        if full && now.saturating_duration_since(state.last_purge) >= PURGE_EVERY {
            state.paid_at.retain(|_, s| s.paid_at > now || s.running > 0);
            state.last_purge = now;
        }
        let key = state.key(source);
        let account = state.paid_at.entry(key).or_insert(Source { paid_at: now, running: 0 });
        let failed_lately = account.paid_at > now;
        if account.running >= if failed_lately { 1 } else { FREE_FAILURES } {
            return Turn::Busy;
        }
        let allowed_from = account.paid_at.checked_sub(self.interval * FREE_FAILURES).unwrap_or(now);
        let wait = allowed_from.saturating_duration_since(now);
        if wait > MAX_WAIT {
            return Turn::Refused;
        }
        account.running += 1;
        Turn::After(wait)
    }

    /// The check `source` was given a turn for accepted its credentials.
    pub(crate) fn succeeded(&self, source: Option<IpAddr>) {
        if self.interval.is_zero() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = state.key(source);
        if let Some(account) = state.paid_at.get_mut(&key) {
            account.running = account.running.saturating_sub(1);
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
        let interval = self.interval;
        let account = state.paid_at.entry(key).or_insert(Source { paid_at: now, running: 1 });
        account.running = account.running.saturating_sub(1);
        account.paid_at = account.paid_at.max(now) + interval;
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
    fn checks_at_once_are_few_and_success_costs_nothing() {
        let t0 = Instant::now();
        let pace = AuthPace::new(Duration::from_secs(1));
        // Hellos arriving together, before any outcome is known: four run.
        let turns: Vec<Turn> = (0..6).map(|_| pace.turn(ip(1), t0)).collect();
        let zero = Turn::After(Duration::ZERO);
        assert_eq!(turns, [zero, zero, zero, zero, Turn::Busy, Turn::Busy]);
        // Once one has failed, one runs at a time.
        pace.failed(ip(1), t0);
        for _ in 0..3 {
            pace.succeeded(ip(1));
        }
        assert_eq!(pace.turn(ip(1), t0), zero);
        assert_eq!(pace.turn(ip(1), t0), Turn::Busy);
        // A client that authenticates again and again is never held back.
        let pace = AuthPace::new(Duration::from_secs(1));
        for _ in 0..100 {
            assert_eq!(pace.turn(ip(2), t0), zero);
            pace.succeeded(ip(2));
        }
    }

    #[test]
    fn a_source_far_behind_is_refused_without_a_check() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let pace = AuthPace::new(s(1));
        // Failure after failure at once puts the source 10 s behind.
        let mut turns = Vec::new();
        for _ in 0..30 {
            let turn = pace.turn(ip(1), t0);
            if let Turn::After(_) = turn {
                pace.failed(ip(1), t0);
            }
            turns.push(turn);
        }
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
            let source = Some(IpAddr::from(n.to_be_bytes()));
            if let Turn::After(_) = pace.turn(source, t0) {
                pace.failed(source, t0);
            }
        }
        let state = pace.state.lock().unwrap();
        assert!(state.paid_at.len() <= MAX_SOURCES + 1, "{} sources", state.paid_at.len());
        // The sources that did not fit share one account, paced as one
        // source: its free failures and ten seconds' worth of checks.
        let behind = Duration::from_secs(u64::from(FREE_FAILURES) + 11);
        assert_eq!(state.paid_at.get(&None).map(|a| a.paid_at), Some(t0 + behind));
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
