//! Tracing spans of the server: one per connection (its peer) and one per
//! request (channel and route), in which the answer's code and latency are
//! recorded, so that any `tracing` subscriber sees them; and of the client:
//! one per call (channel and route) that records its outcome and duration.

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
    tracing_subscriber::fmt()
        .with_env_filter("iip=debug")
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .init();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = Server::echo()
        .route("/fail", |_req: Request| async move { Err::<bytes::Bytes, _>(HandlerError::new("no")) })
        .build()
        .unwrap()
        .spawn(listener)
        .unwrap();
    let port = handle.local_addr().port();
    let client = Client::connect(handle.local_addr()).await.unwrap();
    client.call("/echo", "traced").await.unwrap();
    assert!(client.call("/fail", "x").await.is_err());
    // The server shuts down under the client, which sees its connection end.
    handle.shutdown().await.unwrap();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("connection{peer=127.0.0.1:"), "{text}");
    assert!(text.contains("request{channel=0 route=/echo}"), "{text}");
    assert!(text.contains("answered code=0 latency_us="), "{text}");
    assert!(text.contains("request{channel=0 route=/fail}") && text.contains("answered code=-1"), "{text}");
    // The client's call spans, as they close.
    let calls: Vec<&str> = text.lines().filter(|l| l.contains("call{")).collect();
    assert!(
        calls
            .iter()
            .any(|l| l.contains("call{channel=0 route=/echo outcome=\"answered\" micros=") && l.contains("close")),
        "{text}"
    );
    assert!(calls.iter().any(|l| l.contains("route=/fail outcome=\"error answer\" code=-1")), "{text}");
    // The client's reader says why its connection ended, once it has seen the end.
    let mut ended = String::new();
    for _ in 0..200 {
        ended = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        if ended.contains("connection ended") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let client_span = format!("connection{{peer=127.0.0.1:{port}}}");
    assert!(ended.lines().any(|l| l.contains(&client_span) && l.contains("connection ended")), "{ended}");
    drop(client);
}
