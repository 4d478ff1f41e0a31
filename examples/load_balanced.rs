//! A client balanced over several servers with tower's power-of-two-choices
//! balancer on pending requests (what tonic uses): each channel is a
//! `tower::Service<Call>`, wrapped to count its pending requests.
//!
//! Starts three servers of its own, one of them slow; the balancer sends
//! fewer calls to the slow one.
//!
//! ```sh
//! cargo run --example load_balanced
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use iip::client::{Call, Client};
use iip::server::{Request, Server};
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PendingRequests};
use tower::{Service, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), tower::BoxError> {
    let mut handles = Vec::new();
    let mut channels = Vec::new();
    for (name, delay_ms) in [("a", 1), ("b", 1), ("slow", 20)] {
        let server = Server::builder()
            .route("/who", move |_req: Request| async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                Ok::<_, std::convert::Infallible>(name)
            })
            .build()?;
        let handle = server.spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
        // Four channels per server: calls on one channel are answered in order.
        let client = Client::connect(handle.local_addr()).await?;
        for _ in 0..4 {
            channels.push(PendingRequests::new(client.open_channel().await?, CompleteOnResponse::default()));
        }
        handles.push(handle);
    }

    // One balancer shared by 16 workers, each calling one after another:
    // a slow server keeps its calls pending longer and so is chosen less.
    let balancer = tower::buffer::Buffer::new(Balance::new(ServiceList::new(channels)), 1024);
    let mut workers = Vec::new();
    for _ in 0..16 {
        let mut balancer = balancer.clone();
        workers.push(tokio::spawn(async move {
            let mut served: BTreeMap<String, usize> = BTreeMap::new();
            for _ in 0..40 {
                let answer = balancer.ready().await?.call(Call::new("/who", "")).await?;
                *served.entry(String::from_utf8_lossy(&answer).into_owned()).or_default() += 1;
            }
            Ok::<_, tower::BoxError>(served)
        }));
    }
    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    for worker in workers {
        for (server, n) in worker.await?? {
            *served.entry(server).or_default() += n;
        }
    }
    println!("calls per server: {served:?}");
    assert!(served.get("slow").copied().unwrap_or(0) < served["a"], "the slow server got fewer calls");
    for handle in handles {
        handle.shutdown().await?;
    }
    Ok(())
}
