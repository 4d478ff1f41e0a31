//! The frame: the unit every IIP byte stream is made of (spec chapter
//! "Frame layout", `[FRAME-*]`), and the size limits that bound it.

use bytes::Bytes;

use crate::wire::status::Status;

/// The default largest path, in bytes, not counting the terminating NUL (`[LIMIT-1]`).
pub const DEFAULT_MAX_PATH: usize = 2048;

/// The default largest data length of one frame, 16 MiB (`[LIMIT-2]`).
pub const DEFAULT_MAX_DATA: u32 = 16 * 1024 * 1024;

/// Bytes of a frame that are not path or data: status, NUL, channel and length.
pub const FIXED_OVERHEAD: usize = 1 + 1 + 4 + 4;

/// The limits a decoder enforces and an encoder respects.
///
/// In a configuration file: `max_path` and `max_data`, both optional.
///
/// Start from `default()` and set the fields to change: the struct is
/// `#[non_exhaustive]`, so a field added later breaks no caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct FrameLimits {
    /// Largest path in bytes, not counting the NUL terminator. Default
    /// 2,048 (`[LIMIT-1]`).
    pub max_path: usize,
    /// Largest data length of a single frame. Default 16 MiB (`[LIMIT-2]`).
    pub max_data: u32,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits { max_path: DEFAULT_MAX_PATH, max_data: DEFAULT_MAX_DATA }
    }
}

/// One decoded or to-be-encoded frame.
///
/// `path` and `data` are [`Bytes`]: a decoded frame shares the read buffer
/// instead of copying it. The path is raw bytes; it need not be UTF-8 (`[FRAME-3]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The status byte.
    pub status: Status,
    /// The path, without its NUL terminator; may carry a `?query`.
    pub path: Bytes,
    /// The channel the frame belongs to.
    pub channel: u32,
    /// The payload.
    pub data: Bytes,
}

impl Frame {
    /// A frame from its four fields.
    pub fn new(status: Status, path: impl Into<Bytes>, channel: u32, data: impl Into<Bytes>) -> Frame {
        Frame { status, path: path.into(), channel, data: data.into() }
    }

    /// A close frame (`[CLOSE-1]`) with an empty path and no data.
    pub fn close(channel: u32) -> Frame {
        Frame::new(Status::Close, Bytes::new(), channel, Bytes::new())
    }

    /// A close frame on channel 0 whose data is `reason`: the close a peer
    /// sends before closing, naming the broken requirement on an error
    /// (`[CLOSE-4]`).
    pub fn close_with_reason(reason: &str) -> Frame {
        Frame::new(Status::Close, Bytes::new(), 0, Bytes::from(reason.to_string()))
    }

    /// The number of bytes this frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        FIXED_OVERHEAD + self.path.len() + self.data.len()
    }

    /// The route part of the path: everything before the first `?` (`[FRAME-7]`).
    pub fn route(&self) -> Bytes {
        split_route(self.path.clone()).0
    }

    /// The query part of the path: everything after the first `?`, if there is one.
    pub fn query(&self) -> Option<Bytes> {
        split_route(self.path.clone()).1
    }
}

/// Splits a path at its first `?` into route and query, sharing its bytes
/// (a path without `?` is the route itself, moved).
#[inline(always)]
pub fn split_route(path: Bytes) -> (Bytes, Option<Bytes>) {
    match crate::wire::scan::find_byte(b'?', &path) {
        Some(at) => {
            let mut route = path;
            let query = route.split_off(at + 1);
            route.truncate(at);
            (route, Some(query))
        }
        None => (path, None),
    }
}

/// Splits a raw path at its first `?` into the route and the query (`[FRAME-7]`).
pub fn split_path(path: &[u8]) -> (&[u8], Option<&[u8]>) {
    match crate::wire::scan::find_byte(b'?', path) {
        Some(at) => (&path[..at], Some(&path[at + 1..])),
        None => (path, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_and_query_split_at_first_question_mark() {
        let frame = Frame::new(Status::RequestWhole, &b"/echo?a=1?b"[..], 0, &b"x"[..]);
        assert_eq!(&frame.route()[..], b"/echo");
        assert_eq!(frame.query().as_deref(), Some(&b"a=1?b"[..]));
        let plain = Frame::new(Status::RequestWhole, &b"/echo"[..], 0, &b"x"[..]);
        assert_eq!(plain.query(), None);
        assert_eq!(&plain.route()[..], b"/echo");
    }
}
