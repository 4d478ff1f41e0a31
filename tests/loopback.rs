//! The tokio server and client over loopback: channels, pipelining,
//! chunking, error answers, shutdown and isolation of broken connections.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use iip::client::{Client, ClientConfig, ClientError, ClientExtensions};
use iip::server::{HandlerError, Request, Server, ServerBuilder, ServerHandle};
use iip::{Frame, FrameCodec, FrameLimits, Status};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::codec::Framed;

const WAIT: Duration = Duration::from_secs(10);

/// A client that says no hello: plain IIP/1, frame for frame the deployed client's.
fn plain() -> ClientConfig {
    let mut cfg = ClientConfig::default();
    cfg.extensions = ClientExtensions::off();
    cfg
}

async fn start(builder: ServerBuilder) -> ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    builder.build().unwrap().spawn(listener).unwrap()
}

/// A server with /echo, /fail, /panic, /sleep and /block (waits for `gate`).
async fn test_server(gate: Arc<Notify>) -> ServerHandle {
    let builder = Server::echo()
        .route("/fail", |_req: Request| async { Err::<Bytes, _>(HandlerError::new("nope")) })
        .route("/panic", |req: Request| async move {
            if !req.body().is_empty() {
                panic!("handler panicked on purpose");
            }
            Ok::<_, HandlerError>(req.into_body())
        })
        .route("/sleep", |req: Request| async move {
            let ms: u64 = String::from_utf8_lossy(req.body()).parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, HandlerError>(req.into_body())
        })
        .route("/block", move |req: Request| {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                Ok::<_, HandlerError>(req.into_body())
            }
        });
    start(builder).await
}

async fn raw(addr: std::net::SocketAddr) -> Framed<TcpStream, FrameCodec> {
    Framed::new(TcpStream::connect(addr).await.unwrap(), FrameCodec::default())
}

/// Reads frames until the server closes the connection.
async fn read_until_closed(conn: &mut Framed<TcpStream, FrameCodec>) -> Vec<Frame> {
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, conn.next()).await.expect("server neither answered nor closed") {
            Some(Ok(frame)) => frames.push(frame),
            Some(Err(_)) | None => return frames,
        }
    }
}

fn frame(status: u8, path: &'static str, channel: u32, data: &'static str) -> Frame {
    Frame::new(
        Status::from_byte(status).unwrap(),
        Bytes::from_static(path.as_bytes()),
        channel,
        Bytes::from_static(data.as_bytes()),
    )
}

#[tokio::test]
async fn slow_channel_does_not_block_another() {
    let gate = Arc::new(Notify::new());
    let server = test_server(gate.clone()).await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let (one, two) = (client.open_channel().await.unwrap(), client.open_channel().await.unwrap());
    let blocked = tokio::spawn(async move { one.call("/block", "slow").await });
    // Channel 2 is answered while channel 1's request is still held.
    assert_eq!(&two.call("/echo", "fast").await.unwrap()[..], b"fast");
    assert!(!blocked.is_finished());
    gate.notify_one();
    assert_eq!(&blocked.await.unwrap().unwrap()[..], b"slow");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn pipelined_answers_come_back_in_request_order() {
    let server = test_server(Arc::new(Notify::new())).await;
    let mut conn = raw(server.local_addr()).await;
    // Later requests finish first; answers must still be in request order.
    for ms in ["30", "20", "10", "0"] {
        conn.feed(Frame::new(
            Status::RequestWhole,
            Bytes::from_static(b"/sleep?x"),
            0,
            Bytes::from_static(ms.as_bytes()),
        ))
        .await
        .unwrap();
    }
    SinkExt::<Frame>::flush(&mut conn).await.unwrap();
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let frame = tokio::time::timeout(WAIT, conn.next()).await.unwrap().unwrap().unwrap();
        assert_eq!((frame.status, &frame.path[..]), (Status::ResponseWhole, &b"/sleep"[..]), "[MSG-10] query removed");
        bodies.push(String::from_utf8(frame.data.to_vec()).unwrap());
    }
    assert_eq!(bodies, ["30", "20", "10", "0"]);
    // Through the client: many concurrent calls on one channel, each gets its own.
    let client = Client::connect(server.local_addr()).await.unwrap();
    let channel = client.open_channel().await.unwrap();
    let calls = (0..200).map(|i| {
        let channel = channel.clone();
        async move { (i, channel.call("/echo", format!("body {i}")).await) }
    });
    for (i, answer) in futures::future::join_all(calls).await {
        assert_eq!(answer.unwrap(), Bytes::from(format!("body {i}")));
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn chunked_messages_in_both_directions() {
    let limits = {
        let mut cfg = FrameLimits::default();
        cfg.max_path = 2048;
        cfg.max_data = 1000;
        cfg
    };
    let server = start(Server::echo().frame_limits(limits)).await;
    let config = {
        let mut cfg = ClientConfig::default();
        cfg.frame_limits = limits;
        cfg
    };
    let client = Client::connect_with(server.local_addr(), config).await.unwrap();
    let body: Bytes = (0..25_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    assert_eq!(client.call("/echo", body.clone()).await.unwrap(), body);
    let parts: Vec<Bytes> =
        client.channel_zero().call_stream("/echo", body.clone()).map(|p| p.unwrap()).collect().await;
    assert_eq!(parts.len(), 25);
    assert_eq!(parts.concat(), body.to_vec());
    // Raw: the server answers a 0/2/3 request with one 4/6/7 response... or a
    // single 5 when it fits.
    let mut conn = Framed::new(TcpStream::connect(server.local_addr()).await.unwrap(), FrameCodec::new(limits));
    for f in [frame(0, "/echo", 0, "ab"), frame(2, "/echo", 0, "cd"), frame(3, "/echo", 0, "ef")] {
        conn.send(f).await.unwrap();
    }
    let answer = tokio::time::timeout(WAIT, conn.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((answer.status, &answer.data[..]), (Status::ResponseWhole, &b"abcdef"[..]));
    server.shutdown().await.unwrap();
}

async fn expect_server_error(result: Result<Bytes, ClientError>, code: i64) {
    match result {
        Err(ClientError::Server { code: got, .. }) => assert_eq!(got, code),
        other => panic!("expected error answer {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn error_answers() {
    let server = start(
        Server::echo()
            .route("/fail", |_req: Request| async { Err::<Bytes, _>(HandlerError::new("nope")) })
            // Handlers that answer without waiting fail and crash as async ones do.
            .route_sync("/sync_fail", |_req: Request| Err::<Bytes, _>(HandlerError::application(1001, "sync nope")))
            .route_sync("/sync_panic", |_req: Request| -> Result<Bytes, HandlerError> { panic!("on purpose") })
            .route("/panic", |_req: Request| async move {
                if true {
                    panic!("on purpose");
                }
                Ok::<Bytes, HandlerError>(Bytes::new())
            })
            .route("/slow", |_req: Request| async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<Bytes, HandlerError>(Bytes::new())
            })
            .handler_timeout(Duration::from_millis(100))
            .max_channels(3)
            .max_message(100),
    )
    .await;
    // Without a hello: a client that knows the limits refuses locally what
    // this test wants the server to refuse (tests/extensions.rs, [EXT-10]).
    let client = Client::connect_with(server.local_addr(), plain()).await.unwrap();
    expect_server_error(client.call("/nowhere", "x").await, 102).await;
    expect_server_error(client.call("/sys/unknown", "x").await, 102).await;
    let raw_fail = client.channel_zero().call_with(iip::client::Call::new("/fail", "x").raw()).await.unwrap();
    assert_eq!(&raw_fail[..], br#"{"code":-1,"message":"handler fail:nope"}"#);
    // A handler that crashed: 104, "unknown" with a detail, and the
    // connection goes on ([ANSWER-11], [ANSWER-10]).
    let panicked = client.channel_zero().call_with(iip::client::Call::new("/panic", "x").raw()).await.unwrap();
    assert_eq!(&panicked[..], br#"{"code":104,"message":"unknown: handler panicked"}"#);
    let sync_fail = client.channel_zero().call_with(iip::client::Call::new("/sync_fail", "x").raw()).await.unwrap();
    assert_eq!(&sync_fail[..], br#"{"code":1001,"message":"sync nope"}"#);
    let sync_panicked =
        client.channel_zero().call_with(iip::client::Call::new("/sync_panic", "x").raw()).await.unwrap();
    assert_eq!(&sync_panicked[..], br#"{"code":104,"message":"unknown: handler panicked"}"#);
    expect_server_error(client.call("/slow", "x").await, 103).await;
    expect_server_error(client.call("/echo", vec![b'x'; 101]).await, 110).await;
    // Delete of channel 0 is refused by the server (sent raw: the client refuses it).
    expect_server_error(client.call("/sys/delete_channel", "{}").await, 109).await;
    assert_eq!(&client.call("/echo", "still here").await.unwrap()[..], b"still here");
    // Channel limit 3: channel 0 plus two.
    let _a = client.open_channel().await.unwrap();
    let _b = client.open_channel().await.unwrap();
    match client.open_channel().await {
        Err(ClientError::Server { code: 106, .. }) => {}
        other => panic!("expected 106, got {other:?}"),
    }
    // The empty body travels as {} ([MSG-9]).
    assert_eq!(&client.call("/echo", "").await.unwrap()[..], b"{}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn connection_limit_is_answered_107() {
    let server = start(Server::echo().max_connections(1)).await;
    let first = Client::connect(server.local_addr()).await.unwrap();
    assert_eq!(&first.call("/echo", "a").await.unwrap()[..], b"a");
    let mut second = raw(server.local_addr()).await;
    let frames = read_until_closed(&mut second).await;
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert!(String::from_utf8_lossy(&frames[0].data).contains("107"));
    assert_eq!(frames[1].status, Status::Close);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn channels_are_reused_after_delete() {
    let server = start(Server::echo()).await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let one = client.open_channel().await.unwrap();
    let two = client.open_channel().await.unwrap();
    assert_eq!((one.id(), two.id()), (1, 2));
    let pending = {
        let one = one.clone();
        tokio::spawn(async move { one.call("/echo", "before delete").await })
    };
    tokio::task::yield_now().await;
    one.delete().await.unwrap();
    assert_eq!(&pending.await.unwrap().unwrap()[..], b"before delete");
    let again = client.open_channel().await.unwrap();
    assert_eq!(again.id(), 1);
    assert_eq!(&again.call("/echo", "reused").await.unwrap()[..], b"reused");
    // Raw: the delete is answered {"code":0} ([CHAN-7]); a later frame on it
    // closes, citing [CHAN-10] ([CLOSE-4]).
    let mut conn = raw(server.local_addr()).await;
    conn.send(frame(1, "/sys/new_channel", 0, "{}")).await.unwrap();
    conn.send(frame(1, "/sys/delete_channel", 1, "{}")).await.unwrap();
    conn.send(frame(1, "/echo", 1, "late")).await.unwrap();
    let frames = read_until_closed(&mut conn).await;
    let bodies: Vec<&[u8]> = frames.iter().map(|f| &f.data[..]).collect();
    assert_eq!(&bodies[..2], [&br#"{"code":0,"channel_id":1}"#[..], br#"{"code":0}"#]);
    assert_eq!(frames[2].status, Status::Close);
    assert!(String::from_utf8_lossy(&frames[2].data).contains("CHAN-10"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
/// Graceful shutdown ([CLOSE-3]): requests in flight are answered, then the
/// connection closes and the listener is gone.
async fn shutdown_finishes_requests_in_flight() {
    let gate = Arc::new(Notify::new());
    let server = test_server(gate.clone()).await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.call("/block", "in flight").await })
    };
    // Wait until the request is being handled.
    while server.server().stats().count().whole_received == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let addr = server.local_addr();
    let stopping = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!stopping.is_finished(), "shutdown must wait for the request in flight");
    gate.notify_one();
    assert_eq!(&call.await.unwrap().unwrap()[..], b"in flight");
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap().unwrap();
    // The connection is closed and new connections are refused.
    let after = client.call("/echo", "x").await;
    assert!(matches!(after, Err(ClientError::Closed { sent: false, .. })), "{after:?}");
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_broken_connection_does_not_harm_others() {
    let server = start(Server::echo()).await;
    let good = Client::connect(server.local_addr()).await.unwrap();
    let channel = good.open_channel().await.unwrap();
    let cases: Vec<(&[u8], &str)> = vec![
        (b"\x09", "STATUS-2"),
        (b"\x05/echo\x00\x00\x00\x00\x00\x00\x00\x00\x01x", "STATUS-3"),
        (b"\x01/echo\x00\x00\x00\x00\x07\x00\x00\x00\x01x", "CHAN-6"),
        (b"\x02/echo\x00\x00\x00\x00\x00\x00\x00\x00\x01x", "MSG-6"),
        (b"\x01/echo\x00\x00\x00\x00\x00\x00\x00\x00\x00", "FRAME-6"),
        (b"\x01/echo\x00\x00\x00\x00\x00\x01\x00\x00\x01", "LIMIT-2"),
    ];
    for (bytes, requirement) in cases {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, bytes).await.unwrap();
        let mut conn = Framed::new(stream, FrameCodec::default());
        let frames = read_until_closed(&mut conn).await;
        let last = frames.last().unwrap_or_else(|| panic!("no close frame for {requirement}"));
        assert_eq!(last.status, Status::Close);
        assert!(String::from_utf8_lossy(&last.data).contains(requirement), "{requirement}: {last:?}");
        assert_eq!(&channel.call("/echo", "alive").await.unwrap()[..], b"alive");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_fails_calls_when_the_connection_drops() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = Framed::new(stream, FrameCodec::default());
        conn.next().await; // read one request, then hang up without answering
    });
    let client = Client::connect_with(addr, plain()).await.unwrap();
    let answer = client.call("/echo", "x").await;
    // The server read the request: it may have processed it.
    assert!(matches!(answer, Err(ClientError::Closed { sent: true, .. })), "{answer:?}");
    assert!(answer.unwrap_err().may_have_reached_server());
    accept.await.unwrap();
    let timeout_client = Client::connect_with(server_that_never_answers().await, {
        let mut cfg = plain();
        cfg.timeout = Duration::from_millis(50);
        cfg
    })
    .await
    .unwrap();
    assert!(matches!(timeout_client.call("/echo", "x").await, Err(ClientError::Timeout(_))));
}

async fn server_that_never_answers() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = Framed::new(stream, FrameCodec::default());
        while conn.next().await.is_some() {}
    });
    addr
}

#[tokio::test]
async fn system_paths_answer_json() {
    let server = start(Server::echo()).await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    client.call("/echo", "12345").await.unwrap();
    let count: serde_json::Value =
        serde_json::from_slice(&client.call("/sys/server_count", "{}").await.unwrap()).unwrap();
    for key in ["PacketsSent", "PacketReceived", "WholePacketSent", "WholePacketReceived", "BytesSent", "BytesReceived"]
    {
        assert!(count[key].is_u64(), "{key} missing in {count}");
    }
    let path: serde_json::Value =
        serde_json::from_slice(&client.call("/sys/path_count", "/echo").await.unwrap()).unwrap();
    assert_eq!(path["WholePacketReceived"], 1);
    // Whole frames: status, "/echo", NUL, channel, length, 5 data bytes ([SYS-8]).
    assert_eq!(path["BytesReceived"], 1 + 5 + 1 + 4 + 4 + 5);
    let measure: serde_json::Value =
        serde_json::from_slice(&client.call("/sys/path_measure", "/echo").await.unwrap()).unwrap();
    assert_eq!(measure["all_requests"], 1);
    assert_eq!(measure["five_minute_requests"].as_array().map(Vec::len), Some(301));
    let conn: serde_json::Value =
        serde_json::from_slice(&client.call("/sys/connection_statis", "{}").await.unwrap()).unwrap();
    let (_, only) = conn.as_object().and_then(|o| o.iter().next()).unwrap();
    assert!(only["Channels"]["0"]["Count"]["PacketReceived"].as_u64() >= Some(3));
    let text = client.call("/sys/statis", r#"{"time_unit":"microsecond"}"#).await.unwrap();
    assert!(String::from_utf8_lossy(&text).contains("/echo"));
    server.shutdown().await.unwrap();
}

/// The summed handler time of `route`, in nanoseconds, and its requests.
async fn handler_time(client: &Client, route: &str) -> (u64, u64) {
    let measure: serde_json::Value =
        serde_json::from_slice(&client.call("/sys/path_measure", route.to_string()).await.unwrap()).unwrap();
    (measure["all_duration"].as_u64().unwrap(), measure["all_requests"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_time_covers_the_handler_and_not_what_came_before_it() {
    // [SYS-15]: a handler that answers at once may begin its time where the
    // one before it in the same pass ended, never earlier.
    const SPIN: Duration = Duration::from_millis(100);
    let server = start(Server::echo().route_sync("/spin", |req: Request| {
        // A little past SPIN: the server's latency clock (the CPU's counter,
        // calibrated) and the one the sleep keeps may differ in rate by a
        // part in a thousand, which once measured a 100 ms sleep as 99.88.
        std::thread::sleep(SPIN + SPIN / 50);
        Ok::<_, std::convert::Infallible>(req.into_body())
    }))
    .await;
    let mut conn = raw(server.local_addr()).await;
    // One write: the echoes are served in the pass that served the spin.
    for path in ["/spin", "/echo", "/echo"] {
        conn.feed(frame(1, path, 0, "x")).await.unwrap();
    }
    SinkExt::<Frame>::flush(&mut conn).await.unwrap();
    for _ in 0..3 {
        tokio::time::timeout(WAIT, conn.next()).await.unwrap().unwrap().unwrap();
    }
    // An idle wait, then one more echo: the wait is no handler's time.
    tokio::time::sleep(2 * SPIN).await;
    conn.send(frame(1, "/echo", 0, "x")).await.unwrap();
    tokio::time::timeout(WAIT, conn.next()).await.unwrap().unwrap().unwrap();
    let client = Client::connect_with(server.local_addr(), plain()).await.unwrap();
    let (spin, spins) = handler_time(&client, "/spin").await;
    assert_eq!(spins, 1);
    assert!(spin >= SPIN.as_nanos() as u64, "the spin's time covers its handler: {spin} ns");
    let (echo, echoes) = handler_time(&client, "/echo").await;
    assert_eq!(echoes, 3);
    assert!(echo < SPIN.as_nanos() as u64 / 2, "the echoes' time covers neither the spin nor the wait: {echo} ns");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn serve_with_shutdown_answers_what_it_received_and_returns() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::echo()
        .route("/slow", |req: Request| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, std::convert::Infallible>(req.into_body())
        })
        .build()
        .unwrap();
    let (stop, signal) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let server = server.clone();
        async move {
            server
                .serve_with_shutdown(listener, async {
                    let _ = signal.await;
                })
                .await
        }
    });
    let client = Client::connect(addr).await.unwrap();
    let call = tokio::spawn(async move { client.call("/slow", "finished").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    assert_eq!(call.await.unwrap().unwrap(), "finished", "a request received before the signal is answered");
    tokio::time::timeout(Duration::from_secs(5), serving).await.expect("serve returns").unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
}

#[test]
fn reserved_duplicate_and_malformed_routes_are_refused_by_name() {
    use iip::server::RouteError;
    let echo = |req: Request| async move { Ok::<_, std::convert::Infallible>(req.into_body()) };
    let reserved = Server::builder().route("/sys/mine", echo).build().err();
    assert_eq!(reserved, Some(RouteError::Reserved("/sys/mine".into())));
    let twice = Server::builder().route("/a", echo).route("/a", echo).build().err();
    assert_eq!(twice, Some(RouteError::Duplicate("/a".into())));
    assert!(twice.unwrap().to_string().contains("/a"));
    let query = Server::builder().route("/a?x=1", echo).build().err();
    assert_eq!(query, Some(RouteError::Malformed("/a?x=1".into())));
    assert!(Server::builder().route("/a", echo).route("/b", echo).build().is_ok());
}

/// [SYS-13]: over IPv6 the connection is named `[ip]:port`.
#[tokio::test]
async fn connection_statis_names_an_ipv6_peer_in_brackets() {
    let Ok(listener) = TcpListener::bind("[::1]:0").await else {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    };
    let server = Server::echo().build().unwrap().spawn(listener).unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let conn: serde_json::Value =
        serde_json::from_slice(&client.call("/sys/connection_statis", "{}").await.unwrap()).unwrap();
    let (name, _) = conn.as_object().and_then(|o| o.iter().next()).unwrap();
    assert!(name.starts_with("[::1]:") && name[6..].parse::<u16>().is_ok(), "{name}");
    server.shutdown().await.unwrap();
}
