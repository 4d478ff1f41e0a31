//! Retries as the caller's choice: a tower retry policy that sends a call
//! again only when that cannot run it twice, unless the caller declares
//! the route idempotent.
//!
//! ```
//! # async fn run(balancer: iip::client::Balancer) -> Result<(), tower::BoxError> {
//! use iip::client::{retry::RetryPolicy, Call};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let service = ServiceBuilder::new().retry(RetryPolicy::idempotent(3)).service(balancer);
//! let answer = service.oneshot(Call::new("/echo", "again if need be")).await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use super::{Backoff, Call, ClientError};
use crate::wire::answer::ErrorCode;

/// A tower retry policy for client calls.
///
/// It retries a call that certainly did not reach the server (not sent, no
/// connection: [`ClientError::may_have_reached_server`] is false) and one
/// the server shed without processing (111 `server overloaded`,
/// `[ANSWER-7]`); for a route declared idempotent, also one lost in
/// transport after it was sent (closed, timed out). Each retry waits
/// [`Backoff::delay`] first. Error answers of handlers are never retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    attempts_left: u32,
    failures: u32,
    idempotent: bool,
    backoff: Backoff,
}

impl RetryPolicy {
    /// Up to `retries` more attempts, only when the request cannot have run.
    pub fn safe(retries: u32) -> RetryPolicy {
        RetryPolicy { attempts_left: retries, failures: 0, idempotent: false, backoff: Backoff::default() }
    }

    /// Up to `retries` more attempts, also after transport failures once
    /// sent: for routes whose repetition does no harm.
    pub fn idempotent(retries: u32) -> RetryPolicy {
        RetryPolicy { idempotent: true, ..RetryPolicy::safe(retries) }
    }

    /// The same policy with another back-off between attempts.
    pub fn with_backoff(mut self, backoff: Backoff) -> RetryPolicy {
        self.backoff = backoff;
        self
    }

    /// Whether this policy would send the call again after `error`.
    pub fn retries_after(&self, error: &ClientError) -> bool {
        !error.may_have_reached_server()
            || error.code() == Some(ErrorCode::Overloaded.value())
            || (self.idempotent && error.is_transport())
    }
}

impl tower::retry::Policy<Call, Bytes, ClientError> for RetryPolicy {
    type Future = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn retry(&mut self, _call: &mut Call, result: &mut Result<Bytes, ClientError>) -> Option<Self::Future> {
        let error = result.as_ref().err()?;
        if self.attempts_left == 0 || !self.retries_after(error) {
            return None;
        }
        self.attempts_left -= 1;
        self.failures += 1;
        let delay = self.backoff.delay(self.failures);
        Some(Box::pin(tokio::time::sleep(delay)))
    }

    fn clone_request(&mut self, call: &Call) -> Option<Call> {
        Some(call.clone())
    }
}
