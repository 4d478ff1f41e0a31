//! Properties of the frame codec: round trips, split-point invariance, and
//! robustness on arbitrary bytes.

use bytes::{Bytes, BytesMut};
use iip::conformance::vector::{decode_pieces, decode_stream, Outcome};
use iip::wire::decode::FrameDecoder;
use iip::wire::encode::{encode_frame, frame_bytes};
use iip::{Frame, FrameLimits, Status};
use proptest::prelude::*;

fn arb_status() -> impl Strategy<Value = Status> {
    (0u8..=8).prop_map(|b| Status::from_byte(b).expect("0..=8 are defined"))
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    (
        arb_status(),
        // Past 54 bytes the encoder writes the head field by field.
        proptest::collection::vec(1u8..=255, 0..80),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(status, path, channel, mut data)| {
            if data.is_empty() && status != Status::Close {
                data.push(0);
            }
            Frame::new(status, path, channel, data)
        })
}

/// Decodes `bytes` fed at the given cut points.
fn decode_cut(bytes: &[u8], cuts: &[usize], limits: FrameLimits) -> Outcome {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    let mut from = 0;
    let pieces = points.into_iter().map(|to| {
        let piece = &bytes[from..to];
        from = to;
        piece
    });
    decode_pieces(pieces, limits)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_gives_the_same_frame(frame in arb_frame()) {
        let limits = FrameLimits::default();
        let mut bytes = frame_bytes(&frame, &limits).unwrap();
        prop_assert_eq!(bytes.len(), frame.encoded_len());
        let mut decoder = FrameDecoder::new(limits);
        let decoded = decoder.decode(&mut bytes).unwrap();
        prop_assert_eq!(decoded, Some(frame));
        prop_assert!(bytes.is_empty());
    }

    #[test]
    fn any_split_of_a_stream_gives_the_same_frames_and_error(
        frames in proptest::collection::vec(arb_frame(), 0..6),
        tail in proptest::collection::vec(any::<u8>(), 0..40),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let limits = { let mut cfg = FrameLimits::default(); cfg.max_path = 40; cfg.max_data = 200; cfg };
        let mut stream = BytesMut::new();
        for frame in &frames {
            // Frames over the small limits are written raw, so they become errors.
            if encode_frame(frame, &limits, &mut stream).is_err() {
                encode_frame(frame, &FrameLimits::default(), &mut stream).unwrap();
            }
        }
        stream.extend_from_slice(&tail);
        let whole = decode_stream(&stream, stream.len().max(1), limits);
        prop_assert_eq!(&decode_cut(&stream, &cuts, limits), &whole);
        prop_assert_eq!(&decode_stream(&stream, 1, limits), &whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_progress_is_sane(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        max_path in 0usize..64,
        max_data in 0u32..512,
    ) {
        let limits = { let mut cfg = FrameLimits::default(); cfg.max_path = max_path; cfg.max_data = max_data; cfg };
        let mut decoder = FrameDecoder::new(limits);
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    prop_assert_eq!(before - buf.len(), frame.encoded_len());
                    prop_assert!(frame.path.len() <= max_path);
                    prop_assert!(frame.data.len() <= max_data as usize);
                }
                Ok(None) => {
                    prop_assert_eq!(before, buf.len());
                    prop_assert!(decoder.needed() >= 1);
                    break;
                }
                Err(err) => {
                    prop_assert!(err.offset <= bytes.len() as u64);
                    // Errors are sticky: no resynchronisation.
                    prop_assert_eq!(decoder.decode(&mut buf), Err(err));
                    break;
                }
            }
        }
    }
}

/// quickcheck: whatever frames a decoder finds in arbitrary bytes re-encode
/// to exactly the bytes they were read from.
#[test]
fn decoded_frames_reencode_to_their_source_bytes() {
    fn property(bytes: Vec<u8>) -> bool {
        let limits = {
            let mut cfg = FrameLimits::default();
            cfg.max_path = 16;
            cfg.max_data = 64;
            cfg
        };
        let mut decoder = FrameDecoder::new(limits);
        let mut buf = BytesMut::from(&bytes[..]);
        let mut reencoded = BytesMut::new();
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            if encode_frame(&frame, &limits, &mut reencoded).is_err() {
                return false;
            }
        }
        bytes.starts_with(&reencoded)
    }
    quickcheck::QuickCheck::new().tests(2000).quickcheck(property as fn(Vec<u8>) -> bool);
    // Also from streams that are mostly valid.
    let frame = Frame::new(Status::RequestWhole, Bytes::from_static(b"/q"), 9, Bytes::from_static(b"abc"));
    let valid = frame_bytes(&frame, &FrameLimits::default()).unwrap();
    assert!(property([&valid[..], &valid[..], &[1, 2, 3][..]].concat()));
}

#[test]
fn payloads_are_slices_of_the_read_buffer() {
    let frame = Frame::new(Status::RequestWhole, Bytes::from_static(b"/echo"), 1, vec![7u8; 4096]);
    let mut buf = frame_bytes(&frame, &FrameLimits::default()).unwrap();
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let decoded = FrameDecoder::new(FrameLimits::default()).decode(&mut buf).unwrap().unwrap();
    let data_at = decoded.data.as_ptr() as usize;
    assert!(data_at >= start && data_at < end, "data was copied out of the read buffer");
}
