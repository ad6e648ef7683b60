//! `meta.json`: a block's identity, time range, stats and compaction history
//! (`docs/format/block.md`, "meta.json"). Field names are Prometheus's, so tools that read
//! Prometheus block metadata understand ours. Encoded and decoded by hand through
//! `serde_json::Value`: the format is this document's, not a struct's derive.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::corrupt;
use crate::TsdbError;

/// The `version` field of `meta.json` this code writes and reads (Prometheus's is 1 too).
pub const META_VERSION: u64 = 1;

/// Counts describing a block's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Samples in all chunks.
    pub num_samples: u64,
    /// Series in the index.
    pub num_series: u64,
    /// Chunks in the segment files.
    pub num_chunks: u64,
    /// Bytes of the index and the chunk segment files (`meta.json` excluded).
    pub num_bytes: u64,
}

/// What `meta.json` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMeta {
    /// The block id, also the directory name (see [`new_block_id`](super::new_block_id)).
    pub id: String,
    /// Smallest timestamp the block may hold (ms, inclusive).
    pub min_time: i64,
    /// End of the block's time range (ms, **exclusive**, as in Prometheus).
    pub max_time: i64,
    /// Filled in by [`BlockWriter::finish`](super::BlockWriter::finish) from what was written.
    pub stats: BlockStats,
    /// Compaction level: 1 for a block cut from the head, +1 per compaction.
    pub level: u32,
    /// Ids of the level-1 blocks whose data this block holds (itself for a level-1 block).
    pub sources: Vec<String>,
}

impl BlockMeta {
    /// Metadata for a level-1 block cut from the head: `sources` is `[id]`, stats zero (the
    /// writer fills them in).
    pub fn new(id: impl Into<String>, min_time: i64, max_time: i64) -> BlockMeta {
        let id = id.into();
        BlockMeta {
            sources: vec![id.clone()],
            id,
            min_time,
            max_time,
            stats: BlockStats::default(),
            level: 1,
        }
    }

    /// Appends the pretty-printed JSON document to `dst`.
    pub fn encode_into(&self, dst: &mut Vec<u8>) {
        let doc = json!({
            "ulid": self.id,
            "minTime": self.min_time,
            "maxTime": self.max_time,
            "stats": {
                "numSamples": self.stats.num_samples,
                "numSeries": self.stats.num_series,
                "numChunks": self.stats.num_chunks,
                "numBytes": self.stats.num_bytes,
            },
            "compaction": {
                "level": self.level,
                "sources": self.sources,
            },
            "version": META_VERSION,
        });
        // Writing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer_pretty(&mut *dst, &doc);
        dst.push(b'\n');
    }

    /// Parses a `meta.json` document; `path` is only used in errors. Unknown fields are
    /// ignored (a newer writer may add some); missing or mistyped known ones are corruption.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<BlockMeta, TsdbError> {
        let bad = |detail: String| corrupt(path, 0, detail);
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("meta.json is not JSON: {e}")))?;
        let top = doc
            .as_object()
            .ok_or_else(|| bad("meta.json is not a JSON object".into()))?;
        let version = get_u64(top, "version").map_err(&bad)?;
        if version != META_VERSION {
            return Err(bad(format!(
                "meta.json version {version}, this build reads {META_VERSION}"
            )));
        }
        let id = get_str(top, "ulid").map_err(&bad)?.to_owned();
        let min_time = get_i64(top, "minTime").map_err(&bad)?;
        let max_time = get_i64(top, "maxTime").map_err(&bad)?;
        if min_time > max_time {
            return Err(bad(format!("minTime {min_time} > maxTime {max_time}")));
        }
        let stats = get_obj(top, "stats").map_err(&bad)?;
        let compaction = get_obj(top, "compaction").map_err(&bad)?;
        let level = get_u64(compaction, "level").map_err(&bad)?;
        let sources = match compaction.get("sources") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("compaction.sources holds a non-string".into()))?,
            Some(_) => return Err(bad("compaction.sources is not an array".into())),
        };
        let opt = |k: &str| match stats.get(k) {
            None => Ok(0),
            Some(_) => get_u64(stats, k),
        };
        Ok(BlockMeta {
            id,
            min_time,
            max_time,
            stats: BlockStats {
                num_samples: opt("numSamples").map_err(&bad)?,
                num_series: opt("numSeries").map_err(&bad)?,
                num_chunks: opt("numChunks").map_err(&bad)?,
                num_bytes: opt("numBytes").map_err(&bad)?,
            },
            level: u32::try_from(level).map_err(|_| bad(format!("level {level} too large")))?,
            sources,
        })
    }
}

fn get<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a Value, String> {
    o.get(k).ok_or_else(|| format!("meta.json lacks {k:?}"))
}

fn get_u64(o: &Map<String, Value>, k: &str) -> Result<u64, String> {
    get(o, k)?
        .as_u64()
        .ok_or_else(|| format!("meta.json field {k:?} is not an unsigned integer"))
}

fn get_i64(o: &Map<String, Value>, k: &str) -> Result<i64, String> {
    get(o, k)?
        .as_i64()
        .ok_or_else(|| format!("meta.json field {k:?} is not an integer"))
}

fn get_str<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a str, String> {
    get(o, k)?
        .as_str()
        .ok_or_else(|| format!("meta.json field {k:?} is not a string"))
}

fn get_obj<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a Map<String, Value>, String> {
    get(o, k)?
        .as_object()
        .ok_or_else(|| format!("meta.json field {k:?} is not an object"))
}
