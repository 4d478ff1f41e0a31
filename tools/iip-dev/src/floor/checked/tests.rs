use super::*;
use crate::floor::tests::{answers, frames, request};
use iip::Status;

/// A connection of the checked echo whose handler answers with the body,
/// or panics on the body `panic`; and its route's statistics.
fn connection(config: ServerConfig) -> (CheckedEcho, Arc<RouteStats>) {
    let stats = ServerStats::new([Bytes::from_static(ECHO_ROUTE)]);
    let route = stats.route(ECHO_ROUTE).expect("the echo route").clone();
    let handler: EchoHandler = Arc::new(|body: Bytes| {
        assert!(&body[..] != b"panic", "the handler was asked to panic");
        body
    });
    (CheckedEcho::new(config, handler, route.clone()), route)
}

fn frame(status: Status, path: &'static str, channel: u32, body: &[u8]) -> Frame {
    Frame::new(status, Bytes::from_static(path.as_bytes()), channel, body.to_vec())
}

/// Feeds `list` as one read: the answers, and the first frame's outcome
/// that was not to go on (a close, or why the connection closes).
fn feed(echo: &mut CheckedEcho, list: &[Frame]) -> (Vec<Frame>, Option<Result<(), CheckedClose>>) {
    let mut output = BytesMut::new();
    let mut clock = latency_now();
    let mut end = None;
    for frame in list {
        match echo.on_frame(frame.clone(), &mut output, clock) {
            Ok(Some(ended)) => clock = ended,
            Ok(None) => {
                end = Some(Ok(()));
                break;
            }
            Err(error) => {
                end = Some(Err(error));
                break;
            }
        }
    }
    echo.end_of_read(&mut output);
    (answers(&mut output), end)
}

/// The bodies of the messages `frames` carry, each chunked one put together.
fn messages(frames: &[Frame]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut body = Vec::new();
    for frame in frames {
        body.extend_from_slice(&frame.data);
        if matches!(frame.status, Status::ResponseWhole | Status::ResponseLast) {
            messages.push(std::mem::take(&mut body));
        }
    }
    messages
}

fn code(answer: &Frame) -> Option<i64> {
    ErrorAnswer::parse(&answer.data).map(|a| a.code)
}

#[test]
fn answers_requests_in_order_on_their_route_and_records_them() {
    let (mut echo, route) = connection(ServerConfig::default());
    let list = [request("/echo?x=1", 0, b"one"), request("/echo", 0, b"two"), request("/nowhere", 0, b"{}")];
    let (answers, end) = feed(&mut echo, &list);
    assert!(end.is_none());
    let seen: Vec<(&[u8], &[u8])> = answers.iter().map(|a| (&a.path[..], &a.data[..])).collect();
    assert_eq!(seen[..2], [(&b"/echo"[..], &b"one"[..]), (&b"/echo"[..], &b"two"[..])], "[MSG-10]: no query");
    assert_eq!(code(&answers[2]), Some(ErrorCode::HandleError.value()), "[ANSWER-2]");
    let counts = route.count.snapshot();
    assert_eq!((counts.whole_received, counts.whole_sent), (2, 2), "reported after the read");
    assert_eq!(counts.bytes_received, frames(&list[..2]).len() as u64, "[SYS-8]: whole frames");
    assert_eq!(counts.bytes_sent, (2 * (5 + 10) + 6) as u64);
    assert_eq!(route.measure.totals().0, 2, "both measured");
}

#[test]
fn chunked_requests_go_through_the_core_and_are_answered_in_order() {
    let mut config = {
        let mut cfg = ServerConfig::default();
        cfg.max_message = 5;
        cfg
    };
    config.frame_limits.max_data = 4;
    let (mut echo, route) = connection(config);
    let list = [
        frame(Status::RequestFirst, "/echo", 0, b"ab"),
        frame(Status::RequestLast, "/echo", 0, b"cde"),
        frame(Status::RequestFirst, "/echo", 0, b"abc"),
        frame(Status::RequestLast, "/echo", 0, b"def"),
        request("/echo", 0, b"after"),
    ];
    let (answers, end) = feed(&mut echo, &list);
    assert!(end.is_none());
    assert_eq!(
        answers[..2].iter().map(|a| a.status).collect::<Vec<_>>(),
        [Status::ResponseFirst, Status::ResponseLast]
    );
    let messages = messages(&answers);
    assert_eq!(messages[0], b"abcde", "[MSG-11]: chunked within the data limit");
    assert_eq!(ErrorAnswer::parse(&messages[1]).map(|a| a.code), Some(ErrorCode::RequestTooLarge.value()), "[MSG-8]");
    assert_eq!(messages[2], b"after", "the connection goes on");
    let counts = route.count.snapshot();
    assert_eq!((counts.whole_received, counts.packets_received, counts.packets_sent), (2, 3, 4));
}

#[test]
fn channels_are_granted_by_the_core_and_a_broken_rule_closes() {
    let (mut echo, _) = connection(ServerConfig::default());
    let (answers, _) = feed(&mut echo, &[request("/sys/new_channel", 0, b"{}"), request("/echo", 1, b"on 1")]);
    assert_eq!(answers[0].data, iip::wire::answer::channel_granted_body(1));
    assert_eq!((answers[1].channel, &answers[1].data[..]), (1, &b"on 1"[..]));
    let (answers, end) = feed(&mut echo, &[request("/echo", 1, b"still"), request("/echo", 2, b"none")]);
    assert_eq!(answers.len(), 1, "the answers before the close are kept");
    assert!(matches!(end, Some(Err(CheckedClose::Protocol(ProtocolError::UnknownChannel { channel: 2 })))), "[CHAN-6]");
}

#[test]
fn a_panicking_handler_is_answered_104_and_a_close_frame_ends_after_the_answers_before_it() {
    let (mut echo, _) = connection(ServerConfig::default());
    let list = [request("/echo", 0, b"panic"), request("/echo", 0, b"next"), frame(Status::Close, "", 0, b"")];
    let (answers, end) = feed(&mut echo, &list);
    assert_eq!(code(&answers[0]), Some(ErrorCode::Unknown.value()), "[ANSWER-11]");
    assert_eq!(&answers[1].data[..], b"next");
    assert!(matches!(end, Some(Ok(()))));
}

#[tokio::test]
async fn serves_a_request_split_across_writes_and_closes_on_a_broken_frame() {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve_checked_iip(listener));
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = frames(&[request("/echo?q", 0, b"split")]);
    let (first, second) = request.split_at(7);
    stream.write_all(first).await.expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    stream.write_all(second).await.expect("write");
    let mut expected = frames(&[Frame::new(Status::ResponseWhole, Bytes::from_static(b"/echo"), 0, b"split".to_vec())]);
    let mut answer = vec![0; expected.len()];
    stream.read_exact(&mut answer).await.expect("the answer");
    assert_eq!(answer, expected.split().to_vec());
    stream.write_all(&[9, b'/', 0]).await.expect("write");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(_)) | Ok(Err(_))), "the connection closes: {read:?}");
    let mut decoder = iip::FrameDecoder::new(iip::FrameLimits::default());
    let mut rest = BytesMut::from(&rest[..]);
    let close = decoder.decode(&mut rest).ok().flatten();
    assert_eq!(close.map(|f| f.status), Some(Status::Close), "a close frame names the broken rule");
}
