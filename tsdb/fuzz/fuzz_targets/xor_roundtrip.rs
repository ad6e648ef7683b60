//! Encodes a fuzzer-chosen sample sequence and checks the decoder returns it bit-exactly.
//!
//! Input layout: 8 bytes of first timestamp, then 17-byte records of
//! (mode: u8, delta: u64, value bits: u64). The mode picks how the raw delta and value are
//! shaped, so the fuzzer reaches every timestamp bucket and every XOR case (same value, reused
//! window, new window) instead of mostly 64-bit noise.
#![no_main]

use hearth_tsdb::chunk::{num_samples, XorChunk, XorIter};
use libfuzzer_sys::fuzz_target;

fn u64_at(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let mut t = u64_at(data) as i64;
    let mut samples: Vec<(i64, u64)> = Vec::new();
    let mut prev_v = 0u64;
    for (i, rec) in data[8..].chunks_exact(17).enumerate() {
        let (mode, raw_d, raw_v) = (rec[0], u64_at(&rec[1..]), u64_at(&rec[9..]));
        if i > 0 {
            let delta = match mode & 3 {
                0 => 15_000 + (raw_d % 16), // scrape interval with jitter
                1 => raw_d & 0xff_ffff,     // up to the 20-bit bucket and past it
                2 => raw_d >> (raw_d % 64), // any magnitude
                _ => raw_d,
            }
            .max(1);
            match t.checked_add_unsigned(delta) {
                Some(next) => t = next,
                None => break,
            }
        }
        let v = match (mode >> 2) & 3 {
            0 => prev_v,                       // '0': same value
            1 => prev_v ^ (raw_v & 0xffff),    // small change: window reuse
            2 => prev_v ^ (1 << (raw_v % 64)), // one bit anywhere
            _ => raw_v,                        // anything, NaN payloads included
        };
        prev_v = v;
        samples.push((t, v));
    }

    let mut chunk = XorChunk::new();
    let mut kept = 0;
    for &(t, v) in &samples {
        if chunk.append(t, f64::from_bits(v)).is_err() {
            break; // only when full: timestamps were made strictly increasing above
        }
        kept += 1;
    }
    assert!(kept == samples.len() || kept == 65_535);
    let want = &samples[..kept];

    assert_eq!(num_samples(chunk.bytes()).ok(), Some(kept));
    let mut it = XorIter::new(chunk.bytes());
    let got: Vec<(i64, u64)> = it.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
    assert!(it.err().is_none(), "{:?}", it.err());
    assert_eq!(got, want);
    assert_eq!(chunk.last_time(), want.last().map(|s| s.0));
    assert_eq!(
        chunk.last_value().map(f64::to_bits),
        want.last().map(|s| s.1)
    );
});
