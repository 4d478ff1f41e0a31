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

    /// Starts `iip serve` through `command`: the binary alone (then with
    /// the test's own arguments), the binary with its arguments, or a shell
    /// that sets limits and execs it.
    fn start_with(mut command: Command) -> Serve {
        if command.get_program() == env!("CARGO_BIN_EXE_iip") && command.get_args().len() == 0 {
            command.args(["serve", "--listen", "127.0.0.1:0", "--demo-routes", "--grace", &GRACE_SECS.to_string()]);
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
async fn demo_routes_are_served_only_when_asked_for() {
    let plain = Serve::start_with({
        let mut command = Command::new(env!("CARGO_BIN_EXE_iip"));
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        command
    });
    let client = Client::connect(plain.addr.as_str()).await.unwrap();
    for route in ["/delay?ms=1", "/burn?us=1"] {
        let err = client.call(route, "x").await.unwrap_err();
        assert!(err.to_string().contains("102"), "{route} without --demo-routes: {err}");
    }
    assert_eq!(client.call("/echo", "x").await.unwrap(), "x");
    let demo = Serve::start();
    let client = Client::connect(demo.addr.as_str()).await.unwrap();
    assert_eq!(client.call("/delay?ms=1", "slow").await.unwrap(), "slow");
    assert_eq!(client.call("/burn?us=1", "hot").await.unwrap(), "hot");
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
        // The refusal answers the client's first request: its hello, or
        // its first call.
        let served = tokio::time::timeout(Duration::from_secs(3), async {
            let client = Client::connect(serve.addr.as_str()).await?;
            client.call("/echo", "x").await.map(|_| client)
        });
        match served.await {
            Ok(Ok(client)) => held.push(client),
            Ok(Err(iip::client::ClientError::Server { code: 107, .. })) => refused += 1,
            Ok(Err(iip::client::ClientError::Closed { .. })) => refused += 1,
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

/// A configuration file, `IIP_SERVER_…` variables and flags combine in that
/// order of precedence; `--print-config` shows the result.
#[test]
fn settings_come_from_file_then_environment_then_flags() {
    let file = std::env::temp_dir().join(format!("iip-serve-{}.toml", std::process::id()));
    std::fs::write(&file, "max_connections = 7\nhandler_timeout = 2.5\n[core]\nmax_channels = 8\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_iip"))
        .args(["serve", "--config", file.to_str().unwrap(), "--print-config", "--max-connections", "9"])
        .env("IIP_SERVER_CORE__MAX_CHANNELS", "16")
        .env("IIP_SERVER_TIMEOUTS__IDLE", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(printed["max_connections"].as_integer(), Some(9), "{text}");
    assert_eq!(printed["handler_timeout"].as_float(), Some(2.5), "{text}");
    assert_eq!(printed["core"]["max_channels"].as_integer(), Some(16), "{text}");
    assert_eq!(printed["timeouts"]["idle"].as_float(), Some(0.0), "{text}");
    assert_eq!(printed["timeouts"]["frame"].as_float(), Some(30.0), "{text}");

    std::fs::write(&file, "max_conections = 7\n").unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_iip")).args(["serve", "--config", file.to_str().unwrap()]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("max_conections") && said.contains(file.to_str().unwrap()), "{said}");
    let _ = std::fs::remove_file(&file);
}

/// `--metrics ADDR` serves the server's counters and latency histograms as
/// Prometheus text; `--log-format json` writes one JSON object per line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_as_prometheus_text_and_logs_as_json() {
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_iip"));
    command
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--metrics", &metrics_addr])
        .env("RUST_LOG", "iip=debug");
    let serve = Serve::start_with(command);
    let client = Client::connect(serve.addr.as_str()).await.unwrap();
    for _ in 0..3 {
        client.call("/echo", "counted").await.unwrap();
    }
    let scrape = || async {
        let mut stream = tokio::net::TcpStream::connect(&metrics_addr).await.unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut text).await.unwrap();
        text
    };
    // Connection totals reach the facade when the connection flushes.
    let mut text = scrape().await;
    for _ in 0..50 {
        if text.contains("iip_server_messages_received_total") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = scrape().await;
    }
    let value = |name: &str| -> Option<f64> {
        text.lines().find(|l| l.starts_with(name) && !l.starts_with('#'))?.rsplit(' ').next()?.parse().ok()
    };
    assert_eq!(value("iip_server_requests_total{route=\"/echo\"}"), Some(3.0), "{text}");
    assert_eq!(value("iip_server_request_duration_seconds_count{route=\"/echo\"}"), Some(3.0), "{text}");
    assert_eq!(value("iip_server_connections "), Some(1.0), "{text}");
    assert!(value("iip_server_messages_received_total").is_some_and(|n| n >= 3.0), "{text}");
    assert!(value("iip_server_bytes_received_total").is_some_and(|n| n > 0.0), "{text}");
    drop(client);
    std::thread::sleep(Duration::from_millis(300));
    let said = serve.said.lock().unwrap().clone();
    let json_lines: Vec<&String> = said.iter().filter(|l| l.starts_with('{')).collect();
    assert!(!json_lines.is_empty(), "no JSON log lines: {said:?}");
    for line in json_lines {
        let parsed: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(parsed.get("level").is_some() && parsed.get("timestamp").is_some(), "{line}");
    }
}
