//! The gateway's upstream IIP servers: one connection to each, opened on
//! first use and opened again after it dies, and on it a pool of channels
//! with one request in flight each, so that a slow request holds back no
//! other (`[ORDER-3]`: channels are independent; on one channel answers
//! come in order). Channels are opened as requests need them, up to a
//! limit; past it a request waits for one to come free, and past a limit
//! of waiting requests it is refused.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify};

use crate::client::{Channel, Client, ClientConfig, ClientError, Endpoint};

/// How often a waiting request looks for a free channel without being
/// woken: a channel whose caller gave up comes free when its abandoned
/// answer arrives, which wakes no one.
const RECHECK: Duration = Duration::from_millis(20);

/// Most freed-slot hints kept per connection.
const MAX_HINTS: usize = 1024;

/// A channel of the pool and whether a request holds it.
struct Slot {
    channel: Channel,
    lent: Arc<AtomicBool>,
}

impl Slot {
    /// Free: lent to no request and with no answer still to come, not
    /// even one whose caller gave up.
    fn is_free(&self) -> bool {
        !self.lent.load(Ordering::Acquire) && self.channel.in_flight() == 0
    }
}

/// Indices of slots whose lease ended, most recent last: where a free
/// channel is looked for first. Only a hint: a slot listed may be lent
/// again or still awaiting an abandoned answer, and every slot is
/// searched when none listed is free.
type Freed = Arc<std::sync::Mutex<Vec<usize>>>;

/// An upstream connection and its channels.
struct Live {
    client: Client,
    slots: Vec<Slot>,
    freed: Freed,
    /// The most channels this connection gets: the configured limit, or
    /// fewer once the server refused one.
    cap: usize,
}

/// One upstream server and its current connection.
struct Upstream {
    endpoint: Endpoint,
    live: Mutex<Option<Live>>,
}

/// Why no channel could be had.
#[derive(Debug)]
#[non_exhaustive]
pub enum Unavailable {
    /// No upstream server could be reached, with the last one's error.
    Upstream(ClientError),
    /// Every channel is busy and the limit of waiting requests is reached.
    Busy,
    /// Every channel stayed busy for the whole wait.
    TimedOut(Duration),
}

/// A channel lent to one request until this is dropped.
pub struct Lease {
    channel: Channel,
    lent: Arc<AtomicBool>,
    index: usize,
    hints: Freed,
    freed: Arc<Notify>,
}

impl Lease {
    /// The channel to call on.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.lent.store(false, Ordering::Release);
        if let Ok(mut hints) = self.hints.lock() {
            // Bounded: past a hint per possible channel, the search finds it.
            if hints.len() < MAX_HINTS {
                hints.push(self.index);
            }
        }
        self.freed.notify_waiters();
    }
}

/// The upstream servers, used in turn.
pub struct Upstreams {
    servers: Vec<Upstream>,
    config: ClientConfig,
    max_channels: usize,
    max_waiting: usize,
    waiting: AtomicUsize,
    freed: Arc<Notify>,
    next_server: AtomicUsize,
}

impl Upstreams {
    /// Upstreams at `endpoints`, each with at most `max_channels` channels
    /// (at least 1: channel 0 when the server grants no more), and at most
    /// `max_waiting` requests waiting for a channel across them.
    pub fn new(endpoints: Vec<Endpoint>, config: ClientConfig, max_channels: usize, max_waiting: usize) -> Upstreams {
        Upstreams {
            servers: endpoints.into_iter().map(|endpoint| Upstream { endpoint, live: Mutex::new(None) }).collect(),
            config,
            max_channels: max_channels.max(1),
            max_waiting,
            waiting: AtomicUsize::new(0),
            freed: Arc::new(Notify::new()),
            next_server: AtomicUsize::new(0),
        }
    }

    /// A free channel of the next server in turn that has one or can open
    /// one; when every channel is busy, waits up to `limit` for one to
    /// come free.
    pub async fn lease(&self, limit: Duration) -> Result<Lease, Unavailable> {
        match self.try_lease().await? {
            Some(found) => Ok(found),
            // Boxed: rare, and every request's state would carry it.
            None => Box::pin(self.wait_for_lease(limit)).await,
        }
    }

    /// Waits up to `limit` for a channel to come free, counted among the
    /// waiting requests.
    async fn wait_for_lease(&self, limit: Duration) -> Result<Lease, Unavailable> {
        // Counted while it waits, and no longer once it stops waiting,
        // also when its client leaves and the wait is dropped.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let over = self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting;
        let _waiting = Waiting(&self.waiting);
        if over {
            return Err(Unavailable::Busy);
        }
        let until = Instant::now() + limit;
        loop {
            let freed = self.freed.notified();
            if let Some(found) = self.try_lease().await.transpose() {
                return found;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Unavailable::TimedOut(limit));
            }
            let _ = tokio::time::timeout(left.min(RECHECK), freed).await;
        }
    }

    /// A free channel now, if any server has one or can open one.
    async fn try_lease(&self) -> Result<Option<Lease>, Unavailable> {
        let start = self.next_server.fetch_add(1, Ordering::Relaxed);
        let (mut error, mut reachable) = (None, false);
        for i in 0..self.servers.len() {
            let server = &self.servers[(start + i) % self.servers.len()];
            match self.free_channel(server).await {
                Ok(Some(lease)) => return Ok(Some(lease)),
                Ok(None) => reachable = true,
                Err(err) => error = Some(err),
            }
        }
        match (reachable, error) {
            (true, _) => Ok(None),
            (false, Some(err)) => Err(Unavailable::Upstream(err)),
            (false, None) => Err(Unavailable::Upstream(ClientError::Connect("no upstream server configured".into()))),
        }
    }

    /// Whether at least one upstream server can be reached now.
    pub async fn any_reachable(&self) -> bool {
        for server in &self.servers {
            let mut live = server.live.lock().await;
            if self.connected(&server.endpoint, &mut live).await.is_ok() {
                return true;
            }
        }
        false
    }

    /// A free channel of `server`, opened if it has none free and is
    /// under its limit.
    async fn free_channel(&self, server: &Upstream) -> Result<Option<Lease>, ClientError> {
        let mut guard = server.live.lock().await;
        let live = self.connected(&server.endpoint, &mut guard).await?;
        let hinted = live.freed.lock().ok().and_then(|mut hints| {
            while let Some(index) = hints.pop() {
                if live.slots.get(index).is_some_and(Slot::is_free) {
                    return Some(index);
                }
            }
            None
        });
        let index = match hinted.or_else(|| live.slots.iter().position(Slot::is_free)) {
            Some(index) => index,
            // Boxed, as is the connect below: rare, and large futures that
            // every request's state would otherwise carry.
            None if live.slots.len() < live.cap => match Box::pin(live.client.open_channel()).await {
                Ok(channel) => {
                    live.slots.push(Slot { channel, lent: Arc::new(AtomicBool::new(false)) });
                    live.slots.len() - 1
                }
                // A server with fewer channels to give: use what it gave,
                // or channel 0 when it gave none.
                Err(ClientError::Server { code: 106, .. }) => {
                    live.cap = live.slots.len().max(1);
                    if live.slots.is_empty() {
                        let channel = live.client.channel_zero();
                        live.slots.push(Slot { channel, lent: Arc::new(AtomicBool::new(false)) });
                        0
                    } else {
                        return Ok(None);
                    }
                }
                Err(err) => return Err(err),
            },
            None => return Ok(None),
        };
        let slot = &live.slots[index];
        slot.lent.store(true, Ordering::Release);
        Ok(Some(Lease {
            channel: slot.channel.clone(),
            lent: slot.lent.clone(),
            index,
            hints: live.freed.clone(),
            freed: self.freed.clone(),
        }))
    }

    /// The live connection of `endpoint`, opened again if it died.
    async fn connected<'a>(
        &self,
        endpoint: &Endpoint,
        live: &'a mut Option<Live>,
    ) -> Result<&'a mut Live, ClientError> {
        if live.as_ref().is_none_or(|l| !l.client.is_connected()) {
            let client = Box::pin(endpoint.connect(self.config)).await?;
            *live = Some(Live { client, slots: Vec::new(), freed: Freed::default(), cap: self.max_channels });
        }
        live.as_mut().ok_or_else(|| ClientError::Connect("no connection".into()))
    }
}
