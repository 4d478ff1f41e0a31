//! Frames of the model on the wire: their length as chapter 2 lays them
//! out, and the same frame as the crate's [`iip::Frame`] for the replay.

use bytes::Bytes;
use iip::{Frame, Status};

use crate::model::{Route, WireFrame};

/// The bytes of a frame besides its path and data: the status byte, the
/// path's NUL terminator, the channel id and the data length ([FRAME-1]).
pub const FRAME_OVERHEAD: usize = 1 + 1 + 4 + 4;

/// The bytes `frame` takes on the wire.
pub fn encoded_len(frame: &WireFrame) -> usize {
    FRAME_OVERHEAD + frame.route.map_or(0, |r| r.path().len()) + frame.data.len()
}

/// `frame` as the crate's frame.
pub fn to_frame(frame: &WireFrame) -> Frame {
    let status = Status::from_byte(frame.status).expect("the model sends statuses of the table");
    let path = frame.route.map_or(Bytes::new(), |r| Bytes::from_static(r.path()));
    Frame::new(status, path, frame.channel, Bytes::from(frame.data.clone()))
}

/// The crate's frame as the model writes it, if its path is one the model
/// knows.
pub fn from_frame(frame: &Frame) -> Option<WireFrame> {
    let route = if frame.path.is_empty() {
        None
    } else {
        Some(
            [Route::Echo, Route::NewChannel, Route::Delete, Route::Hello, Route::GoingAway]
                .into_iter()
                .find(|r| r.path() == &frame.path[..])?,
        )
    };
    Some(WireFrame {
        status: frame.status.byte(),
        route,
        channel: frame.channel,
        data: frame.data.to_vec(),
        bad: false,
        call: None,
    })
}
