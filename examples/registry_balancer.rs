//! A balancer fed by a service registry: the registry announces servers as
//! `tower::discover::Change`s on a channel, and `Balancer::discover` follows
//! them. Any source (Kubernetes endpoints, Consul, a file watched for
//! changes) plugs in the same way: a stream of
//! `Result<Change<Key, Endpoint>, Error>`.
//!
//! Starts two servers of its own; the registry announces the first, then
//! the second, then withdraws the first, and the calls follow.
//!
//! ```sh
//! cargo run --example registry_balancer
//! ```

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use iip::client::{Balancer, BalancerConfig, Endpoint, Strategy};
use iip::server::{Request, Server};
use tokio::sync::mpsc;
use tower::discover::Change;

/// Which servers answer twelve calls.
async fn answering(balancer: &Balancer) -> Result<BTreeSet<String>, iip::client::ClientError> {
    let mut seen = BTreeSet::new();
    for _ in 0..12 {
        let who = balancer.call("/who", "").await?;
        seen.insert(String::from_utf8_lossy(&who).into_owned());
    }
    Ok(seen)
}

/// Waits until the balancer knows `count` servers, every one connected.
async fn settled(balancer: &Balancer, count: usize) {
    while balancer.members().len() != count || balancer.members().iter().any(|m| !m.up) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut handles = Vec::new();
    for name in ["east", "west"] {
        let server =
            Server::builder().route("/who", move |_req: Request| async move { Ok::<_, Infallible>(name) }).build()?;
        handles.push(server.spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?);
    }
    let addr = |i: usize| Endpoint::new(handles[i].local_addr().to_string());

    // The registry's side: changes keyed by the registry's own names.
    let (registry, changes) = mpsc::unbounded_channel::<Change<&'static str, Endpoint>>();
    let source = futures::stream::unfold(changes, |mut changes| async move {
        changes.recv().await.map(|change| (Ok::<_, Infallible>(change), changes))
    });
    let config = {
        let mut cfg = BalancerConfig::default();
        cfg.strategy = Strategy::RoundRobin;
        cfg
    };
    registry.send(Change::Insert("east-1", addr(0)))?;
    let balancer = Balancer::discover(source, config);
    println!("one server announced: {:?}", answering(&balancer).await?);

    registry.send(Change::Insert("west-1", addr(1)))?;
    settled(&balancer, 2).await;
    let both = answering(&balancer).await?;
    println!("two announced: {both:?}");
    assert_eq!(both.len(), 2, "round robin reaches both servers");

    registry.send(Change::Remove("east-1"))?;
    settled(&balancer, 1).await;
    let left = answering(&balancer).await?;
    println!("east withdrawn: {left:?}");
    assert_eq!(left.into_iter().collect::<Vec<_>>(), ["west"]);

    for handle in handles {
        handle.shutdown().await?;
    }
    Ok(())
}
