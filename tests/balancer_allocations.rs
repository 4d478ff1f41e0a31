//! A balancer's pick allocates nothing once its servers are up, counted
//! with dhat (exact, machine-independent): a call through a balancer over
//! two servers costs what a call through one reconnecting backend costs.
//! Client and server share the process, so the figures cover both.
//!
//! `cargo test --test balancer_allocations -- --nocapture` prints them.

use bytes::Bytes;
use futures::future::join_all;
use iip::client::{Backend, BackendConfig, Balancer, BalancerConfig, ClientExtensions, Endpoint, Endpoints};
use iip::server::Server;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Calls measured, after as many to warm up.
const CALLS: usize = 10_000;
/// Callers at once, and channels of each backend.
const CHANNELS: usize = 10;

/// Allocations per call through `caller`, 10 callers at once, after as
/// many calls to warm up.
async fn allocations_per_call_through<F, Fut>(caller: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let run = || {
        join_all((0..CHANNELS).map(|_| async {
            for _ in 0..CALLS / CHANNELS {
                caller().await
            }
        }))
    };
    run().await;
    let before = dhat::HeapStats::get().total_blocks;
    run().await;
    (dhat::HeapStats::get().total_blocks - before) as f64 / CALLS as f64
}

#[test]
fn a_balancer_pick_allocates_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (backend, balancer) = runtime.block_on(async {
        let mut servers = Vec::new();
        for _ in 0..2 {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            servers.push(Server::echo().build().expect("routes").spawn(listener).expect("serve"));
        }
        let config = {
            let mut cfg = BackendConfig::default();
            cfg.client.extensions = ClientExtensions::off();
            cfg.channels = CHANNELS;
            cfg
        };
        let endpoints: Vec<Endpoint> = servers.iter().map(|s| Endpoint::new(s.local_addr().to_string())).collect();
        let backend = Backend::new(endpoints[0].clone(), config);
        let balancer = Balancer::new(Endpoints::Static(endpoints), {
            let mut cfg = BalancerConfig::default();
            cfg.backend = config;
            cfg
        });
        backend.ready(std::time::Duration::from_secs(5)).await.expect("backend up");
        while balancer.members().iter().any(|m| !m.up) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        std::mem::forget(servers);
        (backend, balancer)
    });
    let body = Bytes::from(vec![b'x'; 64]);
    let mut through_backend = f64::MAX;
    let mut through_balancer = f64::MAX;
    for _ in 0..3 {
        through_backend = through_backend.min(runtime.block_on(allocations_per_call_through(|| async {
            assert_eq!(backend.call("/echo", body.clone()).await.expect("echo"), body);
        })));
        through_balancer = through_balancer.min(runtime.block_on(allocations_per_call_through(|| async {
            assert_eq!(balancer.call("/echo", body.clone()).await.expect("echo"), body);
        })));
    }
    println!("{through_backend:.2} allocations per call through a backend, {through_balancer:.2} through a balancer");
    assert!(
        through_balancer <= through_backend + 0.05,
        "a pick allocates: {through_balancer:.2} per call through the balancer, {through_backend:.2} through a backend"
    );
}
