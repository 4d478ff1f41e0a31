//! Guessing credentials: connections that each send a hello with a wrong
//! bearer token and wait for the refusal, one after another, as fast as
//! the server answers. A server that requires authentication refuses each
//! with 112 and closes ([EXT-8]); one that paces failures per source
//! ([RES-10]) lets few of them be checked. A server on loopback is
//! attacked from another loopback address, so that the pace it puts on the
//! attacker is not put on the good client.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use super::{count_close_before, encoded, AttackPlan, Tally};
use crate::io::reader::FrameReader;
use crate::wire::frame::{Frame, FrameLimits};
use crate::wire::status::Status;

/// Starts `plan.scale.guess_connections` guessing loops in `set`.
pub(super) fn setup(set: &mut JoinSet<()>, plan: &AttackPlan, deadline: Instant, tally: &Arc<Tally>) {
    for worker in 0..plan.scale.guess_connections {
        let (addr, tally) = (plan.addr.clone(), tally.clone());
        set.spawn(async move {
            let Some(target) = resolve(&addr).await else { return };
            let mut attempt = 0u64;
            while Instant::now() < deadline {
                attempt += 1;
                let Some(stream) = connect_aside(target, deadline).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                tally.connections.fetch_add(1, Ordering::Relaxed);
                guess_once(stream, &format!("guess-{worker}-{attempt}"), deadline, &tally).await;
            }
        });
    }
}

async fn resolve(addr: &str) -> Option<SocketAddr> {
    tokio::net::lookup_host(addr).await.ok()?.next()
}

/// A connection to `target`, from another loopback address than the
/// system would pick when `target` is an IPv4 loopback address.
async fn connect_aside(target: SocketAddr, deadline: Instant) -> Option<TcpStream> {
    let left = deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(2));
    let connect = async {
        match target.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => {
                let aside = if ip == Ipv4Addr::new(127, 0, 0, 2) { [127, 0, 0, 3] } else { [127, 0, 0, 2] };
                let socket = TcpSocket::new_v4()?;
                socket.bind(SocketAddr::from((aside, 0)))?;
                socket.connect(target).await
            }
            _ => TcpStream::connect(target).await,
        }
    };
    tokio::time::timeout(left, connect).await.ok()?.ok()
}

/// One hello offering `token`; counts a refusal with 112, then waits (up
/// to 2 s) for the server to close.
async fn guess_once(mut stream: TcpStream, token: &str, deadline: Instant, tally: &Tally) {
    let hello = format!(r#"{{"revision":1,"extensions":{{"auth":{{"scheme":"bearer","credentials":"{token}"}}}}}}"#);
    let bytes = encoded(&[Frame::new(Status::RequestWhole, &b"/sys/hello"[..], 0, hello.into_bytes())]);
    if stream.write_all(&bytes).await.is_err() {
        return;
    }
    tally.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let answer = async {
        let frame = FrameReader::new(&mut stream, FrameLimits::default()).next().await?.ok()?;
        let answer = serde_json::from_slice::<serde_json::Value>(&frame.data).ok()?;
        (answer.get("code")?.as_u64()? == 112).then_some(())
    };
    if tokio::time::timeout_at(deadline.into(), answer).await.ok().flatten().is_some() {
        tally.answered.fetch_add(1, Ordering::Relaxed);
    }
    count_close_before(&mut stream, deadline.min(Instant::now() + Duration::from_secs(2)), tally).await;
}
