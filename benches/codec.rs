//! Decode and encode throughput by payload size, beside a minimal
//! hand-written parser of the same stream (the floor: no validation, no
//! limits, no streaming state).
//!
//! `cargo bench --bench codec` (the decode-to-hand-parser ratios, measured
//! in alternating pairs, print after criterion's figures)

// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use std::time::Instant;

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

/// Alternating passes per size in [`paired_ratios`].
const PAIRS: usize = 101;

/// Most bytes of fresh streams prepared for one timed pass (decoding takes
/// its buffer, so each repetition needs its own).
const PASS_BYTES: usize = 64 << 20;

/// Decode speed as a share of the hand parser's, measured in pairs: each
/// pair times one pass of each over the same stream, back to back, in
/// alternating order, and the figure is the median of the pairs' ratios.
/// Criterion times the two one after the other, seconds apart, so on a
/// shared machine its two figures can meet different loads (the hand
/// parser's own time has moved by 40 % between runs); a pair meets the
/// same one. Runs only under `cargo bench`, for the sizes the filter given
/// to it (if any, taken as a plain substring) selects, and prints one
/// line per size.
fn paired_ratios(_: &mut Criterion) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|arg| arg == "--bench") {
        return;
    }
    let filter = bench_filter(&args);
    for (name, payload, count) in SIZES {
        let group = format!("codec/{name}");
        if filter.is_some_and(|filter| !group.contains(filter.as_str())) {
            continue;
        }
        let bytes = stream(payload, count);
        // Enough repetitions in a pass that it lasts long enough to time.
        let repeats = (PASS_BYTES / bytes.len()).clamp(1, 64);
        let time_decode = || timed((0..repeats).map(|_| BytesMut::from(&bytes[..])).collect(), decode_all);
        let time_hand =
            || timed((0..repeats).map(|_| Bytes::copy_from_slice(&bytes[..])).collect(), |buf| hand_parse(buf));
        // The first pairs warm caches and the allocator; they are not kept.
        let mut ratios: Vec<f64> = (0..PAIRS + 5)
            .map(|pair| {
                let (decode, hand) = if pair % 2 == 0 {
                    let decode = time_decode();
                    (decode, time_hand())
                } else {
                    let hand = time_hand();
                    (time_decode(), hand)
                };
                hand.as_secs_f64() / decode.as_secs_f64().max(f64::MIN_POSITIVE)
            })
            .skip(5)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let (low, median, high) = (ratios[PAIRS / 4], ratios[PAIRS / 2], ratios[3 * PAIRS / 4]);
        println!(
            "{group}/paired: decode at {:.0} % of the hand parser's speed (median of {PAIRS} alternating pairs; quartiles {:.0}–{:.0} %)",
            median * 100.0,
            low * 100.0,
            high * 100.0
        );
    }
}

/// The time `pass` takes over every buffer of `bufs`; the buffers are made
/// before and let go after it.
fn timed<B>(mut bufs: Vec<B>, mut pass: impl FnMut(&mut B) -> usize) -> std::time::Duration {
    let started = Instant::now();
    for buf in &mut bufs {
        black_box(pass(buf));
    }
    started.elapsed()
}

/// Criterion's options that take a value: that value is not the filter.
const VALUED_OPTIONS: [&str; 15] = [
    "--color",
    "--save-baseline",
    "--baseline",
    "--baseline-lenient",
    "--load-baseline",
    "--profile-time",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--plotting-backend",
    "--output-format",
];

/// The benchmark filter given on the command line, if any: the first
/// argument that is neither an option nor an option's value.
fn bench_filter(args: &[String]) -> Option<&String> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if VALUED_OPTIONS.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            return Some(arg);
        }
    }
    None
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = codec, paired_ratios
}
criterion_main!(benches);
