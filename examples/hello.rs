//! A server with one route and a client calling it on a channel of its own:
//! the library example of the README, compiled by `cargo test --all-targets`.
//!
//! Run with `cargo run --example hello`.

use iip::client::Client;
use iip::server::{Request, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .route("/hello", |req: Request| async move {
            Ok::<_, std::convert::Infallible>(format!("hello, {}", String::from_utf8_lossy(req.body())))
        })
        .build()?;
    let handle = server.spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;

    let client = Client::connect(handle.local_addr()).await?;
    let channel = client.open_channel().await?;
    let answer = channel.call("/hello", "world").await?;
    println!("{}", String::from_utf8_lossy(&answer));
    assert_eq!(&answer[..], b"hello, world");

    handle.shutdown().await?;
    Ok(())
}
