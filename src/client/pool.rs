//! A pool that spreads calls over several connections to one server, each
//! with several channels, and survives the server's restarts: every
//! connection is a [`Backend`] that reconnects by itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::{Backend, BackendConfig, Call, ClientConfig, ClientError, Endpoint};

/// Connections to one server, used round robin; calls on different
/// channels run concurrently on the server (`[ORDER-3]`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pool {
    backends: Arc<Vec<Backend>>,
    next: Arc<AtomicUsize>,
}

impl Pool {
    /// Opens `connections` connections to `addr` (`host:port` or
    /// `unix:/path`) with `channels` new channels each (0: channel 0 only),
    /// and waits until all are up, at most the client timeout of `config`.
    pub async fn connect(
        addr: impl Into<String>,
        connections: usize,
        channels: usize,
        config: ClientConfig,
    ) -> Result<Pool, ClientError> {
        let endpoint = Endpoint::new(addr);
        let backend = BackendConfig { client: config, channels, ..BackendConfig::default() };
        Pool::with_backends(endpoint, connections, backend).await
    }

    /// Like [`Pool::connect`] for any endpoint (TLS included) and full
    /// backend settings (back-off, connect timeout).
    pub async fn with_backends(
        endpoint: Endpoint,
        connections: usize,
        config: BackendConfig,
    ) -> Result<Pool, ClientError> {
        let backends: Vec<Backend> = (0..connections.max(1)).map(|_| Backend::new(endpoint.clone(), config)).collect();
        for backend in &backends {
            backend.ready(config.client.timeout).await?;
        }
        Ok(Pool { backends: Arc::new(backends), next: Arc::new(AtomicUsize::new(0)) })
    }

    /// The connections of the pool.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// Calls `path` with `body`: `call_with(Call::new(path, body))`.
    pub async fn call(&self, path: impl Into<Bytes>, body: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        self.call_with(Call::new(path, body)).await
    }

    /// Makes `call` on the next connection (each spreads its calls over
    /// its channels); waits for a reconnection within the call's timeout
    /// (default: the client's) when that connection is down.
    pub async fn call_with(&self, call: Call) -> Result<Bytes, ClientError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len();
        self.backends[i].call_with(call).await
    }
}
