//! Graceful shutdown: requests already received are answered, then every
//! connection closes; what is still running when the grace period ends is
//! closed at once.
//!
//! The server here stops when a signal future completes (Ctrl-C in a real
//! program; a timer here), while ten slow calls are in flight.
//!
//! ```sh
//! cargo run --example graceful_shutdown
//! ```

use std::time::Duration;

use iip::client::Client;
use iip::server::{Request, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .route("/slow", |req: Request| async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok::<_, std::convert::Infallible>(req.into_body())
        })
        .grace(Duration::from_secs(5))
        .build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        // In a program: `async { let _ = tokio::signal::ctrl_c().await; }`.
        server
            .serve_with_shutdown(listener, async {
                let _ = stopped.await;
            })
            .await
    });

    let client = Client::connect(addr).await?;
    let channel = client.open_channel().await?;
    let in_flight = tokio::spawn(async move {
        let calls = (0..10).map(|i| channel.call("/slow", format!("call {i}")));
        futures::future::join_all(calls).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("shutting down with 10 calls in flight");
    let _ = stop.send(());

    let answered = in_flight.await?.into_iter().filter(|answer| answer.is_ok()).count();
    serving.await??;
    println!("{answered} of 10 answered before the server closed");
    assert_eq!(answered, 10);
    assert!(client.call("/slow", "after").await.is_err(), "the connection is closed after the shutdown");
    Ok(())
}
