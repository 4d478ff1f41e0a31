//! Server-wide tower layers (`ServerBuilder::layer`): they wrap every
//! route, added before or after them, in the order tower's ServiceBuilder
//! uses, and never the `/sys/` paths.

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
        .route("/before", |req: Request| async move { Ok::<_, std::convert::Infallible>(req.body) })
        // Outermost: appends "!" to whatever the inner layers answer.
        .layer(tower::util::MapResponseLayer::new(|answer: Bytes| {
            let mut out = answer.to_vec();
            out.push(b'!');
            Bytes::from(out)
        }))
        // Inner: counts every request and upper-cases the body on its way in.
        .layer(tower::util::MapRequestLayer::new(move |mut req: Request| {
            counter.fetch_add(1, Ordering::SeqCst);
            req.body = Bytes::from(req.body.to_ascii_uppercase());
            req
        }))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(200)))
        .route("/after", |req: Request| async move { Ok::<_, std::convert::Infallible>(req.body) })
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
    match client.call("/slow", "").await {
        Err(ClientError::Server { message, .. }) => assert!(message.contains("timed out"), "{message}"),
        other => panic!("the timeout layer should answer with an error, got {other:?}"),
    }
    let counts = client.call("/sys/server_count", "").await.unwrap();
    assert!(counts.starts_with(b"{"), "{counts:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 3, "the /sys/ path passed through a layer");
    drop(client);
    handle.shutdown().await.unwrap();
}
