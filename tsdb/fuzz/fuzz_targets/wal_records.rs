//! Arbitrary bytes as metric record payloads (series and samples): decoders return errors,
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hearth_tsdb::record::decode_series(data, |_| {});
    let _ = hearth_tsdb::record::decode_samples(data, |_, _, _| {});
});
