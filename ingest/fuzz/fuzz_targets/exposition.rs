//! Arbitrary bytes through the exposition parser, as both formats. The parser
//! must never panic, must terminate, and must report errors on a line that
//! exists in the input.
#![no_main]

use hearth_ingest::exposition::{Entry, Format, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Bodies arrive as bytes; the import endpoint rejects invalid UTF-8 before
    // parsing, so the lossy conversion only widens what reaches the parser.
    let input = String::from_utf8_lossy(data);
    let lines = input.split('\n').count();
    for format in [Format::Text, Format::OpenMetrics] {
        let mut parser = Parser::new(&input, format);
        let mut entries = 0usize;
        while let Some(entry) = parser.next_entry() {
            entries += 1;
            assert!(entries <= input.len() + 1, "parser did not terminate");
            match entry {
                Ok(Entry::Sample(s)) => {
                    assert!(!s.name.is_empty());
                    if let Some(e) = s.exemplar {
                        assert!(format == Format::OpenMetrics);
                        assert!(e.labels.len() <= 128);
                    }
                }
                Ok(_) => {}
                Err(e) => assert!(e.line >= 1 && e.line <= lines + 1, "bad line in {e}"),
            }
        }
    }
});
