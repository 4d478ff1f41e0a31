//! `iip serve` and its signals, as an operator uses them: SIGTERM and SIGINT
//! each start a graceful shutdown that answers every request already
//! received ([CLOSE-3]) and exits within the grace period even while a peer
//! reads nothing; a second signal exits at once.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iip::client::Client;
use tokio::io::AsyncWriteExt;

const GRACE_SECS: u64 = 4;

struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start() -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_iip"))
            .args(["serve", "--listen", "127.0.0.1:0", "--grace", &GRACE_SECS.to_string()])
            .stderr(Stdio::piped())
            .spawn()
            .expect("iip serve starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let addr = line.split_whitespace().nth(3).expect("iip serving on ADDR").to_string();
        // Keep reading what the server says, so that it never writes to a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Serve { child, addr }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit; its exit code.
    fn exited_within(&mut self, limit: Duration) -> Option<i32> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A peer that pipelines large requests and never reads an answer.
async fn never_reading_peer(addr: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = vec![b'x'; 1 << 20];
    let mut frame = vec![1u8];
    frame.extend_from_slice(b"/echo\0");
    frame.extend_from_slice(&0u32.to_be_bytes());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    for _ in 0..32 {
        if tokio::time::timeout(Duration::from_millis(200), stream.write_all(&frame)).await.is_err() {
            break;
        }
    }
    stream
}

async fn graceful_shutdown_answers_everything(signal: &str) {
    let mut serve = Serve::start();
    let _stuck = never_reading_peer(&serve.addr).await;
    let client = Client::connect(serve.addr.as_str()).await.unwrap();
    let mut channels = Vec::new();
    for _ in 0..10 {
        channels.push(client.open_channel().await.unwrap());
    }
    let mut calls = Vec::new();
    for i in 0..100 {
        let channel = channels[i % 10].clone();
        calls.push(tokio::spawn(async move { channel.call("/delay?ms=800", format!("request {i}")).await }));
    }
    // Let every request reach the server before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    serve.signal(signal);
    let mut answered = 0;
    for (i, call) in calls.into_iter().enumerate() {
        let body = call.await.unwrap().unwrap_or_else(|e| panic!("request {i} failed after {signal}: {e}"));
        assert_eq!(body, format!("request {i}"));
        answered += 1;
    }
    assert_eq!(answered, 100);
    let code = serve.exited_within(Duration::from_secs(GRACE_SECS + 3));
    let took = signalled.elapsed();
    assert!(code.is_some(), "still running {took:?} after {signal} (grace {GRACE_SECS} s)");
    assert!(took <= Duration::from_secs(GRACE_SECS + 2), "{signal}: exit took {took:?}");
}

#[tokio::test]
async fn sigterm_answers_requests_in_flight_and_exits_within_the_grace_period() {
    graceful_shutdown_answers_everything("TERM").await;
}

#[tokio::test]
async fn sigint_answers_requests_in_flight_and_exits_within_the_grace_period() {
    graceful_shutdown_answers_everything("INT").await;
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let mut serve = Serve::start();
    let client = Client::connect(serve.addr.as_str()).await.unwrap();
    let slow = tokio::spawn(async move { client.call("/delay?ms=30000", "x").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    serve.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(serve.exited_within(Duration::from_millis(100)), None, "the first signal waits for the request");
    serve.signal("INT");
    assert_eq!(serve.exited_within(Duration::from_secs(2)), Some(130));
    assert!(slow.await.unwrap().is_err());
}
