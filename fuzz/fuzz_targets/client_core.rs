//! The client core with requests outstanding, fed arbitrary server frames:
//! it never panics, and a protocol error ends the connection.
#![no_main]

use bytes::Bytes;
use iip::wire::frame::{Frame, FrameLimits};
use iip::proto::client::ClientConnection;
use iip::wire::status::Status;
use libfuzzer_sys::fuzz_target;

const PATHS: [&[u8]; 4] = [b"/echo", b"/sys/new_channel", b"/sys/delete_channel", b""];
const GRANTS: [&[u8]; 5] =
    [br#"{"code":0,"channel_id":1}"#, br#"{"code":106,"message":"no"}"#, b"{}", b"not json", br#"{"code":0}"#];

fuzz_target!(|input: &[u8]| {
    let mut core = ClientConnection::new(FrameLimits { max_path: 64, max_data: 64 });
    let mut out = Vec::new();
    for op in input.chunks(4) {
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| op.get(i).copied().unwrap_or(0));
        match a % 4 {
            0 => {
                let _ = core.request(u32::from(b % 4), &b"/echo"[..], Bytes::from(vec![b'q'; c as usize]));
            }
            1 => {
                let _ = core.open_channel(0);
            }
            2 => {
                let _ = core.delete_channel(u32::from(b % 4));
            }
            _ => {
                let Some(status) = Status::from_byte(b % 10) else { continue };
                let data = match d % 3 {
                    0 => Bytes::from_static(GRANTS[c as usize % GRANTS.len()]),
                    _ => Bytes::from(vec![b'a'; (d % 80) as usize + 1]),
                };
                let frame = Frame::new(status, PATHS[c as usize % PATHS.len()], u32::from(a >> 2) % 4, data);
                if core.receive(frame).is_err() {
                    assert!(core.is_closed(), "a protocol error ends the connection");
                    break;
                }
            }
        }
        core.drain_transmit(&mut out);
        out.clear();
    }
    let _ = core.close();
});
