//! [`Call`]: one request and how to make it. Every client type takes one
//! through its `call_with` (and, as a `tower::Service<Call>`, through
//! `call`); its plain `call(path, body)` is `call_with(Call::new(path, body))`.

use std::time::Duration;

use bytes::Bytes;

/// One request for a client: a path (route and optional `?query`), a body
/// and how to make the call. Defaults: the client's timeout
/// ([`super::ClientConfig::timeout`], 30 s), error answers returned as
/// [`super::ClientError::Server`], no balancing key.
///
/// ```
/// use std::time::Duration;
/// use iip::client::Call;
///
/// let call = Call::new("/echo", "hello").with_timeout(Duration::from_millis(250)).raw();
/// assert_eq!(call.timeout(), Some(Duration::from_millis(250)));
/// assert!(call.is_raw());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    path: Bytes,
    body: Bytes,
    key: Option<Bytes>,
    timeout: Option<Duration>,
    raw: bool,
}

impl Call {
    /// A call of `path` with `body`, with the defaults above.
    pub fn new(path: impl Into<Bytes>, body: impl Into<Bytes>) -> Call {
        Call { path: path.into(), body: body.into(), key: None, timeout: None, raw: false }
    }

    /// The same call within `timeout` instead of the client's: everything
    /// the call waits for (a connection, a server, the answer) counts
    /// against it. On timeout the answer, when it comes, is dropped; later
    /// calls are not disturbed.
    pub fn with_timeout(mut self, timeout: Duration) -> Call {
        self.timeout = Some(timeout);
        self
    }

    /// The same call with a key that a [`super::Balancer`] under
    /// [`super::Strategy::Hash`] hashes to pick the server; the other
    /// client types ignore it.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Call {
        self.key = Some(key.into());
        self
    }

    /// The same call answered with the response body as it is: an error
    /// answer (`[ANSWER-1]`) is returned as its JSON text, not as
    /// [`super::ClientError::Server`].
    pub fn raw(mut self) -> Call {
        self.raw = true;
        self
    }

    /// The path.
    pub fn path(&self) -> &Bytes {
        &self.path
    }

    /// The request body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The balancing key, if one was set.
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// The call's own timeout, if one was set (else the client's applies).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Whether error answers come back as bodies ([`Call::raw`]).
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// The timeout in force: the call's own, else `default`.
    pub(crate) fn timeout_or(&self, default: Duration) -> Duration {
        self.timeout.unwrap_or(default)
    }

    /// The path and body, taken out of the call.
    pub(crate) fn into_parts(self) -> (Bytes, Bytes) {
        (self.path, self.body)
    }
}
