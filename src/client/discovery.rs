//! Where a [`super::Balancer`]'s servers come from: anything implementing
//! `tower::discover::Discover` whose services are [`Endpoint`]s, that is
//! any stream of `Result<Change<K, Endpoint>, E>`. `Change::Insert(key,
//! endpoint)` adds a server (or replaces the one with that key, with a
//! fresh connection); `Change::Remove(key)` drops it (its calls in flight
//! still finish). A fixed list ([`super::Endpoints::Static`]) is a stream
//! of inserts that ends; a DNS name is [`Dns`]; a service registry feeds
//! its own stream (the `registry_balancer` example feeds one from a
//! channel).
//!
//! Errors of a source are logged and the source is polled again, keeping
//! the servers known; a source that ends leaves them as they are.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{FutureExt, Stream};
use tokio_util::sync::CancellationToken;
use tower::discover::{Change, Discover};

use super::balance::{Inner, Member};
use super::Endpoint;

/// The servers a DNS name resolves to, resolved again every `interval`:
/// each new address is inserted, reached as the template says, and each
/// address gone is removed. Keys are the addresses (`ip:port`). A failed
/// resolution yields its error once and keeps the known servers.
pub struct Dns {
    changes: Pin<Box<dyn Stream<Item = DnsChange> + Send>>,
}

/// What [`Dns`] yields: a server found or gone, or a failed resolution.
pub type DnsChange = Result<Change<String, Endpoint>, std::io::Error>;

impl fmt::Debug for Dns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dns").finish_non_exhaustive()
    }
}

impl Dns {
    /// Follows `name` (`host:port`) every `interval`; every server found is
    /// `template` with the resolved address in place of its own.
    pub fn new(name: impl Into<String>, interval: Duration, template: Endpoint) -> Dns {
        struct State {
            name: String,
            interval: Duration,
            template: Endpoint,
            known: HashSet<String>,
            ready: VecDeque<DnsChange>,
            first: bool,
        }
        let state =
            State { name: name.into(), interval, template, known: HashSet::new(), ready: VecDeque::new(), first: true };
        let changes = futures::stream::unfold(state, |mut state| async move {
            loop {
                if let Some(change) = state.ready.pop_front() {
                    return Some((change, state));
                }
                if !state.first {
                    tokio::time::sleep(state.interval).await;
                }
                state.first = false;
                match tokio::net::lookup_host(state.name.as_str()).await {
                    Ok(addrs) => {
                        let wanted: HashSet<String> = addrs.map(|a| a.to_string()).collect();
                        for gone in state.known.difference(&wanted) {
                            state.ready.push_back(Ok(Change::Remove(gone.clone())));
                        }
                        for new in wanted.difference(&state.known) {
                            let endpoint = Endpoint { addr: new.clone(), ..state.template.clone() };
                            state.ready.push_back(Ok(Change::Insert(new.clone(), endpoint)));
                        }
                        state.known = wanted;
                    }
                    Err(err) => {
                        let why = std::io::Error::new(err.kind(), format!("cannot resolve {}: {err}", state.name));
                        state.ready.push_back(Err(why));
                    }
                }
            }
        });
        Dns { changes: Box::pin(changes) }
    }
}

impl Stream for Dns {
    type Item = DnsChange;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.changes.as_mut().poll_next(cx)
    }
}

/// A balancer's servers by their source's keys, published to the
/// balancer as one list after each batch of changes.
pub(super) struct Membership<K> {
    keyed: Vec<(K, Arc<Member>)>,
}

impl<K: Eq> Membership<K> {
    pub(super) fn new() -> Membership<K> {
        Membership { keyed: Vec::new() }
    }

    /// Applies every change `source` has ready now, without waiting;
    /// returns false once the source has ended.
    pub(super) fn apply_ready<D>(&mut self, inner: &Inner, source: &mut Pin<Box<D>>) -> bool
    where
        D: Discover<Key = K, Service = Endpoint> + ?Sized,
        D::Error: fmt::Display,
    {
        loop {
            match futures::future::poll_fn(|cx| source.as_mut().poll_discover(cx)).now_or_never() {
                None => return true,
                Some(None) => return false,
                Some(Some(change)) => self.apply(inner, change),
            }
        }
    }

    fn apply<E: fmt::Display>(&mut self, inner: &Inner, change: Result<Change<K, Endpoint>, E>) {
        match change {
            Ok(Change::Insert(key, endpoint)) => {
                let member = Member::new(endpoint, inner.config.backend);
                match self.keyed.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = member,
                    None => self.keyed.push((key, member)),
                }
            }
            Ok(Change::Remove(key)) => self.keyed.retain(|(k, _)| *k != key),
            Err(err) => tracing::warn!(%err, "the servers' source failed; keeping the known servers"),
        }
    }

    /// The balancer's list becomes this membership's, and waiting picks wake.
    pub(super) fn publish(&self, inner: &Inner) {
        let list: Arc<[Arc<Member>]> = self.keyed.iter().map(|(_, m)| m.clone()).collect();
        if let Ok(mut members) = inner.members.write() {
            *members = list;
        }
        inner.members_changed.notify_waiters();
    }
}

/// Follows `source` until it ends or `stop`: each change, with every
/// other one ready at the same moment, is applied and published at once.
pub(super) async fn follow<D>(
    inner: Arc<Inner>,
    mut source: Pin<Box<D>>,
    mut membership: Membership<D::Key>,
    stop: CancellationToken,
) where
    D: Discover<Service = Endpoint> + Send + ?Sized,
    D::Key: Send,
    D::Error: fmt::Display,
{
    loop {
        let next = futures::future::poll_fn(|cx| source.as_mut().poll_discover(cx));
        let change = tokio::select! {
            _ = stop.cancelled() => return,
            change = next => change,
        };
        let Some(change) = change else { return };
        membership.apply(&inner, change);
        let going_on = membership.apply_ready(&inner, &mut source);
        membership.publish(&inner);
        if !going_on {
            return;
        }
    }
}
