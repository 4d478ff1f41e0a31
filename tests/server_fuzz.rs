//! Arbitrary byte streams — well-formed frames of any status, channel and
//! path, mixed with garbage — sent to a running server: the server never
//! panics, every such connection ends in an answer or a close, and a
//! well-behaved connection opened alongside keeps being served ([FERR-4]).
//! Bounded: a fixed number of cases, each with a short deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use iip::client::Client;
use iip::conformance::vector::{Blob, FrameSpec};
use iip::server::Server;
use iip::FrameCodec;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;

#[derive(Debug, Clone)]
enum Piece {
    Frame { status: u8, path: Vec<u8>, channel: u32, data: Vec<u8> },
    Garbage(Vec<u8>),
}

fn arb_piece() -> impl Strategy<Value = Piece> {
    let path = prop_oneof![
        Just(b"/echo".to_vec()),
        Just(b"/sys/new_channel".to_vec()),
        Just(b"/sys/delete_channel".to_vec()),
        Just(b"/sys/statis".to_vec()),
        Just(b"/sys/path_count".to_vec()),
        proptest::collection::vec(1u8..=255, 0..12),
    ];
    prop_oneof![
        8 => (
            prop_oneof![6 => Just(1u8), 1 => Just(0u8), 1 => Just(3u8), 1 => 0u8..=9],
            path,
            prop_oneof![4 => Just(0u32), 1 => 0u32..4],
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(status, path, channel, data)| Piece::Frame { status, path, channel, data }),
        1 => proptest::collection::vec(any::<u8>(), 1..24).prop_map(Piece::Garbage),
    ]
}

fn bytes_of(pieces: &[Piece]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for piece in pieces {
        match piece {
            Piece::Frame { status, path, channel, data } => {
                let spec = FrameSpec {
                    status: *status,
                    path: Blob::Hex { hex: path.iter().map(|b| format!("{b:02x}")).collect() },
                    channel: *channel,
                    data: Blob::Hex { hex: data.iter().map(|b| format!("{b:02x}")).collect() },
                    length: None,
                };
                spec.write_raw(&mut out).unwrap();
            }
            Piece::Garbage(bytes) => out.extend_from_slice(bytes),
        }
    }
    out.to_vec()
}

#[test]
fn arbitrary_streams_never_panic_the_server_or_harm_others() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counter = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counter.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (addr, good) = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = Server::echo().max_channels(3).build().unwrap().spawn(listener).unwrap();
        let addr = handle.local_addr();
        std::mem::forget(handle);
        (addr, Client::connect(addr).await.unwrap())
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 128, ..ProptestConfig::default() });
    runner
        .run(&proptest::collection::vec(arb_piece(), 1..12), |pieces| {
            let bytes = bytes_of(&pieces);
            rt.block_on(async {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
                // Read until the server closes: it must, since our side ended.
                let mut frames = FramedRead::new(stream, FrameCodec::default());
                let ended = tokio::time::timeout(Duration::from_secs(5), async {
                    while let Some(Ok(_)) = frames.next().await {}
                })
                .await;
                prop_assert!(ended.is_ok(), "the server kept a finished connection open");
                let answer = good.call("/echo", "still served").await.ok();
                prop_assert_eq!(answer.as_deref(), Some(&b"still served"[..]));
                Ok(())
            })
        })
        .unwrap();
    assert_eq!(panics.load(Ordering::SeqCst), 0, "the server panicked");
}
