//! The client as tower services: [`Channel`], [`Client`] (its channel 0)
//! and [`Pool`] each implement `tower::Service<Call>`, so that tower's
//! timeout, retry, rate-limit, concurrency-limit, load-shed and balance
//! layers wrap them as they wrap a tonic channel.
//!
//! ```
//! # async fn run(channel: iip::client::Channel) -> Result<(), tower::BoxError> {
//! use std::time::Duration;
//! use iip::client::Call;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let service = ServiceBuilder::new()
//!     .timeout(Duration::from_secs(2))
//!     .concurrency_limit(32)
//!     .service(channel);
//! let answer = service.oneshot(Call::new("/echo", "hello")).await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::{Backend, Balancer, Call, Channel, Client, ClientError, Pool};

/// The future of a client service's call.
pub type CallFuture = Pin<Box<dyn Future<Output = Result<Bytes, ClientError>> + Send>>;

/// Ready while the connection is open; a closed connection fails
/// `poll_ready` with [`ClientError::Closed`], so that a balancer drops it.
fn ready(client: &Client) -> Poll<Result<(), ClientError>> {
    if client.is_connected() {
        Poll::Ready(Ok(()))
    } else {
        Poll::Ready(Err(ClientError::not_sent("the connection is closed")))
    }
}

/// What each client type does as a service: whether it is ready, and how
/// it makes one call (on a clone of itself, so the future owns it).
trait CallTarget: Clone + Send + 'static {
    /// Ready unless said otherwise: the reconnecting types wait for a
    /// connection inside the call, within its timeout.
    fn ready(&self) -> Poll<Result<(), ClientError>> {
        Poll::Ready(Ok(()))
    }

    fn call_owned(self, call: Call) -> CallFuture;
}

impl CallTarget for Channel {
    fn ready(&self) -> Poll<Result<(), ClientError>> {
        ready(self.client())
    }

    fn call_owned(self, call: Call) -> CallFuture {
        Box::pin(async move { self.call_with(call).await })
    }
}

impl CallTarget for Client {
    fn ready(&self) -> Poll<Result<(), ClientError>> {
        ready(self)
    }

    fn call_owned(self, call: Call) -> CallFuture {
        Box::pin(async move { self.call_with(call).await })
    }
}

/// The reconnecting types: ready unless said otherwise, calling through
/// their own `call_with`.
macro_rules! reconnecting_target {
    ($($target:ty),*) => {$(
        impl CallTarget for $target {
            fn call_owned(self, call: Call) -> CallFuture {
                Box::pin(async move { self.call_with(call).await })
            }
        }
    )*};
}

reconnecting_target!(Pool, Backend, Balancer);

/// `tower::Service<Call>` for each client type, through [`CallTarget`].
macro_rules! call_service {
    ($($target:ty),*) => {$(
        impl tower::Service<Call> for $target {
            type Response = Bytes;
            type Error = ClientError;
            type Future = CallFuture;

            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
                CallTarget::ready(self)
            }

            fn call(&mut self, call: Call) -> CallFuture {
                self.clone().call_owned(call)
            }
        }
    )*};
}

call_service!(Channel, Client, Pool, Backend, Balancer);
