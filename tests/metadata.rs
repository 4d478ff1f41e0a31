//! Request metadata end to end (spec 14.7): deadlines that shrink and end
//! every hop, trace context and request ids passed on, the request id in
//! the server's log lines, and the fallback against servers without the
//! extension ([EXT-17]–[EXT-23]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use iip::client::{Call, Client, ClientConfig, ClientError, ClientExtensions};
use iip::server::{ExtensionsConfig, HandlerError, Request, Server, ServerBuilder, ServerHandle};
use tokio::net::TcpListener;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn start(builder: ServerBuilder) -> ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    builder.build().unwrap().spawn(listener).unwrap()
}

fn config(metadata: bool, timeout: Duration) -> ClientConfig {
    let mut cfg = ClientConfig::default();
    cfg.timeout = timeout;
    cfg.extensions = ClientExtensions::default();
    cfg.extensions.metadata = metadata;
    cfg
}

async fn client(server: &ServerHandle, metadata: bool, timeout: Duration) -> Client {
    Client::connect_with(server.local_addr(), config(metadata, timeout)).await.unwrap()
}

/// What a handler saw of its request.
#[derive(Debug, Clone, Default)]
struct Seen {
    remaining: Option<Duration>,
    request_id: Option<String>,
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Seen {
    fn of(req: &Request) -> Seen {
        let m = req.metadata();
        Seen {
            remaining: req.remaining(),
            request_id: m.request_id().map(str::to_string),
            traceparent: m.get("traceparent").map(str::to_string),
            tracestate: m.tracestate().map(str::to_string),
        }
    }
}

/// Counts handlers dropped before they answered: a stopped handler drops
/// its guard.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Server B: `/inner` records what it saw, then sleeps the milliseconds
/// of its body; a sleep cut short counts in `dropped`.
fn server_b(seen: Arc<Mutex<Vec<Seen>>>, dropped: Arc<AtomicUsize>) -> ServerBuilder {
    Server::builder().route("/inner", move |req: Request| {
        let (seen, dropped) = (seen.clone(), dropped.clone());
        async move {
            seen.lock().unwrap().push(Seen::of(&req));
            let ms: u64 = String::from_utf8_lossy(req.body()).parse().unwrap_or(0);
            let guard = Dropped(dropped);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            std::mem::forget(guard);
            Ok::<_, HandlerError>(req.into_body())
        }
    })
}

/// Server A: `/hop` records what it saw and calls B's `/inner` on the
/// request's behalf (`Call::inherit`), after spending 50 ms of its own; a
/// handler stopped, or ended without B's answer, counts in `dropped`.
fn server_a(to_b: Client, seen: Arc<Mutex<Vec<Seen>>>, dropped: Arc<AtomicUsize>) -> ServerBuilder {
    Server::builder().route("/hop", move |req: Request| {
        let (to_b, seen, dropped) = (to_b.clone(), seen.clone(), dropped.clone());
        async move {
            seen.lock().unwrap().push(Seen::of(&req));
            let guard = Dropped(dropped);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let answer = to_b.call_with(Call::new("/inner", req.body().clone()).inherit(&req)).await;
            if answer.is_ok() {
                std::mem::forget(guard);
            }
            // A call that ran out of the inherited deadline is answered 103.
            answer
        }
    })
}

struct Hops {
    client: Client,
    a: ServerHandle,
    b: ServerHandle,
    seen_a: Arc<Mutex<Vec<Seen>>>,
    seen_b: Arc<Mutex<Vec<Seen>>>,
    dropped_a: Arc<AtomicUsize>,
    dropped_b: Arc<AtomicUsize>,
}

/// client → A → B, every hop with metadata, the client's timeout `timeout`.
async fn three_hops(timeout: Duration) -> Hops {
    let (seen_a, seen_b) = (Arc::default(), Arc::default());
    let (dropped_a, dropped_b) = (Arc::default(), Arc::default());
    let b = start(server_b(Arc::clone(&seen_b), Arc::clone(&dropped_b))).await;
    let to_b = client(&b, true, Duration::from_secs(30)).await;
    let a = start(server_a(to_b, Arc::clone(&seen_a), Arc::clone(&dropped_a))).await;
    let client = client(&a, true, timeout).await;
    Hops { client, a, b, seen_a, seen_b, dropped_a, dropped_b }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_shrinks_hop_by_hop_and_the_trace_goes_through() {
    let hops = three_hops(Duration::from_secs(5)).await;
    let call = Call::new("/hop", "0")
        .with_metadata("request-id", "r-42")
        .with_metadata("traceparent", TRACEPARENT)
        .with_metadata("tracestate", "vendor=1");
    assert_eq!(hops.client.call_with(call).await.unwrap(), Bytes::from_static(b"0"));
    let a = hops.seen_a.lock().unwrap()[0].clone();
    let b = hops.seen_b.lock().unwrap()[0].clone();
    let (left_a, left_b) = (a.remaining.expect("A has a deadline"), b.remaining.expect("B has a deadline"));
    assert!(left_a <= Duration::from_secs(5) && left_a > Duration::from_secs(4), "A: {left_a:?}");
    // B's deadline is what A had left after its 50 ms.
    assert!(left_b + Duration::from_millis(50) <= left_a, "A {left_a:?}, B {left_b:?}");
    assert_eq!(a.request_id.as_deref(), Some("r-42"));
    assert_eq!(b.request_id.as_deref(), Some("r-42"), "passed on unchanged");
    assert_eq!(b.tracestate.as_deref(), Some("vendor=1"));
    assert_eq!(a.traceparent.as_deref(), Some(TRACEPARENT));
    let b_parent = b.traceparent.expect("B has a traceparent");
    assert_eq!(&b_parent[..36], &TRACEPARENT[..36], "the same trace: {b_parent}");
    assert_ne!(&b_parent[36..52], &TRACEPARENT[36..52], "A's call is a span of its own");
    hops.a.shutdown().await.unwrap();
    hops.b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_deadline_ends_all_three_hops() {
    let hops = three_hops(Duration::from_millis(400)).await;
    let started = Instant::now();
    let result = hops.client.call("/hop", "20000").await;
    assert!(matches!(result, Err(ClientError::Timeout(_)) | Err(ClientError::Server { code: 103, .. })), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "the client waited {:?}", started.elapsed());
    // Both servers stop their handlers at the deadline, long before B's 20 s sleep.
    let stopped = async {
        while hops.dropped_a.load(Ordering::SeqCst) < 1 || hops.dropped_b.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(3), stopped).await.expect("A's and B's handlers stopped");
    assert!(started.elapsed() < Duration::from_secs(4));
    let left_b = hops.seen_b.lock().unwrap()[0].remaining.unwrap();
    assert!(left_b < Duration::from_millis(400), "B's deadline {left_b:?}");
    hops.a.shutdown().await.unwrap();
    hops.b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_103_at_the_deadline_without_its_handler() {
    let (seen, dropped) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    let b = start(server_b(seen, dropped.clone())).await;
    let client = client(&b, true, Duration::from_secs(30)).await;
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_millis(200);
    // The client would wait 30 s: the answer that comes is the server's.
    let result = client.call_with(Call::new("/inner", "20000").with_deadline(deadline)).await;
    let waited = started.elapsed();
    assert!(matches!(result, Err(ClientError::Server { code: 103, .. }) | Err(ClientError::Timeout(_))), "{result:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    // Without the client's own limit in the way: a deadline sent by hand.
    let started = Instant::now();
    let result = client.call_with(Call::new("/inner", "20000").with_timeout(Duration::from_millis(250))).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(result.is_err());
    tokio::time::timeout(Duration::from_secs(2), async {
        while dropped.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("both handlers stopped");
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_extension_nothing_is_sent_and_the_client_keeps_the_deadline() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let plain_server = {
        let seen = seen.clone();
        Server::builder().extensions(ExtensionsConfig::off()).route("/inner", move |req: Request| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(Seen::of(&req));
                let ms: u64 = String::from_utf8_lossy(req.body()).parse().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, HandlerError>(req.into_body())
            }
        })
    };
    let mut no_metadata = ExtensionsConfig::default();
    no_metadata.metadata = false;
    for server in [plain_server, server_b(seen.clone(), Arc::default()).extensions(no_metadata)] {
        let server = start(server).await;
        let client = client(&server, true, Duration::from_secs(5)).await;
        assert!(client.agreed().is_none_or(|a| a.metadata.is_none()));
        let call = Call::new("/inner", "0").with_metadata("request-id", "stays-here");
        assert_eq!(client.call_with(call).await.unwrap(), Bytes::from_static(b"0"), "the body arrives whole");
        let got = seen.lock().unwrap().pop().unwrap();
        assert_eq!((got.remaining, got.request_id), (None, None), "no block reached the handler");
        // The client alone keeps the time limit.
        let started = Instant::now();
        let result = client.call_with(Call::new("/inner", "3000").with_timeout(Duration::from_millis(200))).await;
        assert!(matches!(result, Err(ClientError::Timeout(_))), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        server.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_entry_fails_its_call_alone_and_a_long_block_is_refused_locally() {
    let server = start(Server::echo()).await;
    let client = client(&server, true, Duration::from_secs(5)).await;
    assert_eq!(client.agreed().and_then(|a| a.metadata).map(|m| m.max_size), Some(8192));
    for (key, value) in [("Upper", "x"), ("k", "line\nfeed"), ("request-id", ""), ("traceparent", "00-nope")] {
        let result = client.call_with(Call::new("/echo", "x").with_metadata(key, value)).await;
        assert!(matches!(result, Err(ClientError::Refused(_))), "{key}={value:?}: {result:?}");
    }
    let long = Call::new("/echo", "x").with_metadata("big", "v".repeat(9000));
    assert!(matches!(client.call_with(long).await, Err(ClientError::Refused(_))));
    assert_eq!(client.call("/echo", "still fine").await.unwrap(), Bytes::from_static(b"still fine"));
    server.shutdown().await.unwrap();
}

/// A `MakeWriter` that keeps every log line in memory.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_request_id_is_in_the_server_log_lines_of_its_request() {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(lines.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = start(Server::echo()).await;
    let client = client(&server, true, Duration::from_secs(5)).await;
    let call =
        Call::new("/echo", "x").with_metadata("request-id", "r-in-the-log").with_metadata("traceparent", TRACEPARENT);
    client.call_with(call).await.unwrap();
    server.shutdown().await.unwrap();
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let answered: Vec<&str> = text.lines().filter(|l| l.contains("answered")).collect();
    assert!(
        answered
            .iter()
            .any(|l| l.contains("request_id=r-in-the-log") && l.contains("4bf92f3577b34da6a3ce929d0e0e4736")),
        "no answered line names the request id and trace:\n{text}"
    );
}

/// With the `otel` feature, a `tracing_opentelemetry` layer sees one trace:
/// the client's call, A's request, A's call to B and B's request, each the
/// child of the one before ([EXT-23]).
#[tokio::test(flavor = "current_thread")]
async fn one_trace_across_the_client_a_server_and_a_second_hop() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("iip-test")))
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    let _guard = tracing::subscriber::set_default(subscriber);
    let hops = three_hops(Duration::from_secs(5)).await;
    hops.client.call("/hop", "0").instrument(tracing::info_span!("root")).await.unwrap();
    hops.a.shutdown().await.unwrap();
    hops.b.shutdown().await.unwrap();
    let _ = provider.force_flush();
    let spans = exporter.get_finished_spans().unwrap();
    // A span by its name and its `route` (the hellos are calls too).
    let find = |name: &str, route: &str| {
        let on_route = |s: &&opentelemetry_sdk::trace::SpanData| {
            s.attributes.iter().any(|kv| kv.key.as_str() == "route" && kv.value.as_str() == route)
        };
        let found: Vec<_> = spans.iter().filter(|s| s.name == name).filter(on_route).collect();
        assert_eq!(found.len(), 1, "one {name} span for {route}: {spans:#?}");
        found[0]
    };
    let root = spans.iter().find(|s| s.name == "root").expect("the root span");
    let (client_call, request_a) = (find("call", "/hop"), find("request", "/hop"));
    let (a_to_b, request_b) = (find("call", "/inner"), find("request", "/inner"));
    let trace = root.span_context.trace_id();
    for span in [client_call, request_a, a_to_b, request_b] {
        assert_eq!(span.span_context.trace_id(), trace, "{} is in the trace", span.name);
    }
    assert_eq!(client_call.parent_span_id, root.span_context.span_id());
    assert_eq!(
        request_a.parent_span_id,
        client_call.span_context.span_id(),
        "A's request is the client's call's child"
    );
    assert_eq!(a_to_b.parent_span_id, request_a.span_context.span_id());
    assert_eq!(request_b.parent_span_id, a_to_b.span_context.span_id(), "B's request is A's call's child");
    // The traceparent B's handler saw names A's call.
    let seen = hops.seen_b.lock().unwrap()[0].traceparent.clone().unwrap();
    assert!(seen.contains(&a_to_b.span_context.span_id().to_string()), "{seen}");
}
