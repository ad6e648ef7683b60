//! Arbitrary bytes as a WAL segment file: the reader must report damage, never panic, and
//! only hand out payloads that lie inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000001");
    std::fs::write(&path, data).unwrap();
    let mut total = 0usize;
    let _ = hearth_tsdb::wal::read_segment(&path, true, |rec| -> Result<(), hearth_tsdb::wal::WalError> {
        total += rec.payload.len();
        Ok(())
    });
    assert!(total <= data.len());
});
