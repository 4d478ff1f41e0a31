//! A pool that spreads calls over several channels of several connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::ToSocketAddrs;

use super::{Channel, Client, ClientConfig, ClientError};

/// Channels over connections, used round robin. Calls on different channels
/// run concurrently on the server (`[ORDER-3]`).
#[derive(Debug, Clone)]
pub struct Pool {
    channels: Arc<Vec<Channel>>,
    next: Arc<AtomicUsize>,
}

impl Pool {
    /// Opens `connections` connections with `channels` channels each (new
    /// channels, not channel 0).
    pub async fn connect(
        addr: impl ToSocketAddrs + Clone,
        connections: usize,
        channels: usize,
        config: ClientConfig,
    ) -> Result<Pool, ClientError> {
        let mut all = Vec::with_capacity(connections * channels);
        for _ in 0..connections.max(1) {
            let client = Client::connect_with(addr.clone(), config).await?;
            for _ in 0..channels.max(1) {
                all.push(client.open_channel().await?);
            }
        }
        Ok(Pool { channels: Arc::new(all), next: Arc::new(AtomicUsize::new(0)) })
    }

    /// The next channel in turn.
    pub fn channel(&self) -> &Channel {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        &self.channels[i]
    }

    /// Every channel of the pool.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Calls `path` on the next channel.
    pub async fn call(&self, path: impl Into<Bytes>, body: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        self.channel().call(path, body).await
    }
}
