//! Hostile servers for a client under test (`iip attack --serve`): each
//! plays one bad server on a loopback listener while the client's command
//! runs against it (`{addr}` in the command is the listener's address). A
//! client passes a server when its command ends within the limit, whatever
//! its exit status (failing the call is the right outcome), having taken at
//! most [`MAX_TAKEN`] bytes from it and held at most [`MAX_HELD`] bytes of
//! memory (its whole process tree, sampled every 10 ms on Linux): a bounded
//! client stops reading an answer past its limit, stops inflating one past
//! it, and gives up on a server that says nothing.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::wire::encode::encode_frame;
use crate::wire::frame::{Frame, FrameLimits};
use crate::wire::status::Status;

/// The most bytes a client may take from an endless answer before it
/// gives up on it.
pub const MAX_TAKEN: u64 = 1 << 30;

/// The most memory a client's process tree may hold against a bad server.
pub const MAX_HELD: u64 = 1 << 30;

/// What a compression bomb inflates to: twice [`MAX_HELD`].
const BOMB_INFLATED: u64 = 2 << 30;

/// The bad servers, in the order they are played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum HostileServer {
    /// Answers every request with a chunked answer that never ends.
    EndlessAnswer,
    /// Reads everything and never writes.
    Silent,
    /// Sends a valid answer one byte a second.
    Trickle,
    /// Sends a frame header announcing 4 GiB of data, then data forever.
    HugeFrame,
    /// Sends random bytes.
    Garbage,
    /// Answers the hello with a chunked 256 MiB JSON body.
    HugeHello,
    /// Accepts the compression the client offers, then answers every
    /// request with a small compressed body that inflates to 2 GiB.
    CompressionBomb,
}

impl HostileServer {
    /// Every bad server.
    pub const ALL: [HostileServer; 7] = [
        HostileServer::EndlessAnswer,
        HostileServer::Silent,
        HostileServer::Trickle,
        HostileServer::HugeFrame,
        HostileServer::Garbage,
        HostileServer::HugeHello,
        HostileServer::CompressionBomb,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            HostileServer::EndlessAnswer => "endless-answer",
            HostileServer::Silent => "silent",
            HostileServer::Trickle => "trickle",
            HostileServer::HugeFrame => "huge-frame",
            HostileServer::Garbage => "garbage",
            HostileServer::HugeHello => "huge-hello",
            HostileServer::CompressionBomb => "compression-bomb",
        }
    }
}

/// How a client fared against one bad server.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct HostileResult {
    /// Which server.
    pub server: HostileServer,
    /// How the client's command ended (`None`: still running at the limit,
    /// then killed).
    pub exit_code: Option<i32>,
    /// How long it ran, milliseconds.
    pub ran_ms: u64,
    /// Connections the client opened.
    pub connections: u64,
    /// Bytes the client took (the server wrote without error).
    pub bytes_taken: u64,
    /// The most memory its process tree held at one sample; `None` where
    /// it cannot be read.
    pub peak_held: Option<u64>,
}

impl HostileResult {
    /// Whether the client passed: it ended within the limit having taken
    /// at most [`MAX_TAKEN`] bytes and held at most [`MAX_HELD`].
    pub fn passed(&self) -> bool {
        self.exit_code.is_some() && self.bytes_taken <= MAX_TAKEN && self.peak_held.is_none_or(|held| held <= MAX_HELD)
    }
}

impl fmt::Display for HostileResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match (self.passed(), self.exit_code) {
            (true, _) => "ok",
            (false, None) => "HUNG",
            (false, Some(_)) => "UNBOUNDED",
        };
        write!(
            f,
            "{:<16} {:<9} client {} after {:.1} s; {} connection(s), {:.1} MiB taken, {} held at most",
            self.server.name(),
            verdict,
            self.exit_code.map_or("killed".to_string(), |c| format!("exited {c}")),
            self.ran_ms as f64 / 1000.0,
            self.connections,
            self.bytes_taken as f64 / (1u64 << 20) as f64,
            self.peak_held.map_or("? MiB".to_string(), |b| format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64)),
        )
    }
}

/// What the bad servers count.
#[derive(Debug, Default)]
struct Taken {
    connections: AtomicU64,
    bytes: AtomicU64,
}

/// Plays each of `servers` on `listen` (a loopback `host:port`; port 0
/// picks one each time) while `command` runs with `{addr}` replaced by the
/// address, killing it after `limit`; `progress` sees each result.
pub async fn run(
    listen: &str,
    command: &str,
    servers: &[HostileServer],
    limit: Duration,
    mut progress: impl FnMut(&HostileResult),
) -> std::io::Result<Vec<HostileResult>> {
    let mut results = Vec::new();
    for &server in servers {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?.to_string();
        let taken = Arc::new(Taken::default());
        let stop = Arc::new(AtomicBool::new(false));
        let playing = tokio::spawn(play(listener, server, taken.clone(), stop.clone()));
        let started = Instant::now();
        let mut child = crate::conformance::client_cmd::shell(&command.replace("{addr}", &addr))
            .env("IIP_ADDR", &addr)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let mut peak_held = None;
        let watched = async {
            let pid = child.id();
            let mut ticks = tokio::time::interval(Duration::from_millis(10));
            loop {
                tokio::select! {
                    status = child.wait() => return status,
                    _ = ticks.tick() => {
                        if let Some(held) = pid.and_then(super::tree_memory::resident_bytes) {
                            peak_held = Some(peak_held.unwrap_or(0).max(held));
                        }
                    }
                }
            }
        };
        let exit_code = match tokio::time::timeout(limit, watched).await {
            Ok(Ok(status)) => Some(status.code().unwrap_or(-1)),
            _ => {
                let _ = child.kill().await;
                None
            }
        };
        let ran_ms = started.elapsed().as_millis() as u64;
        stop.store(true, Ordering::Relaxed);
        playing.abort();
        let result = HostileResult {
            server,
            exit_code,
            ran_ms,
            connections: taken.connections.load(Ordering::Relaxed),
            bytes_taken: taken.bytes.load(Ordering::Relaxed),
            peak_held,
        };
        progress(&result);
        results.push(result);
    }
    Ok(results)
}

/// Accepts connections and plays `server` on each until `stop`.
async fn play(listener: TcpListener, server: HostileServer, taken: Arc<Taken>, stop: Arc<AtomicBool>) {
    let mut tasks = tokio::task::JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        taken.connections.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(connection(stream, server, taken.clone(), stop.clone()));
    }
}

fn encoded(frame: Frame) -> Bytes {
    let mut out = BytesMut::new();
    let limits = FrameLimits { max_path: usize::MAX, max_data: u32::MAX };
    // The bad server's own frames: sizes are its choice.
    let _ = encode_frame(&frame, &limits, &mut out);
    out.freeze()
}

/// Writes `bytes`, counting them; false once the client has gone.
async fn send(stream: &mut TcpStream, bytes: &[u8], taken: &Taken) -> bool {
    let ok = stream.write_all(bytes).await.is_ok();
    if ok {
        taken.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
    ok
}

/// The first request frame's path and channel (`None` if the client
/// closes first): a few KB are read, enough for any first frame's head.
async fn first_request(stream: &mut TcpStream) -> Option<(Bytes, u32)> {
    let mut reader = crate::io::reader::FrameReader::new(&mut *stream, FrameLimits::default());
    let frame = reader.next().await?.ok()?;
    Some((frame.path, frame.channel))
}

async fn connection(mut stream: TcpStream, server: HostileServer, taken: Arc<Taken>, stop: Arc<AtomicBool>) {
    let chunk = Bytes::from(vec![b'x'; 1 << 20]);
    match server {
        HostileServer::EndlessAnswer => {
            let Some((path, channel)) = first_request(&mut stream).await else { return };
            let first = encoded(Frame::new(Status::ResponseFirst, path.clone(), channel, chunk.clone()));
            let next = encoded(Frame::new(Status::ResponseContinue, path, channel, chunk));
            if !send(&mut stream, &first, &taken).await {
                return;
            }
            while !stop.load(Ordering::Relaxed) && send(&mut stream, &next, &taken).await {}
        }
        HostileServer::Silent => {
            let mut sink = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) && stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        }
        HostileServer::Trickle => {
            let Some((path, channel)) = first_request(&mut stream).await else { return };
            let answer = encoded(Frame::new(Status::ResponseWhole, path, channel, &b"trickled"[..]));
            for byte in answer.iter() {
                if stop.load(Ordering::Relaxed) || !send(&mut stream, &[*byte], &taken).await {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        HostileServer::HugeFrame => {
            let Some((path, channel)) = first_request(&mut stream).await else { return };
            let mut head = vec![Status::ResponseWhole.byte()];
            head.extend_from_slice(&path);
            head.push(0);
            head.extend_from_slice(&channel.to_be_bytes());
            head.extend_from_slice(&u32::MAX.to_be_bytes());
            if !send(&mut stream, &head, &taken).await {
                return;
            }
            while !stop.load(Ordering::Relaxed) && send(&mut stream, &chunk, &taken).await {}
        }
        HostileServer::Garbage => {
            let mut state = 0x2545_F491_4F6C_DD1Du64;
            while !stop.load(Ordering::Relaxed) {
                let bytes: Vec<u8> = (0..4096)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect();
                if !send(&mut stream, &bytes, &taken).await {
                    return;
                }
            }
        }
        HostileServer::HugeHello => {
            let Some((path, channel)) = first_request(&mut stream).await else { return };
            let open = encoded(Frame::new(
                Status::ResponseFirst,
                path.clone(),
                channel,
                &br#"{"revision":1,"extensions":{"x":""#[..],
            ));
            let filler = encoded(Frame::new(Status::ResponseContinue, path.clone(), channel, chunk));
            let close = encoded(Frame::new(Status::ResponseLast, path, channel, &br#""}}"#[..]));
            if !send(&mut stream, &open, &taken).await {
                return;
            }
            for _ in 0..256 {
                if stop.load(Ordering::Relaxed) || !send(&mut stream, &filler, &taken).await {
                    return;
                }
            }
            let _ = send(&mut stream, &close, &taken).await;
            let mut sink = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) && stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        }
        HostileServer::CompressionBomb => compression_bomb(stream, &taken, &stop).await,
    }
}

/// Answers a hello that offers compression by accepting its first codec
/// (any `min_size` offered is taken), then every request with the marker
/// `01` and a frame of that codec inflating to [`BOMB_INFLATED`] zero
/// bytes. A hello without compression is accepted with nothing, and its
/// requests answered plainly: such a client is not exposed.
async fn compression_bomb(stream: TcpStream, taken: &Taken, stop: &AtomicBool) {
    let (read, mut write) = stream.into_split();
    let mut reader = crate::io::reader::FrameReader::new(read, FrameLimits::default());
    let mut bomb: Option<Bytes> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(Ok(frame)) = reader.next().await else { return };
        if frame.status == Status::Close {
            return;
        }
        if frame.status != Status::RequestWhole && frame.status != Status::RequestLast {
            continue;
        }
        let answer = if frame.path == crate::proto::extensions::HELLO {
            let offered = crate::proto::extensions::HelloRequest::parse(&frame.data)
                .and_then(|hello| hello.extensions.compression)
                .and_then(|offer| offer.codecs.into_iter().find_map(|name| bomb_of(&name).map(|b| (name, b))));
            let accepted = match offered {
                Some((name, frame_of_codec)) => {
                    bomb = Some(frame_of_codec);
                    format!(r#"{{"revision":1,"extensions":{{"compression":{{"codec":"{name}","min_size":0}}}}}}"#)
                }
                None => r#"{"revision":1,"extensions":{}}"#.to_string(),
            };
            Bytes::from(accepted)
        } else {
            match &bomb {
                Some(bomb) => bomb.clone(),
                None => frame.data.clone(),
            }
        };
        let answer = encoded(Frame::new(Status::ResponseWhole, frame.path, frame.channel, answer));
        if write.write_all(&answer).await.is_err() {
            return;
        }
        taken.bytes.fetch_add(answer.len() as u64, Ordering::Relaxed);
    }
}

/// The marker `01` and a frame of codec `name` that inflates to
/// [`BOMB_INFLATED`] zero bytes, made without ever holding them; `None`
/// for a codec this build cannot make.
fn bomb_of(name: &str) -> Option<Bytes> {
    match name {
        "zstd" => Some(zstd_bomb()),
        #[cfg(feature = "compression")]
        "lz4" => lz4_bomb(),
        _ => None,
    }
}

/// A Zstandard frame (RFC 8878) of run-length blocks: a 128 KiB window, no
/// content size, and each block 128 KiB of one zero byte in four bytes.
fn zstd_bomb() -> Bytes {
    const BLOCK: u32 = 128 << 10;
    let blocks = (BOMB_INFLATED / u64::from(BLOCK)) as usize;
    let mut out = Vec::with_capacity(1 + 6 + blocks * 4);
    out.push(0x01);
    // Magic; frame header descriptor: nothing optional; window 2^(10+7).
    out.extend_from_slice(&[0x28, 0xB5, 0x2F, 0xFD, 0x00, 7 << 3]);
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        // Block header, 3 bytes little endian: last flag, type 1 (RLE), size.
        let header = last | (1 << 1) | (BLOCK << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(0);
    }
    Bytes::from(out)
}

/// An LZ4 frame of independent 4 MiB blocks, each 4 MiB of zero bytes,
/// compressed once and repeated.
#[cfg(feature = "compression")]
fn lz4_bomb() -> Option<Bytes> {
    use std::io::Write as _;
    const BLOCK: usize = 4 << 20;
    let info = lz4_flex::frame::FrameInfo::new()
        .block_size(lz4_flex::frame::BlockSize::Max4MB)
        .block_mode(lz4_flex::frame::BlockMode::Independent);
    let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
    encoder.write_all(&vec![0u8; BLOCK]).ok()?;
    let one = encoder.finish().ok()?;
    // Header: magic, FLG, BD, header checksum; then one block; then the
    // end mark of four zero bytes.
    let (header, rest) = one.split_at_checked(7)?;
    let block = rest.get(..rest.len().checked_sub(4)?)?;
    let blocks = (BOMB_INFLATED / BLOCK as u64) as usize;
    let mut out = Vec::with_capacity(1 + header.len() + block.len() * blocks + 4);
    out.push(0x01);
    out.extend_from_slice(header);
    for _ in 0..blocks {
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&[0; 4]);
    Some(Bytes::from(out))
}

#[cfg(all(test, feature = "compression"))]
mod tests {
    use super::*;
    use crate::proto::extensions::{BodyCodec, BodyError, Codec};

    /// Each bomb is a frame of its codec that inflates past 32 MiB (a
    /// receiver keeping to that limit refuses it there) and is invalid when
    /// cut short.
    #[test]
    fn each_bomb_inflates_past_a_limit() {
        const ROOM: usize = 32 << 20;
        for (name, codec) in [("zstd", Codec::Zstd), ("lz4", Codec::Lz4)] {
            let bomb = bomb_of(name).expect("a bomb of each built-in codec");
            assert_eq!(bomb[0], 0x01, "{name}: marked compressed");
            assert!(bomb.len() < 16 << 20, "{name}: {} bytes fit one frame", bomb.len());
            let limited = BodyCodec::new(codec, 0, ROOM);
            match limited.open_within(&bomb, ROOM) {
                Err(BodyError::TooLarge { .. }) => {}
                other => panic!("{name}: not refused at the limit: {:?}", other.map(|b| b.len())),
            }
            let roomy = BodyCodec::new(codec, 0, usize::MAX);
            let prefix = roomy.open_within(&bomb.slice(..bomb.len().min(64 << 10)), ROOM);
            assert!(prefix.is_err(), "{name}: a cut bomb is not a whole frame");
        }
        assert!(bomb_of("brotli").is_none());
    }
}
