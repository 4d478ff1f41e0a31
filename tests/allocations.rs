//! Decoding does not copy payloads: the number of heap allocations made
//! while decoding a stream of frames does not grow with the number of frames
//! (counted with dhat, so the figure is exact and machine-independent).

use bytes::{Bytes, BytesMut};
use iip::decode::FrameDecoder;
use iip::encode::encode_frame;
use iip::{Frame, FrameLimits, Status};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[test]
fn decoding_allocates_nothing_per_frame() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let limits = FrameLimits::default();
    let mut stream = BytesMut::new();
    const FRAMES: u64 = 2000;
    for i in 0..FRAMES {
        let frame = Frame::new(Status::RequestWhole, Bytes::from_static(b"/echo"), (i % 7) as u32, vec![b'p'; 1024]);
        encode_frame(&frame, &limits, &mut stream).unwrap();
    }
    let mut decoder = FrameDecoder::new(limits);
    let mut frames = Vec::with_capacity(FRAMES as usize);
    let before = dhat::HeapStats::get().total_blocks;
    while let Some(frame) = decoder.decode(&mut stream).unwrap() {
        frames.push(frame);
    }
    let allocations = dhat::HeapStats::get().total_blocks - before;
    assert_eq!(frames.len() as u64, FRAMES);
    println!("{allocations} allocations for {FRAMES} decoded frames of 1 KiB");
    // Splitting the read buffer shares it once; after that, frames are slices.
    assert!(allocations <= 2, "{allocations} allocations for {FRAMES} frames: payloads are being copied");
}
