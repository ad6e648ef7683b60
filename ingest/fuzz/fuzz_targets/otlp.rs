//! Arbitrary bytes as an OTLP metrics request: the translation returns errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hearth_ingest::otlp::translate(data);
});
