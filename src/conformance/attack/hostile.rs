//! Hostile servers for a client under test (`iip attack --serve`): each
//! plays one bad server on a loopback listener while the client's command
//! runs against it (`{addr}` in the command is the listener's address). A
//! client passes a server when its command ends within the limit, whatever
//! its exit status (failing the call is the right outcome), having taken at
//! most [`MAX_TAKEN`] bytes from it: a bounded client stops reading an
//! answer past its limit and gives up on a server that says nothing.

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

/// The bad servers, in the order they are played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
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
}

impl HostileServer {
    /// Every bad server.
    pub const ALL: [HostileServer; 6] = [
        HostileServer::EndlessAnswer,
        HostileServer::Silent,
        HostileServer::Trickle,
        HostileServer::HugeFrame,
        HostileServer::Garbage,
        HostileServer::HugeHello,
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
        }
    }
}

/// How a client fared against one bad server.
#[derive(Debug, Clone, Serialize)]
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
}

impl HostileResult {
    /// Whether the client passed: it ended within the limit having taken
    /// at most [`MAX_TAKEN`] bytes.
    pub fn passed(&self) -> bool {
        self.exit_code.is_some() && self.bytes_taken <= MAX_TAKEN
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
            "{:<15} {:<9} client {} after {:.1} s; {} connection(s), {:.1} MiB taken",
            self.server.name(),
            verdict,
            self.exit_code.map_or("killed".to_string(), |c| format!("exited {c}")),
            self.ran_ms as f64 / 1000.0,
            self.connections,
            self.bytes_taken as f64 / (1u64 << 20) as f64,
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
        let exit_code = match tokio::time::timeout(limit, child.wait()).await {
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
    }
}
