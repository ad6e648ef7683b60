//! Arbitrary bytes as a block's index and chunk segment file: opening, querying and verifying
//! must report corruption, never panic. The input is `index_len u16 LE | index | segment`;
//! seed the corpus from `tests/fixtures/block_v1` (index and chunks/000001 concatenated).
#![no_main]

use hearth_tsdb::block::Block;
use hearth_tsdb::{MatchOp, Matcher};
use libfuzzer_sys::fuzz_target;

const META: &str = r#"{"ulid":"01JCZ0000000000000000FX001","minTime":0,"maxTime":1,
"stats":{},"compaction":{"level":1,"sources":[]},"version":1}"#;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (index, segment) = data[2..].split_at(n);
    let dir = tempfile::tempdir().unwrap();
    let block = dir.path().join("01JCZ0000000000000000FX001");
    std::fs::create_dir_all(block.join("chunks")).unwrap();
    std::fs::write(block.join("meta.json"), META).unwrap();
    std::fs::write(block.join("index"), index).unwrap();
    std::fs::write(block.join("chunks/000001"), segment).unwrap();
    let Ok(b) = Block::open(&block) else { return };
    let ms = [
        vec![],
        vec![Matcher::new(MatchOp::Regex, "job", "a|b").unwrap()],
        vec![Matcher::new(MatchOp::NotEqual, "x", "").unwrap()],
    ];
    for m in &ms {
        let _ = b.label_names(m);
        let _ = b.label_values("__name__", m);
        let Ok(refs) = b.select(m) else { continue };
        for r in refs {
            let Ok((_, metas)) = b.series(r) else { continue };
            for c in metas {
                // Resolves shared timestamp columns through the block.
                let _ = b.decode_chunk(c.chunk_ref, &mut Vec::new(), &mut Vec::new(), &"fuzz");
            }
        }
    }
    for s in b.all_series() {
        if s.is_err() {
            break;
        }
    }
    let _ = b.verify();
});
