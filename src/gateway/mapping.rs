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
