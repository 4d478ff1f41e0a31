//! The Wireshark dissector (`tools/wireshark/iip.lua`) read against the
//! crate's decoder, which is the reference reading of IIP bytes: the whole
//! conformance suite is played against the reference server through a
//! recording proxy, the bytes each way are written as a pcap (cut into TCP
//! segments as the proxy read them, and again at 1,400 bytes), and tshark
//! with the dissector must find, per connection and direction, exactly the
//! frames the decoder finds, with the same status, channel, path and
//! length; each framing error with its requirement id; and, where the
//! server closed on a protocol error, that error flagged with the id its
//! close frame cites. The frame vectors of `vectors/frames/` are dissected
//! the same way on a port the dissector is not told of (its heuristic).
//!
//! tshark is required: without it the test fails and says so.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etherparse::PacketBuilder;
use iip::{Frame, FrameDecoder, FrameLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const IIP: &str = env!("CARGO_BIN_EXE_iip");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The server port of the suite's capture: the dissector's default.
const SERVER_PORT: u16 = 9090;
/// The port of the vectors' capture, which the dissector is not told of.
const OTHER_PORT: u16 = 7777;
const SEGMENT: usize = 1400;

/// Bytes one connection carried, in the order the proxy read them:
/// (true when from the client, bytes).
type Recording = Vec<(bool, Vec<u8>)>;

/// Copies one direction, recording what passes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    from_client: bool,
    log: Arc<Mutex<Recording>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                log.lock().unwrap().push((from_client, buf[..n].to_vec()));
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// A proxy in front of `upstream` that records every connection.
async fn recording_proxy(
    upstream: std::net::SocketAddr,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<Arc<Mutex<Recording>>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let all: Arc<Mutex<Vec<Arc<Mutex<Recording>>>>> = Arc::default();
    let kept = all.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else { continue };
            let log: Arc<Mutex<Recording>> = Arc::default();
            kept.lock().unwrap().push(log.clone());
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, true, log.clone()));
            tokio::spawn(pump(sr, cw, false, log));
        }
    });
    (addr, all)
}

/// Writes connections as a pcap: client 127.0.0.1:40000+i, server
/// 127.0.0.2:`port`, each read of the proxy one or more segments.
fn pcap(connections: &[Recording], port: u16) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut writer = pcap_file::pcap::PcapWriter::new(&mut out).unwrap();
        let mut at = Duration::ZERO;
        let mut write = |packet: Vec<u8>| {
            at += Duration::from_micros(100);
            writer.write_packet(&pcap_file::pcap::PcapPacket::new(at, packet.len() as u32, &packet)).unwrap();
        };
        for (i, connection) in connections.iter().enumerate() {
            let client = 40000 + i as u16;
            let ends = |from_client: bool| {
                let (a, b) = ([127, 0, 0, 1], [127, 0, 0, 2]);
                if from_client {
                    (a, client, b, port)
                } else {
                    (b, port, a, client)
                }
            };
            let mut seq = [1000u32, 5000u32];
            for (from_client, syn) in [(true, true), (false, true)] {
                let (src, sp, dst, dp) = ends(from_client);
                let builder = PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4(src, dst, 64).tcp(
                    sp,
                    dp,
                    seq[usize::from(!from_client)],
                    65535,
                );
                let builder = if syn { builder.syn() } else { builder };
                let mut packet = Vec::new();
                builder.write(&mut packet, &[]).unwrap();
                write(packet);
                seq[usize::from(!from_client)] += 1;
            }
            for (from_client, bytes) in connection {
                for piece in bytes.chunks(SEGMENT) {
                    let (src, sp, dst, dp) = ends(*from_client);
                    let side = usize::from(!*from_client);
                    let builder = PacketBuilder::ethernet2([2; 6], [4; 6])
                        .ipv4(src, dst, 64)
                        .tcp(sp, dp, seq[side], 65535)
                        .ack(seq[1 - side])
                        .psh();
                    let mut packet = Vec::new();
                    builder.write(&mut packet, piece).unwrap();
                    write(packet);
                    seq[side] = seq[side].wrapping_add(piece.len() as u32);
                }
            }
        }
    }
    out
}

/// One frame as both readings give it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    status: u64,
    channel: u64,
    /// The path's bytes in hex.
    path: String,
    len: u64,
}

/// What tshark's dissector reads: per (connection, from client) its frames
/// and its errors.
type Dissected = BTreeMap<(u64, bool), (Vec<Seen>, Vec<String>)>;

fn tshark(capture: &[u8], name: &str, options: &[&str]) -> Dissected {
    let dir = std::env::temp_dir().join(format!("iip-dissector-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, capture).unwrap();
    // IIP_KEEP_CAPTURES=DIR keeps the captures, to open them in Wireshark.
    if let Ok(keep) = std::env::var("IIP_KEEP_CAPTURES") {
        let _ = std::fs::copy(&file, std::path::Path::new(&keep).join(name));
    }
    let script = format!("lua_script:{ROOT}/tools/wireshark/iip.lua");
    let output = Command::new("tshark")
        .args(["-2", "-n", "-X", &script])
        .args(options)
        .arg("-r")
        .arg(&file)
        .args(["-Y", "iip", "-T", "json"])
        .args(["-e", "tcp.stream", "-e", "tcp.srcport", "-e", "iip.status", "-e", "iip.channel"])
        .args(["-e", "iip.path.bytes", "-e", "iip.len", "-e", "iip.error", "-e", "_ws.expert.message"])
        .output()
        .unwrap_or_else(|e| panic!("tshark is required for this test (apt-get install tshark): {e}"));
    assert!(output.status.success(), "tshark failed: {}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("Lua: Error"), "the dissector failed to load or run: {stderr}");
    // tshark may cut a string with bytes that are not UTF-8 inside a character.
    let packets: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(&output.stdout)).expect("tshark's JSON");
    let mut dissected = Dissected::new();
    for packet in packets.as_array().unwrap() {
        let layers = &packet["_source"]["layers"];
        let field = |name: &str| -> Vec<String> {
            layers[name]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap_or("").to_string()).collect())
                .unwrap_or_default()
        };
        let number = |s: &String| s.parse::<u64>().unwrap();
        let stream = number(&field("tcp.stream")[0]);
        let from_client = field("tcp.srcport")[0].parse::<u16>().unwrap() >= 40000;
        let entry = dissected.entry((stream, from_client)).or_default();
        let (statuses, channels, paths, lens) =
            (field("iip.status"), field("iip.channel"), field("iip.path.bytes"), field("iip.len"));
        assert_eq!(statuses.len(), channels.len(), "one channel per frame: {layers}");
        assert_eq!(statuses.len(), paths.len(), "one path per frame: {layers}");
        for i in 0..statuses.len() {
            entry.0.push(Seen {
                status: number(&statuses[i]),
                channel: number(&channels[i]),
                // An empty field of bytes reads as <MISSING>.
                path: paths[i].replace(':', "").replace("<MISSING>", ""),
                len: number(&lens[i]),
            });
        }
        let lua_errors: Vec<String> =
            field("_ws.expert.message").into_iter().filter(|m| m.contains("Lua Error")).collect();
        assert!(lua_errors.is_empty(), "the dissector failed on a packet: {lua_errors:?}");
        entry.1.extend(field("iip.error"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    dissected
}

/// What the crate's decoder reads in one direction: its frames, and the
/// framing error that ends it, if any (as `iip decode` reads a stream).
struct Reading {
    frames: Vec<Frame>,
    error: Option<String>,
}

fn read_stream(bytes: &[u8]) -> Reading {
    let mut decoder = FrameDecoder::new(FrameLimits::default());
    let mut buf = bytes::BytesMut::from(bytes);
    let mut frames = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return Reading { frames, error: None },
            Err(err) => return Reading { frames, error: Some(err.to_string()) },
        }
    }
}

/// The decoder's reading of one direction.
fn decoded(bytes: &[u8]) -> (Vec<Seen>, Option<String>) {
    let reading = read_stream(bytes);
    let frames = reading
        .frames
        .iter()
        .map(|f| Seen {
            status: u64::from(f.status.byte()),
            channel: u64::from(f.channel),
            path: f.path.iter().map(|b| format!("{b:02x}")).collect(),
            len: f.data.len() as u64,
        })
        .collect();
    let error = reading.error.map(|e| e.split(']').next().unwrap_or("").trim_start_matches('[').to_string());
    (frames, error)
}

/// The requirement id an error text starts with.
fn cited(text: &str) -> Option<&str> {
    text.strip_prefix('[')?.split(']').next()
}

const FRAMING: [&str; 4] = ["STATUS-2", "LIMIT-1", "LIMIT-2", "FRAME-6"];
/// The protocol errors the dissector follows.
const FOLLOWED: [&str; 4] = ["STATUS-3", "CHAN-6", "CHAN-10", "MSG-6"];

/// Compares both readings of `connections`; returns how many frames agreed.
fn compare(connections: &[Recording], dissected: &Dissected) -> usize {
    let mut agreed = 0;
    for (i, connection) in connections.iter().enumerate() {
        for from_client in [true, false] {
            let bytes: Vec<u8> =
                connection.iter().filter(|(c, _)| *c == from_client).flat_map(|(_, b)| b.clone()).collect();
            let (frames, error) = decoded(&bytes);
            let (seen, errors) = dissected.get(&(i as u64, from_client)).cloned().unwrap_or_default();
            assert_eq!(seen, frames, "connection {i}, from the {}", if from_client { "client" } else { "server" });
            let framing: Vec<&str> = errors.iter().filter_map(|e| cited(e)).filter(|id| FRAMING.contains(id)).collect();
            assert_eq!(
                framing,
                error.iter().map(String::as_str).collect::<Vec<_>>(),
                "framing errors of connection {i}"
            );
            agreed += frames.len();
            if !from_client {
                // A close frame that cites an error the dissector follows:
                // the dissector flagged it in what the client sent.
                let (client_errors, server_frames) = (
                    dissected.get(&(i as u64, true)).map(|d| d.1.clone()).unwrap_or_default(),
                    connection.iter().filter(|(c, _)| !*c).flat_map(|(_, b)| b.clone()).collect::<Vec<u8>>(),
                );
                for frame in read_stream(&server_frames).frames {
                    let reason = String::from_utf8_lossy(&frame.data).into_owned();
                    let Some(id) = cited(&reason).filter(|id| FOLLOWED.contains(id)) else { continue };
                    if frame.status.byte() == 8 {
                        assert!(
                            client_errors.iter().any(|e| cited(e) == Some(id)),
                            "connection {i}: the server closed citing [{id}], the dissector flagged {client_errors:?}"
                        );
                    }
                }
            }
        }
    }
    agreed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dissector_reads_a_conformance_run_as_the_decoder_does() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = iip::conformance::reference_server().unwrap().spawn(listener).unwrap();
    let (proxy, recordings) = recording_proxy(server.local_addr()).await;
    let target = proxy.to_string();
    let run = tokio::task::spawn_blocking(move || {
        Command::new(IIP)
            .args(["conformance", &target, "--profile", "max-channels=8,max-message=33554432,fail-route"])
            .args(["--deadline", "240"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("iip conformance runs")
    });
    tokio::time::timeout(Duration::from_secs(300), run).await.expect("the suite ends").unwrap();
    // Let the last connections' bytes drain through the proxy.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connections: Vec<Recording> = recordings.lock().unwrap().iter().map(|r| r.lock().unwrap().clone()).collect();
    assert!(connections.len() > 50, "the suite ran its cases through the proxy: {} connections", connections.len());
    let capture = pcap(&connections, SERVER_PORT);
    let dissected = tokio::task::spawn_blocking(move || tshark(&capture, "suite.pcap", &[])).await.unwrap();
    let agreed = compare(&connections, &dissected);
    assert!(agreed > 300, "{agreed} frames compared");
    eprintln!("{} connections, {agreed} frames read alike by the dissector and the decoder", connections.len());
}

#[test]
fn the_dissector_reads_the_frame_vectors() {
    let mut connections = Vec::new();
    let mut dir: Vec<_> =
        std::fs::read_dir(format!("{ROOT}/vectors/frames")).unwrap().map(|e| e.unwrap().path()).collect();
    dir.sort();
    for path in dir.iter().filter(|p| p.to_string_lossy().ends_with(".snap.bin")) {
        let bytes = std::fs::read(path).unwrap();
        // Bytes that break the framing are not frames to recognise; the
        // suite sends each kind of framing error, read above.
        if read_stream(&bytes).error.is_some() {
            continue;
        }
        connections.push(vec![(true, bytes)]);
    }
    assert!(connections.len() > 30, "{} vectors", connections.len());
    // On a port given in the preference: every vector.
    let capture = pcap(&connections, OTHER_PORT);
    let dissected = tshark(&capture, "vectors.pcap", &["-o", &format!("iip.ports:{SERVER_PORT},{OTHER_PORT}")]);
    let agreed = compare(&connections, &dissected);
    assert!(agreed >= connections.len(), "{agreed} frames compared");
    // On a port it is not told of, the heuristic recognises every stream
    // whose first path is printable.
    let printable: Vec<Recording> = connections
        .into_iter()
        .filter(|c| {
            let frames = read_stream(&c[0].1).frames;
            frames.first().is_some_and(|f| f.path.iter().all(|b| (0x20..0x7f).contains(b)))
        })
        .collect();
    assert!(printable.len() > 25, "{} vectors with printable paths", printable.len());
    let dissected = tshark(&pcap(&printable, OTHER_PORT), "heuristic.pcap", &[]);
    compare(&printable, &dissected);
}
