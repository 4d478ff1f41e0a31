//! How IIP error answers become HTTP statuses (the table `gateway-statuses`
//! of the book's gateway chapter, which a test checks against this code).

use http::StatusCode;

use crate::wire::answer::ErrorCode;

/// The HTTP status for an IIP error answer of `code`: 102 → 404, 103 → 504,
/// 106 and 107 → 503, 110 → 413, every other code (-1 and 104 among them) →
/// 502.
pub fn status_for_code(code: i64) -> StatusCode {
    match ErrorCode::from_value(code) {
        Some(ErrorCode::HandleError) => StatusCode::NOT_FOUND,
        Some(ErrorCode::RequestTimeout) => StatusCode::GATEWAY_TIMEOUT,
        Some(ErrorCode::ChannelCreateLimited | ErrorCode::ServerConnectionsLimited) => StatusCode::SERVICE_UNAVAILABLE,
        Some(ErrorCode::RequestTooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// The response header that carries the IIP code of an error answer.
pub const CODE_HEADER: &str = "x-iip-code";

/// The request header of a deadline for the upstream, in milliseconds
/// (`[EXT-22]`): at most the gateway's `upstream_timeout`, which is also
/// the deadline of a request without it.
pub const TIMEOUT_HEADER: &str = "iip-timeout";
/// The request header of the request id; the response repeats it.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Request headers named with this prefix become metadata entries of the
/// rest of their name: `iip-meta-tenant: blue` is `tenant` = `blue`.
pub const META_PREFIX: &str = "iip-meta-";

/// What a request's headers give its upstream call: metadata entries and
/// the deadline it asked for.
#[derive(Debug, Default)]
pub struct FromHeaders {
    /// `traceparent` and `tracestate` (W3C, when `traceparent` is valid),
    /// `request-id` from `x-request-id`, and the `iip-meta-` entries.
    pub metadata: crate::proto::extensions::MetadataMap,
    /// `iip-timeout`, when given.
    pub timeout: Option<std::time::Duration>,
}

/// Reads the headers that become metadata (`[EXT-21]`): `traceparent`
/// and `tracestate` as they are, dropped together when `traceparent` is
/// not valid (W3C Trace Context: the trace restarts); `x-request-id` as
/// `request-id`; `iip-meta-KEY` as `KEY`; `iip-timeout` as the deadline.
/// `Err` names a header that cannot be carried: a bad `x-request-id`,
/// `iip-timeout` or `iip-meta-` entry, answered 400.
pub fn from_headers(headers: &http::HeaderMap) -> Result<FromHeaders, String> {
    use crate::proto::extensions::metadata::{TraceParent, REQUEST_ID, TRACEPARENT, TRACESTATE};
    let mut out = FromHeaders::default();
    let text = |name: &str| headers.get(name).map(|v| v.to_str().map_err(|_| format!("{name}: not visible ASCII")));
    if let Some(parent) = text(TRACEPARENT).transpose().ok().flatten().filter(|v| TraceParent::parse(v).is_some()) {
        out.metadata.insert(TRACEPARENT, parent);
        if let Some(state) = text(TRACESTATE).transpose().ok().flatten().filter(|v| (1..=512).contains(&v.len())) {
            out.metadata.insert(TRACESTATE, state);
        }
    }
    if let Some(id) = text(REQUEST_ID_HEADER).transpose()? {
        out.metadata.insert(REQUEST_ID, id);
    }
    if let Some(ms) = text(TIMEOUT_HEADER).transpose()? {
        let ms: u64 = ms.trim().parse().map_err(|_| format!("{TIMEOUT_HEADER}: {ms:?} is not milliseconds"))?;
        out.timeout = Some(std::time::Duration::from_millis(ms));
    }
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(META_PREFIX) {
            let value = value.to_str().map_err(|_| format!("{name}: not visible ASCII"))?;
            out.metadata.insert(key, value);
        }
    }
    // Every entry as the upstream will check it.
    let mut block = bytes::BytesMut::new();
    out.metadata.encode(usize::from(u16::MAX), &mut block).map_err(|e| e.to_string())?;
    Ok(out)
}
