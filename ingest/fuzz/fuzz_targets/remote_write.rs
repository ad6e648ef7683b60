//! Arbitrary bytes as a remote_write body: snappy decompression (with a size limit) and both
//! protobuf decoders must return errors, never panic or allocate past the limit.
#![no_main]

use hearth_ingest::remote_write::{decode_v1, decode_v2, decompress};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(raw) = decompress(data, 1 << 20) {
        assert!(raw.len() <= 1 << 20);
        let _ = decode_v1(&raw, 10_000);
        let _ = decode_v2(&raw, 10_000);
    }
    let _ = decode_v1(data, 10_000);
    let _ = decode_v2(data, 10_000);
});
