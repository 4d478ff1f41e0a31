//! End-to-end echo over loopback, in-process: the IIP server and client
//! beside a raw length-prefixed tokio echo (no protocol) in the same run, the
//! physical baseline.
//!
//! `cargo bench --bench echo`

// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::future::join_all;
use iip::client::{Channel, Client};
use iip::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// Requests per measured iteration.
const BATCH: usize = 100;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

async fn iip_channels(channels: usize) -> (Vec<Channel>, iip::server::ServerHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let handle = Server::echo().build().expect("distinct routes").spawn(listener).expect("serve");
    let client = Client::connect(handle.local_addr()).await.expect("connect");
    let mut all = Vec::new();
    if channels == 1 {
        all.push(client.channel_zero());
    } else {
        for _ in 0..channels {
            all.push(client.open_channel().await.expect("channel"));
        }
    }
    (all, handle)
}

/// The physical floor: a server that copies every byte straight back, and
/// length-prefixed messages written in one batch. No parsing, no framing
/// state, no per-message work at all on the server.
async fn raw_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

/// Sends `count` length-prefixed messages pipelined on one raw connection
/// and reads every byte of the answers back.
async fn raw_batch(stream: &mut TcpStream, payload: &[u8], count: usize) {
    let mut batch = Vec::with_capacity((payload.len() + 4) * count);
    for _ in 0..count {
        batch.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        batch.extend_from_slice(payload);
    }
    let (mut read, mut write) = stream.split();
    let writer = async { write.write_all(&batch).await.expect("write") };
    let reader = async {
        let mut buf = vec![0u8; batch.len()];
        read.read_exact(&mut buf).await.expect("read");
    };
    tokio::join!(writer, reader);
}

fn echo(c: &mut Criterion) {
    let rt = runtime();
    for (label, payload) in [("64B", 64usize), ("14KB", 14_000)] {
        let body = Bytes::from(vec![b'e'; payload]);
        let mut group = c.benchmark_group(format!("echo/{label}"));
        group.throughput(Throughput::Elements(BATCH as u64));

        let raw_addr = rt.block_on(raw_server());
        let mut raw = rt.block_on(TcpStream::connect(raw_addr)).expect("connect");
        let _ = raw.set_nodelay(true);
        group.bench_function("raw-tcp-pipelined", |b| b.iter(|| rt.block_on(raw_batch(&mut raw, &body, BATCH))));

        let (one, handle) = rt.block_on(iip_channels(1));
        group.bench_function("iip-1ch-one-at-a-time", |b| {
            b.iter(|| {
                rt.block_on(async {
                    for _ in 0..BATCH {
                        one[0].call("/echo", body.clone()).await.expect("echo");
                    }
                })
            })
        });
        group.bench_function("iip-1ch-pipelined", |b| {
            b.iter(|| rt.block_on(join_all((0..BATCH).map(|_| one[0].call("/echo", body.clone())))))
        });
        rt.block_on(handle.shutdown()).expect("shutdown");
        for channels in [10usize, 100] {
            let (all, handle) = rt.block_on(iip_channels(channels));
            group.bench_function(format!("iip-{channels}ch"), |b| {
                b.iter(|| rt.block_on(join_all((0..BATCH).map(|i| all[i % channels].call("/echo", body.clone())))))
            });
            rt.block_on(handle.shutdown()).expect("shutdown");
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    targets = echo
}
criterion_main!(benches);
