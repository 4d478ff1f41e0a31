//! The gateway's upstream IIP servers: one connection to each, opened on
//! first use and opened again after it dies, with several channels on it
//! used in turn so that one slow request holds back few others.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::client::{Channel, Client, ClientConfig, ClientError, Endpoint};

/// One upstream server and its current connection.
struct Upstream {
    endpoint: Endpoint,
    live: Mutex<Option<(Client, Arc<Vec<Channel>>)>>,
}

/// The upstream servers, used in turn.
pub struct Upstreams {
    servers: Vec<Upstream>,
    config: ClientConfig,
    channels: usize,
    next_server: AtomicUsize,
    next_channel: AtomicUsize,
}

impl Upstreams {
    /// Upstreams at `endpoints`, each with `channels` channels (at least 1:
    /// channel 0 when the server grants no more).
    pub fn new(endpoints: Vec<Endpoint>, config: ClientConfig, channels: usize) -> Upstreams {
        Upstreams {
            servers: endpoints.into_iter().map(|endpoint| Upstream { endpoint, live: Mutex::new(None) }).collect(),
            config,
            channels: channels.max(1),
            next_server: AtomicUsize::new(0),
            next_channel: AtomicUsize::new(0),
        }
    }

    /// A channel to call on: the next server in turn whose connection is up
    /// or can be opened; the error of the last server tried otherwise.
    pub async fn channel(&self) -> Result<Channel, ClientError> {
        let start = self.next_server.fetch_add(1, Ordering::Relaxed);
        let mut last = ClientError::Connect("no upstream server configured".into());
        for i in 0..self.servers.len() {
            let server = &self.servers[(start + i) % self.servers.len()];
            match self.channels_of(server).await {
                Ok(channels) => {
                    let pick = self.next_channel.fetch_add(1, Ordering::Relaxed) % channels.len();
                    return Ok(channels[pick].clone());
                }
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    /// Whether at least one upstream server can be reached now.
    pub async fn any_reachable(&self) -> bool {
        for server in &self.servers {
            if self.channels_of(server).await.is_ok() {
                return true;
            }
        }
        false
    }

    async fn channels_of(&self, server: &Upstream) -> Result<Arc<Vec<Channel>>, ClientError> {
        let mut live = server.live.lock().await;
        if let Some((client, channels)) = live.as_ref() {
            if client.is_connected() {
                return Ok(channels.clone());
            }
        }
        let client = server.endpoint.connect(self.config).await?;
        let mut channels = Vec::with_capacity(self.channels);
        while channels.len() < self.channels {
            match client.open_channel().await {
                Ok(channel) => channels.push(channel),
                // A server with fewer channels to give: use what it gave.
                Err(ClientError::Server { code: 106, .. }) => break,
                Err(err) => return Err(err),
            }
        }
        if channels.is_empty() {
            channels.push(client.channel_zero());
        }
        let channels = Arc::new(channels);
        *live = Some((client, channels.clone()));
        Ok(channels)
    }
}
