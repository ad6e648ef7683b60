//! The block index file (`docs/format/block.md`, "Index file"): writer and reader.
//!
//! ```text
//! header (8)          magic "HIDX" | version u8 = 1 | 3 zero bytes
//! symbols             groups of up to 16 strings (uvarint len + UTF-8), each group + crc32c
//! symbol table        num_symbols u32 | u64 offset of every group | crc32c
//! series              per series: uvarint len | body | crc32c(body)
//! series table        num_series u32 | u64 offset of every 16th series | crc32c
//! postings            per label pair: count, first id, deltas (uvarints) | crc32c
//! label values        per name: (value symbol u32, postings offset u64)* | crc32c
//! label names         num_names u32 | (name symbol u32, values offset u64, count u32)* | crc32c
//! TOC (60)            7 × u64 section offsets | crc32c
//! ```
//! Fixed-width integers are little-endian; offsets are absolute file offsets.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use memmap2::Mmap;
use roaring::RoaringBitmap;

use super::{corrupt, ChunkMeta, ChunkRef, Rd};
use crate::varint::{put_uvarint, put_varint};
use crate::{Labels, TsdbError};

/// Magic number at the start of the index file.
pub(super) const INDEX_MAGIC: [u8; 4] = *b"HIDX";
/// Current (and only) index format version.
pub(super) const INDEX_VERSION: u8 = 1;
const HEADER_LEN: usize = 8;
/// Seven u64 section offsets and a CRC32C.
const TOC_LEN: usize = 7 * 8 + 4;
/// Strings per symbol group (one offset and one CRC per group).
pub(super) const SYMBOL_GROUP: usize = 16;
/// Every how many series the series table records an offset.
pub(super) const SERIES_SAMPLE: usize = 16;
/// Bytes of a label-names table entry and of a label-values entry.
const NAME_ENTRY_LEN: usize = 16;
const VALUE_ENTRY_LEN: usize = 12;

/// Section start offsets, in file order. Each section ends where the next starts (the last
/// one at the TOC).
#[derive(Debug, Clone, Copy, Default)]
struct Toc {
    symbols: u64,
    symbol_table: u64,
    series: u64,
    series_table: u64,
    postings: u64,
    label_values: u64,
    label_names: u64,
}

impl Toc {
    fn as_array(&self) -> [u64; 7] {
        [
            self.symbols,
            self.symbol_table,
            self.series,
            self.series_table,
            self.postings,
            self.label_values,
            self.label_names,
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// A buffered output file that knows its position.
struct Out {
    w: BufWriter<File>,
    pos: u64,
    path: PathBuf,
}

impl Out {
    fn put(&mut self, b: &[u8]) -> Result<(), TsdbError> {
        self.w
            .write_all(b)
            .map_err(|e| TsdbError::io(&self.path, e))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Writes `b` followed by its CRC32C.
    fn put_crc(&mut self, b: &[u8]) -> Result<(), TsdbError> {
        self.put(b)?;
        self.put(&crc32c::crc32c(b).to_le_bytes())
    }
}

/// What the block writer collected, in its temporary symbol ids (interning order).
pub(super) struct IndexInput<'a> {
    /// `symbols[tmp_id]`.
    pub(super) symbols: &'a [Arc<str>],
    /// The spill file of series entries (see [`spill_series`]).
    pub(super) spill: &'a Path,
    /// `(name tmp id, value tmp id)` → series ordinals, ascending.
    pub(super) postings: HashMap<(u32, u32), Vec<u32>>,
    pub(super) num_series: u32,
}

/// Appends a spill entry for one series to `dst`: `u32 LE len | body`, the body being the
/// label pairs in temporary symbol ids followed by the encoded chunk metas.
pub(super) fn spill_series(dst: &mut Vec<u8>, label_ids: &[(u32, u32)], chunks: &[ChunkMeta]) {
    let start = dst.len();
    dst.extend_from_slice(&[0; 4]);
    put_uvarint(dst, label_ids.len() as u64);
    for &(n, v) in label_ids {
        put_uvarint(dst, u64::from(n));
        put_uvarint(dst, u64::from(v));
    }
    encode_chunk_metas(dst, chunks);
    let len = (dst.len() - start - 4) as u32;
    dst[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Chunk metas as the series entry stores them: count, then per chunk the min time (first:
/// zigzag varint; later: uvarint distance from the previous max time), the duration as a
/// uvarint, and the reference (first: uvarint; later: uvarint delta). Differences wrap, so any
/// `i64` times round-trip; the writer guarantees they are ascending and non-overlapping.
fn encode_chunk_metas(dst: &mut Vec<u8>, chunks: &[ChunkMeta]) {
    put_uvarint(dst, chunks.len() as u64);
    let mut prev: Option<&ChunkMeta> = None;
    for c in chunks {
        match prev {
            None => {
                put_varint(dst, c.min_t);
                put_uvarint(dst, c.max_t.wrapping_sub(c.min_t) as u64);
                put_uvarint(dst, c.chunk_ref.0);
            }
            Some(p) => {
                put_uvarint(dst, c.min_t.wrapping_sub(p.max_t) as u64);
                put_uvarint(dst, c.max_t.wrapping_sub(c.min_t) as u64);
                put_uvarint(dst, c.chunk_ref.0.wrapping_sub(p.chunk_ref.0));
            }
        }
        prev = Some(c);
    }
}

/// Writes the index file at `path` (fsynced) and returns its size.
pub(super) fn write_index(path: &Path, input: IndexInput<'_>) -> Result<u64, TsdbError> {
    let file = File::create(path).map_err(|e| TsdbError::io(path, e))?;
    let mut out = Out {
        w: BufWriter::with_capacity(1 << 20, file),
        pos: 0,
        path: path.to_path_buf(),
    };
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&INDEX_MAGIC);
    header[4] = INDEX_VERSION;
    out.put(&header)?;
    let mut toc = Toc::default();
    let mut buf = Vec::new();

    // Symbols, sorted; remap[tmp id] = final id.
    let syms = input.symbols;
    let mut order: Vec<u32> = (0..syms.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| syms[a as usize].cmp(&syms[b as usize]));
    let mut remap = vec![0u32; syms.len()];
    for (fin, &tmp) in order.iter().enumerate() {
        remap[tmp as usize] = fin as u32;
    }
    toc.symbols = out.pos;
    let mut group_offsets = Vec::with_capacity(order.len().div_ceil(SYMBOL_GROUP));
    for group in order.chunks(SYMBOL_GROUP) {
        group_offsets.push(out.pos);
        buf.clear();
        for &tmp in group {
            let s = syms[tmp as usize].as_bytes();
            put_uvarint(&mut buf, s.len() as u64);
            buf.extend_from_slice(s);
        }
        out.put_crc(&buf)?;
    }
    toc.symbol_table = out.pos;
    write_table(&mut out, &mut buf, syms.len() as u32, &group_offsets)?;
    drop(group_offsets);

    // Series, from the spill file, relabelled with final symbol ids.
    toc.series = out.pos;
    let mut sample_offsets =
        Vec::with_capacity((input.num_series as usize).div_ceil(SERIES_SAMPLE));
    let spill = File::open(input.spill).map_err(|e| TsdbError::io(input.spill, e))?;
    let mut spill = BufReader::with_capacity(1 << 20, spill);
    let mut body = Vec::new();
    let mut entry = Vec::new();
    for i in 0..input.num_series as usize {
        let mut len = [0u8; 4];
        spill
            .read_exact(&mut len)
            .map_err(|e| TsdbError::io(input.spill, e))?;
        body.resize(u32::from_le_bytes(len) as usize, 0);
        spill
            .read_exact(&mut body)
            .map_err(|e| TsdbError::io(input.spill, e))?;
        let mut rd = Rd::new(&body, 0, body.len());
        let bad = || TsdbError::Internal {
            detail: "block writer spill file is inconsistent".into(),
        };
        entry.clear();
        let n = rd.uvarint().ok_or_else(bad)?;
        put_uvarint(&mut entry, n);
        for _ in 0..n {
            for _ in 0..2 {
                let tmp = rd.uvarint().ok_or_else(bad)? as usize;
                put_uvarint(&mut entry, u64::from(*remap.get(tmp).ok_or_else(bad)?));
            }
        }
        entry.extend_from_slice(&body[rd.pos..]);
        if i % SERIES_SAMPLE == 0 {
            sample_offsets.push(out.pos);
        }
        buf.clear();
        put_uvarint(&mut buf, entry.len() as u64);
        out.put(&buf)?;
        out.put_crc(&entry)?;
    }
    toc.series_table = out.pos;
    write_table(&mut out, &mut buf, input.num_series, &sample_offsets)?;
    drop(sample_offsets);

    // Postings, in (name, value) order of final ids, which is string order.
    toc.postings = out.pos;
    let mut lists: Vec<((u32, u32), Vec<u32>)> = input
        .postings
        .into_iter()
        .map(|((n, v), ids)| ((remap[n as usize], remap[v as usize]), ids))
        .collect();
    lists.sort_unstable_by_key(|l| l.0);
    let mut pairs: Vec<(u32, u32, u64)> = Vec::with_capacity(lists.len());
    for ((n, v), ids) in lists {
        pairs.push((n, v, out.pos));
        buf.clear();
        put_uvarint(&mut buf, ids.len() as u64);
        let mut prev = 0u32;
        for (i, &id) in ids.iter().enumerate() {
            put_uvarint(&mut buf, u64::from(if i == 0 { id } else { id - prev }));
            prev = id;
        }
        out.put_crc(&buf)?;
    }

    // Label values: one list per name.
    toc.label_values = out.pos;
    let mut names: Vec<(u32, u64, u32)> = Vec::new();
    for group in pairs.chunk_by(|a, b| a.0 == b.0) {
        names.push((group[0].0, out.pos, group.len() as u32));
        buf.clear();
        for &(_, v, off) in group {
            buf.extend_from_slice(&v.to_le_bytes());
            buf.extend_from_slice(&off.to_le_bytes());
        }
        out.put_crc(&buf)?;
    }

    // Label names.
    toc.label_names = out.pos;
    buf.clear();
    buf.extend_from_slice(&(names.len() as u32).to_le_bytes());
    for &(n, off, count) in &names {
        buf.extend_from_slice(&n.to_le_bytes());
        buf.extend_from_slice(&off.to_le_bytes());
        buf.extend_from_slice(&count.to_le_bytes());
    }
    out.put_crc(&buf)?;

    buf.clear();
    for off in toc.as_array() {
        buf.extend_from_slice(&off.to_le_bytes());
    }
    out.put_crc(&buf)?;

    let file = out
        .w
        .into_inner()
        .map_err(|e| TsdbError::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| TsdbError::io(path, e))?;
    Ok(out.pos)
}

/// A count and a list of u64 offsets, with a CRC: the symbol and series tables.
fn write_table(
    out: &mut Out,
    buf: &mut Vec<u8>,
    count: u32,
    offsets: &[u64],
) -> Result<(), TsdbError> {
    buf.clear();
    buf.extend_from_slice(&count.to_le_bytes());
    for off in offsets {
        buf.extend_from_slice(&off.to_le_bytes());
    }
    out.put_crc(buf)
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// One label name of the index, loaded at open.
#[derive(Debug)]
pub(super) struct NameEntry {
    pub(super) name: String,
    values_off: u64,
    num_values: u32,
    /// Whether the value list's CRC was checked already (it is checked on first use).
    checked: AtomicBool,
}

/// A series entry decoded but with its labels still as symbol ids.
pub(super) struct RawSeries {
    pub(super) labels: Vec<(u32, u32)>,
    pub(super) chunks: Vec<ChunkMeta>,
}

/// A mapped, opened index file. Immutable; all methods take `&self`.
pub(super) struct IndexReader {
    path: PathBuf,
    map: Mmap,
    toc: Toc,
    num_symbols: u32,
    num_series: u32,
    /// Every label name, ascending.
    names: Vec<NameEntry>,
}

impl IndexReader {
    /// Maps the file and reads its header, TOC and label-name table (CRC checked).
    pub(super) fn open(path: &Path) -> Result<IndexReader, TsdbError> {
        let file = File::open(path).map_err(|e| TsdbError::io(path, e))?;
        let len = file.metadata().map_err(|e| TsdbError::io(path, e))?.len();
        if len < (HEADER_LEN + TOC_LEN) as u64 {
            return Err(corrupt(
                path,
                0,
                format!("index file of {len} bytes is truncated"),
            ));
        }
        // SAFETY: block files are immutable once the block is renamed into place; nothing in
        // hearth writes or truncates them while a Block is open (deletion only unlinks).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| TsdbError::io(path, e))?;
        if map[..4] != INDEX_MAGIC {
            return Err(corrupt(path, 0, "bad magic number in index file"));
        }
        if map[4] != INDEX_VERSION {
            return Err(corrupt(
                path,
                4,
                format!("unknown index version {}", map[4]),
            ));
        }
        if map[5..HEADER_LEN] != [0, 0, 0] {
            return Err(corrupt(path, 5, "reserved index header bytes are not zero"));
        }
        let toc_start = map.len() - TOC_LEN;
        let toc_bytes = &map[toc_start..map.len() - 4];
        let mut rd = Rd::new(&map, map.len() - 4, map.len());
        if rd.u32() != Some(crc32c::crc32c(toc_bytes)) {
            return Err(corrupt(
                path,
                toc_start as u64,
                "index TOC checksum mismatch (truncated or corrupt file)",
            ));
        }
        let mut rd = Rd::new(&map, toc_start, map.len());
        let mut offs = [0u64; 7];
        for o in &mut offs {
            *o = rd.u64().unwrap_or(0);
        }
        let mut prev = HEADER_LEN as u64;
        for &o in &offs {
            if o < prev || o > toc_start as u64 {
                return Err(corrupt(
                    path,
                    toc_start as u64,
                    "index TOC offsets out of order",
                ));
            }
            prev = o;
        }
        let toc = Toc {
            symbols: offs[0],
            symbol_table: offs[1],
            series: offs[2],
            series_table: offs[3],
            postings: offs[4],
            label_values: offs[5],
            label_names: offs[6],
        };
        let mut r = IndexReader {
            path: path.to_path_buf(),
            map,
            toc,
            num_symbols: 0,
            num_series: 0,
            names: Vec::new(),
        };
        r.num_symbols = r.table_count(toc.symbol_table, toc.series, SYMBOL_GROUP)?;
        r.num_series = r.table_count(toc.series_table, toc.postings, SERIES_SAMPLE)?;
        r.names = r.read_names(toc_start as u64)?;
        Ok(r)
    }

    fn err(&self, offset: u64, detail: impl Into<String>) -> TsdbError {
        corrupt(&self.path, offset, detail)
    }

    fn rd(&self, pos: u64, end: u64) -> Rd<'_> {
        Rd::new(&self.map, pos as usize, end as usize)
    }

    /// Reads the count of a symbol or series table and checks the table's length against it.
    fn table_count(&self, start: u64, end: u64, per: usize) -> Result<u32, TsdbError> {
        let count = self
            .rd(start, end)
            .u32()
            .ok_or_else(|| self.err(start, "table shorter than its count"))?;
        let want = 4 + 8 * (count as u64).div_ceil(per as u64) + 4;
        if end - start != want {
            return Err(self.err(
                start,
                format!("table of {} bytes for {count} entries", end - start),
            ));
        }
        Ok(count)
    }

    /// Checks the CRC32C that follows `[start, end)`.
    fn check_crc(&self, start: u64, end: u64, what: &str) -> Result<(), TsdbError> {
        let stored = self.rd(end, end + 4).u32();
        if stored != Some(crc32c::crc32c(&self.map[start as usize..end as usize])) {
            return Err(self.err(start, format!("{what} checksum mismatch")));
        }
        Ok(())
    }

    fn read_names(&self, toc_start: u64) -> Result<Vec<NameEntry>, TsdbError> {
        let start = self.toc.label_names;
        let count = self
            .rd(start, toc_start)
            .u32()
            .ok_or_else(|| self.err(start, "label-name table shorter than its count"))?;
        let body_end = start + 4 + NAME_ENTRY_LEN as u64 * u64::from(count);
        if body_end + 4 != toc_start {
            return Err(self.err(start, "label-name table length does not match its count"));
        }
        self.check_crc(start, body_end, "label-name table")?;
        let mut rd = self.rd(start + 4, body_end);
        let mut names: Vec<NameEntry> = Vec::with_capacity(count as usize);
        let mut prev_sym = None;
        for _ in 0..count {
            let (sym, values_off, num_values) = (
                rd.u32().unwrap_or(0),
                rd.u64().unwrap_or(0),
                rd.u32().unwrap_or(0),
            );
            let end = values_off.saturating_add(VALUE_ENTRY_LEN as u64 * u64::from(num_values) + 4);
            if prev_sym.is_some_and(|p| p >= sym)
                || num_values == 0
                || values_off < self.toc.label_values
                || end > self.toc.label_names
            {
                return Err(self.err(start, "label-name table entry out of range or order"));
            }
            prev_sym = Some(sym);
            names.push(NameEntry {
                name: self.symbol(sym)?.to_owned(),
                values_off,
                num_values,
                checked: AtomicBool::new(false),
            });
        }
        Ok(names)
    }

    pub(super) fn num_series(&self) -> u32 {
        self.num_series
    }

    pub(super) fn names(&self) -> &[NameEntry] {
        &self.names
    }

    pub(super) fn name_index(&self, name: &str) -> Option<usize> {
        self.names
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
    }

    /// `[start, end)` of symbol group `g` (its strings, without the trailing CRC).
    fn group_range(&self, g: u64) -> Result<(u64, u64), TsdbError> {
        let groups = u64::from(self.num_symbols).div_ceil(SYMBOL_GROUP as u64);
        let at = |i: u64| {
            self.rd(self.toc.symbol_table + 4 + 8 * i, self.toc.series)
                .u64()
        };
        let start =
            at(g).ok_or_else(|| self.err(self.toc.symbol_table, "symbol table truncated"))?;
        let end = if g + 1 < groups {
            at(g + 1).ok_or_else(|| self.err(self.toc.symbol_table, "symbol table truncated"))?
        } else {
            self.toc.symbol_table
        };
        if start < self.toc.symbols || end > self.toc.symbol_table || start + 4 > end {
            return Err(self.err(
                self.toc.symbol_table,
                format!("symbol group {g} out of range"),
            ));
        }
        Ok((start, end - 4))
    }

    /// Iterates the strings of symbol group `g` after checking its CRC.
    fn group(&self, g: u64) -> Result<GroupIter<'_>, TsdbError> {
        let (start, end) = self.group_range(g)?;
        self.check_crc(start, end, "symbol group")?;
        let left = (u64::from(self.num_symbols) - g * SYMBOL_GROUP as u64).min(SYMBOL_GROUP as u64);
        Ok(GroupIter {
            ix: self,
            rd: self.rd(start, end),
            left: left as usize,
        })
    }

    /// The string of symbol `id`.
    pub(super) fn symbol(&self, id: u32) -> Result<&str, TsdbError> {
        if id >= self.num_symbols {
            return Err(self.err(self.toc.symbols, format!("symbol id {id} out of range")));
        }
        let g = u64::from(id) / SYMBOL_GROUP as u64;
        let mut it = self.group(g)?;
        for _ in 0..id as usize % SYMBOL_GROUP {
            it.next_str()?;
        }
        it.next_str()
    }

    /// [`symbol`](Self::symbol) through `cache`, for runs of look-ups (a series' labels, a
    /// name's values, a compaction's walk) that keep hitting the same few groups.
    pub(super) fn symbol_cached<'a>(
        &'a self,
        id: u32,
        cache: &mut SymbolCache<'a>,
    ) -> Result<&'a str, TsdbError> {
        if id >= self.num_symbols {
            return Err(self.err(self.toc.symbols, format!("symbol id {id} out of range")));
        }
        let g = u64::from(id) / SYMBOL_GROUP as u64;
        let i = id as usize % SYMBOL_GROUP;
        if let Some((_, strs)) = cache.groups.iter().find(|c| c.0 == g) {
            return strs
                .get(i)
                .copied()
                .ok_or_else(|| self.err(self.toc.symbols, "symbol group too short"));
        }
        let mut it = self.group(g)?;
        let mut strs = Vec::with_capacity(SYMBOL_GROUP);
        while it.left > 0 {
            strs.push(it.next_str()?);
        }
        let s = strs[i];
        if cache.groups.len() < SYMBOL_CACHE_GROUPS {
            cache.groups.push((g, strs));
        } else {
            cache.groups[cache.next] = (g, strs);
            cache.next = (cache.next + 1) % SYMBOL_CACHE_GROUPS;
        }
        Ok(s)
    }

    /// The id of symbol `s`, if the index has it.
    pub(super) fn lookup_symbol(&self, s: &str) -> Result<Option<u32>, TsdbError> {
        let groups = u64::from(self.num_symbols).div_ceil(SYMBOL_GROUP as u64);
        // Last group whose first string is <= s.
        let (mut lo, mut hi) = (0u64, groups);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (start, end) = self.group_range(mid)?;
            let first = GroupIter {
                ix: self,
                rd: self.rd(start, end),
                left: 1,
            }
            .next_str()?;
            if first <= s {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return Ok(None);
        }
        let g = lo - 1;
        let mut it = self.group(g)?;
        let mut i = 0;
        while it.left > 0 {
            if it.next_str()? == s {
                return Ok(Some((g * SYMBOL_GROUP as u64 + i) as u32));
            }
            i += 1;
        }
        Ok(None)
    }

    /// Start offset of series `ordinal`'s entry.
    fn series_pos(&self, ordinal: u32) -> Result<u64, TsdbError> {
        if ordinal >= self.num_series {
            return Err(self.err(self.toc.series, format!("series {ordinal} out of range")));
        }
        let k = u64::from(ordinal) / SERIES_SAMPLE as u64;
        let mut pos = self
            .rd(self.toc.series_table + 4 + 8 * k, self.toc.postings)
            .u64()
            .ok_or_else(|| self.err(self.toc.series_table, "series table truncated"))?;
        for _ in 0..ordinal as usize % SERIES_SAMPLE {
            let mut rd = self.rd(pos, self.toc.series_table);
            let len = rd
                .uvarint()
                .ok_or_else(|| self.err(pos, "bad series entry length"))?;
            pos = (rd.pos as u64).saturating_add(len).saturating_add(4);
        }
        Ok(pos)
    }

    /// Decodes the series entry at `pos` (CRC checked); returns it and the next entry's offset.
    pub(super) fn series_at(&self, pos: u64) -> Result<(RawSeries, u64), TsdbError> {
        let end = self.toc.series_table;
        if pos < self.toc.series || pos >= end {
            return Err(self.err(pos, "series entry outside the series section"));
        }
        let mut rd = self.rd(pos, end);
        let len = rd
            .uvarint()
            .ok_or_else(|| self.err(pos, "bad series entry length"))?;
        let body_start = rd.pos as u64;
        let len = usize::try_from(len).map_err(|_| self.err(pos, "series entry too long"))?;
        rd.bytes(len)
            .ok_or_else(|| self.err(pos, "series entry extends past its section"))?;
        let body_end = rd.pos as u64;
        if rd.u32().is_none() {
            return Err(self.err(pos, "series entry checksum missing"));
        }
        self.check_crc(body_start, body_end, "series entry")?;
        let bad = |d: &str| self.err(pos, format!("series entry: {d}"));
        let mut b = self.rd(body_start, body_end);
        let n = b.uvarint().ok_or_else(|| bad("bad label count"))?;
        let mut labels = Vec::with_capacity((n as usize).min(b.remaining() / 2));
        for _ in 0..n {
            let name = b.uvarint().ok_or_else(|| bad("bad label name"))?;
            let value = b.uvarint().ok_or_else(|| bad("bad label value"))?;
            let (Ok(name), Ok(value)) = (u32::try_from(name), u32::try_from(value)) else {
                return Err(bad("symbol id too large"));
            };
            labels.push((name, value));
        }
        let n = b.uvarint().ok_or_else(|| bad("bad chunk count"))?;
        let mut chunks: Vec<ChunkMeta> = Vec::with_capacity((n as usize).min(b.remaining() / 3));
        for i in 0..n {
            let (min_t, r) = match chunks.last() {
                None => (b.varint(), b.uvarint()),
                Some(p) => (b.uvarint().map(|d| p.max_t.wrapping_add(d as i64)), None),
            };
            let min_t = min_t.ok_or_else(|| bad("bad chunk min time"))?;
            let dur =
                if i == 0 { r } else { b.uvarint() }.ok_or_else(|| bad("bad chunk max time"))?;
            let max_t = min_t.wrapping_add(dur as i64);
            let rf = b.uvarint().ok_or_else(|| bad("bad chunk reference"))?;
            let rf = match chunks.last() {
                None => rf,
                Some(p) => p
                    .chunk_ref
                    .0
                    .checked_add(rf)
                    .ok_or_else(|| bad("chunk reference overflows"))?,
            };
            chunks.push(ChunkMeta {
                min_t,
                max_t,
                chunk_ref: ChunkRef(rf),
            });
        }
        if b.remaining() != 0 {
            return Err(bad("trailing bytes"));
        }
        Ok((RawSeries { labels, chunks }, body_end + 4))
    }

    /// Series `ordinal`, with its labels still as symbol ids.
    pub(super) fn series(&self, ordinal: u32) -> Result<RawSeries, TsdbError> {
        let pos = self.series_pos(ordinal)?;
        Ok(self.series_at(pos)?.0)
    }

    /// Offset of the first series entry and the end of the series section.
    pub(super) fn series_section(&self) -> (u64, u64) {
        (self.toc.series, self.toc.series_table)
    }

    /// Resolves symbol-id label pairs into [`Labels`].
    pub(super) fn labels<'a>(
        &'a self,
        pairs: &[(u32, u32)],
        cache: &mut SymbolCache<'a>,
    ) -> Result<Labels, TsdbError> {
        let mut out = Vec::with_capacity(pairs.len());
        for &(n, v) in pairs {
            out.push((
                self.symbol_cached(n, cache)?.to_owned(),
                self.symbol_cached(v, cache)?.to_owned(),
            ));
        }
        Labels::from_sorted(out)
            .map_err(|e| self.err(self.toc.series, format!("series labels invalid: {e}")))
    }

    /// The value list of name `idx`: `(value symbol, postings offset)` entries, CRC checked on
    /// first use.
    pub(super) fn values(&self, idx: usize) -> Result<ValueList<'_>, TsdbError> {
        let n = &self.names[idx];
        let end = n.values_off + VALUE_ENTRY_LEN as u64 * u64::from(n.num_values);
        if !n.checked.load(Ordering::Relaxed) {
            self.check_crc(n.values_off, end, "label value list")?;
            n.checked.store(true, Ordering::Relaxed);
        }
        Ok(ValueList {
            bytes: &self.map[n.values_off as usize..end as usize],
        })
    }

    /// Decodes the postings list at `off` (CRC checked) into `out` (cleared first).
    pub(super) fn postings(&self, off: u64, out: &mut RoaringBitmap) -> Result<(), TsdbError> {
        out.clear();
        if off < self.toc.postings || off >= self.toc.label_values {
            return Err(self.err(off, "postings offset outside the postings section"));
        }
        let bad = |d: &str| self.err(off, format!("postings list: {d}"));
        let mut rd = self.rd(off, self.toc.label_values);
        let count = rd.uvarint().ok_or_else(|| bad("bad count"))?;
        if count > u64::from(self.num_series) {
            return Err(bad("more entries than series"));
        }
        let mut id = 0u64;
        for i in 0..count {
            let d = rd.uvarint().ok_or_else(|| bad("bad entry"))?;
            if i > 0 && d == 0 {
                return Err(bad("entries not ascending"));
            }
            id = id.saturating_add(d);
            if id >= u64::from(self.num_series) {
                return Err(bad("series id out of range"));
            }
            out.try_push(id as u32)
                .map_err(|_| bad("entries not ascending"))?;
        }
        let end = rd.pos as u64;
        self.check_crc(off, end, "postings list")
    }

    /// Full check of every section's CRC and structure (symbols, tables, series, value lists,
    /// postings). Returns every series' chunk metas through `f` so the caller can check chunks.
    pub(super) fn verify(
        &self,
        mut f: impl FnMut(&RawSeries) -> Result<(), TsdbError>,
    ) -> Result<(), TsdbError> {
        let t = self.toc;
        let groups = u64::from(self.num_symbols).div_ceil(SYMBOL_GROUP as u64);
        self.check_crc(t.symbol_table, t.series - 4, "symbol table")?;
        let mut prev: Option<&str> = None;
        let mut expect = t.symbols;
        for g in 0..groups {
            let (start, end) = self.group_range(g)?;
            if start != expect {
                return Err(self.err(start, "symbol groups not contiguous"));
            }
            expect = end + 4;
            let mut it = self.group(g)?;
            while it.left > 0 {
                let s = it.next_str()?;
                if prev.is_some_and(|p| p >= s) {
                    return Err(self.err(start, "symbols not strictly ascending"));
                }
                prev = Some(s);
            }
            if it.rd.remaining() != 0 {
                return Err(self.err(start, "trailing bytes in symbol group"));
            }
        }
        if expect != t.symbol_table {
            return Err(self.err(expect, "bytes between symbols and symbol table"));
        }
        self.check_crc(t.series_table, t.postings - 4, "series table")?;
        let mut pos = t.series;
        for i in 0..self.num_series {
            if i as usize % SERIES_SAMPLE == 0 && self.series_pos(i)? != pos {
                return Err(self.err(
                    t.series_table,
                    format!("series table entry for {i} is wrong"),
                ));
            }
            let (s, next) = self.series_at(pos)?;
            for &(n, v) in &s.labels {
                if n >= self.num_symbols || v >= self.num_symbols {
                    return Err(self.err(pos, "series entry refers to a missing symbol"));
                }
            }
            self.labels(&s.labels, &mut SymbolCache::default())?;
            f(&s)?;
            pos = next;
        }
        if pos != t.series_table {
            return Err(self.err(pos, "bytes after the last series entry"));
        }
        let mut bm = RoaringBitmap::new();
        for idx in 0..self.names.len() {
            let list = self.values(idx)?;
            let mut prev = None;
            for i in 0..list.len() {
                let (v, off) = list.get(i);
                if v >= self.num_symbols || prev.is_some_and(|p| p >= v) {
                    return Err(self.err(self.names[idx].values_off, "bad label value list"));
                }
                prev = Some(v);
                self.postings(off, &mut bm)?;
            }
        }
        Ok(())
    }
}

/// How many symbol groups a [`SymbolCache`] keeps.
const SYMBOL_CACHE_GROUPS: usize = 8;

/// The strings of recently read symbol groups (CRC checked once when decoded).
#[derive(Default)]
pub(super) struct SymbolCache<'a> {
    groups: Vec<(u64, Vec<&'a str>)>,
    /// The slot to replace next once full (round robin).
    next: usize,
}

/// A checked label value list: fixed 12-byte entries, ascending by value symbol.
pub(super) struct ValueList<'a> {
    bytes: &'a [u8],
}

impl ValueList<'_> {
    pub(super) fn len(&self) -> usize {
        self.bytes.len() / VALUE_ENTRY_LEN
    }

    /// `(value symbol, postings offset)` of entry `i < len()`.
    pub(super) fn get(&self, i: usize) -> (u32, u64) {
        let mut rd = Rd::new(self.bytes, i * VALUE_ENTRY_LEN, self.bytes.len());
        (rd.u32().unwrap_or(u32::MAX), rd.u64().unwrap_or(0))
    }

    /// The postings offset of value symbol `sym`, if the name has that value.
    pub(super) fn find(&self, sym: u32) -> Option<u64> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (v, off) = self.get(mid);
            match v.cmp(&sym) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(off),
            }
        }
        None
    }
}

/// The strings of one symbol group.
struct GroupIter<'a> {
    ix: &'a IndexReader,
    rd: Rd<'a>,
    left: usize,
}

impl<'a> GroupIter<'a> {
    fn next_str(&mut self) -> Result<&'a str, TsdbError> {
        let at = self.rd.pos as u64;
        if self.left == 0 {
            return Err(self
                .ix
                .err(at, "symbol group has fewer strings than expected"));
        }
        self.left -= 1;
        let len = self
            .rd
            .uvarint()
            .ok_or_else(|| self.ix.err(at, "bad symbol length"))?;
        let b = usize::try_from(len)
            .ok()
            .and_then(|l| self.rd.bytes(l))
            .ok_or_else(|| self.ix.err(at, "symbol extends past its group"))?;
        std::str::from_utf8(b).map_err(|_| self.ix.err(at, "symbol is not UTF-8"))
    }
}
