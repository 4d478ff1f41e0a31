//! Where handlers run: a cheap route inline in its connection's task, a
//! CPU-heavy one moved onto the runtime's other workers, so that one
//! connection can use every core (`ServerConfig::offload_after`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use iip::client::Client;
use iip::server::{HandlerError, Request, Server, ServerConfig};
use tokio::net::TcpListener;

/// Spins for 300 µs of CPU, counting the handlers spinning at once.
fn spin(running: &AtomicUsize, most: &AtomicUsize, body: Bytes) -> Result<Bytes, HandlerError> {
    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
    most.fetch_max(now, Ordering::SeqCst);
    let until = Instant::now() + Duration::from_micros(300);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
    running.fetch_sub(1, Ordering::SeqCst);
    Ok(body)
}

/// The most handlers of a 300 µs CPU-bound route (an async function, or
/// with `sync` a plain one) that ran at the same moment, over 400 calls on
/// 8 channels of one connection.
async fn most_at_once(offload_after: Option<Duration>, sync: bool) -> usize {
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (r, m) = (running.clone(), most.clone());
    let mut builder = if sync {
        Server::echo().route_sync("/spin", move |req: Request| spin(&r, &m, req.into_body()))
    } else {
        Server::echo().route("/spin", move |req: Request| {
            let (running, most) = (r.clone(), m.clone());
            async move { spin(&running, &most, req.into_body()) }
        })
    };
    builder = builder.config({
        let mut cfg = ServerConfig::default();
        cfg.offload_after = offload_after;
        cfg
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = builder.build().unwrap().spawn(listener).unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(client.open_channel().await.unwrap());
    }
    let calls = channels.iter().map(|channel| async move {
        for i in 0..50 {
            let body = format!("{i}");
            assert_eq!(channel.call("/spin", body.clone()).await.unwrap(), Bytes::from(body));
        }
    });
    futures::future::join_all(calls).await;
    server.shutdown().await.unwrap();
    most.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_heavy_route_runs_on_every_worker_and_a_cheap_one_inline() {
    for sync in [false, true] {
        // Inline: the connection's task runs one handler at a time.
        assert_eq!(most_at_once(None, sync).await, 1, "sync: {sync}");
        // Past 10 µs per request the route's handlers are spawned: two
        // workers run two of them at once.
        let offloaded = most_at_once(Some(Duration::from_micros(10)), sync).await;
        assert!(offloaded >= 2, "sync: {sync}: the heavy route never ran on two workers at once");
        // A threshold above what the route costs keeps it inline.
        assert_eq!(most_at_once(Some(Duration::from_secs(1)), sync).await, 1, "sync: {sync}");
    }
}
