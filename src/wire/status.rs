//! The status byte: what kind of frame this is, who may send it and where it
//! stands in a message (spec chapter "Status values", `[STATUS-*]`).

use std::fmt;

/// The peer that is allowed to send a frame of a given status.
///
/// Exhaustive: IIP/1's status byte fixes the set, so a `match` on it
/// needs no wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sender {
    /// Only the client (the peer that opened the TCP connection).
    Client,
    /// Only the server (the peer that accepted the TCP connection).
    Server,
    /// Either peer.
    Either,
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sender::Client => "client",
            Sender::Server => "server",
            Sender::Either => "peer",
        })
    }
}

/// The direction a message travels in.
///
/// Exhaustive: IIP/1's status byte fixes the set, so a `match` on it
/// needs no wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A request, sent by the client (statuses 0–3).
    Request,
    /// A response, sent by the server (statuses 4–7).
    Response,
}

impl MessageKind {
    /// The peer that sends messages of this kind.
    pub fn sender(self) -> Sender {
        match self {
            MessageKind::Request => Sender::Client,
            MessageKind::Response => Sender::Server,
        }
    }
}

/// The place of a frame inside its message.
///
/// Exhaustive: IIP/1's status byte fixes the set, so a `match` on it
/// needs no wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    /// The first frame of a message, more frames follow.
    FirstMore,
    /// The first and only frame of a message.
    Whole,
    /// A continuation frame, more frames follow.
    ContinueMore,
    /// The last continuation frame of a message.
    Last,
}

impl Position {
    /// Whether a frame at this position opens a new message.
    pub fn opens_message(self) -> bool {
        matches!(self, Position::FirstMore | Position::Whole)
    }

    /// Whether a frame at this position completes its message.
    pub fn completes_message(self) -> bool {
        matches!(self, Position::Whole | Position::Last)
    }

    /// The position of a frame from whether it is the first one of its
    /// message and whether it is the last one.
    pub fn from_flags(first: bool, last: bool) -> Position {
        match (first, last) {
            (true, false) => Position::FirstMore,
            (true, true) => Position::Whole,
            (false, false) => Position::ContinueMore,
            (false, true) => Position::Last,
        }
    }
}

/// The first byte of every frame (`[STATUS-1]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[non_exhaustive]
pub enum Status {
    /// 0: first frame of a request, more frames follow.
    RequestFirst = 0,
    /// 1: a whole request in one frame.
    RequestWhole = 1,
    /// 2: continuation frame of a request, more frames follow.
    RequestContinue = 2,
    /// 3: last continuation frame of a request.
    RequestLast = 3,
    /// 4: first frame of a response, more frames follow.
    ResponseFirst = 4,
    /// 5: a whole response in one frame.
    ResponseWhole = 5,
    /// 6: continuation frame of a response, more frames follow.
    ResponseContinue = 6,
    /// 7: last continuation frame of a response.
    ResponseLast = 7,
    /// 8: close the connection.
    Close = 8,
}

impl Status {
    /// Every defined status, in wire order.
    pub const ALL: [Status; 9] = [
        Status::RequestFirst,
        Status::RequestWhole,
        Status::RequestContinue,
        Status::RequestLast,
        Status::ResponseFirst,
        Status::ResponseWhole,
        Status::ResponseContinue,
        Status::ResponseLast,
        Status::Close,
    ];

    /// The status for a wire byte, or `None` for an unknown value (`[STATUS-2]`).
    pub fn from_byte(byte: u8) -> Option<Status> {
        Status::ALL.get(usize::from(byte)).copied()
    }

    /// The wire byte of this status.
    pub fn byte(self) -> u8 {
        self as u8
    }

    /// The status of a message frame of `kind` at `position`.
    pub fn message(kind: MessageKind, position: Position) -> Status {
        let base = match kind {
            MessageKind::Request => 0,
            MessageKind::Response => 4,
        };
        let offset = match position {
            Position::FirstMore => 0,
            Position::Whole => 1,
            Position::ContinueMore => 2,
            Position::Last => 3,
        };
        Status::ALL[base + offset]
    }

    /// Which peer may send this status (`[STATUS-3]`).
    pub fn sender(self) -> Sender {
        match self.message_kind() {
            Some(kind) => kind.sender(),
            None => Sender::Either,
        }
    }

    /// Whether `sender` is allowed to send this status.
    pub fn may_be_sent_by(self, sender: Sender) -> bool {
        let own = self.sender();
        own == Sender::Either || own == sender
    }

    /// The kind of message this frame belongs to; `None` for [`Status::Close`].
    pub fn message_kind(self) -> Option<MessageKind> {
        match self.byte() {
            0..=3 => Some(MessageKind::Request),
            4..=7 => Some(MessageKind::Response),
            _ => None,
        }
    }

    /// The place of this frame inside its message; `None` for [`Status::Close`].
    pub fn position(self) -> Option<Position> {
        match self.byte() {
            8 => None,
            b => Some(match b % 4 {
                0 => Position::FirstMore,
                1 => Position::Whole,
                2 => Position::ContinueMore,
                _ => Position::Last,
            }),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Status::RequestFirst => "request-first",
            Status::RequestWhole => "request-whole",
            Status::RequestContinue => "request-continue",
            Status::RequestLast => "request-last",
            Status::ResponseFirst => "response-first",
            Status::ResponseWhole => "response-whole",
            Status::ResponseContinue => "response-continue",
            Status::ResponseLast => "response-last",
            Status::Close => "close",
        };
        write!(f, "{} ({})", self.byte(), name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_unknown_values_are_refused() {
        for byte in 0..=255u8 {
            match Status::from_byte(byte) {
                Some(status) => assert_eq!(status.byte(), byte),
                None => assert!(byte > 8),
            }
        }
    }

    #[test]
    fn message_status_is_inverse_of_kind_and_position() {
        for status in Status::ALL {
            if let (Some(kind), Some(pos)) = (status.message_kind(), status.position()) {
                assert_eq!(Status::message(kind, pos), status);
            } else {
                assert_eq!(status, Status::Close);
            }
        }
    }
}
