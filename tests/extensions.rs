//! The extensions of spec chapter 14 between this crate's server and
//! client, and against peers without them: fallback, authentication,
//! compression, liveness and going away. Requirements the conformance
//! suite cannot check over the wire are checked here ([EXT-4], [EXT-7],
//! [EXT-8], [EXT-9], [EXT-15], [EXT-16]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use iip::client::{Client, ClientConfig, ClientError, ClientExtensions, Endpoint, PingConfig};
use iip::proto::client::RequestError;
use iip::proto::extensions::{BodyCodec, Codec, Credentials};
use iip::server::{
    AuthPolicy, BearerTokens, ExtensionsConfig, HandlerError, Request, Server, ServerBuilder, ServerHandle,
};
use iip::{Frame, FrameCodec, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

const WAIT: Duration = Duration::from_secs(10);

async fn start(builder: ServerBuilder) -> ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    builder.build().unwrap().spawn(listener).unwrap()
}

/// `/echo`, `/whoami` (the authenticated identity) and `/sleep` (the body in ms).
fn routes() -> ServerBuilder {
    Server::echo()
        .route("/whoami", |req: Request| async move {
            Ok::<_, HandlerError>(Bytes::from(req.identity().unwrap_or("nobody").to_string()))
        })
        .route("/sleep", |req: Request| async move {
            let ms: u64 = String::from_utf8_lossy(req.body()).parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, HandlerError>(req.into_body())
        })
}

fn config(extensions: ClientExtensions) -> ClientConfig {
    let mut cfg = ClientConfig::default();
    cfg.timeout = WAIT;
    cfg.extensions = extensions;
    cfg
}

fn frame(status: Status, path: &'static str, channel: u32, data: impl Into<Bytes>) -> Frame {
    Frame::new(status, Bytes::from_static(path.as_bytes()), channel, data.into())
}

async fn raw(addr: std::net::SocketAddr) -> Framed<TcpStream, FrameCodec> {
    Framed::new(TcpStream::connect(addr).await.unwrap(), FrameCodec::default())
}

/// Every frame until the server closes.
async fn until_closed(conn: &mut Framed<TcpStream, FrameCodec>) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(Ok(frame)) = tokio::time::timeout(WAIT, conn.next()).await.expect("neither answer nor close") {
        frames.push(frame);
    }
    frames
}

fn json(frame: &Frame) -> serde_json::Value {
    serde_json::from_slice(&frame.data).unwrap_or_default()
}

#[tokio::test]
async fn a_client_negotiates_with_our_server_and_falls_back_against_one_without_extensions() {
    let server = start(routes()).await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let agreed = client.agreed().expect("our server answers the hello").clone();
    assert_eq!(agreed.names(), ["ping", "limits", "going_away"]);
    assert_eq!(agreed.ping.unwrap().idle_timeout_ms, Some(60_000));
    assert_eq!(agreed.limits.unwrap().max_channels, 1024);
    assert_eq!(&client.call("/echo", "hi").await.unwrap()[..], b"hi");

    // A server without extensions answers 102, as the Go server does ([EXT-5]).
    let plain = start(routes().extensions(ExtensionsConfig::off())).await;
    let client = Client::connect(plain.local_addr()).await.unwrap();
    assert!(client.agreed().is_none());
    let channel = client.open_channel().await.unwrap();
    assert_eq!(&channel.call("/echo", "plain").await.unwrap()[..], b"plain");
    let late = client.call("/sys/hello", r#"{"revision":1,"extensions":{}}"#).await;
    assert_eq!(late.unwrap_err().code(), Some(102));
}

#[tokio::test]
async fn a_client_without_hello_is_served_plain_by_a_server_with_extensions() {
    let server = start(routes()).await;
    let client = Client::connect_with(server.local_addr(), config(ClientExtensions::off())).await.unwrap();
    assert!(client.agreed().is_none());
    assert_eq!(&client.open_channel().await.unwrap().call("/echo", "x").await.unwrap()[..], b"x");
    // On the wire: no marker, no hello answer, nothing but the answers.
    let mut conn = raw(server.local_addr()).await;
    conn.send(frame(Status::RequestWhole, "/echo", 0, "as is")).await.unwrap();
    let answer = conn.next().await.unwrap().unwrap();
    assert_eq!(&answer.data[..], b"as is");
}

#[tokio::test]
async fn limits_are_kept_locally() {
    let server = start(routes().max_channels(3).max_message(1000)).await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let big = client.call("/echo", vec![b'x'; 1001]).await.unwrap_err();
    assert!(matches!(big, ClientError::Refused(RequestError::OverLimit { limit: 1000, .. })), "{big}");
    assert!(!big.may_have_reached_server());
    let _one = client.open_channel().await.unwrap();
    let _two = client.open_channel().await.unwrap();
    let third = client.open_channel().await.unwrap_err();
    assert!(matches!(third, ClientError::Refused(RequestError::OverLimit { what: "channels", .. })), "{third}");
}

#[tokio::test]
async fn a_server_without_an_authenticator_declines_auth() {
    let server = start(routes()).await;
    let offered = Credentials { scheme: "bearer".into(), credentials: "s3cret".into() };
    let endpoint = Endpoint::new(server.local_addr().to_string()).with_credentials(offered);
    let client = endpoint.connect(config(ClientExtensions::default())).await.unwrap();
    assert!(client.agreed().unwrap().auth.is_none(), "{:?}", client.agreed());
    assert_eq!(&client.call("/whoami", "").await.unwrap()[..], b"nobody");
}

#[tokio::test]
async fn credentials_are_checked_and_the_identity_reaches_handlers() {
    let tokens = BearerTokens::new().with("s3cret", "alice");
    let server = start(routes().authenticator(tokens, AuthPolicy::Optional)).await;
    let good = Credentials { scheme: "bearer".into(), credentials: "s3cret".into() };
    let endpoint = Endpoint::new(server.local_addr().to_string());
    let client = endpoint.clone().with_credentials(good).connect(config(ClientExtensions::default())).await.unwrap();
    assert_eq!(client.agreed().unwrap().auth.as_ref().unwrap().identity, "alice");
    assert_eq!(&client.call("/whoami", "").await.unwrap()[..], b"alice");
    // Scheme names are compared without regard to ASCII case ([EXT-8]).
    let shouted = Credentials { scheme: "BEARER".into(), credentials: "s3cret".into() };
    let client = endpoint.clone().with_credentials(shouted).connect(config(ClientExtensions::default())).await.unwrap();
    assert_eq!(client.agreed().unwrap().auth.as_ref().unwrap().identity, "alice");
    // Optional: no credentials, served as nobody.
    let anonymous = endpoint.connect(config(ClientExtensions::default())).await.unwrap();
    assert_eq!(&anonymous.call("/whoami", "").await.unwrap()[..], b"nobody");
    // Refused credentials: 112, then the server closes ([EXT-8]).
    let bad = Credentials { scheme: "bearer".into(), credentials: "guess".into() };
    let refused = Endpoint::new(server.local_addr().to_string()).with_credentials(bad);
    let err = refused.connect(config(ClientExtensions::default())).await.unwrap_err();
    assert_eq!(err, ClientError::Unauthenticated("unauthenticated".into()));
    let mut conn = raw(server.local_addr()).await;
    let hello = r#"{"revision":1,"extensions":{"auth":{"scheme":"bearer","credentials":"guess"}}}"#;
    conn.send(frame(Status::RequestWhole, "/sys/hello", 0, hello)).await.unwrap();
    let frames = until_closed(&mut conn).await;
    assert_eq!(json(&frames[0]), serde_json::json!({"code":112,"message":"unauthenticated"}));
    assert_eq!(frames.last().unwrap().status, Status::Close, "{frames:?}");
}

#[tokio::test]
async fn a_server_that_requires_authentication_refuses_everything_else_with_112_and_closes() {
    let tokens = BearerTokens::new().with("s3cret", "alice");
    let server = start(routes().authenticator(tokens, AuthPolicy::Required)).await;
    // A client of the deployed implementation: its first request is /sys/new_channel ([EXT-9]).
    let mut conn = raw(server.local_addr()).await;
    conn.send(frame(Status::RequestWhole, "/sys/new_channel", 0, "{}")).await.unwrap();
    let frames = until_closed(&mut conn).await;
    assert_eq!(json(&frames[0])["code"], 112, "{frames:?}");
    assert_eq!(frames.last().unwrap().status, Status::Close);
    // A hello without credentials is refused the same way.
    let err = Client::connect(server.local_addr()).await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthenticated(_)), "{err}");
    // With them, everything works.
    let good = Credentials { scheme: "bearer".into(), credentials: "s3cret".into() };
    let endpoint = Endpoint::new(server.local_addr().to_string()).with_credentials(good);
    let client = endpoint.connect(config(ClientExtensions::default())).await.unwrap();
    assert_eq!(&client.open_channel().await.unwrap().call("/whoami", "").await.unwrap()[..], b"alice");
}

/// The close frame's text of a connection the server ends.
async fn close_text(conn: &mut Framed<TcpStream, FrameCodec>) -> String {
    let frames = until_closed(conn).await;
    let close = frames.last().expect("a close frame");
    assert_eq!(close.status, Status::Close, "{frames:?}");
    String::from_utf8_lossy(&close.data).into_owned()
}

#[tokio::test]
async fn a_client_that_does_not_authenticate_in_time_is_closed() {
    let tokens = BearerTokens::new().with("s3cret", "alice");
    let hello_in = Duration::from_millis(400);
    let timeouts = {
        let mut cfg = iip::server::Timeouts::default();
        cfg.hello = Some(hello_in);
        cfg
    };
    let server = start(routes().authenticator(tokens, AuthPolicy::Required).timeouts(timeouts)).await;
    // Silent, and trickling a hello a byte at a time: both closed at the
    // hello timeout, well before the idle or frame read timeout ([RES-10]).
    let started = Instant::now();
    let mut silent = raw(server.local_addr()).await;
    assert!(close_text(&mut silent).await.starts_with("[RES-10]"));
    assert!(started.elapsed() >= hello_in && started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let mut trickle = TcpStream::connect(server.local_addr()).await.unwrap();
    let hello = r#"{"revision":1,"extensions":{"auth":{"scheme":"bearer","credentials":"s3cret"}}}"#;
    let hello = frame(Status::RequestWhole, "/sys/hello", 0, hello);
    let bytes = iip::wire::encode::frame_bytes(&hello, &iip::FrameLimits::default()).unwrap();
    let started = Instant::now();
    let mut closed = false;
    for byte in bytes.iter() {
        if trickle.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "the trickled hello was read to its end");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // A client that authenticates is not held to it.
    let good = Credentials { scheme: "bearer".into(), credentials: "s3cret".into() };
    let endpoint = Endpoint::new(server.local_addr().to_string()).with_credentials(good);
    let client = endpoint.connect(config(ClientExtensions::default())).await.unwrap();
    tokio::time::sleep(hello_in * 2).await;
    assert_eq!(&client.call("/whoami", "").await.unwrap()[..], b"alice");
}

#[tokio::test]
async fn failed_authentications_slow_their_source_down() {
    let tokens = BearerTokens::new().with("s3cret", "alice");
    let interval = Duration::from_millis(250);
    let server = start(routes().authenticator(tokens, AuthPolicy::Required).auth_failure_interval(interval)).await;
    let attempt = |token: &'static str| {
        let credentials = Credentials { scheme: "bearer".into(), credentials: token.into() };
        let endpoint = Endpoint::new(server.local_addr().to_string()).with_credentials(credentials);
        async move {
            let started = Instant::now();
            let outcome = endpoint.connect(config(ClientExtensions::default())).await.map(|_| ());
            (outcome, started.elapsed())
        }
    };
    // Four guesses are answered at once ...
    for _ in 0..4 {
        let (outcome, took) = attempt("guess").await;
        assert!(matches!(outcome, Err(ClientError::Unauthenticated(_))), "{outcome:?}");
        assert!(took < interval, "{took:?}");
    }
    // ... then each waits for its source's turn, one interval apart.
    let (_, fifth) = attempt("guess").await;
    let (_, sixth) = attempt("guess").await;
    assert!(fifth < interval, "{fifth:?}");
    assert!(sixth >= interval.mul_f64(0.9), "{sixth:?}");
    // The right token from there waits its turn too, and is accepted.
    let (outcome, took) = attempt("s3cret").await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(took >= interval.mul_f64(0.9), "{took:?}");
}

#[tokio::test]
async fn many_good_connections_at_once_are_not_slowed() {
    let tokens = BearerTokens::new().with("s3cret", "alice");
    let server = start(routes().authenticator(tokens, AuthPolicy::Required)).await;
    let good = Credentials { scheme: "bearer".into(), credentials: "s3cret".into() };
    let endpoint = Endpoint::new(server.local_addr().to_string()).with_credentials(good);
    let started = Instant::now();
    let connects = (0..32).map(|_| endpoint.connect(config(ClientExtensions::default())));
    for client in futures::future::join_all(connects).await {
        assert_eq!(&client.unwrap().call("/whoami", "").await.unwrap()[..], b"alice");
    }
    assert!(started.elapsed() < Duration::from_millis(900), "{:?}", started.elapsed());
}

/// An authenticator that takes its time, so that a request can arrive
/// while the hello is unanswered.
struct Slow;

impl iip::server::Authenticator for Slow {
    fn authenticate(
        &self,
        _peer: &iip::server::Peer,
        _credentials: &Credentials,
    ) -> futures::future::BoxFuture<'static, Result<String, iip::server::AuthError>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok("slow".to_string())
        })
    }
}

#[tokio::test]
async fn a_request_before_the_hello_answer_is_a_protocol_error() {
    let server = start(routes().authenticator(Slow, AuthPolicy::Optional)).await;
    let mut conn = raw(server.local_addr()).await;
    let hello = r#"{"revision":1,"extensions":{"auth":{"scheme":"bearer","credentials":"x"}}}"#;
    conn.send(frame(Status::RequestWhole, "/sys/hello", 0, hello)).await.unwrap();
    conn.send(frame(Status::RequestWhole, "/echo", 0, "too soon")).await.unwrap();
    let frames = until_closed(&mut conn).await;
    let close = frames.last().unwrap();
    assert_eq!(close.status, Status::Close);
    assert!(String::from_utf8_lossy(&close.data).contains("[EXT-4]"), "{frames:?}");
}

#[tokio::test]
async fn compressed_bodies_round_trip_and_a_bomb_is_answered_110() {
    let server = start(routes().max_message(100_000)).await;
    let body: String = (0..200).map(|i| format!(r#"{{"id":{i},"name":"user {i}","active":true}},"#)).collect();
    for codec in [Codec::Lz4, Codec::Zstd] {
        let extensions = {
            let mut cfg = ClientExtensions::default();
            cfg.compression = Some(codec);
            cfg.min_compress = 64;
            cfg
        };
        let client = Client::connect_with(server.local_addr(), config(extensions)).await.unwrap();
        let agreed = client.agreed().unwrap().compression.clone().unwrap();
        assert_eq!((agreed.codec.as_str(), agreed.min_size), (codec.name(), 1024), "the larger threshold");
        assert_eq!(client.call("/echo", body.clone()).await.unwrap(), Bytes::from(body.clone()));
        let channel = client.open_channel().await.unwrap();
        assert_eq!(&channel.call("/echo", "").await.unwrap()[..], b"{}", "an empty body is {{}}, marked");
    }
    // On the wire: the body inflates past max_message ([EXT-15]).
    let mut conn = raw(server.local_addr()).await;
    let hello = r#"{"revision":1,"extensions":{"compression":{"codecs":["zstd"],"min_size":0}}}"#;
    conn.send(frame(Status::RequestWhole, "/sys/hello", 0, hello)).await.unwrap();
    let answer = conn.next().await.unwrap().unwrap();
    assert_eq!(json(&answer)["extensions"]["compression"]["codec"], "zstd");
    let bomb = BodyCodec::new(Codec::Zstd, 0, usize::MAX).seal(&vec![b'a'; 10_000_000]);
    assert!(bomb.len() < 2_000, "{}", bomb.len());
    conn.send(frame(Status::RequestWhole, "/echo", 0, bomb)).await.unwrap();
    let refused = conn.next().await.unwrap().unwrap();
    let opened = BodyCodec::new(Codec::Zstd, 0, 1 << 20).open(&refused.data).unwrap();
    assert_eq!(&opened[..], br#"{"code":110,"message":"request too large"}"#);
    // A corrupt frame closes the connection ([EXT-14]).
    conn.send(frame(Status::RequestWhole, "/echo", 0, Bytes::from_static(b"\x01not zstd"))).await.unwrap();
    let frames = until_closed(&mut conn).await;
    assert!(String::from_utf8_lossy(&frames.last().unwrap().data).contains("[EXT-14]"), "{frames:?}");
}

/// A TCP proxy to `upstream` that forwards until `cut` is set, then
/// silently drops everything in both directions (a dead link, not a close).
async fn blackhole_proxy(upstream: std::net::SocketAddr, cut: Arc<AtomicBool>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(upstream).await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            for (mut from, mut to) in [(cr, sw), (sr, cw)].map(|(r, w)| (r, w)) {
                let cut = cut.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = from.read(&mut buf).await {
                        if n == 0 {
                            // Keep the write side open: a dead link never closes.
                            std::future::pending::<()>().await;
                        }
                        if !cut.load(Ordering::SeqCst) && to.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    addr
}

/// How long a call waits on a link cut under it, with `extensions`.
async fn detection_time(extensions: ClientExtensions, call_timeout: Duration) -> (Duration, ClientError) {
    let server = start(routes()).await;
    let cut = Arc::new(AtomicBool::new(false));
    let proxy = blackhole_proxy(server.local_addr(), cut.clone()).await;
    let config = {
        let mut cfg = ClientConfig::default();
        cfg.timeout = call_timeout;
        cfg.extensions = extensions;
        cfg
    };
    let client = Client::connect_with(proxy, config).await.unwrap();
    assert_eq!(&client.call("/echo", "alive").await.unwrap()[..], b"alive");
    cut.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let err = client.call("/sleep", "1").await.unwrap_err();
    (started.elapsed(), err)
}

#[tokio::test]
async fn a_dead_server_is_found_within_interval_plus_timeout_with_ping_and_not_without() {
    let ping = {
        let mut cfg = PingConfig::default();
        cfg.interval = Duration::from_millis(200);
        cfg.timeout = Duration::from_millis(300);
        cfg
    };
    let on = {
        let mut cfg = ClientExtensions::default();
        cfg.ping = Some(ping);
        cfg
    };
    let (took, err) = detection_time(on, Duration::from_secs(5)).await;
    assert!(matches!(err, ClientError::DeadPeer { sent: true, .. }), "{err}");
    assert!(err.may_have_reached_server() && err.is_transport());
    // Bounded by interval + timeout after the last frame ([EXT-7]), plus scheduling.
    assert!(took < Duration::from_millis(2_000), "dead peer found after {took:?}");
    let off = {
        let mut cfg = ClientExtensions::default();
        cfg.ping = None;
        cfg
    };
    let (waited, err) = detection_time(off, Duration::from_millis(1_500)).await;
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
    assert!(waited >= Duration::from_millis(1_500));
    println!("dead peer detected: ping 200 ms + 300 ms: {took:?}; without ping: only the call timeout, {waited:?}");
}

#[tokio::test]
async fn going_away_lets_calls_in_flight_finish_and_refuses_new_ones() {
    let server = start(routes().grace(Duration::from_secs(4))).await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    assert!(client.agreed().unwrap().going_away.is_some());
    let slow = {
        let client = client.clone();
        tokio::spawn(async move { client.call("/sleep", "1500").await })
    };
    // Wait until the request is being handled.
    while server.server().stats().count().whole_received == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let stopping = tokio::spawn(server.shutdown());
    tokio::time::timeout(WAIT, client.retired()).await.expect("the client hears that the server goes away");
    assert!(!slow.is_finished(), "told at once, not after the answers: {:?}", started.elapsed());
    assert!(!client.is_connected());
    let refused = client.call("/echo", "new").await.unwrap_err();
    assert!(matches!(refused, ClientError::Closed { sent: false, .. }), "{refused}");
    assert!(refused.to_string().contains("[EXT-16]"), "{refused}");
    assert_eq!(&slow.await.unwrap().unwrap()[..], b"1500");
    // The client closes once its last answer is in; the server need not wait out its grace.
    tokio::time::timeout(WAIT, client.closed()).await.unwrap();
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // An idle client that agreed is told, closes at once, and so does the server.
    let server = start(routes().grace(Duration::from_secs(20))).await;
    let idle = Client::connect(server.local_addr()).await.unwrap();
    let started = Instant::now();
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap().unwrap();
    tokio::time::timeout(WAIT, idle.closed()).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "an idle client waited out the grace: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_client_that_did_not_agree_gets_no_going_away_frame() {
    let server = start(routes()).await;
    let mut conn = raw(server.local_addr()).await;
    conn.send(frame(Status::RequestWhole, "/sys/hello", 0, r#"{"revision":1,"extensions":{"ping":{}}}"#))
        .await
        .unwrap();
    conn.next().await.unwrap().unwrap();
    tokio::spawn(server.shutdown());
    let frames = until_closed(&mut conn).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].status, Status::Close, "[EXT-16]: only a close frame");
}

#[test]
fn the_14_kb_json_body_compresses_with_both_codecs() {
    let body = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/data/users-14k.json")).unwrap();
    for codec in [Codec::Lz4, Codec::Zstd] {
        let sealed = BodyCodec::new(codec, 1024, 1 << 20).seal(&body);
        let ratio = sealed.len() as f64 / body.len() as f64;
        println!("{}: {} B -> {} B on the wire ({:.1} %)", codec.name(), body.len(), sealed.len(), ratio * 100.0);
        assert!(ratio < 0.5, "{codec:?} {ratio}");
    }
}

#[tokio::test]
async fn a_client_that_agreed_but_stays_is_closed_when_half_the_grace_is_over() {
    let server = start(routes().grace(Duration::from_millis(1_000))).await;
    let mut conn = raw(server.local_addr()).await;
    let hello = r#"{"revision":1,"extensions":{"going_away":{}}}"#;
    conn.send(frame(Status::RequestWhole, "/sys/hello", 0, hello)).await.unwrap();
    conn.next().await.unwrap().unwrap();
    let started = Instant::now();
    tokio::spawn(server.shutdown());
    let frames = until_closed(&mut conn).await;
    let statuses: Vec<Status> = frames.iter().map(|f| f.status).collect();
    assert_eq!(statuses, [Status::ResponseWhole, Status::Close], "{frames:?}");
    assert_eq!(&frames[0].path[..], b"/sys/going_away");
    assert_eq!(json(&frames[0]), serde_json::json!({"grace_ms": 500}), "[EXT-16]");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(450) && waited < Duration::from_millis(2_000), "{waited:?}");
}
