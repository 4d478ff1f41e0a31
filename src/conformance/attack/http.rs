//! Attacks on an HTTP gateway in front of IIP servers (`iip attack
//! --http`): probes of the upstream's system paths, slow requests that
//! would hold shared channels, bodies that stall half sent, slow request
//! heads and idle connections. The good client calls `POST /echo` over
//! HTTP/1.1 on a kept-alive connection of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::good::Record;
use super::{connect, count_close_before, hold_until, AttackKind, GoodClient, Launch, Tally};

/// The upstream system paths a gateway must keep inside.
const SYSTEM_PATHS: [&str; 6] = [
    "/sys/statis",
    "/sys/connection_statis",
    "/sys/path_measure",
    "/sys/new_channel",
    "/sys/delete_channel",
    "/sys/hello",
];

/// How long the good client waits for one answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

fn post(path: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: iip\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Reads one HTTP/1.1 response: its status and body.
async fn response(stream: &mut TcpStream) -> Option<(u16, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut piece = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buffer.split_off(head_end);
    while body.len() < length {
        let n = stream.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&piece[..n]);
    }
    Some((status, body))
}

/// Starts the attack's connections in `set`, for the attacks of this module.
pub(super) async fn setup(launch: Launch<'_>, attack: AttackKind) {
    let Launch { set, plan, deadline, tally } = launch;
    let (s, addr) = (plan.scale, plan.addr.as_str());
    match attack {
        AttackKind::HttpSysProbe => {
            let (addr, tally) = (addr.to_string(), tally.clone());
            set.spawn(async move {
                while Instant::now() < deadline {
                    for path in SYSTEM_PATHS {
                        let Some(mut stream) = connect(&addr, deadline, &tally).await else { return };
                        let request = post(path, b"{}", false);
                        if stream.write_all(&request).await.is_err() {
                            continue;
                        }
                        tally.bytes.fetch_add(request.len() as u64, Ordering::Relaxed);
                        let answered = tokio::time::timeout_at(deadline.into(), response(&mut stream)).await;
                        if let Ok(Some((status, _))) = answered {
                            tally.answered.fetch_add(1, Ordering::Relaxed);
                            if status != 404 {
                                tally.leaked.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        AttackKind::HttpSlowRequests => {
            let request = post(s.http_slow_path, b"{}", true);
            for _ in 0..s.http_slow_requests {
                let Some(mut stream) = connect(addr, deadline, tally).await else { break };
                if stream.write_all(&request).await.is_err() {
                    continue;
                }
                tally.bytes.fetch_add(request.len() as u64, Ordering::Relaxed);
                let tally = tally.clone();
                set.spawn(async move { hold_until(stream, deadline, &tally).await });
            }
        }
        AttackKind::HttpStalledBodies => {
            // Every byte of the body but the last, then nothing.
            let size = s.http_body_size.max(2);
            let head = format!("POST /echo HTTP/1.1\r\nhost: iip\r\ncontent-length: {size}\r\n\r\n");
            let chunk = vec![b'b'; 1 << 20];
            for _ in 0..s.http_bodies {
                let Some(mut stream) = connect(addr, deadline, tally).await else { break };
                let tally = tally.clone();
                let (head, chunk) = (head.clone(), chunk.clone());
                set.spawn(async move {
                    let send = async {
                        stream.write_all(head.as_bytes()).await?;
                        let mut left = size - 1;
                        while left > 0 {
                            let n = left.min(chunk.len());
                            stream.write_all(&chunk[..n]).await?;
                            tally.bytes.fetch_add(n as u64, Ordering::Relaxed);
                            left -= n;
                        }
                        Ok::<_, std::io::Error>(())
                    };
                    if let Ok(Ok(())) = tokio::time::timeout_at(deadline.into(), send).await {
                        count_close_before(&mut stream, deadline, &tally).await;
                    } else if Instant::now() < deadline {
                        // Refused while sending: the gateway answered and closed.
                        tally.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        }
        AttackKind::HttpSlowHeads => {
            let head = b"GET /echo HTTP/1.1\r\nhost: iip\r\nx-slow: ".to_vec();
            for _ in 0..s.loris_connections {
                let Some(stream) = connect(addr, deadline, tally).await else { break };
                let (head, tally, pause) = (head.clone(), tally.clone(), s.loris_interval);
                set.spawn(async move {
                    let (mut read, mut write) = stream.into_split();
                    let trickle = async {
                        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
                            if write.write_all(&[*byte]).await.is_err() {
                                return;
                            }
                            tally.bytes.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(pause).await;
                        }
                    };
                    tokio::select! {
                        _ = count_close_before(&mut read, deadline, &tally) => {}
                        _ = trickle => {}
                    }
                });
            }
        }
        AttackKind::HttpIdleFlood => {
            for _ in 0..s.idle_connections {
                let Some(stream) = connect(addr, deadline, tally).await else { break };
                let tally = tally.clone();
                set.spawn(async move { hold_until(stream, deadline, &tally).await });
            }
        }
        _ => {}
    }
}

/// Calls `POST /echo` with 64 bytes over HTTP/1.1, one call at a time on a
/// kept-alive connection with a 10 ms pause, reconnecting whenever it
/// fails, until `stop`.
pub(super) async fn good_client(addr: String, started: Instant, stop: Arc<AtomicBool>) -> GoodClient {
    let payload = vec![b'g'; 64];
    let request = post("/echo", &payload, true);
    let mut record = Record::new(started);
    let mut stream: Option<TcpStream> = None;
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let call = async {
            if stream.is_none() {
                stream = Some(TcpStream::connect(&addr).await.ok()?);
            }
            let s = stream.as_mut()?;
            s.write_all(&request).await.ok()?;
            response(s).await
        };
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Some((200, body))) if body == payload => record.served(sent),
            _ => {
                record.failed();
                stream = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    record.finish()
}

/// Whether a new HTTP client is served `POST /echo` by `addr` within `limit`.
pub(super) async fn served_within(addr: &str, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        let call = async {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            stream.write_all(&post("/echo", b"alive", false)).await.ok()?;
            response(&mut stream).await
        };
        if let Ok(Some((200, body))) = tokio::time::timeout(CALL_TIMEOUT, call).await {
            if body == b"alive" {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Counters of [`Tally`] this module reads into the result.
pub(super) fn leaked(tally: &Tally) -> u64 {
    tally.leaked.load(Ordering::Relaxed)
}
