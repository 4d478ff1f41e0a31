//! Decoding does not copy payloads: the number of heap allocations made
//! while decoding a stream of frames does not grow with the number of frames
//! (counted with dhat, so the figure is exact and machine-independent).

use bytes::{Bytes, BytesMut};
use iip::wire::decode::FrameDecoder;
use iip::wire::encode::encode_frame;
use iip::{Frame, FrameLimits, Status};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Allocations made while decoding 2,000 frames of 1 KiB from one buffer.
fn allocations_for_one_stream(frames: u64) -> u64 {
    let limits = FrameLimits::default();
    let mut stream = BytesMut::new();
    for i in 0..frames {
        let frame = Frame::new(Status::RequestWhole, Bytes::from_static(b"/echo"), (i % 7) as u32, vec![b'p'; 1024]);
        encode_frame(&frame, &limits, &mut stream).unwrap();
    }
    let mut decoder = FrameDecoder::new(limits);
    let mut decoded = Vec::with_capacity(frames as usize);
    let before = dhat::HeapStats::get().total_blocks;
    while let Some(frame) = decoder.decode(&mut stream).unwrap() {
        decoded.push(frame);
    }
    let allocations = dhat::HeapStats::get().total_blocks - before;
    assert_eq!(decoded.len() as u64, frames);
    allocations
}

#[test]
fn decoding_allocates_nothing_per_frame() {
    let _profiler = dhat::Profiler::builder().testing().build();
    const FRAMES: u64 = 2000;
    // dhat counts the whole process: the test harness's own threads may
    // allocate during a run on a loaded machine. The fewest of three runs
    // is what decoding itself did.
    let allocations = (0..3).map(|_| allocations_for_one_stream(FRAMES)).min().unwrap_or(u64::MAX);
    println!("{allocations} allocations for {FRAMES} decoded frames of 1 KiB");
    // Splitting the read buffer shares it once; after that, frames are slices.
    assert!(allocations <= 2, "{allocations} allocations for {FRAMES} frames: payloads are being copied");
}
