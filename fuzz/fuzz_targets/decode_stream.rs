//! The streaming decoder over arbitrary bytes cut at arbitrary points: the
//! outcome never depends on where the stream was cut, and every frame that
//! decodes re-encodes to exactly the bytes it came from.
#![no_main]

use bytes::BytesMut;
use iip::wire::encode::encode_frame;
use iip::wire::frame::FrameLimits;
use iip::conformance::vector::{decode_pieces, decode_stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // The first byte chooses small limits sometimes, so limit errors are reached.
    let Some((&mode, rest)) = input.split_first() else { return };
    let limits = if mode & 1 == 0 {
        FrameLimits::default()
    } else {
        FrameLimits { max_path: (mode as usize >> 1) % 16, max_data: 1 + (mode as u32 >> 4) }
    };
    // The next bytes are cut lengths, the rest is the stream.
    let cuts_len = rest.first().map_or(0, |&n| (n % 8) as usize);
    let Some(rest) = rest.get(1..) else { return };
    let (cuts, stream) = rest.split_at(cuts_len.min(rest.len()));
    let whole = decode_stream(stream, stream.len().max(1), limits);
    let mut pieces = Vec::new();
    let mut at = 0;
    for &cut in cuts {
        let end = (at + 1 + cut as usize).min(stream.len());
        pieces.push(&stream[at..end]);
        at = end;
    }
    pieces.push(&stream[at..]);
    let split = decode_pieces(pieces, limits);
    assert_eq!(whole, split, "the outcome depends on where the stream was cut");
    let mut encoded = BytesMut::new();
    for frame in &whole.frames {
        encode_frame(frame, &limits, &mut encoded).expect("a decoded frame encodes");
    }
    assert_eq!(&encoded[..], &stream[..encoded.len()], "decoded frames re-encode to their bytes");
});
