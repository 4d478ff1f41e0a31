//! End-to-end 64 B and 14 KB echo over loopback, in-process, at the
//! Performance chapter's loads, against four servers driven by the same
//! load code:
//!
//! - `iip`: this crate's server;
//! - `floor`: the unchecked IIP echo (`iip_dev::floor`: one read, every
//!   whole frame answered with no checks, one write; no channel state);
//! - `checked`: the checked IIP echo (`iip_dev::floor::checked`): this
//!   crate's sans-IO server core behind the thinnest shell (one read, every
//!   frame through the core, handlers that never wait, statistics kept);
//! - `h2`: hyper's HTTP/2 echo, one stream per call, driven by the h2
//!   client at the same concurrency.
//!
//! Each load is measured twice: `wall` gives requests per second, `cpu`
//! gives the process's CPU time (server and client together, from
//! `/proc/self/task/*/schedstat`) per request — criterion prints it as the
//! time per iteration, so its "thrpt" is requests per CPU-second.
//!
//! `cargo bench --bench echo [-- FILTER]`

// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::future::join_all;
use iip::cli::loadgen::cpu_time;
use iip::client::{Channel, Client, ClientConfig, ClientExtensions};
use iip::server::Server;
use iip_dev::floor::checked::serve_checked_iip;
use iip_dev::floor::{serve_h2_echo, serve_unchecked_iip};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// Calls each in-flight slot makes per measured iteration.
const CALLS_PER_SLOT: usize = 10;

/// A load: connections × lanes per connection × calls in flight per lane.
struct Load {
    name: &'static str,
    connections: usize,
    /// Channels (IIP) or concurrent streams (HTTP/2) per connection.
    lanes: usize,
    /// Calls in flight per lane (pipelining).
    depth: usize,
}

const LOADS: [Load; 3] = [
    Load { name: "1conn-100ch", connections: 1, lanes: 100, depth: 1 },
    Load { name: "1ch-64pipelined", connections: 1, lanes: 1, depth: 64 },
    Load { name: "10conn-10ch", connections: 10, lanes: 10, depth: 1 },
];

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// What the load calls: IIP channels, or HTTP/2 connections.
enum Lanes {
    Iip(Vec<Channel>),
    H2(Vec<h2::client::SendRequest<Bytes>>),
}

impl Lanes {
    async fn iip(addr: SocketAddr, load: &Load) -> Lanes {
        let config = {
            let mut cfg = ClientConfig::default();
            cfg.extensions = ClientExtensions::off();
            cfg
        };
        let mut lanes = Vec::new();
        for _ in 0..load.connections {
            let client = Client::connect_with(addr, config).await.expect("connect");
            for _ in 0..load.lanes {
                // One lane of one: the channel every client has, as a
                // pipelining client uses it.
                lanes.push(match load.lanes {
                    1 => client.channel_zero(),
                    _ => client.open_channel().await.expect("channel"),
                });
            }
        }
        Lanes::Iip(lanes)
    }

    async fn h2(addr: SocketAddr, load: &Load) -> Lanes {
        let mut lanes = Vec::new();
        for _ in 0..load.connections {
            let stream = TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (send, connection) = h2::client::handshake(stream).await.expect("h2 handshake");
            tokio::spawn(connection);
            lanes.push(send);
        }
        Lanes::H2(lanes)
    }

    /// One echo call on slot `slot`; panics on anything but the body back.
    async fn call(&self, slot: usize, body: &Bytes) {
        match self {
            Lanes::Iip(channels) => {
                let answer = channels[slot % channels.len()].call("/echo", body.clone()).await.expect("echo");
                assert_eq!(answer.len(), body.len());
            }
            Lanes::H2(connections) => {
                let send = connections[slot % connections.len()].clone();
                let mut send = send.ready().await.expect("h2 ready");
                let request = http::Request::post("http://127.0.0.1/echo").body(()).expect("request");
                let (response, mut stream) = send.send_request(request, false).expect("send");
                stream.send_data(body.clone(), true).expect("body");
                let mut answer = response.await.expect("response").into_body();
                let mut got = 0;
                while let Some(chunk) = answer.data().await {
                    let chunk = chunk.expect("data");
                    got += chunk.len();
                    let _ = answer.flow_control().release_capacity(chunk.len());
                }
                assert_eq!(got, body.len());
            }
        }
    }

    /// Every slot of `load` makes [`CALLS_PER_SLOT`] calls one after
    /// another, all slots at once.
    async fn run(&self, load: &Load, body: &Bytes) {
        let slots = load.connections * load.lanes * load.depth;
        join_all((0..slots).map(|slot| async move {
            for _ in 0..CALLS_PER_SLOT {
                self.call(slot, body).await;
            }
        }))
        .await;
    }
}

async fn listen(serve: impl FnOnce(TcpListener) + Send) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    serve(listener);
    addr
}

fn echo(c: &mut Criterion) {
    let rt = runtime();
    let server = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Server::echo().build().expect("routes").spawn(listener).expect("serve")
    });
    let iip = server.local_addr();
    let floor = rt.block_on(listen(|l| drop(tokio::spawn(serve_unchecked_iip(l)))));
    let checked = rt.block_on(listen(|l| drop(tokio::spawn(serve_checked_iip(l)))));
    let h2 = rt.block_on(listen(|l| drop(tokio::spawn(serve_h2_echo(l)))));
    for (size, payload) in [("64B", 64usize), ("14KB", 14_000)] {
        let body = Bytes::from(vec![b'e'; payload]);
        for load in &LOADS {
            let mut group = c.benchmark_group(format!("echo/{size}/{}", load.name));
            group
                .throughput(Throughput::Elements((load.connections * load.lanes * load.depth * CALLS_PER_SLOT) as u64));
            for (server, addr) in [("iip", iip), ("floor", floor), ("checked", checked), ("h2", h2)] {
                let lanes = match server {
                    "h2" => rt.block_on(Lanes::h2(addr, load)),
                    _ => rt.block_on(Lanes::iip(addr, load)),
                };
                group.bench_function(format!("{server}/wall"), |b| b.iter(|| rt.block_on(lanes.run(load, &body))));
                group.bench_function(format!("{server}/cpu"), |b| {
                    b.iter_custom(|iterations| {
                        let (cpu, wall) = (cpu_time(None), Instant::now());
                        for _ in 0..iterations {
                            rt.block_on(lanes.run(load, &body));
                        }
                        match (cpu, cpu_time(None)) {
                            (Some(before), Some(after)) => after.saturating_sub(before),
                            // No /proc: wall time stands in.
                            _ => wall.elapsed(),
                        }
                    })
                });
            }
            group.finish();
        }
    }
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300));
    targets = echo
}
criterion_main!(benches);
