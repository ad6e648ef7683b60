//! Arbitrary bytes as metric record payloads (series, type-2 and type-4 samples): decoders
//! return errors, never panic. The same bytes, read as a list of samples, must round-trip
//! through the type-4 encoder bit-exact.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use hearth_tsdb::record::{
        decode_samples, decode_samples_v2, decode_series, encode_samples_v2,
    };
    let _ = decode_series(data, |_| {});
    let _ = decode_samples(data, |_, _, _| {});
    let _ = decode_samples_v2(data, |_, _, _| {});

    // 17 bytes a sample: one byte picks the id (few distinct ids, so runs form), then the
    // timestamp and the value bits.
    let samples: Vec<(u64, i64, f64)> = data
        .chunks_exact(17)
        .map(|c| {
            let id = match c[0] % 4 {
                0 => 1,
                1 => 2,
                2 => u64::MAX,
                _ => u64::from(c[0]),
            };
            let t = i64::from_le_bytes(c[1..9].try_into().unwrap());
            let v = f64::from_bits(u64::from_le_bytes(c[9..17].try_into().unwrap()));
            (id, t, v)
        })
        .collect();
    let mut buf = Vec::new();
    encode_samples_v2(&mut buf, &samples);
    let mut got = Vec::with_capacity(samples.len());
    decode_samples_v2(&buf, |i, t, v| got.push((i, t, v.to_bits())))
        .expect("an encoded record decodes");
    let want: Vec<_> = samples
        .iter()
        .map(|&(i, t, v)| (i, t, v.to_bits()))
        .collect();
    assert_eq!(got, want);
});
