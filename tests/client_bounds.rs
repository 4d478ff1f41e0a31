//! Our client facing a hostile server: an answer larger than
//! `ClientConfig::max_answer` fails its call alone, whether it comes as
//! plain frames without end or as a compressed body that inflates past the
//! limit, and the connection goes on serving other calls.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use iip::client::{Client, ClientConfig, ClientError, ClientExtensions};
use iip::io::reader::FrameReader;
use iip::wire::encode::encode_frame;
use iip::wire::frame::{Frame, FrameLimits};
use iip::wire::status::Status;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const LIMIT: usize = 1 << 20;

fn encoded(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    encode_frame(frame, &FrameLimits::default(), &mut out).unwrap();
    out
}

/// A server that answers its first request with `frames` frames of 256 KiB
/// (an answer that never ends when `frames` is `None`, until the client
/// leaves) and every later request by echoing it.
async fn hostile_server(frames: Option<usize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut reader = FrameReader::new(read, FrameLimits::default());
        let first = reader.next().await.unwrap().unwrap();
        let chunk = Bytes::from(vec![b'h'; 256 << 10]);
        let (first_path, channel) = (first.path.clone(), first.channel);
        // The endless answer runs beside the echo of later requests, which
        // waits for it: answers on one channel keep their order.
        let endless = async move {
            let mut sent = 0;
            loop {
                let last = frames.is_some_and(|n| sent + 1 == n);
                let status = match (sent, last) {
                    (0, _) => Status::ResponseFirst,
                    (_, true) => Status::ResponseLast,
                    _ => Status::ResponseContinue,
                };
                let frame = Frame::new(status, first_path.clone(), channel, chunk.clone());
                if write.write_all(&encoded(&frame)).await.is_err() {
                    return None;
                }
                sent += 1;
                if last {
                    return Some(write);
                }
            }
        };
        let Some(mut write) = endless.await else { return };
        while let Some(Ok(request)) = reader.next().await {
            let answer = Frame::new(Status::ResponseWhole, request.path.clone(), request.channel, request.data.clone());
            if write.write_all(&encoded(&answer)).await.is_err() {
                return;
            }
        }
    });
    addr
}

fn config() -> ClientConfig {
    let mut cfg = ClientConfig::default();
    cfg.max_answer = Some(LIMIT);
    cfg.extensions = ClientExtensions::off();
    cfg.timeout = Duration::from_secs(10);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_past_the_limit_fails_its_call_and_the_next_call_is_served() {
    let addr = hostile_server(Some(12)).await;
    let client = Client::connect_with(addr.as_str(), config()).await.unwrap();
    let err = client.call("/big", "x").await.unwrap_err();
    assert_eq!(err, ClientError::AnswerTooLarge { limit: LIMIT });
    assert_eq!(client.call("/echo", "after").await.unwrap(), "after", "the connection goes on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_end_fails_its_call_at_the_limit() {
    let addr = hostile_server(None).await;
    let client = Client::connect_with(addr.as_str(), config()).await.unwrap();
    let started = std::time::Instant::now();
    let err = client.call("/endless", "x").await.unwrap_err();
    assert_eq!(err, ClientError::AnswerTooLarge { limit: LIMIT });
    assert!(started.elapsed() < Duration::from_secs(5), "failed at the limit, not at the timeout");
}

#[test]
fn a_compressed_answer_that_inflates_past_the_limit_fails_its_call_alone() {
    use iip::proto::client::{ClientConnection, ClientEvent};
    use iip::proto::extensions::{BodyCodec, Codec};
    let codec = BodyCodec::new(Codec::Zstd, 0, usize::MAX);
    let mut core = ClientConnection::new(FrameLimits::default());
    core.set_extensions(Some(codec), false, false);
    core.set_max_answer(LIMIT);
    let bomb_id = core.request(0, "/bomb", Bytes::from_static(b"x")).unwrap();
    let next_id = core.request(0, "/echo", Bytes::from_static(b"y")).unwrap();
    let bomb = codec.seal(&vec![0u8; 4 * LIMIT]);
    assert!(bomb.len() < 4096, "a few KB on the wire");
    let event = core.receive(Frame::new(Status::ResponseWhole, &b"/bomb"[..], 0, bomb)).unwrap();
    assert_eq!(event, Some(ClientEvent::AnswerTooLarge { id: bomb_id, limit: LIMIT }));
    let event = core.receive(Frame::new(Status::ResponseWhole, &b"/echo"[..], 0, codec.seal(b"y"))).unwrap();
    assert!(matches!(event, Some(ClientEvent::Response { id, complete: true, .. }) if id == next_id), "{event:?}");
}
