//! The accept loop's resilience: when the process runs out of file
//! descriptors, back off instead of spinning, log at most once a second,
//! and use one descriptor kept in reserve to accept the waiting client and
//! refuse it with 107 rather than leave it hanging (`[RES-8]`).

use std::io;
use std::time::{Duration, Instant};

use super::transport::{Listen, Peer};

/// The first pause after a failed accept; it doubles while accepts keep
/// failing, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// The longest pause between failed accepts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often an accept failure is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// What the acceptor produced.
#[derive(Debug)]
pub(crate) enum Accepted<Io> {
    /// A connection to serve.
    Stream(Io, Peer),
    /// A connection taken with the reserve descriptor while out of
    /// descriptors: answer it 107 and close it.
    Refuse(Io, Peer),
}

/// A listener with a reserve descriptor and back-off.
pub(crate) struct Acceptor<L> {
    listener: L,
    /// Held open so that it can be given up to accept one client when
    /// descriptors run out.
    reserve: Option<std::fs::File>,
    backoff: Duration,
    last_log: Option<Instant>,
    failures_since_log: u64,
}

fn open_reserve() -> Option<std::fs::File> {
    std::fs::File::open(if cfg!(windows) { "NUL" } else { "/dev/null" }).ok()
}

fn out_of_descriptors(err: &io::Error) -> bool {
    // EMFILE (process) and ENFILE (system) on Unix.
    matches!(err.raw_os_error(), Some(23) | Some(24))
}

impl<L: Listen> Acceptor<L> {
    pub(crate) fn new(listener: L) -> Acceptor<L> {
        Acceptor { listener, reserve: open_reserve(), backoff: FIRST_BACKOFF, last_log: None, failures_since_log: 0 }
    }

    /// The next connection. Errors never end the loop: they are logged (at
    /// most once a second) and followed by a growing pause.
    pub(crate) async fn accept(&mut self) -> Accepted<L::Io> {
        loop {
            if self.reserve.is_none() {
                self.reserve = open_reserve();
            }
            let err = match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.backoff = FIRST_BACKOFF;
                    return Accepted::Stream(stream, peer);
                }
                Err(err) => err,
            };
            self.log(&err);
            if out_of_descriptors(&err) {
                if let Some(reserve) = self.reserve.take() {
                    drop(reserve);
                    let taken = tokio::time::timeout(FIRST_BACKOFF, self.listener.accept()).await;
                    if let Ok(Ok((stream, peer))) = taken {
                        // Progress: the next client waits no longer than this one.
                        self.backoff = FIRST_BACKOFF;
                        return Accepted::Refuse(stream, peer);
                    }
                }
            }
            tokio::time::sleep(self.backoff).await;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn log(&mut self, err: &io::Error) {
        self.failures_since_log += 1;
        let now = Instant::now();
        if self.last_log.is_none_or(|at| now.duration_since(at) >= LOG_EVERY) {
            tracing::warn!(%err, failures = self.failures_since_log, "accept failed; backing off");
            self.last_log = Some(now);
            self.failures_since_log = 0;
        }
    }
}
