//! The server core fed arbitrary frames, answering the requests it hands
//! out in an order the input chooses: it never panics (the fuzz build checks
//! arithmetic overflow, so the byte accounting is checked too), every
//! protocol error ends the connection, and once every request is answered
//! and every frame taken, it holds no bytes.
#![no_main]

use bytes::Bytes;
use iip::wire::frame::{Frame, FrameLimits};
use iip::proto::server::{ServerConfig, ServerConnection, ServerEvent};
use iip::wire::status::Status;
use libfuzzer_sys::fuzz_target;

const PATHS: [&[u8]; 6] =
    [b"/echo", b"/sys/new_channel", b"/sys/delete_channel", b"/echo?x=1", b"", b"/sys/statis"];

fuzz_target!(|input: &[u8]| {
    let config = ServerConfig {
        frame_limits: FrameLimits { max_path: 64, max_data: 64 },
        max_channels: 4,
        max_message: 200,
        max_held_bytes: 300,
    };
    let mut core = ServerConnection::new(config);
    let mut waiting: Vec<(u32, u64)> = Vec::new();
    let mut out = Vec::new();
    for op in input.chunks(4) {
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| op.get(i).copied().unwrap_or(0));
        match a % 8 {
            // Answer one waiting request, chosen by the input.
            6 if !waiting.is_empty() => {
                let (channel, seq) = waiting.remove(b as usize % waiting.len());
                core.respond(channel, seq, Bytes::from(vec![b'r'; c as usize]));
            }
            7 => core.set_server_room(usize::from(b) * 64),
            _ => {
                let Some(status) = Status::from_byte(b % 10) else { continue };
                let data = Bytes::from(vec![b'd'; (d % 80) as usize + usize::from(status != Status::Close)]);
                let frame = Frame::new(status, PATHS[c as usize % PATHS.len()], u32::from(a >> 3) % 6, data);
                match core.receive(frame) {
                    Ok(Some(ServerEvent::Request(r))) => waiting.push((r.channel, r.seq)),
                    Ok(_) => {}
                    Err(_) => assert!(core.is_closed(), "a protocol error ends the connection"),
                }
            }
        }
        out.extend(core.transmit());
        out.clear();
        if core.is_closed() {
            break;
        }
    }
    for (channel, seq) in waiting.drain(..) {
        core.respond(channel, seq, Bytes::from_static(b"late"));
    }
    out.extend(core.transmit());
    let held = core.held();
    assert_eq!(held.handed_out + held.answers, 0, "answered and sent, yet held: {held:?}");
});
