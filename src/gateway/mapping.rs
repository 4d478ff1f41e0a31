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
    /// The `x-request-id` header as sent, which the response repeats.
    pub request_id: Option<http::HeaderValue>,
}

/// Reads the headers that become metadata (`[EXT-21]`): `traceparent`
/// and `tracestate` as they are, dropped together when `traceparent` is
/// not valid (W3C Trace Context: the trace restarts); `x-request-id` as
/// `request-id`; `iip-meta-KEY` as `KEY`; `iip-timeout` as the deadline.
/// Of a header sent more than once, the first counts (an `iip-meta-`
/// header: the last). `Err` names a header that cannot be carried: a bad
/// `x-request-id`, `iip-timeout` or `iip-meta-` entry, answered 400.
pub fn from_headers(headers: &http::HeaderMap) -> Result<FromHeaders, String> {
    use crate::proto::extensions::metadata::{TraceParent, REQUEST_ID, TRACEPARENT, TRACESTATE};
    let mut out = FromHeaders::default();
    let (mut parent, mut state) = (None, None);
    let text = |name: &http::HeaderName, value: &http::HeaderValue| {
        value.to_str().map(str::to_owned).map_err(|_| format!("{name}: not visible ASCII"))
    };
    // One pass over the headers: a request usually carries none of these.
    for (name, value) in headers {
        match name.as_str() {
            TRACEPARENT if parent.is_none() => parent = Some(value),
            TRACESTATE if state.is_none() => state = Some(value),
            REQUEST_ID_HEADER if out.request_id.is_none() => {
                out.metadata.insert(REQUEST_ID, text(name, value)?);
                out.request_id = Some(value.clone());
            }
            TIMEOUT_HEADER if out.timeout.is_none() => {
                let ms = text(name, value)?;
                let ms: u64 = ms.trim().parse().map_err(|_| format!("{TIMEOUT_HEADER}: {ms:?} is not milliseconds"))?;
                out.timeout = Some(std::time::Duration::from_millis(ms));
            }
            other => {
                if let Some(key) = other.strip_prefix(META_PREFIX) {
                    out.metadata.insert(key, text(name, value)?);
                }
            }
        }
    }
    let parent = parent.and_then(|v| v.to_str().ok()).filter(|v| TraceParent::parse(v).is_some());
    if let Some(parent) = parent {
        out.metadata.insert(TRACEPARENT, parent);
        if let Some(state) = state.and_then(|v| v.to_str().ok()).filter(|v| (1..=512).contains(&v.len())) {
            out.metadata.insert(TRACESTATE, state);
        }
    }
    // Every entry as the upstream will check it.
    if !out.metadata.is_empty() {
        let mut block = bytes::BytesMut::new();
        out.metadata.encode(usize::from(u16::MAX), &mut block).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn each_mapped_header_is_read_and_the_first_of_a_repeated_one_counts() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let found = from_headers(&headers(&[
            ("traceparent", parent),
            ("tracestate", "a=1"),
            ("x-request-id", "r-1"),
            ("x-request-id", "r-2"),
            ("iip-timeout", " 250 "),
            ("iip-timeout", "9"),
            ("iip-meta-tenant", "blue"),
            ("accept", "*/*"),
        ]))
        .unwrap();
        let entries: Vec<(String, String)> =
            found.metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let expected = [("request-id", "r-1"), ("tenant", "blue"), ("traceparent", parent), ("tracestate", "a=1")];
        assert_eq!(entries, expected.map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(found.timeout, Some(std::time::Duration::from_millis(250)));
        assert_eq!(found.request_id.unwrap(), "r-1");
    }

    #[test]
    fn a_bad_traceparent_drops_the_trace_and_bad_entries_are_refused() {
        let found = from_headers(&headers(&[("traceparent", "01-bad"), ("tracestate", "a=1")])).unwrap();
        assert!(found.metadata.is_empty(), "the trace restarts: neither header is carried");
        assert!(from_headers(&headers(&[("iip-timeout", "soon")])).unwrap_err().contains(TIMEOUT_HEADER));
        assert!(from_headers(&headers(&[("iip-meta-a+b", "x")])).is_err(), "a key of the metadata alphabet only");
        assert!(from_headers(&headers(&[])).unwrap().metadata.is_empty());
    }
}
