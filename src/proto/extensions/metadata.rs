//! The metadata block of the `metadata` extension (`[EXT-17]`–`[EXT-23]`).
//!
//! Once `metadata` is agreed, every request body starts with a block:
//! a big-endian `u16` length, then that many bytes of entries, each a
//! one-byte key length, the key, a big-endian `u16` value length and the
//! value. Keys are written in strictly ascending byte order, so the same
//! metadata is always the same bytes. Answers carry no block.
//!
//! [`Metadata`] is a block that was checked: it keeps the entries' bytes
//! (a slice of the request body, no copy) and reads them on demand.
//! [`MetadataMap`] is what a caller builds; [`MetadataMap::encode`] writes
//! its block.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

/// The largest block length the reference server takes (`[EXT-17]`).
pub const DEFAULT_MAX_SIZE: u16 = 8192;
/// The longest key (`[EXT-18]`).
pub const MAX_KEY: usize = 64;

/// The registered key of a request's deadline (`[EXT-22]`).
pub const DEADLINE: &str = "deadline";
/// The registered key of a request's id (`[EXT-23]`).
pub const REQUEST_ID: &str = "request-id";
/// The registered key of W3C trace context's parent (`[EXT-23]`).
pub const TRACEPARENT: &str = "traceparent";
/// The registered key of W3C trace context's vendor state (`[EXT-23]`).
pub const TRACESTATE: &str = "tracestate";

/// The registered keys of revision 1, in the spec table's order (`[EXT-21]`).
pub const REGISTERED: [&str; 4] = [DEADLINE, REQUEST_ID, TRACEPARENT, TRACESTATE];

/// Why a block is malformed (`[EXT-20]`); a server closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The body is too short to hold the block's length, or the length
    /// runs past the end of the body.
    #[error("[EXT-20] metadata block of {length} bytes runs past the body's {available}")]
    PastBody {
        /// The block's length (or 2, for a body shorter than the length field).
        length: usize,
        /// The bytes the body has for it.
        available: usize,
    },
    /// The block is longer than the agreed `max_size`.
    #[error("[EXT-20] metadata block of {length} bytes is past the agreed max_size of {max_size}")]
    TooLong {
        /// The block's length.
        length: usize,
        /// The agreed limit.
        max_size: usize,
    },
    /// An entry runs past the block's length.
    #[error("[EXT-20] a metadata entry runs past the block at byte {offset}")]
    EntryPastBlock {
        /// Where the entry starts in the block's entries.
        offset: usize,
    },
    /// A key is empty, too long, or has a byte outside `a-z 0-9 - _ .`.
    #[error("[EXT-20] bad metadata key {key:?}")]
    BadKey {
        /// The key, invalid bytes replaced.
        key: String,
    },
    /// A key is not after the one before it.
    #[error("[EXT-20] metadata key {key:?} is not after {previous:?}")]
    KeyOrder {
        /// The key out of order (or repeated).
        key: String,
        /// The key before it.
        previous: String,
    },
    /// A value has a byte outside `20`–`7e`, or is too long.
    #[error("[EXT-20] bad value of metadata key {key:?}")]
    BadValue {
        /// The key whose value it is.
        key: String,
    },
    /// The value of a registered key breaks its syntax (`[EXT-21]`).
    #[error("[EXT-20] {key} {value:?} is not {syntax}")]
    BadRegistered {
        /// The registered key.
        key: &'static str,
        /// The value, as received.
        value: String,
        /// What the value must be.
        syntax: &'static str,
    },
}

/// Whether `key` may be a key (`[EXT-18]`).
fn key_ok(key: &[u8]) -> bool {
    (1..=MAX_KEY).contains(&key.len())
        && key.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `value` may be a value (`[EXT-18]`).
fn value_ok(value: &[u8]) -> bool {
    value.len() <= usize::from(u16::MAX) && value.iter().all(|&b| (0x20..=0x7e).contains(&b))
}

/// Checks the value of a registered key against its syntax (`[EXT-21]`);
/// any value of another key passes.
fn check_registered(key: &str, value: &str) -> Result<(), MetadataError> {
    let (key, syntax, ok): (&'static str, &'static str, bool) = match key {
        DEADLINE => {
            (DEADLINE, "1 to 10 digits without a leading zero, at most 4294967295", parse_deadline(value).is_some())
        }
        REQUEST_ID => (REQUEST_ID, "1 to 128 bytes", (1..=128).contains(&value.len())),
        TRACEPARENT => (TRACEPARENT, "a W3C traceparent of version 00", TraceParent::parse(value).is_some()),
        TRACESTATE => (TRACESTATE, "1 to 512 bytes", (1..=512).contains(&value.len())),
        _ => return Ok(()),
    };
    if ok {
        Ok(())
    } else {
        Err(MetadataError::BadRegistered { key, value: value.to_string(), syntax })
    }
}

/// The milliseconds of a `deadline` value: digits, no leading zero, at
/// most `u32::MAX`.
fn parse_deadline(value: &str) -> Option<u32> {
    let digits = value.as_bytes();
    let shaped = (1..=10).contains(&digits.len())
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1);
    shaped.then(|| value.parse::<u32>().ok()).flatten()
}

/// One entry read from `entries` at `at`: key, value and where the next begins.
fn entry_at(entries: &[u8], at: usize) -> Option<(&[u8], &[u8], usize)> {
    let klen = usize::from(*entries.get(at)?);
    let key = entries.get(at + 1..at + 1 + klen)?;
    let vlen_at = at + 1 + klen;
    let vlen = usize::from(u16::from_be_bytes([*entries.get(vlen_at)?, *entries.get(vlen_at + 1)?]));
    let value = entries.get(vlen_at + 2..vlen_at + 2 + vlen)?;
    Some((key, value, vlen_at + 2 + vlen))
}

/// The metadata of one request, as received and checked (`[EXT-20]`).
/// Cheap to clone: it shares the request body's bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The block's entries, without its length.
    entries: Bytes,
    /// The `deadline` entry's milliseconds, read when the block was checked.
    deadline_ms: Option<u32>,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Metadata {
    /// No metadata: what a request carries on a connection without the
    /// extension, or with an empty block.
    pub const fn empty() -> Metadata {
        Metadata { entries: Bytes::new(), deadline_ms: None }
    }

    /// Splits the block off the front of `body` (`[EXT-18]`) and checks it
    /// (`[EXT-20]`): the metadata and the rest of the body, which shares
    /// `body`'s bytes.
    pub fn split(body: &Bytes, max_size: usize) -> Result<(Metadata, Bytes), MetadataError> {
        if body.len() < 2 {
            return Err(MetadataError::PastBody { length: 2, available: body.len() });
        }
        let length = usize::from(u16::from_be_bytes([body[0], body[1]]));
        if length > max_size {
            return Err(MetadataError::TooLong { length, max_size });
        }
        if 2 + length > body.len() {
            return Err(MetadataError::PastBody { length, available: body.len() - 2 });
        }
        let entries = body.slice(2..2 + length);
        let deadline_ms = check_entries(&entries)?;
        Ok((Metadata { entries, deadline_ms }, body.slice(2 + length..)))
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The same metadata in bytes of its own, not sharing the buffer of
    /// the body it came in.
    pub fn detached(self) -> Metadata {
        if self.entries.is_empty() {
            return self;
        }
        Metadata { entries: Bytes::copy_from_slice(&self.entries), deadline_ms: self.deadline_ms }
    }

    /// The block's length: the bytes of its entries (`[EXT-18]`).
    pub fn block_len(&self) -> usize {
        self.entries.len()
    }

    /// The entries, in the order received (ascending by key).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let (key, value, next) = entry_at(&self.entries, at)?;
            at = next;
            // Checked when the block was split: visible ASCII throughout.
            Some((std::str::from_utf8(key).ok()?, std::str::from_utf8(value).ok()?))
        })
    }

    /// The value of `key`, if the request carries it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The time left for the request when it was sent (`deadline`, `[EXT-22]`).
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline_ms.map(|ms| Duration::from_millis(u64::from(ms)))
    }

    /// The caller's id for the request (`request-id`, `[EXT-23]`).
    pub fn request_id(&self) -> Option<&str> {
        self.get(REQUEST_ID)
    }

    /// The caller's trace context (`traceparent`, `[EXT-23]`).
    pub fn traceparent(&self) -> Option<TraceParent> {
        self.get(TRACEPARENT).and_then(TraceParent::parse)
    }

    /// The trace context's vendor state (`tracestate`, `[EXT-23]`).
    pub fn tracestate(&self) -> Option<&str> {
        self.get(TRACESTATE)
    }

    /// The entries as a map, to change and send on (e.g. from a gateway).
    pub fn to_map(&self) -> MetadataMap {
        MetadataMap { entries: self.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }
}

/// Checks every entry of a block (`[EXT-18]`, `[EXT-20]`, `[EXT-21]`);
/// the milliseconds of its `deadline`, if it has one.
fn check_entries(entries: &[u8]) -> Result<Option<u32>, MetadataError> {
    let mut at = 0;
    let mut previous: &[u8] = &[];
    let mut deadline = None;
    while at < entries.len() {
        let (key, value, next) = entry_at(entries, at).ok_or(MetadataError::EntryPastBlock { offset: at })?;
        let name = || String::from_utf8_lossy(key).into_owned();
        if !key_ok(key) {
            return Err(MetadataError::BadKey { key: name() });
        }
        if at > 0 && key <= previous {
            return Err(MetadataError::KeyOrder {
                key: name(),
                previous: String::from_utf8_lossy(previous).into_owned(),
            });
        }
        if !value_ok(value) {
            return Err(MetadataError::BadValue { key: name() });
        }
        // Both are ASCII once checked.
        if let (Ok(key), Ok(value)) = (std::str::from_utf8(key), std::str::from_utf8(value)) {
            check_registered(key, value)?;
            if key == DEADLINE {
                deadline = parse_deadline(value);
            }
        }
        previous = key;
        at = next;
    }
    Ok(deadline)
}

/// Metadata to send: keys and values, kept in the order the block is
/// written in. Insertion checks nothing; [`MetadataMap::encode`] does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataMap {
    entries: BTreeMap<String, String>,
}

impl MetadataMap {
    /// No entries.
    pub fn new() -> MetadataMap {
        MetadataMap::default()
    }

    /// Sets `key` to `value`, replacing a value it had.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.entries.insert(key.into(), value.into());
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.entries.remove(key)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, ascending by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The block's length for these entries.
    pub fn block_len(&self) -> usize {
        self.entries.iter().map(|(k, v)| 3 + k.len() + v.len()).sum()
    }

    /// Checks every entry and writes the block — its length, then the
    /// entries in ascending byte order of their keys (`[EXT-18]`) — into
    /// `out`. Fails, writing nothing, on an entry a receiver would refuse
    /// or a block longer than `max_size`.
    pub fn encode(&self, max_size: usize, out: &mut BytesMut) -> Result<(), MetadataError> {
        self.encode_with_deadline(None, max_size, out)
    }

    /// [`MetadataMap::encode`] with `deadline` (`[EXT-22]`, rounded down
    /// to whole milliseconds) written as the `deadline` entry in its
    /// place, instead of any `deadline` the map holds: what a client sends
    /// for a call with a time limit, without a copy of the map.
    pub fn encode_with_deadline(
        &self,
        deadline: Option<Duration>,
        max_size: usize,
        out: &mut BytesMut,
    ) -> Result<(), MetadataError> {
        let mut digits = [0u8; 10];
        let deadline = deadline.map(|left| decimal(u32::try_from(left.as_millis()).unwrap_or(u32::MAX), &mut digits));
        let entries = || self.iter().filter(move |(key, _)| deadline.is_none() || *key != DEADLINE);
        let length = entries().map(|(k, v)| 3 + k.len() + v.len()).sum::<usize>()
            + deadline.map_or(0, |d| 3 + DEADLINE.len() + d.len());
        if length > max_size.min(usize::from(u16::MAX)) {
            return Err(MetadataError::TooLong { length, max_size });
        }
        for (key, value) in entries() {
            if !key_ok(key.as_bytes()) {
                return Err(MetadataError::BadKey { key: key.to_string() });
            }
            if !value_ok(value.as_bytes()) {
                return Err(MetadataError::BadValue { key: key.to_string() });
            }
            check_registered(key, value)?;
        }
        let put = |out: &mut BytesMut, key: &str, value: &[u8]| {
            out.put_u8(key.len() as u8);
            out.put_slice(key.as_bytes());
            out.put_u16(value.len() as u16);
            out.put_slice(value);
        };
        out.reserve(2 + length);
        out.put_u16(length as u16);
        let mut pending = deadline;
        for (key, value) in entries() {
            if let Some(d) = pending.filter(|_| key > DEADLINE) {
                put(out, DEADLINE, d);
                pending = None;
            }
            put(out, key, value.as_bytes());
        }
        if let Some(d) = pending {
            put(out, DEADLINE, d);
        }
        Ok(())
    }
}

/// `n` in decimal digits, written into `buffer`: the digits' slice.
fn decimal(mut n: u32, buffer: &mut [u8; 10]) -> &[u8] {
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buffer[at..];
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for MetadataMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        MetadataMap { entries: iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }
}

/// The whole milliseconds of `left`, rounded down, as a `deadline` value
/// (`[EXT-22]`); past `u32::MAX` milliseconds (49 days), `u32::MAX`.
pub fn deadline_value(left: Duration) -> String {
    u32::try_from(left.as_millis()).unwrap_or(u32::MAX).to_string()
}

/// A W3C `traceparent` of version 00 (`[EXT-23]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace, 16 bytes, not all zero.
    pub trace_id: [u8; 16],
    /// The caller's span, 8 bytes, not all zero.
    pub parent_id: [u8; 8],
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Reads `00-<32 hex>-<16 hex>-<2 hex>`, lowercase, ids not all zero.
    pub fn parse(text: &str) -> Option<TraceParent> {
        let b = text.as_bytes();
        if b.len() != 55 || &b[..3] != b"00-" || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut parent_id = [0u8; 8];
        let mut flags = [0u8; 1];
        hex_into(&b[3..35], &mut trace_id)?;
        hex_into(&b[36..52], &mut parent_id)?;
        hex_into(&b[53..55], &mut flags)?;
        let zero = |id: &[u8]| id.iter().all(|&x| x == 0);
        (!zero(&trace_id) && !zero(&parent_id)).then_some(TraceParent { trace_id, parent_id, flags: flags[0] })
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        self.trace_id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The same trace with `span` as the caller: what a call made on a
    /// request's behalf carries (`[EXT-23]`).
    pub fn child(&self, span: [u8; 8]) -> TraceParent {
        TraceParent { parent_id: span, ..*self }
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("00-")?;
        self.trace_id.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        f.write_str("-")?;
        self.parent_id.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, "-{:02x}", self.flags)
    }
}

/// Lowercase hex digits into bytes; `None` on anything else.
fn hex_into(hex: &[u8], out: &mut [u8]) -> Option<()> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (pair, byte) in hex.chunks_exact(2).zip(out.iter_mut()) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(())
}

/// The answer's `metadata` member (`[EXT-17]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetadataAgreed {
    /// The largest block length the server takes.
    pub max_size: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(map: &MetadataMap) -> Bytes {
        let mut out = BytesMut::new();
        map.encode(usize::from(DEFAULT_MAX_SIZE), &mut out).unwrap();
        out.freeze()
    }

    #[test]
    fn the_spec_example_is_these_bytes() {
        let map: MetadataMap = [("request-id", "r-7"), ("deadline", "250")].into_iter().collect();
        let mut body = BytesMut::from(&block(&map)[..]);
        body.extend_from_slice(b"hi");
        let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "001e08646561646c696e650003323530 0a726571756573742d69640003722d37 6869".replace(' ', ""));
        let (meta, rest) = Metadata::split(&body.freeze(), 8192).unwrap();
        assert_eq!(&rest[..], b"hi");
        assert_eq!(meta.deadline(), Some(Duration::from_millis(250)));
        assert_eq!(meta.request_id(), Some("r-7"));
        assert_eq!(meta.iter().collect::<Vec<_>>(), [("deadline", "250"), ("request-id", "r-7")]);
        assert_eq!(meta.to_map(), map);
    }

    #[test]
    fn an_empty_block_is_two_zero_bytes() {
        assert_eq!(&block(&MetadataMap::new())[..], [0, 0]);
        let (meta, rest) = Metadata::split(&Bytes::from_static(b"\0\0{}"), 0).unwrap();
        assert!(meta.is_empty());
        assert_eq!(&rest[..], b"{}");
    }

    #[test]
    fn malformed_blocks_are_refused() {
        let cases: &[(&[u8], usize)] = &[
            (b"\0", 100),                         // no length
            (b"\0\x05abc", 100),                  // past the body
            (b"\0\x04\x01a\0\x05", 100),          // entry past the block
            (b"\0\x05\x01A\0\0x", 100),           // upper-case key
            (b"\0\x03\0\0\0", 100),               // empty key
            (b"\0\x08\x01b\0\0\x01a\0\0", 100),   // keys not ascending
            (b"\0\x08\x01a\0\0\x01a\0\0", 100),   // a key twice
            (b"\0\x05\x01a\0\x01\x0a", 100),      // a control byte in a value
            (b"\0\x0e\x08deadline\0\x0201", 100), // leading zero
            (b"\0\x0d\x08deadline\0\x01-", 100),  // not a digit
            (b"\0\x05\x01a\0\x01x", 4),           // past max_size
        ];
        for (body, max) in cases {
            let body = Bytes::copy_from_slice(body);
            assert!(Metadata::split(&body, *max).is_err(), "{body:?} was taken");
        }
    }

    #[test]
    fn deadlines_follow_their_syntax() {
        assert_eq!(parse_deadline("0"), Some(0));
        assert_eq!(parse_deadline("4294967295"), Some(u32::MAX));
        for bad in ["", "00", "012", "4294967296", "12345678901", "+1", "1.5"] {
            assert_eq!(parse_deadline(bad), None, "{bad}");
        }
        assert_eq!(deadline_value(Duration::from_micros(1999)), "1");
        assert_eq!(deadline_value(Duration::from_secs(u64::MAX / 2)), "4294967295");
    }

    #[test]
    fn traceparents_round_trip_and_refuse_zero_ids() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = TraceParent::parse(text).unwrap();
        assert_eq!(parent.to_string(), text);
        assert_eq!(parent.flags, 1);
        let child = parent.child([1; 8]);
        assert_eq!(child.trace_id, parent.trace_id);
        assert_eq!(child.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-0101010101010101-01");
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_deadline_is_written_in_its_place_among_the_keys() {
        let map: MetadataMap = [("a", "1"), ("deadline", "7"), ("z", "2")].into_iter().collect();
        for (deadline, want) in
            [(None, "7"), (Some(Duration::from_micros(1_999_999)), "1999"), (Some(Duration::ZERO), "0")]
        {
            let mut out = BytesMut::new();
            map.encode_with_deadline(deadline, 100, &mut out).unwrap();
            let (meta, rest) = Metadata::split(&out.freeze(), 100).unwrap();
            assert!(rest.is_empty());
            assert_eq!(meta.iter().collect::<Vec<_>>(), [("a", "1"), ("deadline", want), ("z", "2")]);
        }
        let mut out = BytesMut::new();
        MetadataMap::new().encode_with_deadline(Some(Duration::from_millis(250)), 100, &mut out).unwrap();
        assert_eq!(&out[..], b"\x00\x0e\x08deadline\x00\x03250");
        let mut out = BytesMut::new();
        let after: MetadataMap = [("e", "x")].into_iter().collect();
        after.encode_with_deadline(Some(Duration::from_secs(u64::MAX)), 100, &mut out).unwrap();
        let (meta, _) = Metadata::split(&out.freeze(), 100).unwrap();
        assert_eq!(meta.iter().collect::<Vec<_>>(), [("deadline", "4294967295"), ("e", "x")]);
    }

    proptest::proptest! {
        /// Any bytes split into a block and a body or are refused, and a
        /// block taken is the one encoding of its entries (`[EXT-18]`).
        #[test]
        fn any_bytes_split_or_are_refused_and_taken_blocks_are_canonical(
            length in 0u8..48,
            tail in proptest::collection::vec(proptest::prop_oneof![0u8..=4, 0x20u8..=0x7e, proptest::num::u8::ANY], 0..64),
        ) {
            // A length the body can hold more often than not, then anything.
            let data: Vec<u8> = [0, length].into_iter().chain(tail).collect();
            let body = Bytes::from(data.clone());
            if let Ok((meta, rest)) = Metadata::split(&body, usize::from(u16::MAX)) {
                let mut again = BytesMut::new();
                meta.to_map().encode(usize::from(u16::MAX), &mut again).unwrap();
                proptest::prop_assert_eq!(&again[..], &data[..data.len() - rest.len()]);
            }
        }

        /// Entries a sender may send come back as they were sent.
        #[test]
        fn sent_entries_are_received(entries in proptest::collection::btree_map("[a-z0-9._-]{1,12}", "[ -~]{0,20}", 0..6)) {
            let map: MetadataMap = entries.iter().filter(|(k, _)| !REGISTERED.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
            let mut out = BytesMut::new();
            map.encode(usize::from(u16::MAX), &mut out).unwrap();
            let (meta, rest) = Metadata::split(&out.freeze(), usize::from(u16::MAX)).unwrap();
            proptest::prop_assert!(rest.is_empty());
            proptest::prop_assert_eq!(meta.to_map(), map);
        }
    }

    #[test]
    fn encoding_refuses_what_a_receiver_would() {
        let mut out = BytesMut::new();
        let bad_key: MetadataMap = [("Key", "v")].into_iter().collect();
        assert!(bad_key.encode(100, &mut out).is_err());
        let bad_value: MetadataMap = [("k", "line\nbreak")].into_iter().collect();
        assert!(bad_value.encode(100, &mut out).is_err());
        let bad_deadline: MetadataMap = [("deadline", "soon")].into_iter().collect();
        assert!(bad_deadline.encode(100, &mut out).is_err());
        let long: MetadataMap = [("k", "v".repeat(10))].into_iter().collect();
        assert!(long.encode(10, &mut out).is_err());
        assert!(out.is_empty(), "nothing written on failure");
    }
}
