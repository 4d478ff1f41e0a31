//! `iip serve` as an operator runs it. Signals: SIGTERM and SIGINT each
//! start a graceful shutdown that answers every request already received
//! ([CLOSE-3]) and exits within the grace period even while a peer reads
//! nothing; a second signal exits at once. Descriptors: run out of them, the
//! server keeps serving its connections, refuses new clients with 107 and
//! logs about once a second ([RES-8]).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iip::client::Client;
use tokio::io::AsyncWriteExt;

const GRACE_SECS: u64 = 4;

struct Serve {
    child: Child,
    addr: String,
    /// Every line the server wrote to stderr after its address.
    said: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Serve {
    fn start() -> Serve {
        Serve::start_with(Command::new(env!("CARGO_BIN_EXE_iip")))
    }

    /// Starts `iip serve` through `command` (the binary, or a shell that
    /// sets limits and execs it).
    fn start_with(mut command: Command) -> Serve {
        if command.get_program() == env!("CARGO_BIN_EXE_iip") {
            command.args(["serve", "--listen", "127.0.0.1:0", "--grace", &GRACE_SECS.to_string()]);
        }
        let mut child = command.stderr(Stdio::piped()).spawn().expect("iip serve starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("iip serving on") {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "iip serve ended before serving");
        }
        let addr = line.split_whitespace().nth(3).expect("iip serving on ADDR").to_string();
        // Keep reading what the server says, so that it never writes to a closed pipe.
        let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = said.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Serve { child, addr, said }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_it_refuses_new_clients_with_107_and_serves_the_others() {
    // Soft and hard limit 40: a few for the runtime, the rest for clients.
    let script = format!("ulimit -n 40 && exec '{}' serve --listen 127.0.0.1:0 --grace 1", env!("CARGO_BIN_EXE_iip"));
    let mut command = Command::new("bash");
    command.args(["-c", &script]);
    let serve = Serve::start_with(command);
    let first = Client::connect(serve.addr.as_str()).await.unwrap();
    assert_eq!(first.call("/echo", "before").await.unwrap(), "before");
    let started = Instant::now();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let client = Client::connect(serve.addr.as_str()).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(3), client.call("/echo", "x")).await {
            Ok(Ok(_)) => held.push(client),
            Ok(Err(iip::client::ClientError::Server { code: 107, .. })) => refused += 1,
            Ok(Err(iip::client::ClientError::Closed(_))) => refused += 1,
            Ok(Err(other)) => panic!("a new client got {other:?}"),
            Err(_) => panic!("a new client hung with no answer after {} were served", held.len()),
        }
    }
    println!("{} served, {refused} refused", held.len());
    assert!(refused > 0 && !held.is_empty(), "{} served, {refused} refused", held.len());
    assert_eq!(first.call("/echo", "after").await.unwrap(), "after", "an existing connection is still served");
    for client in &held {
        assert_eq!(client.call("/echo", "y").await.unwrap(), "y");
    }
    let seconds = started.elapsed().as_secs() + 1;
    let warnings = serve.said.lock().unwrap().iter().filter(|l| l.contains("accept failed")).count() as u64;
    assert!(warnings <= seconds + 1, "{warnings} accept warnings in {seconds} s");
}
