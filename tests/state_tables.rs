//! The spec's tables are the code's tables: each is parsed from the markdown
//! and checked row by row — and, for the state machines, pair by pair: a
//! transition with no row must be refused by the sans-IO core.

use std::path::PathBuf;

use bytes::Bytes;
use iip::conformance::spec::{table, Table};
use iip::proto::client::ClientConnection;
use iip::proto::message::{position_name, transition, MessageState};
use iip::proto::server::{ServerConfig, ServerConnection, ServerEvent};
use iip::wire::answer::ErrorCode;
use iip::wire::frame::{DEFAULT_MAX_DATA, DEFAULT_MAX_PATH};
use iip::{Frame, FrameLimits, MessageKind, Position, Sender, Status};

fn spec_table(chapter: &str, name: &str) -> Table {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec").join(chapter);
    table(&std::fs::read_to_string(&path).unwrap(), name).unwrap()
}

#[test]
fn status_table_matches_status_type() {
    let t = spec_table("03-status.md", "status");
    assert_eq!(t.rows.len(), Status::ALL.len(), "one row per status value");
    for row in &t.rows {
        let status = Status::from_byte(row[0].parse().unwrap()).unwrap();
        let sender = match row[1].as_str() {
            "client" => Sender::Client,
            "server" => Sender::Server,
            "either" => Sender::Either,
            other => panic!("unknown sender {other}"),
        };
        assert_eq!(status.sender(), sender, "sender of {status}");
        let kind = match row[2].as_str() {
            "request" => Some(MessageKind::Request),
            "response" => Some(MessageKind::Response),
            _ => None,
        };
        assert_eq!(status.message_kind(), kind, "kind of {status}");
        assert_eq!(status.position().map(position_name).unwrap_or("-"), row[3], "position of {status}");
    }
}

#[test]
fn error_code_table_matches_error_codes() {
    let t = spec_table("10-error-answers.md", "error-codes");
    assert_eq!(t.rows.len(), ErrorCode::ALL.len());
    for (row, code) in t.rows.iter().zip(ErrorCode::ALL) {
        assert_eq!(row[0].parse::<i64>().unwrap(), code.value());
        assert_eq!(row[1], code.name());
    }
}

#[test]
fn limits_table_matches_defaults() {
    let t = spec_table("04-limits.md", "limits");
    let value = |name: &str| -> u64 {
        let row = t.rows.iter().find(|r| r[0] == name).unwrap();
        row[1].split_whitespace().next().unwrap().trim_matches('`').parse().unwrap()
    };
    assert_eq!(value("max_path"), DEFAULT_MAX_PATH as u64);
    assert_eq!(value("max_data"), u64::from(DEFAULT_MAX_DATA));
}

fn state_named(name: &str) -> MessageState {
    match name {
        "idle" => MessageState::Idle,
        "open" => MessageState::Open,
        other => panic!("unknown state {other}"),
    }
}

const POSITIONS: [Position; 4] = [Position::FirstMore, Position::Whole, Position::ContinueMore, Position::Last];

/// Puts a server core's channel 0 into `state`, then feeds a request frame
/// at `position`; returns whether it was accepted and the state after.
fn server_step(state: MessageState, position: Position) -> (bool, Option<MessageState>) {
    let mut core = ServerConnection::new(ServerConfig::default());
    let frame = |p| {
        Frame::new(Status::message(MessageKind::Request, p), Bytes::from_static(b"/echo"), 0, Bytes::from_static(b"x"))
    };
    if state == MessageState::Open {
        core.receive(frame(Position::FirstMore)).unwrap();
    }
    let accepted = core.receive(frame(position)).is_ok();
    (accepted, core.message_state(0).filter(|_| accepted))
}

/// The same for a client core receiving response frames.
fn client_step(state: MessageState, position: Position) -> bool {
    let mut core = ClientConnection::new(FrameLimits::default());
    core.request(0, "/echo", Bytes::from_static(b"x")).unwrap();
    core.request(0, "/echo", Bytes::from_static(b"y")).unwrap();
    let frame = |p| {
        Frame::new(Status::message(MessageKind::Response, p), Bytes::from_static(b"/echo"), 0, Bytes::from_static(b"r"))
    };
    if state == MessageState::Open {
        core.receive(frame(Position::FirstMore)).unwrap();
    }
    core.receive(frame(position)).is_ok()
}

#[test]
fn message_transitions_match_the_table_pair_by_pair() {
    let t = spec_table("07-messages.md", "message-transitions");
    assert!(!t.rows.is_empty());
    for state in [MessageState::Idle, MessageState::Open] {
        for position in POSITIONS {
            let row = t.rows.iter().find(|r| state_named(&r[0]) == state && r[1] == position_name(position));
            let expected = row.map(|r| (state_named(&r[2]), r[3].clone()));
            let actual = transition(state, position).map(|(next, step)| (next, step.name().to_string()));
            assert_eq!(actual, expected, "transition function, {state} + {}", position_name(position));
            let (accepted, after) = server_step(state, position);
            assert_eq!(accepted, expected.is_some(), "server core, {state} + {}", position_name(position));
            assert_eq!(
                after,
                expected.as_ref().map(|e| e.0),
                "server core state after {state} + {}",
                position_name(position)
            );
            assert_eq!(
                client_step(state, position),
                expected.is_some(),
                "client core, {state} + {}",
                position_name(position)
            );
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelState {
    Absent,
    Open,
    Deleting,
}

fn channel_state_named(name: &str) -> ChannelState {
    match name {
        "absent" => ChannelState::Absent,
        "open" => ChannelState::Open,
        "deleting" => ChannelState::Deleting,
        other => panic!("unknown channel state {other}"),
    }
}

fn observe(core: &ServerConnection, id: u32) -> ChannelState {
    if core.is_open(id) {
        ChannelState::Open
    } else if core.channel_ids().contains(&id) {
        ChannelState::Deleting
    } else {
        ChannelState::Absent
    }
}

fn request(path: &'static str, channel: u32) -> Frame {
    Frame::new(Status::RequestWhole, Bytes::from_static(path.as_bytes()), channel, Bytes::from_static(b"{}"))
}

/// A core with channel `id` in `state`, and the seq of the request that
/// holds a deleting channel's answer back.
fn core_in(state: ChannelState, id: u32) -> (ServerConnection, Option<u64>) {
    let mut core = ServerConnection::new(ServerConfig::default());
    if id != 0 && state != ChannelState::Absent {
        core.receive(request("/sys/new_channel", 0)).unwrap();
    }
    let mut held = None;
    if state == ChannelState::Deleting {
        if let Ok(Some(ServerEvent::Request(r))) = core.receive(request("/echo", id)) {
            held = Some(r.seq);
        }
        core.receive(request("/sys/delete_channel", id)).unwrap();
    }
    assert_eq!(observe(&core, id), state, "set-up of {state:?}");
    (core, held)
}

/// Applies `event` to channel `id`: `None` when the event cannot happen in
/// that state, else whether the core accepted it and the state after.
fn apply(event: &str, state: ChannelState, id: u32) -> Option<(bool, ChannelState)> {
    let (mut core, held) = core_in(state, id);
    let accepted = match event {
        "new-channel-granted" => {
            core.receive(request("/sys/new_channel", 0)).unwrap();
            // Granting this id can only happen when it is free.
            if state != ChannelState::Absent {
                return None;
            }
            true
        }
        "request-frame" => core.receive(request("/echo", id)).is_ok(),
        "delete-request" if id != 0 => {
            // An unanswered request ahead of the delete keeps its answer queued,
            // so the state between request and answer can be seen.
            let ahead = core.receive(request("/echo", id)).is_ok();
            ahead && core.receive(request("/sys/delete_channel", id)).is_ok()
        }
        "delete-request-channel-0" if id == 0 => core.receive(request("/sys/delete_channel", 0)).is_ok(),
        "delete-answer-sent" => {
            let seq = held?;
            core.respond(id, seq, Bytes::from_static(b"{}"))
        }
        "connection-closed" if state != ChannelState::Absent => {
            core.receive(Frame::close(0)).unwrap();
            return Some((true, ChannelState::Absent));
        }
        _ => return None,
    };
    Some((accepted, observe(&core, id)))
}

#[test]
fn channel_lifecycle_matches_the_table_pair_by_pair() {
    let t = spec_table("06-channels.md", "channel-lifecycle");
    let events: Vec<String> = {
        let mut e: Vec<String> = t.rows.iter().map(|r| r[1].clone()).collect();
        e.dedup();
        e.sort();
        e.dedup();
        e
    };
    let mut checked = 0;
    for (state_name, state) in
        [("absent", ChannelState::Absent), ("open", ChannelState::Open), ("deleting", ChannelState::Deleting)]
    {
        for event in &events {
            for id in [0u32, 1] {
                if id == 0 && state != ChannelState::Open {
                    continue; // channel 0 is always open ([CHAN-1], [CHAN-8])
                }
                let Some((accepted, after)) = apply(event, state, id) else { continue };
                checked += 1;
                let row = t.rows.iter().find(|r| r[0] == state_name && &r[1] == event);
                match row {
                    Some(r) if r[3].starts_with("protocol error") => {
                        assert!(!accepted, "{state_name} + {event} on {id}: the table says protocol error");
                    }
                    Some(r) => {
                        assert!(accepted, "{state_name} + {event} on {id}: refused, the table allows it");
                        if event != "connection-closed" {
                            assert_eq!(after, channel_state_named(&r[2]), "{state_name} + {event} on {id}: next state");
                        }
                    }
                    None => assert!(!accepted, "{state_name} + {event} on {id}: accepted, but the table has no row"),
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} pairs checked");
}

/// [CHAN-11]: a channel in `deleting` keeps its id, and counts toward the
/// channel limit, until its delete answer has been queued; then the id is
/// granted again.
#[test]
fn a_deleting_channel_holds_its_id_and_counts_toward_the_limit() {
    let config = {
        let mut cfg = ServerConfig::default();
        cfg.max_channels = 2;
        cfg
    };
    let mut core = ServerConnection::new(config);
    let mut out = Vec::new();
    let granted = |core: &mut ServerConnection, out: &mut Vec<Frame>| {
        core.receive(request("/sys/new_channel", 0)).unwrap();
        out.extend(core.transmit());
        out.pop().map(|f| String::from_utf8_lossy(&f.data).into_owned()).unwrap_or_default()
    };
    assert_eq!(granted(&mut core, &mut out), r#"{"code":0,"channel_id":1}"#);
    // An unanswered request ahead of the delete holds its answer back.
    let Ok(Some(ServerEvent::Request(ahead))) = core.receive(request("/echo", 1)) else { panic!("no request") };
    core.receive(request("/sys/delete_channel", 1)).unwrap();
    assert_eq!(observe(&core, 1), ChannelState::Deleting);
    let refused = granted(&mut core, &mut out);
    assert!(refused.contains(&format!("\"code\":{}", ErrorCode::ChannelCreateLimited.value())), "{refused}");
    // The answer goes out, the delete answer behind it: the id is free.
    assert!(core.respond(1, ahead.seq, Bytes::from_static(b"done")));
    assert_eq!(observe(&core, 1), ChannelState::Absent);
    assert_eq!(granted(&mut core, &mut out), r#"{"code":0,"channel_id":1}"#);
}

/// Every item of the conformance profile table (chapter 12) is one the
/// suite reads, with an example value for its placeholder, and each item
/// the suite reads has its row.
#[test]
fn profile_items_table_matches_the_profile_parser() {
    use iip::conformance::Profile;
    let t = spec_table("12-conformance.md", "profile-items");
    let example = |item: &str| match item.split_once('=') {
        // Timeouts are declared in milliseconds, from 1000.
        Some((name, "N")) if name.ends_with("-ms") => format!("{name}=2000"),
        // Budgets are declared in bytes, from 8 MiB.
        Some((name, "N")) if name.ends_with("-budget") => format!("{name}=8388608"),
        Some((name, "N")) => format!("{name}=4"),
        Some((name, "NAME")) => format!("{name}=go-iip"),
        Some((name, "A+B")) => format!("{name}=ping+limits"),
        Some((name, "SCHEME:CREDENTIALS")) => format!("{name}=bearer:t0ken"),
        Some((name, "HOST:PORT")) => format!("{name}=127.0.0.1:9091"),
        Some((name, "K/N")) => format!("{name}=5/1000"),
        Some((_, value)) => panic!("profile item {item}: no example for the placeholder {value:?}"),
        None => item.to_string(),
    };
    // The items an item needs beside it, as its row says.
    let needs = |item: &str| match item.split('=').next() {
        Some("auth-required" | "auth-pace") => "auth=bearer:t0ken",
        Some("hello-timeout-ms") => "auth=bearer:t0ken,auth-required=127.0.0.1:9091",
        Some("server-budget") => "connection-budget=8388608",
        _ => "",
    };
    let mut names = Vec::new();
    for row in &t.rows {
        let item = row[0].trim_matches('`');
        let base = Profile::parse(needs(item)).expect("the items it needs");
        let profile = Profile::parse(&format!("{},{}", needs(item), example(item)));
        assert!(profile.is_ok(), "the profile item {item} of the table is refused: {profile:?}");
        assert_ne!(profile.unwrap(), base, "the profile item {item} changes nothing");
        if !needs(item).is_empty() {
            assert!(Profile::parse(&example(item)).is_err(), "{item} is taken without the items it needs");
        }
        names.push(item.split('=').next().unwrap_or(item).to_string());
    }
    for known in iip::conformance::PROFILE_ITEMS {
        assert!(names.iter().any(|n| n == known), "the profile item {known} has no row in chapter 12's table");
    }
    assert!(Profile::parse("no-such-item=1").is_err(), "an item outside the table is refused");
}

/// The registered metadata keys of chapter 14's `metadata-keys` table are
/// the ones the codec checks, in the table's order, and the value syntax
/// each row states is the one a block is held to: the table's lengths are
/// read from its text and their edges tried (`[EXT-21]`).
#[test]
fn metadata_keys_table_matches_the_codec() {
    use iip::proto::extensions::metadata::REGISTERED;
    use iip::proto::extensions::{Metadata, MetadataMap};
    let t = spec_table("14-extensions.md", "metadata-keys");
    let keys: Vec<&str> = t.rows.iter().map(|row| row[0].trim_matches('`')).collect();
    assert_eq!(keys, REGISTERED, "the table's keys and the codec's");
    let sent = |key: &str, value: String| {
        let map: MetadataMap = [(key.to_string(), value)].into_iter().collect();
        let mut block = bytes::BytesMut::new();
        map.encode(65_535, &mut block).is_ok() && Metadata::split(&block.freeze(), 65_535).is_ok()
    };
    for row in &t.rows {
        let (key, syntax) = (row[0].trim_matches('`'), row[1].as_str());
        // "1 to N bytes": the lengths 1 and N pass, 0 and N + 1 do not.
        if let Some(rest) = syntax.strip_prefix("1 to ") {
            let n: usize = rest.split_whitespace().next().unwrap().parse().unwrap();
            if rest.contains("bytes") {
                assert!(sent(key, "a".to_string()) && sent(key, "a".repeat(n)), "{key}: 1 and {n} bytes");
                assert!(!sent(key, String::new()) && !sent(key, "a".repeat(n + 1)), "{key}: 0 and {} bytes", n + 1);
            } else {
                // "1 to 10 digits … at most 4294967295"
                let most: u64 = syntax.rsplit(' ').next().unwrap().parse().unwrap();
                assert_eq!(most.to_string().len(), n, "{key}: the largest value has {n} digits");
                assert!(sent(key, "0".into()) && sent(key, most.to_string()), "{key}: 0 and {most}");
                assert!(
                    !sent(key, (most + 1).to_string()) && !sent(key, "01".into()),
                    "{key}: past {most}, a leading zero"
                );
            }
        } else {
            // A fixed length: "55 bytes: `00-`, …".
            let n: usize = syntax.split_whitespace().next().unwrap().parse().unwrap();
            let good = format!("00-{}-{}-01", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
            assert_eq!(good.len(), n, "{key}: the example has the table's length");
            assert!(sent(key, good.clone()), "{key}: {good}");
            assert!(!sent(key, good.replacen("4bf9", "4BF9", 1)), "{key}: upper-case hex");
            assert!(!sent(key, format!("{good}0")), "{key}: {} bytes", n + 1);
        }
    }
}
