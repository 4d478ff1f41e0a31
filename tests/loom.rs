//! loom models of the client multiplexer ([`iip::client::Mux`]), the code
//! the real client runs, built on loom's sync types under `--cfg loom`:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test --test loom --release
//! ```
//!
//! The server side of each model is the sans-IO server core, pumped by a
//! thread of the model.
#![cfg(loom)]

use bytes::Bytes;
use iip::client::{ClientError, Delivery, Inbox, Mux};
use iip::proto::server::{ServerConfig, ServerConnection, ServerEvent};
use iip::{Frame, FrameCodec, FrameLimits};
use loom::sync::Arc;
use loom::thread;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// Moves the client's frames through the server core and the answers back:
/// every request is answered with its body.
fn pump(mux: &Mux, server: &mut ServerConnection) {
    let mut frames = Vec::new();
    mux.take_outgoing(&mut frames);
    for frame in frames {
        if let Ok(Some(ServerEvent::Request(r))) = server.receive(frame) {
            server.respond(r.channel, r.seq, r.body);
        }
    }
    let mut answers = Vec::new();
    answers.extend(server.transmit());
    for frame in answers {
        mux.deliver(frame).expect("the server core's answers follow the protocol");
    }
}

/// A thread that pumps once through a fresh server core.
fn spawn_wire(mux: &Arc<Mux>) -> thread::JoinHandle<()> {
    let mux = mux.clone();
    thread::spawn(move || pump(&mux, &mut ServerConnection::new(ServerConfig::default())))
}

/// Queues an `/echo` call with `body` on channel 0.
fn echo(mux: &Arc<Mux>, body: &'static [u8]) -> Inbox {
    Mux::call(mux, 0, Bytes::from_static(b"/echo"), Bytes::from_static(body)).unwrap()
}

fn opened(delivery: Option<Delivery>) -> u32 {
    match delivery {
        Some(Delivery::Opened(id)) => id,
        other => panic!("expected a grant, got {other:?}"),
    }
}

/// Channel id allocation and reuse under a concurrent open and delete:
/// whichever reaches the server first, the granted id is open on both sides
/// and both sides agree on the set of open channels ([CHAN-4], [CHAN-7]).
#[test]
fn open_racing_delete_keeps_ids_consistent() {
    model(|| {
        let mux = Mux::new(FrameLimits::default());
        let mut server = ServerConnection::new(ServerConfig::default());
        let first = Mux::open_channel(&mux, 0).unwrap();
        pump(&mux, &mut server);
        assert_eq!(opened(loom::future::block_on(first.next())), 1);

        let opener = {
            let mux = mux.clone();
            thread::spawn(move || Mux::open_channel(&mux, 0).unwrap())
        };
        let deleter = {
            let mux = mux.clone();
            thread::spawn(move || mux.delete_channel(1).unwrap())
        };
        deleter.join().unwrap();
        let inbox = opener.join().unwrap();
        pump(&mux, &mut server);
        let granted = opened(loom::future::block_on(inbox.next()));
        assert!(granted == 1 || granted == 2, "granted {granted}");
        assert!(server.is_open(granted));
        assert_eq!(server.channel_ids(), vec![0, granted], "the deleted channel is gone on the server");
        assert_eq!(mux.waiting(), 0);
    });
}

/// A caller that gives up races the delivery of pipelined answers: the next
/// caller still gets its own answer, and nothing stays registered ([ORDER-5]).
#[test]
fn cancelled_caller_does_not_steal_the_next_answer() {
    model(|| {
        let mux = Mux::new(FrameLimits::default());
        let first = echo(&mux, b"first");
        let second = echo(&mux, b"second");
        let canceller = thread::spawn(move || drop(first));
        let wire = spawn_wire(&mux);
        let answer = loom::future::block_on(second.body());
        assert_eq!(answer, Ok(Bytes::from_static(b"second")));
        canceller.join().unwrap();
        wire.join().unwrap();
        assert_eq!(mux.waiting(), 0, "a cancelled call left its slot behind");
    });
}

/// Close races calls in flight: every caller gets its answer or an error,
/// none waits for ever, nothing stays registered, and later calls are
/// refused ([CLOSE-5]).
#[test]
fn close_racing_calls_leaves_no_caller_waiting() {
    model(|| {
        let mux = Mux::new(FrameLimits::default());
        let a = echo(&mux, b"a");
        let b = echo(&mux, b"b");
        let wire = spawn_wire(&mux);
        let closer = {
            let mux = mux.clone();
            thread::spawn(move || mux.close("shutting down"))
        };
        for (inbox, body) in [(a, &b"a"[..]), (b, &b"b"[..])] {
            match loom::future::block_on(inbox.body()) {
                Ok(got) => assert_eq!(&got[..], body),
                Err(ClientError::Closed { .. }) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        wire.join().unwrap();
        closer.join().unwrap();
        assert_eq!(mux.waiting(), 0);
        assert!(matches!(
            Mux::call(&mux, 0, Bytes::from_static(b"/echo"), Bytes::from_static(b"c")),
            Err(ClientError::Closed { .. })
        ));
    });
}

/// Two callers send chunked messages on the same channel while the writer
/// drains: each message's frames stay together and in order ([MSG-5]), the
/// bytes decode back into the same frames, and each caller gets its own body.
#[test]
fn concurrent_chunked_sends_never_interleave() {
    model(|| {
        let limits = {
            let mut cfg = FrameLimits::default();
            cfg.max_path = 64;
            cfg.max_data = 2;
            cfg
        };
        let mux = Mux::new(limits);
        let sender = |body: &'static [u8]| {
            let mux = mux.clone();
            thread::spawn(move || echo(&mux, body))
        };
        let one = sender(b"11111");
        let two = sender(b"22222");
        let written = Arc::new(loom::sync::Mutex::new(Vec::<Frame>::new()));
        let writer = {
            let (mux, written) = (mux.clone(), written.clone());
            thread::spawn(move || {
                let mut frames = Vec::new();
                mux.take_outgoing(&mut frames);
                written.lock().unwrap().extend(frames);
            })
        };
        let (one, two) = (one.join().unwrap(), two.join().unwrap());
        writer.join().unwrap();
        let mut frames = std::mem::take(&mut *written.lock().unwrap());
        mux.take_outgoing(&mut frames);
        // The bytes on the wire decode into exactly these frames.
        let mut codec = FrameCodec::new(limits);
        let mut bytes = bytes::BytesMut::new();
        for frame in &frames {
            tokio_util::codec::Encoder::encode(&mut codec, frame, &mut bytes).unwrap();
        }
        let mut decoded = Vec::new();
        while let Some(frame) = tokio_util::codec::Decoder::decode(&mut codec, &mut bytes).unwrap() {
            decoded.push(frame);
        }
        assert_eq!(decoded, frames);
        // The server core accepts the stream (no interleaved messages) and answers.
        let mut server = ServerConnection::new({
            let mut cfg = ServerConfig::default();
            cfg.frame_limits = limits;
            cfg
        });
        for frame in decoded {
            match server.receive(frame) {
                Ok(Some(ServerEvent::Request(r))) => assert!(server.respond(r.channel, r.seq, r.body)),
                Ok(_) => {}
                Err(err) => panic!("messages interleaved on the wire: {err}"),
            }
        }
        let mut answers = Vec::new();
        answers.extend(server.transmit());
        for frame in answers {
            mux.deliver(frame).unwrap();
        }
        assert_eq!(loom::future::block_on(one.body()), Ok(Bytes::from_static(b"11111")));
        assert_eq!(loom::future::block_on(two.body()), Ok(Bytes::from_static(b"22222")));
    });
}
