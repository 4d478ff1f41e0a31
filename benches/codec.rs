//! Decode and encode throughput by payload size, beside a minimal
//! hand-written parser of the same stream (the floor: no validation, no
//! limits, no streaming state).
//!
//! `cargo bench --bench codec`

// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use iip::wire::decode::FrameDecoder;
use iip::wire::encode::encode_frame;
use iip::{Frame, FrameLimits, Status};

/// (name, payload bytes, frames in the stream)
const SIZES: [(&str, usize, usize); 5] =
    [("0B", 0, 4096), ("64B", 64, 4096), ("1KiB", 1024, 1024), ("14KB", 14_000, 256), ("1MiB", 1 << 20, 8)];

fn stream(payload: usize, frames: usize) -> Bytes {
    let limits = FrameLimits::default();
    let mut out = BytesMut::new();
    for i in 0..frames {
        // A zero payload is only legal in a close frame.
        let frame = if payload == 0 {
            Frame::close(i as u32)
        } else {
            Frame::new(Status::RequestWhole, Bytes::from_static(b"/echo"), (i % 10) as u32, vec![b'x'; payload])
        };
        encode_frame(&frame, &limits, &mut out).expect("valid frame");
    }
    out.freeze()
}

/// The floor: walk the same stream by hand, yielding the same zero-copy slices.
fn hand_parse(buf: &Bytes) -> usize {
    let mut at = 0;
    let mut frames = 0;
    while at < buf.len() {
        let status = buf[at];
        let nul = memchr::memchr(0, &buf[at + 1..]).expect("terminated path");
        let path = buf.slice(at + 1..at + 1 + nul);
        let header = at + 1 + nul + 1;
        let channel = u32::from_be_bytes([buf[header], buf[header + 1], buf[header + 2], buf[header + 3]]);
        let len = u32::from_be_bytes([buf[header + 4], buf[header + 5], buf[header + 6], buf[header + 7]]) as usize;
        let data = buf.slice(header + 8..header + 8 + len);
        black_box((status, path, channel, data));
        at = header + 8 + len;
        frames += 1;
    }
    frames
}

fn decode_all(buf: &mut BytesMut) -> usize {
    let mut decoder = FrameDecoder::new(FrameLimits::default());
    let mut frames = 0;
    while let Some(frame) = decoder.decode(buf).expect("valid stream") {
        black_box(frame);
        frames += 1;
    }
    frames
}

fn codec(c: &mut Criterion) {
    let limits = FrameLimits::default();
    for (name, payload, count) in SIZES {
        let bytes = stream(payload, count);
        let mut group = c.benchmark_group(format!("codec/{name}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        // Both sides get their buffer by reference, so that neither times
        // giving it back to the allocator (for 1 MiB frames a whole munmap).
        group.bench_function("decode", |b| {
            b.iter_batched_ref(|| BytesMut::from(&bytes[..]), decode_all, BatchSize::LargeInput)
        });
        group.bench_function("hand-parser", |b| {
            b.iter_batched_ref(|| Bytes::copy_from_slice(&bytes[..]), |buf| hand_parse(buf), BatchSize::LargeInput)
        });
        let frames: Vec<Frame> = {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut decoder = FrameDecoder::new(limits);
            std::iter::from_fn(|| decoder.decode(&mut buf).ok().flatten()).collect()
        };
        group.bench_function("encode", |b| {
            let mut out = BytesMut::with_capacity(bytes.len());
            b.iter(|| {
                out.clear();
                for frame in &frames {
                    encode_frame(frame, &limits, &mut out).expect("valid frame");
                }
                black_box(out.len())
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = codec
}
criterion_main!(benches);
