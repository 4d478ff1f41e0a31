//! One call traced end to end: a `tracing-subscriber` at debug level
//! prints the client's `call` span as it closes (channel, route, outcome,
//! micros) and, inside the server's `connection` and `request` spans, the
//! answer's code and latency; the client's `connection` span says why its
//! connection ended when the server shuts down under it.
//!
//! Run with `cargo run --example traced_call`.

use iip::client::Client;
use iip::server::Server;
use tracing_subscriber::fmt::format::FmtSpan;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter("iip=debug")
        .with_ansi(false)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .init();
    let handle = Server::echo().build()?.spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
    let client = Client::connect(handle.local_addr()).await?;
    let answer = client.call("/echo?trace=1", "traced").await?;
    assert_eq!(&answer[..], b"traced");
    handle.shutdown().await?;
    drop(client);
    Ok(())
}
