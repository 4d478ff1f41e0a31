//! The session-vector parser over arbitrary text: a file either fails to
//! parse with an error or yields cases whose frames and raw bytes build
//! (or fail to build) without a panic and without unbounded memory.
#![no_main]

use bytes::BytesMut;
use iip::conformance::session::SessionFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let Ok(file) = toml::from_str::<SessionFile>(text) else { return };
    for case in &file.case {
        for step in &case.steps {
            if let Some(frame) = &step.send {
                let _ = frame.to_frame();
                let _ = frame.write_raw(&mut BytesMut::new());
            }
            if let Some(raw) = &step.send_raw {
                let _ = raw.to_bytes();
            }
        }
    }
});
