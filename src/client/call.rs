//! [`Call`]: one request and how to make it. Every client type takes one
//! through its `call_with` (and, as a `tower::Service<Call>`, through
//! `call`); its plain `call(path, body)` is `call_with(Call::new(path, body))`.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::proto::extensions::metadata::MetadataMap;

/// One request for a client: a path (route and optional `?query`), a body
/// and how to make the call. Defaults: the client's timeout
/// ([`super::ClientConfig::timeout`], 30 s), no deadline of its own, no
/// metadata, error answers returned as [`super::ClientError::Server`], no
/// balancing key.
///
/// Where the `metadata` extension is in force
/// ([`super::ClientExtensions::metadata`]) the request carries a metadata
/// block (`[EXT-18]`): its [`Call::with_metadata`] entries and, as
/// `deadline`, the time left of its timeout when it is sent (`[EXT-22]`).
/// Elsewhere the metadata stays with the client and the timeout is kept by
/// the client alone.
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
    deadline: Option<Instant>,
    metadata: MetadataMap,
    raw: bool,
}

impl Call {
    /// A call of `path` with `body`, with the defaults above.
    pub fn new(path: impl Into<Bytes>, body: impl Into<Bytes>) -> Call {
        Call {
            path: path.into(),
            body: body.into(),
            key: None,
            timeout: None,
            deadline: None,
            metadata: MetadataMap::new(),
            raw: false,
        }
    }

    /// The same call within `timeout` instead of the client's: everything
    /// the call waits for (a connection, a server, the answer) counts
    /// against it. On timeout the answer, when it comes, is dropped; later
    /// calls are not disturbed.
    pub fn with_timeout(mut self, timeout: Duration) -> Call {
        self.timeout = Some(timeout);
        self
    }

    /// The same call ending no later than `deadline`: its timeout is the
    /// lower of its own (or the client's) and the time left until then.
    pub fn with_deadline(mut self, deadline: Instant) -> Call {
        self.deadline = Some(deadline);
        self
    }

    /// The same call with the metadata entry `key` = `value` (`[EXT-18]`),
    /// replacing one of the same key. Keys are 1 to 64 bytes of `a-z`,
    /// `0-9`, `-`, `_` and `.`; values visible ASCII and space; registered
    /// keys (`request-id`, `traceparent`, `tracestate`) have the syntax of
    /// the spec's table. The entry is checked when the call is made: a
    /// bad one fails it with
    /// [`RequestError::Metadata`](crate::proto::client::RequestError::Metadata).
    /// `deadline` is set from the call's timeout and cannot be set here.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Call {
        self.metadata.insert(key, value);
        self
    }

    /// The same call made on behalf of `request`, a request this process
    /// is serving (`[EXT-22]`, `[EXT-23]`): it ends by the request's
    /// deadline, carries its `request-id` and `tracestate` unchanged, and
    /// its `traceparent` with the same trace and a new span id of its own.
    #[cfg(feature = "server")]
    pub fn inherit(mut self, request: &crate::server::Request) -> Call {
        use crate::proto::extensions::metadata::{REQUEST_ID, TRACEPARENT, TRACESTATE};
        let metadata = request.metadata();
        if let Some(deadline) = request.deadline() {
            self.deadline = Some(self.deadline.map_or(deadline, |own| own.min(deadline)));
        }
        for key in [REQUEST_ID, TRACESTATE] {
            if let Some(value) = metadata.get(key) {
                self.metadata.insert(key, value);
            }
        }
        if let Some(parent) = metadata.traceparent() {
            self.metadata.insert(TRACEPARENT, parent.child(new_span_id()).to_string());
        }
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

    /// The deadline set by [`Call::with_deadline`] or [`Call::inherit`].
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The metadata entries set so far (the `deadline` entry is added when
    /// the call is sent).
    pub fn metadata(&self) -> &MetadataMap {
        &self.metadata
    }

    /// Whether error answers come back as bodies ([`Call::raw`]).
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// The timeout in force: the call's own, else `default`, and no later
    /// than its deadline.
    pub(crate) fn timeout_or(&self, default: Duration) -> Duration {
        let timeout = self.timeout.unwrap_or(default);
        match self.deadline {
            Some(at) => timeout.min(at.saturating_duration_since(Instant::now())),
            None => timeout,
        }
    }

    /// The path, body and metadata, taken out of the call.
    pub(crate) fn into_parts(self) -> (Bytes, Bytes, MetadataMap) {
        (self.path, self.body, self.metadata)
    }
}

#[cfg(feature = "server")]
/// A new span id for a `traceparent` (`[EXT-23]`): 8 bytes from the
/// process's randomly keyed hasher over a counter, never all zero.
fn new_span_id() -> [u8; 8] {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = KEYS.get_or_init(Default::default).build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish().max(1).to_be_bytes()
}

