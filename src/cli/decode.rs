//! `iip decode`: the crate's own frame decoder reading a capture (pcap or
//! pcapng, TCP reassembled per direction), hex, or raw bytes, so that what
//! it prints is the reference reading of those bytes: every frame with its
//! stream offset, and the framing error that ends a stream with the
//! requirement it breaks.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::BytesMut;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::DataLink;

use super::CliError;
use crate::conformance::run::show_frame;
use crate::wire::decode::FrameDecoder;
use crate::wire::frame::{Frame, FrameLimits};

/// One direction of one TCP connection (or the whole input, for hex and
/// raw bytes), its bytes in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// `src → dst`, or the input's name.
    pub label: String,
    /// The bytes, reassembled.
    pub bytes: Vec<u8>,
    /// Where the capture missed bytes: the stream is read up to here only.
    pub gap_at: Option<usize>,
}

/// What the decoder made of one stream.
#[derive(Debug)]
pub struct Reading {
    /// Each frame with the stream offset of its first byte.
    pub frames: Vec<(u64, Frame)>,
    /// The framing error that ends the stream, if any (its text cites the
    /// requirement).
    pub error: Option<String>,
    /// Bytes of an unfinished frame at the end.
    pub unfinished: usize,
}

/// Decodes `bytes` as one IIP stream.
pub fn read_stream(bytes: &[u8]) -> Reading {
    let mut decoder = FrameDecoder::new(FrameLimits::default());
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    let mut offset = 0u64;
    loop {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                frames.push((offset, frame));
                offset += (before - buf.len()) as u64;
            }
            Ok(None) => return Reading { frames, error: None, unfinished: buf.len() },
            Err(err) => return Reading { frames, error: Some(err.to_string()), unfinished: 0 },
        }
    }
}

/// The bytes of hex text: pairs of hex digits, with white space, `0x`
/// prefixes and `xxd`'s offsets (`00000010:`) and text column ignored.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let mut digits = String::new();
    for line in text.lines() {
        // xxd: "00000000: 0100 2f65  ...text"; drop the offset and the text column.
        let line = match line.split_once(": ") {
            Some((offset, rest)) if offset.chars().all(|c| c.is_ascii_hexdigit()) => {
                rest.split("  ").next().unwrap_or_default()
            }
            _ => line,
        };
        for word in line.split_whitespace() {
            let word = word.trim_start_matches("0x");
            if !word.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("not hex: {word:?}"));
            }
            digits.push_str(word);
        }
    }
    if digits.len() % 2 == 1 {
        return Err("an odd number of hex digits".into());
    }
    (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|e| e.to_string())).collect()
}

/// A TCP segment of a capture.
struct Segment {
    seq: u32,
    syn: bool,
    payload: Vec<u8>,
}

/// The TCP streams of a pcap or pcapng capture, each direction apart, in
/// the order they first appear; `port` keeps the connections with that port.
pub fn capture_streams(data: &[u8], port: Option<u16>) -> Result<Vec<Stream>, String> {
    let mut flows: BTreeMap<(usize, String), Vec<Segment>> = BTreeMap::new();
    let mut order: BTreeMap<String, usize> = BTreeMap::new();
    let mut add = |link: DataLink, packet: &[u8]| {
        let sliced = match link {
            DataLink::ETHERNET => SlicedPacket::from_ethernet(packet),
            DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(packet),
            DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(packet),
            // BSD loopback: a 4-byte address family, then IP.
            DataLink::NULL | DataLink::LOOP => SlicedPacket::from_ip(packet.get(4..).unwrap_or_default()),
            _ => return,
        };
        let Ok(sliced) = sliced else { return };
        let (Some(net), Some(TransportSlice::Tcp(tcp))) = (&sliced.net, &sliced.transport) else { return };
        let (src, dst) = match net {
            NetSlice::Ipv4(ip) => (ip.header().source_addr().to_string(), ip.header().destination_addr().to_string()),
            NetSlice::Ipv6(ip) => {
                (format!("[{}]", ip.header().source_addr()), format!("[{}]", ip.header().destination_addr()))
            }
            _ => return,
        };
        if port.is_some_and(|p| tcp.source_port() != p && tcp.destination_port() != p) {
            return;
        }
        let label = format!("{src}:{} → {dst}:{}", tcp.source_port(), tcp.destination_port());
        let next = order.len();
        let first_seen = *order.entry(label.clone()).or_insert(next);
        let segment = Segment { seq: tcp.sequence_number(), syn: tcp.syn(), payload: tcp.payload().to_vec() };
        flows.entry((first_seen, label)).or_default().push(segment);
    };
    if data.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut reader = pcap_file::pcapng::PcapNgReader::new(data).map_err(|e| format!("pcapng: {e}"))?;
        let mut links = Vec::new();
        while let Some(block) = reader.next_block() {
            match block.map_err(|e| format!("pcapng: {e}"))? {
                pcap_file::pcapng::Block::InterfaceDescription(idb) => links.push(idb.linktype),
                pcap_file::pcapng::Block::EnhancedPacket(epb) => {
                    let link = links.get(epb.interface_id as usize).copied().unwrap_or(DataLink::ETHERNET);
                    add(link, &epb.data);
                }
                pcap_file::pcapng::Block::SimplePacket(spb) => {
                    add(links.first().copied().unwrap_or(DataLink::ETHERNET), &spb.data)
                }
                _ => {}
            }
        }
    } else {
        let mut reader = pcap_file::pcap::PcapReader::new(data).map_err(|e| format!("pcap: {e}"))?;
        let link = reader.header().datalink;
        while let Some(packet) = reader.next_packet() {
            add(link, &packet.map_err(|e| format!("pcap: {e}"))?.data);
        }
    }
    Ok(flows
        .into_iter()
        .map(|((_, label), segments)| reassemble(label, segments))
        .filter(|s| !s.bytes.is_empty())
        .collect())
}

/// One direction's bytes from its segments: ordered by sequence number
/// from the SYN (or the first segment seen), retransmissions and overlaps
/// taken once, and read up to the first gap.
fn reassemble(label: String, segments: Vec<Segment>) -> Stream {
    let start = segments.iter().find(|s| s.syn).map(|s| s.seq.wrapping_add(1)).or(segments.first().map(|s| s.seq));
    let start = start.unwrap_or(0);
    let mut pieces: Vec<(u32, Vec<u8>)> = segments
        .into_iter()
        .filter(|s| !s.payload.is_empty())
        .map(|s| (s.seq.wrapping_sub(start), s.payload))
        .collect();
    pieces.sort_by_key(|(at, _)| *at);
    let mut bytes = Vec::new();
    let mut gap_at = None;
    for (at, payload) in pieces {
        let at = at as usize;
        if at > bytes.len() {
            gap_at = Some(bytes.len());
            break;
        }
        let skip = bytes.len() - at;
        if skip < payload.len() {
            bytes.extend_from_slice(&payload[skip..]);
        }
    }
    Stream { label, bytes, gap_at }
}

/// The text report of `streams`.
pub fn report(streams: &[Stream]) -> String {
    let mut out = String::new();
    for stream in streams {
        let _ = writeln!(out, "== {} ({} bytes)", stream.label, stream.bytes.len());
        let reading = read_stream(&stream.bytes);
        for (offset, frame) in &reading.frames {
            let _ = writeln!(out, "{offset:>10}  {}", show_frame(frame));
        }
        if let Some(error) = &reading.error {
            let _ = writeln!(out, "            framing error: {error}");
        }
        if reading.unfinished > 0 {
            let _ = writeln!(out, "            {} bytes of an unfinished frame at the end", reading.unfinished);
        }
        if let Some(at) = stream.gap_at {
            let _ = writeln!(out, "            the capture misses bytes after stream offset {at}: read up to there");
        }
    }
    out
}

/// The JSON report of `streams`: per stream its frames (offset, status,
/// path, channel, data in hex) and how it ends.
pub fn report_json(streams: &[Stream]) -> serde_json::Value {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let streams: Vec<serde_json::Value> = streams
        .iter()
        .map(|stream| {
            let reading = read_stream(&stream.bytes);
            let frames: Vec<serde_json::Value> = reading
                .frames
                .iter()
                .map(|(offset, f)| {
                    serde_json::json!({
                        "offset": offset,
                        "status": f.status.byte(),
                        "path": String::from_utf8_lossy(&f.path),
                        "channel": f.channel,
                        "len": f.data.len(),
                        "data_hex": hex(&f.data),
                    })
                })
                .collect();
            serde_json::json!({
                "stream": stream.label,
                "bytes": stream.bytes.len(),
                "frames": frames,
                "error": reading.error,
                "unfinished": reading.unfinished,
                "gap_at": stream.gap_at,
            })
        })
        .collect();
    serde_json::json!({ "streams": streams })
}

/// The arguments of `iip decode`.
#[derive(clap::Args)]
pub(crate) struct DecodeArgs {
    /// The input file; `-` reads standard input.
    input: std::path::PathBuf,
    /// How to read the input: a capture (by default for .pcap and
    /// .pcapng files), hex text, or the raw bytes of one stream.
    #[arg(long, value_enum)]
    format: Option<DecodeFormat>,
    /// Keep only the TCP connections with this port (captures).
    #[arg(long)]
    port: Option<u16>,
    /// Write JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl DecodeArgs {
    pub(super) async fn run(self) -> Result<(), CliError> {
        let DecodeArgs { input, format, port, json } = self;
        let data = if input.as_os_str() == "-" {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut data).map(|_| data)
        } else {
            std::fs::read(&input)
        }
        .map_err(|e| format!("{}: {e}", input.display()))?;
        let capture_name = input.extension().is_some_and(|e| e == "pcap" || e == "pcapng");
        let streams = match format.unwrap_or(if capture_name { DecodeFormat::Capture } else { DecodeFormat::Hex }) {
            DecodeFormat::Capture => capture_streams(&data, port)?,
            DecodeFormat::Hex => {
                let text = String::from_utf8(data).map_err(|_| "the hex input is not text".to_string())?;
                vec![Stream { label: input.display().to_string(), bytes: parse_hex(&text)?, gap_at: None }]
            }
            DecodeFormat::Raw => {
                vec![Stream { label: input.display().to_string(), bytes: data, gap_at: None }]
            }
        };
        if json {
            println!("{}", report_json(&streams));
        } else {
            print!("{}", report(&streams));
        }
        Ok(())
    }
}

/// How `iip decode` reads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DecodeFormat {
    /// A pcap or pcapng capture.
    Capture,
    /// Hex digits (white space, `0x` and xxd's offsets and text ignored).
    Hex,
    /// The raw bytes of one stream.
    Raw,
}
