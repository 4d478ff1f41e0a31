//! Request handlers: async functions or tower services that take a
//! [`Request`] and return a body or an error.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tower::ServiceExt;

/// A complete request as a handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The channel it came on.
    pub channel: u32,
    /// The route: the path up to the first `?`.
    pub route: Bytes,
    /// The query: what follows the first `?`, if any.
    pub query: Option<Bytes>,
    /// The whole body.
    pub body: Bytes,
    /// Who sent it: the client's address.
    pub peer: super::transport::Peer,
}

impl Request {
    /// The route as text (invalid UTF-8 replaced).
    pub fn route_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.route)
    }

    /// The query as text, if there is one.
    pub fn query_str(&self) -> Option<Cow<'_, str>> {
        self.query.as_deref().map(String::from_utf8_lossy)
    }
}

/// The error a handler fails with; the client receives
/// `{"code":-1,"message":"handler fail:<text>"}` (`[ANSWER-3]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError(pub String);

impl HandlerError {
    /// An error with the given text.
    pub fn new(text: impl fmt::Display) -> HandlerError {
        HandlerError(text.to_string())
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HandlerError {}

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Bytes, HandlerError>> + Send>>;

/// Anything that answers requests.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, request: Request) -> HandlerFuture;
}

/// Any [`Handler`] as a tower service, so that tower layers can wrap it
/// (see [`ServerBuilder::layer`](super::ServerBuilder::layer)). Always
/// ready; cloning it shares the handler.
#[derive(Clone)]
pub struct HandlerService(pub std::sync::Arc<dyn Handler>);

impl tower::Service<Request> for HandlerService {
    type Response = Bytes;
    type Error = HandlerError;
    type Future = HandlerFuture;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), HandlerError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> HandlerFuture {
        self.0.call(request)
    }
}

/// A handler made of an async function.
pub struct FnHandler<F>(pub F);

impl<F, Fut, B, E> Handler for FnHandler<F>
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<B, E>> + Send + 'static,
    B: Into<Bytes>,
    E: fmt::Display,
{
    fn call(&self, request: Request) -> HandlerFuture {
        let fut = (self.0)(request);
        Box::pin(async move { fut.await.map(Into::into).map_err(HandlerError::new) })
    }
}

/// A handler made of a tower service; it is cloned for every request.
pub struct ServiceHandler<S>(pub S);

impl<S, B> Handler for ServiceHandler<S>
where
    S: tower::Service<Request, Response = B> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: fmt::Display,
    B: Into<Bytes>,
{
    fn call(&self, request: Request) -> HandlerFuture {
        let service = self.0.clone();
        Box::pin(async move { service.oneshot(request).await.map(Into::into).map_err(HandlerError::new) })
    }
}
