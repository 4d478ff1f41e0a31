//! Tracing spans of the server: one per connection (its peer) and one per
//! request (channel and route), in which the answer's code and latency are
//! recorded, so that any `tracing` subscriber sees them.

use std::sync::{Arc, Mutex};

use iip::client::Client;
use iip::server::{HandlerError, Request, Server};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_requests_have_spans_with_code_and_latency() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt().with_env_filter("iip=debug").with_ansi(false).with_writer(move || writer.clone()).init();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = Server::echo()
        .route("/fail", |_req: Request| async move { Err::<bytes::Bytes, _>(HandlerError::new("no")) })
        .build()
        .unwrap()
        .spawn(listener)
        .unwrap();
    let client = Client::connect(handle.local_addr()).await.unwrap();
    client.call("/echo", "traced").await.unwrap();
    assert!(client.call("/fail", "x").await.is_err());
    drop(client);
    handle.shutdown().await.unwrap();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("connection{peer=127.0.0.1:"), "{text}");
    assert!(text.contains("request{channel=0 route=/echo}"), "{text}");
    assert!(text.contains("answered code=0 latency_us="), "{text}");
    assert!(text.contains("request{channel=0 route=/fail}") && text.contains("answered code=-1"), "{text}");
}
