//! tower middleware on both sides.
//!
//! Server: every route runs under a concurrency limit, a timeout and a
//! logging layer, given once with `ServerBuilder::layer`. Client: a channel
//! is a `tower::Service<Call>`, wrapped in a timeout and a concurrency
//! limit with `tower::ServiceBuilder`.
//!
//! ```sh
//! RUST_LOG=info cargo run --example middleware
//! ```

use std::time::Duration;

use iip::client::{Call, Client};
use iip::server::{Request, Server};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), tower::BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();

    let server = Server::builder()
        .route("/echo", |req: Request| async move { Ok::<_, std::convert::Infallible>(req.into_body()) })
        .route("/slow", |_req: Request| async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok::<_, std::convert::Infallible>("too late")
        })
        // Outermost first: log, then limit, then time out.
        .layer(tower::util::MapRequestLayer::new(|req: Request| {
            tracing::info!(route = %req.route_str(), peer = %req.peer(), bytes = req.body().len(), "request");
            req
        }))
        .layer(tower::limit::ConcurrencyLimitLayer::new(64))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(300)))
        .build()?;
    let handle = server.spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;

    let channel = Client::connect(handle.local_addr()).await?.open_channel().await?;
    let service = ServiceBuilder::new().timeout(Duration::from_secs(2)).concurrency_limit(16).service(channel);

    let answer = service.clone().oneshot(Call::new("/echo", "through both stacks")).await?;
    println!("/echo answered {:?}", String::from_utf8_lossy(&answer));
    match service.oneshot(Call::new("/slow", "")).await {
        Ok(answer) => println!("/slow answered {answer:?}"),
        Err(err) => println!("/slow failed as the server's timeout layer decided: {err}"),
    }
    handle.shutdown().await?;
    Ok(())
}
