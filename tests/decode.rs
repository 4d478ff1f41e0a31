//! `iip decode` reads captures, hex and raw bytes with the crate's decoder:
//! a pcap written here (a request cut across two TCP segments, sent out of
//! order and retransmitted, its answer, and a second connection that
//! breaks the framing) comes out as the frames that were sent, per
//! direction, with the framing error citing its requirement; a frame
//! vector given as xxd hex reads as its sidecar says.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use etherparse::PacketBuilder;
use iip::wire::encode::encode_frame;
use iip::wire::frame::{Frame, FrameLimits};
use iip::wire::status::Status;

const IIP: &str = env!("CARGO_BIN_EXE_iip");

fn wire(frame: Frame) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    encode_frame(&frame, &FrameLimits::default(), &mut out).unwrap();
    out.to_vec()
}

/// An Ethernet/IPv4/TCP packet from `from` to `to` (last address octet and port).
fn packet(from: (u8, u16), to: (u8, u16), seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, from.0], [2, 0, 0, 0, 0, to.0])
        .ipv4([127, 0, 0, from.0], [127, 0, 0, to.0], 64)
        .tcp(from.1, to.1, seq, 65535);
    let builder = if syn { builder.syn() } else { builder.ack(1) };
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).unwrap();
    out
}

fn decode(args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(IIP)
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_capture_reads_as_the_frames_sent_per_direction() {
    let request = wire(Frame::new(Status::RequestWhole, &b"/echo"[..], 0, &b"split across segments"[..]));
    let answer = wire(Frame::new(Status::ResponseWhole, &b"/echo"[..], 0, &b"split across segments"[..]));
    let (client, server, other) = ((1, 40000), (2, 9090), (3, 40001));
    let (head, tail) = request.split_at(9);
    let packets = [
        packet(client, server, 1000, true, &[]),
        packet(server, client, 5000, true, &[]),
        // The tail before the head, then the head twice (a retransmission).
        packet(client, server, 1001 + head.len() as u32, false, tail),
        packet(client, server, 1001, false, head),
        packet(client, server, 1001, false, head),
        packet(server, client, 5001, false, &answer),
        // Another connection sends status 13: a framing error.
        packet(other, server, 7000, true, &[]),
        packet(other, server, 7001, false, &[13, b'/', 0, 0, 0, 0, 0, 0, 0, 0, 1, b'x']),
    ];
    let mut capture = Vec::new();
    {
        let mut writer = pcap_file::pcap::PcapWriter::new(&mut capture).unwrap();
        for (i, data) in packets.iter().enumerate() {
            let at = Duration::from_millis(i as u64);
            writer.write_packet(&pcap_file::pcap::PcapPacket::new(at, data.len() as u32, data)).unwrap();
        }
    }
    let out = decode(&["-", "--format", "capture", "--json"], &capture);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = report["streams"].as_array().unwrap();
    let labels: Vec<&str> = streams.iter().map(|s| s["stream"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        ["127.0.0.1:40000 → 127.0.0.2:9090", "127.0.0.2:9090 → 127.0.0.1:40000", "127.0.0.3:40001 → 127.0.0.2:9090"]
    );
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for (stream, status) in [(&streams[0], 1), (&streams[1], 5)] {
        let frames = stream["frames"].as_array().unwrap();
        assert_eq!(frames.len(), 1, "{stream}");
        assert_eq!(frames[0]["status"], status);
        assert_eq!(frames[0]["path"], "/echo");
        assert_eq!(frames[0]["data_hex"], hex(b"split across segments"));
        assert!(stream["error"].is_null() && stream["gap_at"].is_null(), "{stream}");
    }
    assert!(streams[2]["error"].as_str().unwrap().contains("[STATUS-2]"), "{}", streams[2]);
    // The text report says the same.
    let text = decode(&["-", "--format", "capture", "--port", "40001"], &capture);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("127.0.0.3:40001") && !text.contains("40000"), "{text}");
    assert!(text.contains("framing error: [STATUS-2] unknown status byte 13"), "{text}");
}

#[test]
fn a_vector_as_xxd_hex_reads_as_its_sidecar_says() {
    let bytes =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/frames/021-pipelined-requests.snap.bin")).unwrap();
    // xxd's layout: offset, groups of two bytes, the text column.
    let mut xxd = String::new();
    for (i, line) in bytes.chunks(16).enumerate() {
        let groups: Vec<String> = line.chunks(2).map(|g| g.iter().map(|b| format!("{b:02x}")).collect()).collect();
        let text: String = line.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '.' }).collect();
        xxd.push_str(&format!("{:08x}: {:<40}  {text}\n", i * 16, groups.join(" ")));
    }
    let out = decode(&["-", "--format", "hex", "--json"], xxd.as_bytes());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let frames = report["streams"][0]["frames"].as_array().unwrap();
    let sidecar: toml::Table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/frames/021-pipelined-requests.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let expected = sidecar["frame"].as_array().unwrap();
    assert_eq!(frames.len(), expected.len(), "{report}");
    for (got, want) in frames.iter().zip(expected) {
        assert_eq!(got["status"].as_i64(), want["status"].as_integer());
        assert_eq!(got["channel"].as_i64(), want.get("channel").and_then(|c| c.as_integer()).or(Some(0)));
    }
}

#[test]
fn raw_bytes_that_break_the_framing_name_the_requirement() {
    let out = decode(&["-", "--format", "raw"], &[9]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[STATUS-2]") && text.contains("offset 0"), "{text}");
}
