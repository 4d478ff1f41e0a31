//! The gateway's byte budget: every request body it reads and every
//! answer frame it has taken from an upstream and not yet written to its
//! client is counted against one limit for all clients together. A request
//! body that would pass it is refused with 503 as it arrives, before it is
//! held; an answer frame past it waits until earlier ones have been
//! written, so that clients that read slowly pause their own answers.
//!
//! An eighth of the budget is kept for small messages: the first
//! [`SMALL`] bytes of a body, and answer frames of at most that size, may
//! use it when the rest is spent; larger ones may not. Clients holding
//! large bodies open can thus spend most of the budget, but not the part
//! that keeps ordinary requests served.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The bytes of a body, or the size of an answer frame, that may use the
/// part of the budget kept for small messages.
pub(crate) const SMALL: usize = 64 * 1024;

/// Bytes held for clients, against a limit.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    /// Seven eighths of the limit, for any bytes.
    bulk: Arc<Semaphore>,
    /// The rest, for small messages only.
    reserve: Arc<Semaphore>,
    limit: usize,
}

/// Why a request body was not read.
#[derive(Debug)]
pub(crate) enum BodyRefused {
    /// Larger than the gateway's body limit (413).
    TooLarge,
    /// It did not arrive within the body timeout (408).
    TimedOut,
    /// The budget is spent: the gateway holds too much for other clients (503).
    Full,
    /// It could not be read (400).
    Unreadable(String),
}

/// A request body and its share of the budget, given back on drop.
pub(crate) struct HeldBody {
    pub(crate) bytes: Bytes,
    pub(crate) _share: Shares,
}

/// Shares of the two parts of the budget, given back on drop.
#[derive(Default)]
pub(crate) struct Shares {
    bulk: Option<OwnedSemaphorePermit>,
    reserve: Option<OwnedSemaphorePermit>,
}

impl Shares {
    fn add(slot: &mut Option<OwnedSemaphorePermit>, more: OwnedSemaphorePermit) {
        match slot {
            Some(held) => held.merge(more),
            None => *slot = Some(more),
        }
    }
}

/// Bytes of one answer frame and their share of the budget.
struct Counted {
    data: Bytes,
    _share: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// `n` bytes of `part`, if it has them now.
fn take(part: &Arc<Semaphore>, n: usize) -> Option<OwnedSemaphorePermit> {
    let n = u32::try_from(n).ok()?;
    part.clone().try_acquire_many_owned(n).ok()
}

impl Budget {
    /// A budget of `limit` bytes (at most [`Semaphore::MAX_PERMITS`]).
    pub(crate) fn new(limit: usize) -> Budget {
        let limit = limit.min(Semaphore::MAX_PERMITS);
        let reserve = limit / 8;
        Budget { bulk: Arc::new(Semaphore::new(limit - reserve)), reserve: Arc::new(Semaphore::new(reserve)), limit }
    }

    /// Bytes held now.
    pub(crate) fn held(&self) -> usize {
        self.limit - self.bulk.available_permits() - self.reserve.available_permits()
    }

    /// Reads a request body of at most `max_body` bytes that must arrive
    /// within `timeout`, counting each piece as it arrives.
    pub(crate) async fn read_body(
        &self,
        mut body: Incoming,
        max_body: usize,
        timeout: Duration,
    ) -> Result<HeldBody, BodyRefused> {
        let until = Instant::now() + timeout;
        // A declared length is allocated once (pages are resident only as
        // they are written), not grown by doubling, which would hold up
        // to twice what the budget counts.
        let declared = hyper::body::Body::size_hint(&body).exact().and_then(|n| usize::try_from(n).ok());
        let mut data = BytesMut::with_capacity(declared.filter(|n| *n <= max_body).unwrap_or(0));
        let mut share = Shares::default();
        loop {
            let frame = match tokio::time::timeout_at(until.into(), body.frame()).await {
                Err(_) => return Err(BodyRefused::TimedOut),
                Ok(None) => break,
                Ok(Some(Err(err))) => return Err(BodyRefused::Unreadable(err.to_string())),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(piece) = frame.into_data() else { continue };
            if data.len() + piece.len() > max_body {
                return Err(BodyRefused::TooLarge);
            }
            match take(&self.bulk, piece.len()) {
                Some(more) => Shares::add(&mut share.bulk, more),
                None if data.len() + piece.len() <= SMALL => {
                    Shares::add(&mut share.reserve, take(&self.reserve, piece.len()).ok_or(BodyRefused::Full)?)
                }
                None => return Err(BodyRefused::Full),
            }
            data.extend_from_slice(&piece);
        }
        self.report();
        Ok(HeldBody { bytes: data.freeze(), _share: share })
    }

    /// `data` counted until the last of its bytes is dropped (written to
    /// the client), waiting up to `wait` for the budget; `None` when the
    /// budget stayed spent that long.
    pub(crate) async fn count(&self, data: Bytes, wait: Duration) -> Option<Bytes> {
        let small = (data.len() <= SMALL).then(|| take(&self.reserve, data.len())).flatten();
        let share = match take(&self.bulk, data.len()).or(small) {
            Some(share) => share,
            None => {
                let n = u32::try_from(data.len().min(self.limit - self.limit / 8)).unwrap_or(u32::MAX);
                // Boxed: rare, and every answer's state would carry it.
                Box::pin(tokio::time::timeout(wait, self.bulk.clone().acquire_many_owned(n))).await.ok()?.ok()?
            }
        };
        self.report();
        Some(Bytes::from_owner(Counted { data, _share: share }))
    }

    fn report(&self) {
        metrics::gauge!("iip_gateway_held_bytes").set(self.held() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counted_bytes_are_given_back_when_dropped() {
        let budget = Budget::new(800 << 10);
        let big = vec![1u8; 600 << 10];
        let a = budget.count(Bytes::from(big.clone()), Duration::from_millis(10)).await.unwrap();
        assert_eq!(budget.held(), 600 << 10);
        assert_eq!(&a[..], &big[..]);
        // Past the bulk part a large frame waits, then gives up ...
        assert!(budget.count(Bytes::from(big), Duration::from_millis(20)).await.is_none());
        // ... while a small one still fits, in the part kept for them.
        let small = budget.count(Bytes::from(vec![2u8; 60 << 10]), Duration::from_millis(10)).await.unwrap();
        assert_eq!(budget.held(), 660 << 10);
        let half = a.slice(..30);
        drop((a, small));
        assert_eq!(budget.held(), 600 << 10, "a slice still holds the frame");
        drop(half);
        assert_eq!(budget.held(), 0);
    }
}
