//! KPL aggregation: many user records in one Kinesis record, as the Kinesis Producer Library
//! writes it and every KCL/Lambda deaggregator reads it: the magic bytes `F3 89 9A C2`, a
//! protobuf `AggregatedRecord`, and the MD5 of the protobuf bytes.
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes data = 3;
//! }
//! ```
//! Each aggregate carries one partition key (index 0 for every record), as the seed's
//! `kinesis_streams_aggregated` does.

use md5::{Digest, Md5};

pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST: usize = 16;

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Bytes a user record of `data_len` adds to an aggregate.
pub fn entry_size(data_len: usize) -> usize {
    // partition_key_index (tag + varint 0) and data (tag + length + bytes), inside field 3.
    let inner = 2 + 1 + varint_len(data_len) + data_len;
    1 + varint_len(inner) + inner
}

/// Bytes of an empty aggregate keyed by `key`, magic and digest included.
pub fn base_size(key: &str) -> usize {
    MAGIC.len() + 1 + varint_len(key.len()) + key.len() + DIGEST
}

/// Encode the records in `records` as one aggregate keyed by `key`.
pub fn encode<'a>(key: &str, records: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut message = Vec::new();
    message.push(0x0a); // field 1, length-delimited: partition_key_table
    put_varint(&mut message, key.len());
    message.extend_from_slice(key.as_bytes());
    for data in records {
        message.push(0x1a); // field 3, length-delimited: records
        put_varint(&mut message, 2 + 1 + varint_len(data.len()) + data.len());
        message.extend_from_slice(&[0x08, 0x00]); // partition_key_index = 0
        message.push(0x1a); // field 3 of Record: data
        put_varint(&mut message, data.len());
        message.extend_from_slice(data);
    }
    let mut out = Vec::with_capacity(MAGIC.len() + message.len() + DIGEST);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&message);
    out.extend_from_slice(&Md5::digest(&message));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_encoding() {
        for (key, sizes) in [
            ("k", vec![1usize, 2, 3]),
            ("pod-1234", vec![200, 127, 128, 16_400]),
            ("", vec![0]),
        ] {
            let data: Vec<Vec<u8>> = sizes.iter().map(|n| vec![b'x'; *n]).collect();
            let encoded = encode(key, data.iter().map(Vec::as_slice));
            let predicted = base_size(key) + sizes.iter().map(|n| entry_size(*n)).sum::<usize>();
            assert_eq!(encoded.len(), predicted, "{key} {sizes:?}");
            assert_eq!(&encoded[..4], &MAGIC);
        }
    }

    #[test]
    fn the_digest_is_the_md5_of_the_message() {
        let encoded = encode("k", [b"ab".as_slice()]);
        let message = &encoded[4..encoded.len() - 16];
        // 0a 01 'k' | 1a 06 08 00 1a 02 'a' 'b'
        assert_eq!(
            message,
            &[0x0a, 0x01, b'k', 0x1a, 0x06, 0x08, 0x00, 0x1a, 0x02, b'a', b'b']
        );
        assert_eq!(&encoded[encoded.len() - 16..], Md5::digest(message).as_slice());
    }
}
