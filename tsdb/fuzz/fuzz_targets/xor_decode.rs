//! Decodes arbitrary bytes as an XOR chunk. Must never panic, and whatever it yields must obey
//! the iterator's contract: no more samples than the header declares, strictly increasing
//! timestamps, and either every declared sample or an error saying why not.
#![no_main]

use hearth_tsdb::chunk::{num_samples, XorIter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut it = XorIter::new(data);
    let mut n = 0usize;
    let mut last: Option<i64> = None;
    for (t, _) in it.by_ref() {
        assert!(last.is_none_or(|l| t > l), "timestamps must increase");
        last = Some(t);
        n += 1;
    }
    match num_samples(data) {
        Ok(declared) => {
            assert!(n <= declared);
            assert_eq!(n == declared, it.err().is_none(), "{:?}", it.err());
        }
        Err(_) => assert!(n == 0 && it.err().is_some()),
    }
    assert_eq!(it.next(), None, "iterator must be fused");

    // Seeking through the same bytes must not panic either, and must agree with iteration.
    let mut it = XorIter::new(data);
    if let Some((t, _)) = it.seek(i64::MIN) {
        assert_eq!(it.seek(t).map(|s| s.0), Some(t));
    }
});
