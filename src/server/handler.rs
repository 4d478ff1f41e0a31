//! Request handlers: async functions or tower services that take a
//! [`Request`] and return a body or an error.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tower::ServiceExt;

use std::time::{Duration, Instant};

use crate::proto::extensions::Metadata;
use crate::wire::answer::{ErrorAnswer, ErrorCode, FIRST_APPLICATION_CODE};

/// A complete request as a handler sees it: its route, query and body, the
/// channel it came on and who sent it. Read through the accessors; the
/// type grows (fields are private) without breaking handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub(crate) channel: u32,
    pub(crate) route: Bytes,
    pub(crate) query: Option<Bytes>,
    pub(crate) body: Bytes,
    pub(crate) peer: super::transport::Peer,
    pub(crate) identity: Option<std::sync::Arc<str>>,
    /// Its metadata and when its `deadline` passes, counted from its
    /// arrival; `None` for a request without metadata, which keeps a
    /// plain request as small as it was.
    pub(crate) meta: Option<Box<RequestMeta>>,
}

/// The metadata of a request that carries some (`[EXT-18]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestMeta {
    pub(crate) metadata: Metadata,
    pub(crate) deadline: Option<Instant>,
    /// Its deadline was `0`: it is answered 103 without a handler.
    pub(crate) expired: bool,
}

impl RequestMeta {
    /// `metadata` arrived now: `None` when it is empty.
    #[inline(always)]
    pub(crate) fn arrived(metadata: Metadata) -> Option<Box<RequestMeta>> {
        if metadata.is_empty() {
            return None;
        }
        let left = metadata.deadline();
        let deadline = left.map(|left| Instant::now() + left);
        Some(Box::new(RequestMeta { metadata, deadline, expired: left == Some(Duration::ZERO) }))
    }
}

/// The metadata of every request without any.
static NO_METADATA: Metadata = Metadata::empty();

impl Request {
    /// A request for `path` (split at its first `?` into route and query)
    /// with `body`, as a server hands it out: on channel 0, from a peer
    /// named `test`, unauthenticated. For calling a handler directly, e.g.
    /// in its unit tests.
    pub fn new(path: impl Into<Bytes>, body: impl Into<Bytes>) -> Request {
        let (route, query) = crate::wire::frame::split_route(path.into());
        Request {
            channel: 0,
            route,
            query,
            body: body.into(),
            peer: super::transport::Peer::Named("test".into()),
            identity: None,
            meta: None,
        }
    }

    /// The same request with `metadata`, as if it had come in a block
    /// (`[EXT-18]`): its `deadline`, if any, counts from now. For a
    /// handler's own tests.
    pub fn with_metadata(mut self, metadata: Metadata) -> Request {
        self.meta = RequestMeta::arrived(metadata);
        self
    }

    /// The channel the request came on.
    pub fn channel(&self) -> u32 {
        self.channel
    }

    /// The route: the path up to its first `?`.
    pub fn route(&self) -> &Bytes {
        &self.route
    }

    /// The route as text (invalid UTF-8 replaced).
    pub fn route_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.route)
    }

    /// The query: what follows the path's first `?`, if it has one.
    pub fn query(&self) -> Option<&Bytes> {
        self.query.as_ref()
    }

    /// The query as text, if there is one.
    pub fn query_str(&self) -> Option<Cow<'_, str>> {
        self.query.as_deref().map(String::from_utf8_lossy)
    }

    /// The whole body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body, to change in place: for a layer that rewrites requests.
    pub fn body_mut(&mut self) -> &mut Bytes {
        &mut self.body
    }

    /// The body, taken out of the request (no copy).
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// Who sent it: the client's address, or the name its stream was given.
    pub fn peer(&self) -> &super::transport::Peer {
        &self.peer
    }

    /// Who the client proved to be in its hello (`[EXT-8]`), if it
    /// authenticated; `None` on a connection without authentication.
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// The request's metadata (`[EXT-18]`): every entry of its block as
    /// received, registered keys (`deadline`, `request-id`,
    /// `traceparent`, `tracestate`) and the application's. Empty on a
    /// connection without the `metadata` extension.
    pub fn metadata(&self) -> &Metadata {
        self.meta.as_ref().map_or(&NO_METADATA, |m| &m.metadata)
    }

    /// When the request's deadline passes (`[EXT-22]`): its `deadline`
    /// counted from when the server had the whole request. `None` when
    /// the client sent none. Past it the server has answered 103 and
    /// stopped the handler.
    pub fn deadline(&self) -> Option<Instant> {
        self.meta.as_ref().and_then(|m| m.deadline)
    }

    /// The time left before [`Request::deadline`]: zero once it passed,
    /// `None` without a deadline. A call made on the request's behalf
    /// takes it with [`Call::inherit`](crate::client::Call::inherit).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline().map(|at| at.saturating_duration_since(Instant::now()))
    }
}

/// The error a handler fails with, as the client will receive it: a code
/// of the spec's table (`spec/10-error-answers.md`) or an application code,
/// and a message.
///
/// - [`HandlerError::new`]: code -1, answered
///   `{"code":-1,"message":"handler fail:<text>"}` (`[ANSWER-3]`);
/// - [`HandlerError::application`]: a code from 1000 up, the message
///   answered unchanged (`[ANSWER-6]`);
/// - [`HandlerError::timeout`]: 103 `request timeout` (`[ANSWER-8]`);
/// - [`HandlerError::overloaded`]: 111 `server overloaded`, the request not
///   processed (`[ANSWER-7]`).
///
/// Handlers may fail with any error type: a `HandlerError` inside it is
/// answered as it says, tower's timeout error as 103, tower's load-shed
/// error as 111, a [`crate::client::ClientError`] of a call that ran out
/// of time (a timeout, or an error answer 103 from the server called) as
/// 103, anything else as -1 with the error's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    code: i64,
    message: String,
}

impl HandlerError {
    /// A handler failure with `text`: code -1 (`[ANSWER-3]`).
    pub fn new(text: impl fmt::Display) -> HandlerError {
        HandlerError { code: ErrorCode::HandlerFail.value(), message: text.to_string() }
    }

    /// An application error: `code` (1000 or more) and `message`, answered
    /// unchanged (`[ANSWER-6]`). A code below 1000 is reserved to the spec:
    /// it is answered as a handler failure (-1) whose text names the code.
    pub fn application(code: u32, message: impl Into<String>) -> HandlerError {
        let message = message.into();
        if i64::from(code) < FIRST_APPLICATION_CODE {
            return HandlerError::new(format!("reserved code {code} used by the application: {message}"));
        }
        HandlerError { code: i64::from(code), message }
    }

    /// The handler ran out of time: 103 `request timeout` (`[ANSWER-8]`).
    pub fn timeout() -> HandlerError {
        HandlerError::spec(ErrorCode::RequestTimeout)
    }

    /// The request was shed unprocessed: 111 `server overloaded` (`[ANSWER-7]`).
    pub fn overloaded() -> HandlerError {
        HandlerError::spec(ErrorCode::Overloaded)
    }

    /// The server failed in a way no other code names, e.g. a handler that
    /// panicked: 104, `unknown: <detail>` (`[ANSWER-10]`, `[ANSWER-11]`).
    pub(crate) fn crashed(detail: &str) -> HandlerError {
        HandlerError { code: ErrorCode::Unknown.value(), message: format!("{}: {detail}", ErrorCode::Unknown.name()) }
    }

    fn spec(code: ErrorCode) -> HandlerError {
        HandlerError { code: code.value(), message: code.name().to_string() }
    }

    /// The code the client receives.
    pub fn code(&self) -> i64 {
        self.code
    }

    /// The text: for code -1 what follows `handler fail:`, else the message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error answer the client receives.
    pub fn to_answer(&self) -> ErrorAnswer {
        if self.code == ErrorCode::HandlerFail.value() {
            ErrorAnswer::handler_failed(&self.message)
        } else {
            ErrorAnswer { code: self.code, message: self.message.clone() }
        }
    }

    /// Classifies any error a handler or a layer failed with (see the type's
    /// documentation).
    pub fn from_boxed(error: BoxError) -> HandlerError {
        let error = match error.downcast::<HandlerError>() {
            Ok(handler_error) => return *handler_error,
            Err(other) => other,
        };
        if error.is::<tower::timeout::error::Elapsed>() {
            return HandlerError::timeout();
        }
        if error.is::<tower::load_shed::error::Overloaded>() {
            return HandlerError::overloaded();
        }
        // A call made on the request's behalf that ran out of its
        // (inherited) deadline: this request ran out of time too ([EXT-22]).
        #[cfg(feature = "client")]
        if let Some(err) = error.downcast_ref::<crate::client::ClientError>() {
            let timed_out = matches!(err, crate::client::ClientError::Timeout(_))
                || matches!(err, crate::client::ClientError::Server { code: 103, .. });
            if timed_out {
                return HandlerError::timeout();
            }
        }
        HandlerError::new(error)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

impl std::error::Error for HandlerError {}

/// Any error, boxed: what handlers and layers may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Bytes, HandlerError>> + Send>>;

/// What a handler gives back for one request: the answer itself, or a
/// future of it.
#[non_exhaustive]
pub enum Reply {
    /// The answer, computed without waiting: the connection takes it in
    /// the same turn, with no future allocated and none polled.
    Ready(Result<Bytes, HandlerError>),
    /// An answer still to come: the connection polls it with its others.
    Pending(HandlerFuture),
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Ready(result) => f.debug_tuple("Ready").field(result).finish(),
            Reply::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// Anything that answers requests.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request: a future of its answer.
    fn call(&self, request: Request) -> HandlerFuture;

    /// Handles one request, answering at once when it can. The server
    /// calls this one, except on a route that runs on other workers (see
    /// [`ServerConfig::offload_after`](super::ServerConfig::offload_after)),
    /// whose task awaits [`Handler::call`]. Default:
    /// `Reply::Pending(self.call(request))`. A handler that never waits
    /// overrides it to return [`Reply::Ready`], which saves the boxed
    /// future of every request (as [`SyncFnHandler`] does).
    fn reply(&self, request: Request) -> Reply {
        Reply::Pending(self.call(request))
    }
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
    E: Into<BoxError>,
{
    fn call(&self, request: Request) -> HandlerFuture {
        let fut = (self.0)(request);
        Box::pin(async move { fut.await.map(Into::into).map_err(|e| HandlerError::from_boxed(e.into())) })
    }
}

/// A handler made of a plain function that answers without waiting: it
/// runs inside its connection's task, in the turn its request arrived, and
/// answers with no future allocated ([`Reply::Ready`]). It must not block:
/// a function that waits on I/O or a lock belongs in an async handler
/// ([`FnHandler`]). One that spends much CPU is moved to other workers like
/// any slow route (see
/// [`ServerConfig::offload_after`](super::ServerConfig::offload_after)).
pub struct SyncFnHandler<F>(pub F);

impl<F, B, E> SyncFnHandler<F>
where
    F: Fn(Request) -> Result<B, E>,
    B: Into<Bytes>,
    E: Into<BoxError>,
{
    #[inline(always)]
    fn answer(&self, request: Request) -> Result<Bytes, HandlerError> {
        (self.0)(request).map(Into::into).map_err(|e| HandlerError::from_boxed(e.into()))
    }
}

impl<F, B, E> Handler for SyncFnHandler<F>
where
    F: Fn(Request) -> Result<B, E> + Send + Sync + 'static,
    B: Into<Bytes>,
    E: Into<BoxError>,
{
    fn call(&self, request: Request) -> HandlerFuture {
        Box::pin(std::future::ready(self.answer(request)))
    }

    fn reply(&self, request: Request) -> Reply {
        Reply::Ready(self.answer(request))
    }
}

/// A handler made of a tower service; it is cloned for every request.
pub struct ServiceHandler<S>(pub S);

impl<S, B> Handler for ServiceHandler<S>
where
    S: tower::Service<Request, Response = B> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Into<Bytes>,
{
    fn call(&self, request: Request) -> HandlerFuture {
        let service = self.0.clone();
        Box::pin(async move {
            service.oneshot(request).await.map(Into::into).map_err(|e| HandlerError::from_boxed(e.into()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn a_test_request_splits_its_path_as_a_server_does() {
        let request = Request::new("/delay?ms=5", "body");
        assert_eq!(&request.route()[..], b"/delay");
        assert_eq!(request.query().map(|q| &q[..]), Some(&b"ms=5"[..]));
        assert_eq!((request.channel(), request.identity(), &request.body()[..]), (0, None, &b"body"[..]));
        assert_eq!(Request::new("/echo", "").query(), None);
    }
}
