//! Server-wide tower layers (`ServerBuilder::layer`): they wrap every
//! route, added before or after them, in the order tower's ServiceBuilder
//! uses, and never the `/sys/` paths. Typed handler errors: application
//! codes ([ANSWER-6]), tower's timeout as 103 ([ANSWER-8]), tower's load
//! shedding as 111 ([ANSWER-7]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iip::client::{Client, ClientError};
use iip::server::{Request, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_wrap_every_route_in_order_and_leave_system_paths_alone() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let server = Server::builder()
        .route("/before", |req: Request| async move { Ok::<_, std::convert::Infallible>(req.into_body()) })
        // Outermost: appends "!" to whatever the inner layers answer.
        .layer(tower::util::MapResponseLayer::new(|answer: Bytes| {
            let mut out = answer.to_vec();
            out.push(b'!');
            Bytes::from(out)
        }))
        // Inner: counts every request and upper-cases the body on its way in.
        .layer(tower::util::MapRequestLayer::new(move |mut req: Request| {
            counter.fetch_add(1, Ordering::SeqCst);
            *req.body_mut() = Bytes::from(req.body().to_ascii_uppercase());
            req
        }))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(200)))
        .route("/after", |req: Request| async move { Ok::<_, std::convert::Infallible>(req.into_body()) })
        .route("/slow", |_req: Request| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, std::convert::Infallible>("late")
        })
        .build()
        .unwrap();
    let handle = server.spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let client = Client::connect(handle.local_addr()).await.unwrap();
    assert_eq!(&client.call("/before", "abc").await.unwrap()[..], b"ABC!");
    assert_eq!(&client.call("/after", "xyz").await.unwrap()[..], b"XYZ!");
    // A middleware's time limit is answered 103 like the server's own ([ANSWER-8]).
    let slow = client.call("/slow", "").await;
    assert_eq!(slow, Err(ClientError::Server { code: 103, message: "request timeout".into() }));
    let counts = client.call("/sys/server_count", "").await.unwrap();
    assert!(counts.starts_with(b"{"), "{counts:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 3, "the /sys/ path passed through a layer");
    drop(client);
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_fail_with_typed_codes() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let entered = Arc::new(AtomicUsize::new(0));
    let inside = entered.clone();
    let server = Server::builder()
        .route("/quota", |_req: Request| async move {
            Err::<Bytes, _>(iip::server::HandlerError::application(1042, "quota exceeded"))
        })
        .route("/reserved", |_req: Request| async move {
            Err::<Bytes, _>(iip::server::HandlerError::application(104, "not mine to use"))
        })
        .route("/io", |_req: Request| async move {
            Err::<Bytes, _>(std::io::Error::new(std::io::ErrorKind::NotFound, "no such thing"))
        })
        .route_service(
            "/shed",
            tower::ServiceBuilder::new().load_shed().concurrency_limit(1).service_fn(move |_req: Request| {
                let held = held.clone();
                inside.fetch_add(1, Ordering::SeqCst);
                async move {
                    let _permit = held.acquire().await;
                    Ok::<_, std::convert::Infallible>("done")
                }
            }),
        )
        .handler_timeout(Duration::from_millis(1000))
        .route("/builder-timeout", |_req: Request| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, std::convert::Infallible>("late")
        })
        .build()
        .unwrap();
    let handle = server.spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let client = Client::connect(handle.local_addr()).await.unwrap();
    // An application code and its message arrive unchanged ([ANSWER-6]).
    let raw = client.channel_zero().call_with(iip::client::Call::new("/quota", "").raw()).await.unwrap();
    assert_eq!(&raw[..], br#"{"code":1042,"message":"quota exceeded"}"#);
    let reserved = client.call("/reserved", "").await.unwrap_err();
    assert_eq!(reserved.code(), Some(-1), "{reserved:?}");
    assert!(reserved.to_string().contains("reserved code 104"), "{reserved}");
    let io = client.call("/io", "").await;
    assert_eq!(io, Err(ClientError::Server { code: -1, message: "handler fail:no such thing".into() }));
    // The builder's own limit: 103 as well ([ANSWER-8]).
    let late = client.call("/builder-timeout", "").await;
    assert_eq!(late, Err(ClientError::Server { code: 103, message: "request timeout".into() }));
    // One request holds the only slot; the next is shed unprocessed: 111 ([ANSWER-7]).
    let first_channel = client.open_channel().await.unwrap();
    let first = tokio::spawn(async move { first_channel.call("/shed", "").await });
    while entered.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let shed = client.call("/shed", "").await.unwrap_err();
    assert_eq!(shed, ClientError::Server { code: 111, message: "server overloaded".into() });
    assert!(iip::client::retry::RetryPolicy::safe(1).retries_after(&shed), "a shed request is safe to send again");
    gate.add_permits(1);
    assert_eq!(&first.await.unwrap().unwrap()[..], b"done");
    drop(client);
    handle.shutdown().await.unwrap();
}
