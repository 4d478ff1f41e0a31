//! Error answers (spec chapter "Error answers", `[ANSWER-*]`): the JSON body
//! `{"code":C,"message":"M"}` and the codes the spec defines.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The codes of the spec's error-code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 0: success.
    Ok,
    /// -1: the handler returned an error.
    HandlerFail,
    /// 100: a request was not complete.
    PacketUncompleted,
    /// 101: the handler produced no response.
    HandleNoResponse,
    /// 102: no handler for the route.
    HandleError,
    /// 103: the handler did not finish in time.
    RequestTimeout,
    /// 104: an error of no other kind.
    Unknown,
    /// 105: the client has no handler for a response.
    ResponseHandlerMissing,
    /// 106: the channel limit of the connection is reached.
    ChannelCreateLimited,
    /// 107: the server's connection limit is reached.
    ServerConnectionsLimited,
    /// 108: the client's connection limit is reached.
    ClientConnectionsLimited,
    /// 109: channel 0 cannot be deleted.
    ChannelNotDeletable,
    /// 110: the request body exceeded the server's limit.
    RequestTooLarge,
    /// 111: the server shed the request without processing it (`[ANSWER-7]`).
    Overloaded,
    /// 112: authentication is required and has not succeeded (`[EXT-9]`).
    Unauthenticated,
}

/// The lowest application code (`[ANSWER-6]`): codes from here up are the
/// application's own, answered with the handler's message unchanged.
pub const FIRST_APPLICATION_CODE: i64 = 1000;

impl ErrorCode {
    /// Every code, in the order of the spec's table.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::Ok,
        ErrorCode::HandlerFail,
        ErrorCode::PacketUncompleted,
        ErrorCode::HandleNoResponse,
        ErrorCode::HandleError,
        ErrorCode::RequestTimeout,
        ErrorCode::Unknown,
        ErrorCode::ResponseHandlerMissing,
        ErrorCode::ChannelCreateLimited,
        ErrorCode::ServerConnectionsLimited,
        ErrorCode::ClientConnectionsLimited,
        ErrorCode::ChannelNotDeletable,
        ErrorCode::RequestTooLarge,
        ErrorCode::Overloaded,
        ErrorCode::Unauthenticated,
    ];

    /// The integer on the wire.
    pub fn value(self) -> i64 {
        match self {
            ErrorCode::Ok => 0,
            ErrorCode::HandlerFail => -1,
            ErrorCode::PacketUncompleted => 100,
            ErrorCode::HandleNoResponse => 101,
            ErrorCode::HandleError => 102,
            ErrorCode::RequestTimeout => 103,
            ErrorCode::Unknown => 104,
            ErrorCode::ResponseHandlerMissing => 105,
            ErrorCode::ChannelCreateLimited => 106,
            ErrorCode::ServerConnectionsLimited => 107,
            ErrorCode::ClientConnectionsLimited => 108,
            ErrorCode::ChannelNotDeletable => 109,
            ErrorCode::RequestTooLarge => 110,
            ErrorCode::Overloaded => 111,
            ErrorCode::Unauthenticated => 112,
        }
    }

    /// The code for an integer, if the spec defines it.
    pub fn from_value(value: i64) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.value() == value)
    }

    /// The name the spec's table gives the code.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Ok => "ok",
            ErrorCode::HandlerFail => "handler fail",
            ErrorCode::PacketUncompleted => "packet uncompleted",
            ErrorCode::HandleNoResponse => "handle no response",
            ErrorCode::HandleError => "handle error",
            ErrorCode::RequestTimeout => "request timeout",
            ErrorCode::Unknown => "unknown",
            ErrorCode::ResponseHandlerMissing => "response handler missing",
            ErrorCode::ChannelCreateLimited => "channel create limited",
            ErrorCode::ServerConnectionsLimited => "server connections limited",
            ErrorCode::ClientConnectionsLimited => "client connections limited",
            ErrorCode::ChannelNotDeletable => "channel not deletable",
            ErrorCode::RequestTooLarge => "request too large",
            ErrorCode::Overloaded => "server overloaded",
            ErrorCode::Unauthenticated => "unauthenticated",
        }
    }
}

/// An error answer's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorAnswer {
    /// The code.
    pub code: i64,
    /// The message.
    pub message: String,
}

impl ErrorAnswer {
    /// An answer with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorAnswer {
        ErrorAnswer { code: code.value(), message: message.into() }
    }

    /// The answer of `code` with the code's name as its message, as
    /// `[ANSWER-10]` requires of most codes (e.g. 110 `request too large`).
    pub fn named(code: ErrorCode) -> ErrorAnswer {
        ErrorAnswer::new(code, code.name())
    }

    /// The answer to a route without a handler (`[ANSWER-2]`).
    pub fn no_handler() -> ErrorAnswer {
        ErrorAnswer::new(ErrorCode::HandleError, "handle error")
    }

    /// The answer to a handler that failed with `error` (`[ANSWER-3]`).
    pub fn handler_failed(error: impl std::fmt::Display) -> ErrorAnswer {
        ErrorAnswer::new(ErrorCode::HandlerFail, format!("handler fail:{error}"))
    }

    /// The JSON body.
    pub fn to_body(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_else(|_| b"{\"code\":104,\"message\":\"unknown\"}".to_vec()))
    }

    /// Reads a body as an error answer (`[ANSWER-4]`): a JSON object with
    /// exactly `code` (non-zero) and `message`.
    pub fn parse(body: &[u8]) -> Option<ErrorAnswer> {
        // Only a JSON object can be one: most bodies are told apart by
        // their first byte, without a parse.
        if body.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) != Some(&b'{') {
            return None;
        }
        serde_json::from_slice::<ErrorAnswer>(body).ok().filter(|a| a.code != 0)
    }
}

/// `bytes` as the text of an error message (`[ANSWER-9]`): UTF-8 as it is,
/// and one U+FFFD for each byte that is not part of a well-formed
/// sequence, as the deployed implementation writes it (`e2 82 41` gives
/// two U+FFFD and `A`). [`String::from_utf8_lossy`] differs: it writes one
/// U+FFFD for each maximal subpart.
pub fn message_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(err) => {
                let (valid, after) = rest.split_at(err.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = err.error_len().unwrap_or(after.len());
                out.extend(std::iter::repeat_n(char::REPLACEMENT_CHARACTER, bad));
                rest = &after[bad..];
            }
        }
    }
}

/// The body `{"code":0}`: the answer to `/sys/delete_channel` (`[CHAN-7]`).
pub fn ok_body() -> Bytes {
    Bytes::from_static(b"{\"code\":0}")
}

/// The body granting a channel (`[CHAN-3]`).
pub fn channel_granted_body(channel: u32) -> Bytes {
    Bytes::from(format!("{{\"code\":0,\"channel_id\":{channel}}}"))
}

/// The body of a `/sys/new_channel` answer as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChannelGrant {
    /// 0 on success.
    pub code: i64,
    /// The granted id, when `code` is 0.
    #[serde(default)]
    pub channel_id: Option<u32>,
    /// The reason, when `code` is not 0.
    #[serde(default)]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {

    #[test]
    fn message_text_replaces_each_byte_of_an_ill_formed_sequence() {
        assert_eq!(message_text(b"plain"), "plain");
        assert_eq!(message_text(&[0x61, 0xe2, 0x82, 0x41]), "a\u{fffd}\u{fffd}A");
        assert_eq!(message_text(&[0xff, 0xfe]), "\u{fffd}\u{fffd}");
        // A surrogate's encoding and a cut 4-byte sequence at the end.
        assert_eq!(
            message_text(&[0xed, 0xa0, 0x80, 0x42, 0xf0, 0x9f, 0x98]),
            "\u{fffd}\u{fffd}\u{fffd}B\u{fffd}\u{fffd}\u{fffd}"
        );
        assert_eq!(message_text("é✓".as_bytes()), "é✓");
    }

    use super::*;

    #[test]
    fn codes_round_trip_and_bodies_parse() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_value(code.value()), Some(code));
        }
        let body = ErrorAnswer::no_handler().to_body();
        assert_eq!(&body[..], br#"{"code":102,"message":"handle error"}"#);
        assert_eq!(ErrorAnswer::parse(&body), Some(ErrorAnswer::no_handler()));
        assert_eq!(ErrorAnswer::parse(br#"{"code":0,"message":"x"}"#), None);
        assert_eq!(ErrorAnswer::parse(br#"{"code":1,"message":"x","extra":1}"#), None);
        // Whitespace before the object is JSON's; an array is no object.
        assert_eq!(
            ErrorAnswer::parse(b" \r\n\t{\"code\":102,\"message\":\"handle error\"}").map(|a| a.code),
            Some(102)
        );
        assert_eq!(ErrorAnswer::parse(br#"[102,"handle error"]"#), None);
        assert_eq!(ErrorAnswer::parse(b"xxxx"), None);
        assert_eq!(&channel_granted_body(3)[..], br#"{"code":0,"channel_id":3}"#);
    }
}
