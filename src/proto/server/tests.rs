use super::*;
use crate::wire::frame::FrameLimits;

fn req(status: u8, path: &'static [u8], channel: u32, data: &'static [u8]) -> Frame {
    Frame::new(Status::from_byte(status).unwrap(), Bytes::from_static(path), channel, Bytes::from_static(data))
}

fn sent(core: &mut ServerConnection) -> Vec<(u32, Vec<u8>)> {
    core.transmit().map(|f| (f.channel, f.data.to_vec())).collect()
}

#[test]
fn answers_go_out_in_request_order() {
    let mut core = ServerConnection::new(ServerConfig::default());
    let mut seqs = Vec::new();
    for body in [&b"a"[..], b"b", b"c"] {
        match core.receive(req(1, b"/echo?x=1", 0, body)).unwrap() {
            Some(ServerEvent::Request(r)) => {
                assert_eq!((&r.route[..], r.query.as_deref()), (&b"/echo"[..], Some(&b"x=1"[..])));
                seqs.push(r.seq)
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(core.respond(0, seqs[2], Bytes::from_static(b"C")));
    assert!(core.respond(0, seqs[1], Bytes::from_static(b"B")));
    assert!(sent(&mut core).is_empty());
    assert!(core.respond(0, seqs[0], Bytes::from_static(b"A")));
    assert_eq!(sent(&mut core), vec![(0, b"A".to_vec()), (0, b"B".to_vec()), (0, b"C".to_vec())]);
    assert!(!core.respond(0, seqs[0], Bytes::from_static(b"again")));
}

/// A core with no hello to wait for: requests may be direct from the first.
fn plain(config: ServerConfig) -> ServerConnection {
    let mut core = ServerConnection::new(config);
    core.set_handshake(Handshake::new(false, AuthPolicy::Off));
    core
}

fn direct<'a>(core: &'a mut ServerConnection, frame: &Frame) -> Direct<'a> {
    core.direct(frame).unwrap_or_else(|| panic!("not direct: {frame:?}"))
}

#[test]
fn a_direct_answer_is_the_frame_the_core_would_have_sent() {
    let limits = FrameLimits::default();
    let mut core = plain(ServerConfig::default());
    let mut out = BytesMut::new();
    for (seq, body) in [(0, &b"a"[..]), (1, b"")] {
        let frame = req(1, b"/echo?x=1", 0, b"q");
        // A guard dropped unspent takes no place: the request asked about
        // again gets the same one.
        let unspent = direct(&mut core, &frame);
        assert_eq!((unspent.channel(), unspent.seq()), (0, seq));
        drop(unspent);
        let guard = direct(&mut core, &frame);
        assert_eq!(guard.seq(), seq);
        let (route, _) = split_route(frame.path.clone());
        let answer = guard.answer(&route, Bytes::copy_from_slice(body), Some(&mut out));
        let expected =
            Frame::new(Status::ResponseWhole, &b"/echo"[..], 0, if body.is_empty() { &b"{}"[..] } else { body });
        assert_eq!(answer, DirectAnswer::Written { frames: 1, bytes: expected.encoded_len() });
        let mut wire = BytesMut::new();
        crate::wire::encode::encode_frame(&expected, &limits, &mut wire).unwrap();
        assert!(out.ends_with(&wire), "appended: {out:?}");
    }
    assert_eq!((core.queued_frames(), core.held(), core.unanswered()), (0, HeldBytes::default(), 0));
    // The channel's order goes on from the seqs the direct requests took.
    let Some(ServerEvent::Request(r)) = core.receive(req(1, b"/sys/x", 0, b"q")).unwrap() else { panic!() };
    assert_eq!(r.seq, 2);
}

#[test]
fn requests_that_are_not_direct_are_left_for_receive() {
    let codec_core = || {
        let mut core = plain(ServerConfig::default());
        core.hello_completed(false, Some(BodyCodec::new(crate::proto::extensions::Codec::Lz4, 64, 1 << 20)), None);
        core.hello_sent();
        core
    };
    let fresh_handshake = || {
        let mut core = ServerConnection::new(ServerConfig::default());
        core.set_handshake(Handshake::new(true, AuthPolicy::Off));
        core
    };
    let small = ServerConfig { max_message: 1, ..ServerConfig::default() };
    let cases: Vec<(&str, ServerConnection, Frame)> = vec![
        ("a chunk", plain(ServerConfig::default()), req(0, b"/echo", 0, b"q")),
        ("a /sys/ path", plain(ServerConfig::default()), req(1, b"/sys/new_channel", 0, b"{}")),
        ("an unknown channel", plain(ServerConfig::default()), req(1, b"/echo", 7, b"q")),
        ("a response status", plain(ServerConfig::default()), req(5, b"/echo", 0, b"q")),
        ("over the message limit", plain(small), req(1, b"/echo", 0, b"qq")),
        ("a body marker in force", codec_core(), req(1, b"/echo", 0, b"q")),
        ("before the first request decides the hello", fresh_handshake(), req(1, b"/echo", 0, b"q")),
    ];
    for (case, mut core, frame) in cases {
        assert!(core.direct(&frame).is_none(), "{case}");
    }
    // A channel with a request unanswered, and a connection with an answer unsent.
    let mut core = plain(ServerConfig::default());
    let Some(ServerEvent::Request(first)) = core.receive(req(1, b"/echo", 0, b"q")).unwrap() else { panic!() };
    assert!(core.direct(&req(1, b"/echo", 0, b"q")).is_none(), "behind a request waiting");
    core.respond(0, first.seq, Bytes::from_static(b"a"));
    assert!(core.direct(&req(1, b"/echo", 0, b"q")).is_none(), "behind an answer unsent");
    let _ = sent(&mut core);
    assert!(core.direct(&req(1, b"/echo", 0, b"q")).is_some());
}

#[test]
fn a_deferred_direct_request_keeps_its_place() {
    let mut core = plain(ServerConfig::default());
    let seq = direct(&mut core, &req(1, b"/slow", 0, b"abc")).defer(Bytes::from_static(b"/slow"), 3);
    assert_eq!((seq, core.held().handed_out, core.unanswered()), (0, 3, 1));
    // The next request on the channel waits behind it.
    let Some(ServerEvent::Request(second)) = core.receive(req(1, b"/fast", 0, b"q")).unwrap() else { panic!() };
    assert_eq!(second.seq, 1);
    assert!(core.respond(0, second.seq, Bytes::from_static(b"B")));
    assert!(sent(&mut core).is_empty());
    assert!(core.respond(0, seq, Bytes::from_static(b"A")));
    assert_eq!(sent(&mut core), vec![(0, b"A".to_vec()), (0, b"B".to_vec())]);
    assert_eq!(core.held(), HeldBytes::default());
}

#[test]
fn a_direct_answer_with_no_buffer_or_too_large_is_queued() {
    let config =
        ServerConfig { frame_limits: FrameLimits { max_data: 4, ..FrameLimits::default() }, ..ServerConfig::default() };
    let mut core = plain(config);
    let route = Bytes::from_static(b"/echo");
    let answer = direct(&mut core, &req(1, b"/echo", 0, b"q")).answer(&route, Bytes::from_static(b"A"), None);
    assert_eq!(answer, DirectAnswer::Queued);
    assert_eq!(sent(&mut core), vec![(0, b"A".to_vec())]);
    let mut out = BytesMut::new();
    let guard = direct(&mut core, &req(1, b"/echo", 0, b"q"));
    let answer = guard.answer(&route, Bytes::from_static(b"ABCDEF"), Some(&mut out));
    assert_eq!((answer, out.len()), (DirectAnswer::Queued, 0));
    let frames: Vec<Frame> = core.transmit().collect();
    let statuses: Vec<Status> = frames.iter().map(|f| f.status).collect();
    assert_eq!(statuses, vec![Status::ResponseFirst, Status::ResponseLast]);
    assert_eq!(core.unanswered(), 0);
}

#[test]
fn channels_open_delete_and_reuse() {
    let mut core = ServerConnection::new(ServerConfig::default());
    core.receive(req(1, b"/sys/new_channel", 0, b"{}")).unwrap();
    core.receive(req(1, b"/sys/new_channel", 0, b"{}")).unwrap();
    assert_eq!(
        sent(&mut core),
        vec![(0, br#"{"code":0,"channel_id":1}"#.to_vec()), (0, br#"{"code":0,"channel_id":2}"#.to_vec())]
    );
    core.receive(req(1, b"/sys/delete_channel", 1, b"{}")).unwrap();
    assert_eq!(sent(&mut core), vec![(1, br#"{"code":0}"#.to_vec())]);
    assert!(!core.is_open(1));
    core.receive(req(1, b"/sys/new_channel", 2, b"{}")).unwrap();
    assert_eq!(sent(&mut core), vec![(2, br#"{"code":0,"channel_id":1}"#.to_vec())]);
}

#[test]
fn chunked_request_over_the_limit_is_answered_110() {
    let config = ServerConfig { max_message: 4, ..ServerConfig::default() };
    let mut core = ServerConnection::new(config);
    assert_eq!(core.receive(req(0, b"/up", 0, b"abc")).unwrap(), None);
    assert_eq!(core.receive(req(2, b"/up", 0, b"de")).unwrap(), None);
    assert_eq!(core.receive(req(3, b"/up", 0, b"f")).unwrap(), None);
    let answers = sent(&mut core);
    assert_eq!(ErrorAnswer::parse(&answers[0].1).map(|a| a.code), Some(110));
}

#[test]
fn the_marker_byte_is_not_part_of_the_message_limit() {
    let config = ServerConfig { max_message: 4, ..ServerConfig::default() };
    let mut core = plain(config);
    core.hello_completed(false, Some(BodyCodec::new(crate::proto::extensions::Codec::Lz4, 64, 4)), None);
    core.hello_sent();
    // Marker and 4 bytes: a body of exactly the limit, handed on.
    let request = request_of(core.receive(req(1, b"/up", 0, b"\x00abcd")).unwrap());
    assert_eq!(&request.body[..], b"abcd");
    // Marker and 5 bytes: one byte past it.
    assert_eq!(core.receive(req(1, b"/up", 0, b"\x00abcde")).unwrap(), None);
    core.respond(0, request.seq, Bytes::from_static(b"ok"));
    let answers = sent(&mut core);
    assert_eq!(ErrorAnswer::parse(&answers[1].1[1..]).map(|a| a.code), Some(110), "{answers:?}");
}

fn request_of(event: Option<ServerEvent>) -> IncomingRequest {
    match event {
        Some(ServerEvent::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

#[test]
fn held_bytes_follow_a_request_to_its_answer_on_the_wire() {
    let mut core = ServerConnection::new(ServerConfig::default());
    core.receive(req(0, b"/up", 0, b"abcd")).unwrap();
    assert_eq!(core.held(), HeldBytes { assembling: 4, ..HeldBytes::default() });
    let r = request_of(core.receive(req(3, b"/up", 0, b"ef")).unwrap());
    let waiting = WAITING_REQUEST_COST;
    assert_eq!(core.held(), HeldBytes { handed_out: 6, waiting, ..HeldBytes::default() });
    core.respond(0, r.seq, Bytes::from_static(b"0123456789"));
    let frame_len = 1 + 3 + 1 + 8 + 10;
    assert_eq!(core.held(), HeldBytes { answers: frame_len, ..HeldBytes::default() });
    assert_eq!(core.held().outbound(), frame_len);
    let _ = core.transmit();
    assert_eq!(core.held().total(), 0);
}

#[test]
fn assembly_past_the_connection_budget_is_refused_and_released() {
    let config = ServerConfig { max_held_bytes: 10 + CHANNEL_COST, ..ServerConfig::default() };
    let mut core = ServerConnection::new(config);
    core.receive(req(1, b"/sys/new_channel", 0, b"{}")).unwrap();
    let _ = sent(&mut core);
    core.receive(req(0, b"/a", 0, b"123456")).unwrap();
    // Channel 1 starts a message that would take assembly to 12 bytes.
    core.receive(req(0, b"/b", 1, b"123456")).unwrap();
    assert_eq!(core.held().assembling, 6, "the crossing message holds nothing");
    core.receive(req(3, b"/b", 1, b"7")).unwrap();
    let answers = sent(&mut core);
    assert_eq!(answers.len(), 1);
    assert_eq!(ErrorAnswer::parse(&answers[0].1).map(|a| a.code), Some(110));
    // Channel 0's message, inside the budget, completes.
    let r = request_of(core.receive(req(3, b"/a", 0, b"78")).unwrap());
    assert_eq!((&r.body[..], core.held().assembling), (&b"12345678"[..], 0));
}

#[test]
fn bodies_in_handlers_count_toward_the_budget_for_assembly() {
    let config = ServerConfig { max_held_bytes: 10 + WAITING_REQUEST_COST, ..ServerConfig::default() };
    let mut core = ServerConnection::new(config);
    let first = request_of(core.receive(req(1, b"/a", 0, b"123456")).unwrap());
    core.receive(req(0, b"/b", 0, b"12345")).unwrap();
    let waiting = WAITING_REQUEST_COST;
    assert_eq!(core.held(), HeldBytes { handed_out: 6, waiting, ..HeldBytes::default() });
    core.receive(req(3, b"/b", 0, b"6")).unwrap();
    core.respond(0, first.seq, Bytes::from_static(b"ok"));
    let answers = sent(&mut core);
    assert_eq!(ErrorAnswer::parse(&answers[1].1).map(|a| a.code), Some(110));
}

#[test]
fn a_full_server_refuses_growing_messages_but_not_whole_ones() {
    let mut core = ServerConnection::new(ServerConfig::default());
    core.set_server_room(0);
    core.receive(req(0, b"/a", 0, b"123")).unwrap();
    core.receive(req(3, b"/a", 0, b"4")).unwrap();
    assert_eq!(ErrorAnswer::parse(&sent(&mut core)[0].1).map(|a| a.code), Some(110));
    assert_eq!(core.held().total(), 0);
    let r = request_of(core.receive(req(1, b"/a", 0, b"whole")).unwrap());
    assert_eq!(&r.body[..], b"whole");
}

#[test]
fn channels_and_waiting_requests_count_and_channels_past_the_budget_are_refused() {
    let config = ServerConfig { max_held_bytes: 3 * CHANNEL_COST - 1, ..ServerConfig::default() };
    let mut core = ServerConnection::new(config);
    let grants: Vec<_> = (0..3)
        .map(|_| {
            core.receive(req(1, b"/sys/new_channel", 0, b"{}")).unwrap();
            ErrorAnswer::parse(&sent(&mut core)[0].1).map(|a| a.code)
        })
        .collect();
    assert_eq!(grants, [None, None, Some(106)], "the third channel passes the budget");
    assert_eq!(core.held(), HeldBytes { channels: 2 * CHANNEL_COST, ..HeldBytes::default() });
    let r = request_of(core.receive(req(1, b"/slow", 1, b"x")).unwrap());
    assert_eq!(core.held().outbound(), 1 + WAITING_REQUEST_COST);
    core.respond(r.channel, r.seq, Bytes::from_static(b"y"));
    let _ = sent(&mut core);
    core.receive(req(1, b"/sys/delete_channel", 2, b"{}")).unwrap();
    let _ = sent(&mut core);
    assert_eq!(core.held(), HeldBytes { channels: CHANNEL_COST, ..HeldBytes::default() });
    core.set_server_room(CHANNEL_COST - 1);
    core.receive(req(1, b"/sys/new_channel", 0, b"{}")).unwrap();
    assert_eq!(ErrorAnswer::parse(&sent(&mut core)[0].1).map(|a| a.code), Some(106), "nor past the server's");
}

#[test]
fn a_hello_past_its_limit_is_answered_110_and_the_connection_stays_plain() {
    use crate::proto::extensions::MAX_HELLO_BODY;
    let mut core = ServerConnection::new(ServerConfig::default());
    let half = Bytes::from(vec![b' '; MAX_HELLO_BODY / 2 + 1]);
    for status in [Status::RequestFirst, Status::RequestLast] {
        core.receive(Frame::new(status, &b"/sys/hello"[..], 0, half.clone())).unwrap();
        assert!(core.held().assembling <= MAX_HELLO_BODY / 2 + 1, "nothing past the limit is held");
    }
    assert_eq!(ErrorAnswer::parse(&sent(&mut core)[0].1).map(|a| a.code), Some(110));
    core.hello_sent();
    let r = request_of(core.receive(req(1, b"/echo", 0, b"plain")).unwrap());
    assert_eq!(&r.body[..], b"plain");
}

#[test]
fn a_request_before_the_hello_answer_is_sent_breaks_ext_4() {
    let hello = || req(1, b"/sys/hello", 0, br#"{"revision":1}"#);
    // The answer is made and handed out, but the shell has not said it
    // was sent with nothing of the client's left unread.
    let mut core = ServerConnection::new(ServerConfig::default());
    let seq = request_of(core.receive(hello()).unwrap()).seq;
    core.respond(0, seq, Bytes::from_static(b"{}"));
    core.hello_completed(false, None, None);
    assert_eq!(sent(&mut core).len(), 1);
    let err = core.receive(req(1, b"/echo", 0, b"early")).unwrap_err();
    assert_eq!(err.requirement(), "EXT-4");
    // Said sent: the next request is served. Before the answer left the
    // outbox, saying so changes nothing.
    let mut core = ServerConnection::new(ServerConfig::default());
    let seq = request_of(core.receive(hello()).unwrap()).seq;
    core.respond(0, seq, Bytes::from_static(b"{}"));
    core.hello_completed(false, None, None);
    core.hello_sent();
    assert!(core.receive(req(1, b"/echo", 0, b"early")).is_err());
    let mut core = ServerConnection::new(ServerConfig::default());
    let seq = request_of(core.receive(hello()).unwrap()).seq;
    core.respond(0, seq, Bytes::from_static(b"{}"));
    core.hello_completed(false, None, None);
    let _ = sent(&mut core);
    core.hello_sent();
    assert_eq!(&request_of(core.receive(req(1, b"/echo", 0, b"later")).unwrap()).body[..], b"later");
}

#[test]
fn without_authentication_a_message_is_refused_at_its_first_frame() {
    use crate::proto::extensions::{AuthPolicy, Handshake};
    let mut core = ServerConnection::new(ServerConfig::default());
    core.set_handshake(Handshake::new(true, AuthPolicy::Required));
    core.receive(req(0, b"/upload", 0, b"0123456789")).unwrap();
    assert_eq!(core.held().assembling, 0, "nothing of it is held");
    assert_eq!(ErrorAnswer::parse(&sent(&mut core)[0].1).map(|a| a.code), Some(112));
    assert_eq!(core.close_requested(), Some("[EXT-9] unauthenticated"));
}

#[test]
fn a_request_with_a_well_formed_block_is_direct_and_a_malformed_one_is_refused() {
    let metadata_core = || {
        let mut core = plain(ServerConfig::default());
        core.hello_completed(false, None, Some(64));
        core.hello_sent();
        core
    };
    let mut core = metadata_core();
    let block = b"\x00\x0c\x08deadline\x00\x01\x39hi";
    let frame = req(1, b"/echo", 0, block);
    let mut direct = core.direct(&frame).expect("a whole request with a block");
    assert_eq!(direct.block_len(), 14);
    let (metadata, body) = direct.split_body(frame.data.clone());
    assert_eq!(metadata.and_then(|m| m.deadline()), Some(std::time::Duration::from_millis(9)));
    assert_eq!(&body[..], b"hi");
    let _ = direct.defer(Bytes::from_static(b"/echo"), 2);
    // Keys out of order: not direct, and `receive` closes ([EXT-20]).
    let mut core = metadata_core();
    let bad = req(1, b"/echo", 0, b"\x00\x08\x01b\x00\x00\x01a\x00\x00x");
    assert!(core.direct(&bad).is_none());
    assert_eq!(core.receive(bad).map_err(|e| e.requirement()), Err("EXT-20"));
    // A block past max_size is refused the same way.
    let mut core = metadata_core();
    let long = Frame::new(Status::RequestWhole, &b"/echo"[..], 0, [&[0u8, 65][..], &[b'a'; 65][..]].concat());
    assert_eq!(core.receive(long).map_err(|e| e.requirement()), Err("EXT-20"));
    // What the handler is handed out counts the block too ([RES-1]).
    let mut core = metadata_core();
    let Some(ServerEvent::Request(r)) = core.receive(req(1, b"/echo", 0, block)).unwrap() else { panic!() };
    assert_eq!((&r.body[..], r.metadata.request_id()), (&b"hi"[..], None));
    assert_eq!(core.held().handed_out, 2 + 12);
}
