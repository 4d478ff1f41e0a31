//! Any bytes as a request body under the `metadata` extension: the block
//! splits off or is refused without a panic, and a block that is taken is
//! the one encoding of its entries (`[EXT-18]`): written again from its
//! entries, it is the same bytes.
#![no_main]

use bytes::{Bytes, BytesMut};
use iip::proto::extensions::Metadata;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    let Ok((metadata, rest)) = Metadata::split(&body, usize::from(u16::MAX)) else { return };
    let mut again = BytesMut::new();
    metadata.to_map().encode(usize::from(u16::MAX), &mut again).expect("a block taken is a block that can be sent");
    assert_eq!(&again[..], &data[..data.len() - rest.len()]);
    let _ = (metadata.deadline(), metadata.traceparent(), metadata.request_id());
});
