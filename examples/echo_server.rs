//! An echo server: `/echo` answers the request body. Stops gracefully on
//! Ctrl-C, answering every request already received.
//!
//! ```sh
//! cargo run --example echo_server -- 127.0.0.1:9090
//! cargo run --example echo_client -- 127.0.0.1:9090
//! ```

use iip::server::{Request, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9090".into());
    let server = Server::builder()
        // The echo never waits: a plain function, answered in the
        // connection's turn with no future per request.
        .route_sync("/echo", |req: Request| Ok::<_, std::convert::Infallible>(req.into_body()))
        .build()?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("echo server on {} (Ctrl-C stops)", listener.local_addr()?);
    server
        .serve_with_shutdown(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
