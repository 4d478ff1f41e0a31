//! The HTTP gateway driven by a real HTTP client (Debian's `curl`) over
//! HTTP/1.1 and HTTP/2 (h2c): echo both ways, every mapped error answer
//! (the table `gateway-statuses` of the book's gateway chapter), the
//! gateway's own limits (413, 431, 408), an upstream that is down, health,
//! 50 MB bodies each way, and a graceful shutdown with a request in flight.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use iip::client::Endpoint;
use iip::conformance::spec_dir;
use iip::gateway::mapping::status_for_code;
use iip::gateway::{Gateway, GatewayConfig};
use iip::server::{HandlerError, Request, Server, ServerHandle};

/// These tests drive the gateway with curl: without it they fail, saying
/// so, rather than pass having checked nothing (`scripts/test` installs it).
fn require_curl() {
    let present = Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(present, "curl is not installed: the gateway's HTTP tests need it (apt-get install curl)");
}

/// Runs curl; (HTTP status, response headers and body as text).
async fn curl(args: Vec<String>) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl").args(["-s", "-i", "--max-time", "60"]).args(&args).output().expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // The last status line counts (a "100 Continue" may come first).
        let status = text
            .lines()
            .rev()
            .find(|l| l.starts_with("HTTP/"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        (status, text)
    })
    .await
    .unwrap()
}

async fn upstream() -> ServerHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::echo()
        .route("/fail", |req: Request| async move {
            Err::<bytes::Bytes, _>(HandlerError::new(String::from_utf8_lossy(req.body())))
        })
        .route("/slow", |_req: Request| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, std::convert::Infallible>("late")
        })
        .route("/panic", |_req: Request| async move {
            if true {
                panic!("a handler bug");
            }
            Ok::<_, std::convert::Infallible>("never")
        })
        .route("/delay", |req: Request| async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            Ok::<_, std::convert::Infallible>(req.into_body())
        })
        .handler_timeout(Duration::from_millis(300))
        .max_message(60 << 20)
        .build()
        .unwrap()
        .spawn(listener)
        .unwrap()
}

struct RunningGateway {
    url: String,
    gateway: Gateway,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningGateway {
    /// Shuts the gateway down and waits until it has stopped serving.
    async fn stop(self) {
        self.gateway.shutdown();
        self.task.await.unwrap().unwrap();
    }
}

async fn gateway(upstreams: Vec<String>, config: GatewayConfig) -> RunningGateway {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let gateway = Gateway::new(upstreams.into_iter().map(Endpoint::new).collect(), config);
    let serving = gateway.clone();
    let task = tokio::spawn(async move { serving.serve(listener).await });
    RunningGateway { url, gateway, task }
}

fn test_config() -> GatewayConfig {
    let mut cfg = GatewayConfig::default();
    cfg.max_body = 100 << 20;
    cfg.request_timeout = Duration::from_secs(1);
    cfg.upstream_timeout = Duration::from_secs(10);
    cfg
}

#[test]
fn the_status_table_is_the_code() {
    let chapter = std::fs::read_to_string(spec_dir().join("guide/gateway.md")).unwrap();
    let table = iip::conformance::spec::table(&chapter, "gateway-statuses").unwrap();
    for row in &table.rows {
        let status: u16 = row[2].parse().unwrap();
        let codes: Vec<i64> = match row[0].parse() {
            Ok(code) => vec![code],
            // "any other": every code the table does not name.
            Err(_) => vec![100, 101, 105, 108, 109, 999],
        };
        for code in codes {
            assert_eq!(status_for_code(code).as_u16(), status, "code {code}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_become_iip_requests_and_errors_map_to_statuses() {
    require_curl();
    let server = upstream().await;
    let gw = gateway(vec![server.local_addr().to_string()], test_config()).await;
    let url = |path: &str| format!("{}{path}", gw.url);
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        let (status, text) = curl(vec![version.into(), url("/echo?x=1"), "-d".into(), "hello".into()]).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.ends_with("hello"), "{text}");
        let (status, text) = curl(vec![version.into(), url("/echo")]).await;
        assert!(status == 200 && text.ends_with("{}"), "an empty body travels as {{}}: {text}");
        for (path, code, http) in
            [("/nowhere", "102", 404), ("/slow", "103", 504), ("/fail", "-1", 502), ("/panic", "104", 502)]
        {
            let (status, text) = curl(vec![version.into(), url(path), "-d".into(), "x".into()]).await;
            assert_eq!(status, http, "{path}: {text}");
            assert!(text.to_lowercase().contains(&format!("x-iip-code: {code}")), "{path}: {text}");
        }
    }
    // 110: a request over the upstream's limit (60 MiB), under the gateway's.
    let big = std::env::temp_dir().join(format!("iip-gw-110-{}", std::process::id()));
    std::fs::write(&big, vec![b'x'; (60 << 20) + 1]).unwrap();
    let (status, text) = curl(vec![url("/echo"), "--data-binary".into(), format!("@{}", big.display())]).await;
    let _ = std::fs::remove_file(&big);
    assert_eq!(status, 413, "{}", &text[..text.len().min(300)]);
    assert!(text.to_lowercase().contains("x-iip-code: 110"));
    let (status, text) = curl(vec![url("/healthz")]).await;
    assert_eq!((status, text.ends_with("ok\n")), (200, true), "{text}");
    gw.stop().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_enforces_its_own_limits() {
    require_curl();
    let server = upstream().await;
    let config = {
        let mut cfg = test_config();
        cfg.max_body = 1000;
        cfg.max_header_bytes = 8192;
        cfg
    };
    let gw = gateway(vec![server.local_addr().to_string()], config).await;
    let url = format!("{}/echo", gw.url);
    let (status, _) = curl(vec![url.clone(), "-d".into(), "y".repeat(1001)]).await;
    assert_eq!(status, 413, "a declared length over the limit");
    let (status, _) =
        curl(vec![url.clone(), "-H".into(), "Transfer-Encoding: chunked".into(), "-d".into(), "z".repeat(1001)]).await;
    assert_eq!(status, 413, "a chunked body over the limit");
    let (status, _) = curl(vec![url.clone(), "-H".into(), format!("X-Big: {}", "h".repeat(20_000))]).await;
    assert_eq!(status, 431);
    // A body announced and never sent: 408 after the request timeout (1 s).
    let addr = gw.url.trim_start_matches("http://").to_string();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc").unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).map(|_| String::from_utf8_lossy(&head).into_owned())
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(answer, "HTTP/1.1 408");
    gw.stop().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_down_is_502_and_unhealthy() {
    require_curl();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let gw = gateway(vec![dead.clone()], test_config()).await;
    let (status, text) = curl(vec![format!("{}/echo", gw.url), "-d".into(), "x".into()]).await;
    assert_eq!(status, 502);
    assert!(text.contains("upstream IIP server unavailable") && text.contains(&dead), "{text}");
    let (status, _) = curl(vec![format!("{}/healthz", gw.url)]).await;
    assert_eq!(status, 503);
    // 107: an upstream at its connection limit refuses; the gateway says 503.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let full = Server::echo().max_connections(0).build().unwrap().spawn(listener).unwrap();
    let gw2 = gateway(vec![full.local_addr().to_string()], test_config()).await;
    let (status, text) = curl(vec![format!("{}/echo", gw2.url), "-d".into(), "x".into()]).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.to_lowercase().contains("x-iip-code: 107"), "{text}");
    for g in [gw, gw2] {
        g.stop().await;
    }
    full.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_each_way_over_both_http_versions() {
    require_curl();
    let server = upstream().await;
    let gw = gateway(vec![server.local_addr().to_string()], test_config()).await;
    let dir = std::env::temp_dir();
    let (input, output) =
        (dir.join(format!("iip-gw-in-{}", std::process::id())), dir.join(format!("iip-gw-out-{}", std::process::id())));
    let body: Vec<u8> = (0..50_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(&input, &body).unwrap();
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        let args = vec![
            version.to_string(),
            "-o".into(),
            output.display().to_string(),
            "-w".into(),
            "%{http_code}".into(),
            "--data-binary".into(),
            format!("@{}", input.display()),
            format!("{}/echo", gw.url),
        ];
        let code = tokio::task::spawn_blocking(move || {
            Command::new("curl").arg("-s").args(&args).output().expect("curl runs").stdout
        })
        .await
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&code), "200", "{version}");
        let echoed = std::fs::read(&output).unwrap();
        assert!(echoed == body, "{version}: {} bytes came back, not the 50,000,000 sent", echoed.len());
    }
    let _ = std::fs::remove_file(input);
    let _ = std::fs::remove_file(output);
    gw.stop().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_finishes_the_request_in_flight() {
    require_curl();
    let server = upstream().await;
    let gw = gateway(vec![server.local_addr().to_string()], test_config()).await;
    let in_flight = tokio::spawn(curl(vec![format!("{}/delay", gw.url), "-d".into(), "patience".into()]));
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.gateway.shutdown();
    let (status, text) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("patience"));
    tokio::time::timeout(Duration::from_secs(5), gw.task).await.expect("the gateway stops").unwrap().unwrap();
    let (status, _) = curl(vec![format!("{}/echo", gw.url), "-d".into(), "late".into()]).await;
    assert_eq!(status, 0, "no new connection after the shutdown");
    server.shutdown().await.unwrap();
}

#[path = "../conformance/certs.rs"]
mod certs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_http2_by_alpn() {
    require_curl();
    let server = upstream().await;
    let pki = certs::TestPki::new("gateway");
    let config = {
        let mut cfg = test_config();
        cfg.tls = Some(certs::localhost_server(&pki));
        cfg
    };
    let gw = gateway(vec![server.local_addr().to_string()], config).await;
    let url = gw.url.replace("http://127.0.0.1", "https://localhost");
    let port = url.rsplit(':').next().unwrap().to_string();
    let resolve = format!("localhost:{port}:127.0.0.1");
    for version in ["--http2", "--http1.1"] {
        let args = vec![
            version.into(),
            "--cacert".into(),
            pki.ca().display().to_string(),
            "--resolve".into(),
            resolve.clone(),
            format!("{url}/echo"),
            "-d".into(),
            "secret".into(),
        ];
        let (status, text) = curl(args).await;
        assert_eq!(status, 200, "{text}");
        let expected_line = if version == "--http2" { "HTTP/2 200" } else { "HTTP/1.1 200" };
        assert!(text.starts_with(expected_line) && text.ends_with("secret"), "{version}: {text}");
    }
    gw.stop().await;
    server.shutdown().await.unwrap();
}

/// One HTTP/1.1 request written by hand on a fresh connection, read until
/// the gateway closes it: the status and the whole response.
async fn raw_http(addr: &str, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response));
    read.await.expect("the gateway answers and closes").unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn post(path: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nhost: gw\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_paths_stay_inside_unless_named_and_channel_paths_never_go_upstream() {
    let server = upstream().await;
    let config = {
        let mut cfg = test_config();
        cfg.forward_sys = vec!["/sys/server_count".into(), "/sys/delete_channel".into()];
        cfg
    };
    let gw = gateway(vec![server.local_addr().to_string()], config).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    for path in [
        "/sys/statis",
        "/sys/connection_statis",
        "/sys/path_measure",
        "/sys/new_channel",
        "/sys/delete_channel",
        "/sys/hello",
    ] {
        let (status, text) = raw_http(&addr, &post(path)).await;
        assert_eq!(status, 404, "{path}: {text}");
    }
    let (status, text) = raw_http(&addr, &post("/sys/server_count")).await;
    assert_eq!(status, 200, "a path named by forward_sys goes upstream: {text}");
    // The shared upstream connection is untouched: other requests are served.
    let (status, text) = raw_http(&addr, &post("/echo")).await;
    assert!(status == 200 && text.ends_with("{}"), "{text}");
    gw.stop().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_get_503_and_slow_heads_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = upstream().await;
    let config = {
        let mut cfg = test_config();
        cfg.max_connections = 2;
        cfg.header_timeout = Duration::from_millis(300);
        cfg
    };
    let gw = gateway(vec![server.local_addr().to_string()], config).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    // Two connections that begin a head and never finish it.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(b"GET /echo HTTP/1.1\r\nhost: gw\r\n").await.unwrap();
        holders.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, text) = raw_http(&addr, &post("/echo")).await;
    assert_eq!(status, 503, "past the connection limit: {text}");
    // The header timeout closes both holders, which frees their places.
    for mut holder in holders {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), holder.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a head not finished within the header timeout is closed");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, text) = raw_http(&addr, &post("/echo")).await;
    assert_eq!(status, 200, "{text}");
    gw.stop().await;
    server.shutdown().await.unwrap();
}

/// An upstream whose `/park` answers after 2 s, with no handler timeout.
async fn parking_upstream() -> ServerHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::echo()
        .route("/park", |_req: Request| async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, std::convert::Infallible>("parked")
        })
        .build()
        .unwrap()
        .spawn(listener)
        .unwrap()
}

/// Sends `request` on a new connection and leaves it waiting.
async fn send_only(addr: &str, request: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_delays_no_other_and_waiting_is_bounded() {
    let server = parking_upstream().await;
    let gw = gateway(vec![server.local_addr().to_string()], test_config()).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    // 40 slow requests in flight: a fast one is answered at once beside them.
    let mut slow = Vec::new();
    for _ in 0..40 {
        slow.push(send_only(&addr, &post("/park")).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let (status, text) = raw_http(&addr, &post("/echo")).await;
    assert_eq!(status, 200, "{text}");
    assert!(started.elapsed() < Duration::from_millis(1000), "waited {:?} behind slow requests", started.elapsed());
    drop(slow);
    gw.stop().await;

    // Two channels, one request may wait: the next is refused at once.
    let config = {
        let mut cfg = test_config();
        cfg.channels_per_upstream = 2;
        cfg.max_waiting = 1;
        cfg
    };
    let gw = gateway(vec![server.local_addr().to_string()], config).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut holders = Vec::new();
    for _ in 0..3 {
        holders.push(send_only(&addr, &post("/park")).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = std::time::Instant::now();
    let (status, text) = raw_http(&addr, &post("/echo")).await;
    assert_eq!(status, 503, "{text}");
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    // The clients leave: their channels serve again once the abandoned
    // answers have come (they are not given to a request that would wait
    // behind them).
    drop(holders);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, text) = raw_http(&addr, &post("/echo")).await;
    assert_eq!(status, 200, "{text}");
    gw.stop().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_held_within_one_budget() {
    use tokio::io::AsyncWriteExt;
    let server = upstream().await;
    let config = {
        let mut cfg = test_config();
        cfg.max_held_bytes = 1 << 20;
        cfg
    };
    let gw = gateway(vec![server.local_addr().to_string()], config).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    // A client sends 800 KiB of a 4 MiB body and stalls.
    let head = "POST /echo HTTP/1.1\r\nhost: gw\r\ncontent-length: 4194304\r\nconnection: close\r\n\r\n";
    let mut staller = send_only(&addr, head).await;
    staller.write_all(&vec![b's'; 800 << 10]).await.unwrap();
    let filled = async {
        while gw.gateway.held_bytes() < 800 << 10 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), filled).await.expect("the stalled body is counted");
    // Another body that does not fit beside it is refused, not held.
    let big = format!(
        "POST /echo HTTP/1.1\r\nhost: gw\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        200 << 10,
        "b".repeat(200 << 10)
    );
    let (status, text) = raw_http(&addr, &big).await;
    assert_eq!(status, 503, "{}", &text[..text.len().min(200)]);
    // A small one fits, in the part of the budget kept for small ones.
    let (status, text) = raw_http(&addr, &post("/echo")).await;
    assert_eq!(status, 200, "{text}");
    // The staller's body timeout (1 s) gives its share back.
    let (status, _) = raw_http_on(staller).await;
    assert_eq!(status, 408);
    let (status, text) = raw_http(&addr, &big).await;
    assert_eq!(status, 200, "{}", &text[..text.len().min(200)]);
    assert_eq!(gw.gateway.held_bytes(), 0);
    gw.stop().await;
    server.shutdown().await.unwrap();
}

/// Reads the response on a connection already sent its request.
async fn raw_http_on(mut stream: tokio::net::TcpStream) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response));
    let _ = read.await.expect("the gateway answers and closes");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_with_no_request_is_closed_at_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = upstream().await;
    let config = {
        let mut cfg = test_config();
        cfg.idle_timeout = Duration::from_millis(300);
        cfg.header_timeout = Duration::from_secs(30);
        cfg
    };
    let gw = gateway(vec![server.local_addr().to_string()], config).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(b"POST /echo HTTP/1.1\r\nhost: gw\r\ncontent-length: 2\r\n\r\n{}").await.unwrap();
    let started = std::time::Instant::now();
    let mut response = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    assert!(closed.is_ok(), "an idle kept-alive connection is closed");
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"), "answered first");
    assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
    // A connection that never begins a request has the header timeout,
    // however quiet it is (it sends no byte of a head either).
    drop(stream);
    gw.stop().await;
    let config = {
        let mut cfg = test_config();
        cfg.header_timeout = Duration::from_millis(300);
        cfg
    };
    let gw = gateway(vec![server.local_addr().to_string()], config).await;
    let mut silent = tokio::net::TcpStream::connect(gw.url.trim_start_matches("http://")).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a connection that never speaks is closed");
    server.shutdown().await.unwrap();
}

/// The HTTP attacks of `iip attack --http` at small sizes against a gateway
/// with small limits: each passes (the good client is served with no
/// failed call, the system paths are all 404), and the gateway gives back
/// every byte it held once they are over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_survives_the_http_attacks_within_its_budget() {
    use iip::conformance::attack::{run, AttackKind, AttackPlan};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::echo()
        .route("/delay", |_req: Request| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, std::convert::Infallible>("late")
        })
        .build()
        .unwrap()
        .spawn(listener)
        .unwrap();
    let config = {
        let mut cfg = test_config();
        cfg.max_held_bytes = 4 << 20;
        cfg.max_connections = 64;
        cfg.header_timeout = Duration::from_millis(800);
        cfg.idle_timeout = Duration::from_millis(800);
        cfg.request_timeout = Duration::from_millis(800);
        cfg
    };
    let gw = gateway(vec![server.local_addr().to_string()], config).await;
    let mut plan = AttackPlan::new(gw.url.trim_start_matches("http://"));
    plan.duration = Duration::from_millis(2500);
    plan.recovery = Duration::from_secs(5);
    plan.scale.http_slow_requests = 40;
    plan.scale.http_slow_path = "/delay";
    plan.scale.http_bodies = 8;
    plan.scale.http_body_size = 2 << 20;
    plan.scale.loris_connections = 30;
    plan.scale.loris_interval = Duration::from_millis(200);
    plan.scale.idle_connections = 80;
    let mut failures = Vec::new();
    for attack in AttackKind::HTTP {
        plan.attacks = vec![attack];
        let result = run(&plan, |_| {}).await.remove(0);
        println!("{result}");
        if !result.passed() {
            failures.push(result.to_string());
        }
        let peak = gw.gateway.held_bytes();
        if peak > 4 << 20 {
            failures.push(format!("{}: {peak} B held", attack.name()));
        }
    }
    let settled = async {
        while gw.gateway.held_bytes() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), settled).await.is_err() {
        failures.push(format!("{} B still held", gw.gateway.held_bytes()));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    gw.stop().await;
    server.shutdown().await.unwrap();
}

/// `iip gateway` with 64 descriptors in all: once they have run out, a
/// new client is answered 503 with the one kept in reserve, not left
/// waiting in the listen queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_a_client_is_answered_503() {
    let server = upstream().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let line = format!(
        "ulimit -n 64 && exec '{}' gateway --http {addr} --upstream {}",
        env!("CARGO_BIN_EXE_iip"),
        server.local_addr()
    );
    let mut gateway = tokio::process::Command::new("sh")
        .args(["-c", &line])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let up = async {
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), up).await.expect("the gateway listens");
    let (status, text) = raw_http(&addr, &post("/echo")).await;
    assert_eq!(status, 200, "{text}");
    // Idle connections take every descriptor the gateway has.
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let (status, text) = raw_http(&addr, &post("/echo")).await;
    assert_eq!(status, 503, "{text}");
    drop(idle);
    let _ = gateway.kill().await;
    server.shutdown().await.unwrap();
}

/// Trace context, the request id, `iip-meta-` entries and `iip-timeout`
/// become the upstream request's metadata (spec 14.7); a deadline that
/// passes is 504 at once, however long the handler would take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_become_metadata_and_the_deadline_is_kept() {
    require_curl();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::echo()
        .route("/metadata", iip::conformance::metadata_handler)
        .route("/sleep", iip::conformance::sleep_handler)
        .build()
        .unwrap()
        .spawn(listener)
        .unwrap();
    let gw = gateway(vec![server.local_addr().to_string()], test_config()).await;
    let header = |h: &str| vec!["-H".to_string(), h.to_string()];
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut args = vec![format!("{}/metadata", gw.url)];
    for h in [&format!("traceparent: {parent}"), "tracestate: v=1", "x-request-id: r-77", "iip-meta-tenant: blue"] {
        args.extend(header(h));
    }
    args.extend(header("iip-timeout: 4000"));
    let (status, text) = curl(args).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.to_lowercase().contains("x-request-id: r-77"), "the id comes back: {text}");
    let json: serde_json::Value = serde_json::from_str(text.rsplit("\r\n\r\n").next().unwrap()).unwrap();
    assert_eq!(json["traceparent"], parent);
    assert_eq!((json["tracestate"].as_str(), json["request-id"].as_str()), (Some("v=1"), Some("r-77")));
    assert_eq!(json["tenant"], "blue");
    let left: u64 = json["deadline"].as_str().unwrap().parse().unwrap();
    assert!((3000..=4000).contains(&left), "{left}");
    // A traceparent that is not W3C's restarts the trace: neither travels.
    let mut args = vec![format!("{}/metadata", gw.url)];
    args.extend(header("traceparent: 00-nonsense"));
    args.extend(header("tracestate: v=1"));
    let (status, text) = curl(args).await;
    assert!(status == 200 && !text.contains("trace"), "{text}");
    // Without iip-timeout the deadline is the gateway's upstream timeout (10 s here).
    let (_, text) = curl(vec![format!("{}/metadata", gw.url)]).await;
    let json: serde_json::Value = serde_json::from_str(text.rsplit("\r\n\r\n").next().unwrap()).unwrap();
    assert!(json["deadline"].as_str().unwrap().parse::<u64>().unwrap() > 9000, "{json}");
    let long = format!("iip-meta-big: {}", "v".repeat(9000));
    for bad in ["iip-timeout: soon", &format!("x-request-id: {}", "x".repeat(200)), "iip-meta-k: a\tb", &long] {
        let mut args = vec![format!("{}/echo", gw.url)];
        args.extend(header(bad));
        let (status, text) = curl(args).await;
        assert_eq!(status, 400, "{bad}: {text}");
    }
    let started = std::time::Instant::now();
    let mut args = vec![format!("{}/sleep", gw.url), "-d".into(), "8000".into()];
    args.extend(header("iip-timeout: 300"));
    let (status, text) = curl(args).await;
    assert_eq!(status, 504, "{text}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    gw.stop().await;
    server.shutdown().await.unwrap();
}
