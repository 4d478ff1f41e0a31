//! Attacks on what a server holds for a peer beyond the bytes it was sent:
//! compressed bodies that inflate, hellos, channels, and requests parked
//! in a handler that waits, with or without metadata. Each buys the server's memory or CPU cheaply
//! on the wire; a bounded server counts what they cost in its budgets
//! (`[RES-9]`, `[RES-10]`) and refuses or pauses past them.

use std::time::Instant;

use bytes::Bytes;
use tokio::net::TcpStream;

use super::{connect, encoded, hold_until, open_channels, push_until, AttackKind, Launch};
use crate::io::reader::FrameReader;
use crate::proto::extensions::{BodyCodec, Codec};
use crate::wire::frame::{Frame, FrameLimits};
use crate::wire::status::Status;

/// The hello that agrees zstd for every body.
const ZSTD_HELLO: &[u8] = br#"{"revision":1,"extensions":{"compression":{"codecs":["zstd"],"min_size":0}}}"#;
/// The hello that agrees metadata.
const METADATA_HELLO: &[u8] = br#"{"revision":1,"extensions":{"metadata":{}}}"#;

/// Starts the attack's connections in `set`, for the attacks of this module.
pub(super) async fn setup(launch: Launch<'_>, attack: AttackKind) {
    let Launch { set, plan, deadline, tally } = launch;
    let (s, addr) = (plan.scale, plan.addr.as_str());
    match attack {
        AttackKind::CompressionBomb => {
            // A body of zeros, a few KB once compressed, pipelined to /echo.
            let bomb = BodyCodec::new(Codec::Zstd, 0, usize::MAX).seal(&vec![0u8; s.bomb_size.max(1)]);
            let frame = encoded(&[Frame::new(Status::RequestWhole, &b"/echo"[..], 0, bomb)]);
            for _ in 0..s.bomb_connections {
                let Some(mut stream) = connect(addr, deadline, tally).await else { break };
                // A server that agrees no zstd is not open to the attack.
                if agreed(&mut stream, ZSTD_HELLO, "compression", deadline).await.is_none() {
                    break;
                }
                let (frame, tally) = (frame.clone(), tally.clone());
                set.spawn(
                    async move { push_until(stream, None, move |_| Some(frame.clone()), deadline, &tally).await },
                );
            }
        }
        AttackKind::BigHello => {
            // A hello of one long list of codec names, in maximal frames.
            let names = "\"x\",".repeat(s.hello_size / 4 + 1);
            let body = format!(r#"{{"revision":1,"extensions":{{"compression":{{"codecs":[{names}"zstd"]}}}}}}"#);
            let frames = chunked(b"/sys/hello", Bytes::from(body), 1 << 20);
            for _ in 0..s.hello_connections {
                let Some(stream) = connect(addr, deadline, tally).await else { break };
                let (mut frames, tally) = (frames.clone().into_iter(), tally.clone());
                set.spawn(async move { push_until(stream, None, move |_| frames.next(), deadline, &tally).await });
            }
        }
        AttackKind::ChannelHoard => {
            for _ in 0..s.hoard_connections {
                let Some(mut stream) = connect(addr, deadline, tally).await else { break };
                if open_channels(&mut stream, s.hoard_channels, deadline).await.is_none() {
                    break;
                }
                let tally = tally.clone();
                set.spawn(async move { hold_until(stream, deadline, &tally).await });
            }
        }
        AttackKind::ParkedRequests => {
            let path = Bytes::from_static(s.parked_path.as_bytes());
            let requests: Vec<Frame> = (0..s.parked_requests.max(1))
                .map(|_| Frame::new(Status::RequestWhole, path.clone(), 0, &b"p"[..]))
                .collect();
            let batch = encoded(&requests);
            for _ in 0..s.parked_connections {
                let Some(stream) = connect(addr, deadline, tally).await else { break };
                let (batch, tally) = (batch.clone(), tally.clone());
                let mut once = Some(batch);
                set.spawn(async move { push_until(stream, None, move |_| once.take(), deadline, &tally).await });
            }
        }
        AttackKind::MetadataParked => {
            let path = Bytes::from_static(s.parked_path.as_bytes());
            // The batch for the last `max_size` agreed: a server agrees the
            // same on every connection, so it is built once.
            let mut built: Option<(usize, Bytes)> = None;
            for _ in 0..s.metadata_connections {
                let Some(mut stream) = connect(addr, deadline, tally).await else { break };
                // A server that agrees no metadata is not open to the attack.
                let Some(agreed) = agreed(&mut stream, METADATA_HELLO, "metadata", deadline).await else { break };
                let max_size = agreed.get("max_size").and_then(|m| m.as_u64()).unwrap_or(0) as usize;
                let batch = match &built {
                    Some((size, batch)) if *size == max_size => batch.clone(),
                    _ => {
                        let body = largest_block(max_size, s.metadata_deadline_ms);
                        let requests: Vec<Frame> = (0..s.parked_requests.max(1))
                            .map(|_| Frame::new(Status::RequestWhole, path.clone(), 0, body.clone()))
                            .collect();
                        built.insert((max_size, encoded(&requests))).1.clone()
                    }
                };
                let tally = tally.clone();
                let mut once = Some(batch);
                set.spawn(async move { push_until(stream, None, move |_| once.take(), deadline, &tally).await });
            }
        }
        _ => {}
    }
}

/// A request body of `p` behind the largest block that fits `max_size`:
/// a deadline of `deadline_ms` and one entry padding the rest (`[EXT-18]`).
fn largest_block(max_size: usize, deadline_ms: u32) -> Bytes {
    use crate::proto::extensions::MetadataMap;
    let mut map: MetadataMap = [("deadline", deadline_ms.to_string())].into_iter().collect();
    // Each entry costs its key, its value and three bytes of lengths.
    let pad = max_size.saturating_sub(map.block_len() + 3 + "pad".len());
    if pad > 0 {
        map.insert("pad", "v".repeat(pad));
    }
    let mut body = bytes::BytesMut::new();
    if map.encode(max_size, &mut body).is_err() {
        body.clear();
        body.extend_from_slice(&[0, 0]);
    }
    body.extend_from_slice(b"p");
    body.freeze()
}

/// Sends `hello` and reads its answer: the member `extension` of what the
/// server agreed, if it agreed to it.
async fn agreed(
    stream: &mut TcpStream,
    hello: &'static [u8],
    extension: &str,
    deadline: Instant,
) -> Option<serde_json::Value> {
    use tokio::io::AsyncWriteExt;
    let work = async {
        stream.write_all(&encoded(&[Frame::new(Status::RequestWhole, &b"/sys/hello"[..], 0, hello)])).await.ok()?;
        let frame = FrameReader::new(&mut *stream, FrameLimits::default()).next().await?.ok()?;
        let answer = serde_json::from_slice::<serde_json::Value>(&frame.data).ok()?;
        answer.get("extensions")?.get(extension).cloned()
    };
    tokio::time::timeout_at(deadline.into(), work).await.ok().flatten()
}

/// The frames of one request for `path` carrying `body` in frames of at
/// most `max_data` bytes, each frame encoded on its own.
fn chunked(path: &'static [u8], body: Bytes, max_data: usize) -> Vec<Bytes> {
    let count = body.len().div_ceil(max_data).max(1);
    (0..count)
        .map(|i| {
            let status = match (i, count) {
                (_, 1) => Status::RequestWhole,
                (0, _) => Status::RequestFirst,
                (i, n) if i + 1 == n => Status::RequestLast,
                _ => Status::RequestContinue,
            };
            let data = body.slice(i * max_data..((i + 1) * max_data).min(body.len()));
            encoded(&[Frame::new(status, path, 0, data)])
        })
        .collect()
}
