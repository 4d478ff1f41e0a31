//! Heap allocations per request, end to end: an in-process server and
//! client exchanging 64 B echoes on 10 channels, counted with dhat (exact
//! and machine-independent, so the bound below is a real regression test,
//! not a timing). The figure covers both sides: client and server share
//! the process.
//!
//! `cargo test --test request_allocations -- --nocapture` prints it.

use bytes::Bytes;
use futures::future::join_all;
use iip::client::{Client, ClientConfig, ClientExtensions};
use iip::server::Server;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Calls measured, after as many to warm up.
const CALLS: usize = 10_000;
/// Channels the calls are spread over, one call in flight on each.
const CHANNELS: usize = 10;

/// Allocations (blocks) per echo call of one run.
async fn allocations_per_call() -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = Server::echo().build().expect("routes").spawn(listener).expect("serve");
    let config = {
        let mut cfg = ClientConfig::default();
        cfg.extensions = ClientExtensions::off();
        cfg
    };
    let client = Client::connect_with(server.local_addr(), config).await.expect("connect");
    let mut channels = Vec::new();
    for _ in 0..CHANNELS {
        channels.push(client.open_channel().await.expect("channel"));
    }
    let body = Bytes::from(vec![b'x'; 64]);
    let run = |calls: usize| {
        let (channels, body) = (&channels, &body);
        join_all(channels.iter().map(move |channel| async move {
            for _ in 0..calls / CHANNELS {
                let answer = channel.call("/echo", body.clone()).await.expect("echo");
                assert_eq!(answer, *body);
            }
        }))
    };
    run(CALLS).await;
    let before = dhat::HeapStats::get().total_blocks;
    run(CALLS).await;
    let blocks = dhat::HeapStats::get().total_blocks - before;
    drop(client);
    server.shutdown().await.expect("shutdown");
    blocks as f64 / CALLS as f64
}

#[test]
fn an_echo_costs_a_bounded_number_of_allocations() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    // The fewest of three runs: anything else in the process (the test
    // harness) can only add.
    let per_call = (0..3).map(|_| runtime.block_on(allocations_per_call())).fold(f64::MAX, f64::min);
    println!("{per_call:.2} allocations per echo call, client and server together");
    // One is the call's inbox; the bound leaves room for one more.
    assert!(per_call <= 2.5, "{per_call:.2} allocations per call");
}
