//! [`MappingCache`]: one process-wide bound on the chunk segment files blocks keep mapped
//! (`docs/format/block.md`, "Memory and address space").
//!
//! Every open [`Block`](super::Block) maps its chunk segment files (up to
//! [`MAX_SEGMENT_SIZE`](super::MAX_SEGMENT_SIZE) each) on first use and asks this cache to keep
//! them. The cache is an LRU over (block reader, segment number) bounded by the total bytes
//! kept mapped and by the number of mappings, shared by all blocks, so the address space
//! blocks take does not grow with the number of blocks (Prometheus #7450: a 32-bit Raspberry
//! Pi with 15 blocks must not try to map 15 GiB).
//!
//! Evicting drops only the cache's reference: a [`ChunkBytes`](super::ChunkBytes) handed out
//! keeps its mapping alive until it is dropped, so a reader is never invalidated (and the
//! address space in use may exceed the budget by what in-flight readers hold; see
//! [`MappingStats::live_bytes`]). When a block is dropped (deleted by retention, replaced by
//! compaction) its entries leave the cache at once, so the kernel can free the disk space of
//! its unlinked files as soon as the last reader is done.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use memmap2::Mmap;
use parking_lot::Mutex;

/// Default budget of [`MappingCache::global`] on 32-bit hosts: 1 GiB. A 32-bit Linux process
/// has 3 GiB of user address space (2 GiB on some ARM kernels); 1 GiB leaves the rest for the
/// heap, thread stacks, the index files (mapped whole, outside this cache) and the head-chunk
/// files. It still holds two full 512 MiB segments, so a query over one large block does not
/// remap on every chunk.
pub const DEFAULT_MAX_MAPPED_BYTES_32: u64 = 1 << 30;

/// Default budget of [`MappingCache::global`] on 64-bit hosts: 128 GiB. Address space is not
/// free on every 64-bit host: arm64 kernels with 4 KiB pages and 3-level page tables (the
/// Raspberry Pi OS default) give a process only 512 GiB (39-bit addresses), so the budget is a
/// quarter of that. 128 GiB is 256 full segments, more than the chunks of any working set
/// hearth is built for, so on 64-bit hosts the bound rarely evicts.
pub const DEFAULT_MAX_MAPPED_BYTES_64: u64 = 128 << 30;

/// Default budget of [`MappingCache::global`] for this target: 1 GiB on 32-bit hosts, 128 GiB
/// on 64-bit hosts.
pub const DEFAULT_MAX_MAPPED_BYTES: u64 = if usize::BITS >= 64 {
    DEFAULT_MAX_MAPPED_BYTES_64
} else {
    DEFAULT_MAX_MAPPED_BYTES_32
};

/// Default cap on the number of mappings of [`MappingCache::global`]: 8192. Every mapping is
/// one entry of the process's memory map, and Linux refuses new mappings (`mmap` fails with
/// `ENOMEM`, and so do allocations) beyond `vm.max_map_count`, 65530 by default. Many small
/// blocks (2 h blocks of a small server are one small segment each) would reach that long
/// before any byte budget; 8192 leaves more than 57,000 entries for the allocator, thread
/// stacks, index files and head-chunk files.
pub const DEFAULT_MAX_MAPPINGS: usize = 8192;

// The reasons given above, checked: two full segments fit even on 32-bit hosts, and the
// mapping cap is a small part of Linux's default `vm.max_map_count`.
const _: () = assert!(DEFAULT_MAX_MAPPED_BYTES_32 >= 2 * super::MAX_SEGMENT_SIZE);
const _: () = assert!(DEFAULT_MAX_MAPPINGS <= 65530 / 4);

/// Identifies one block's segment reader in a cache; unique in the process, never reused.
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// A segment file's memory map, counted in its cache's live gauges until the last reference
/// (the cache's or a [`ChunkBytes`](super::ChunkBytes)'s) is dropped.
pub(super) struct Mapping {
    map: Mmap,
    live: Arc<Live>,
}

impl Mapping {
    pub(super) fn new(map: Mmap, cache: &MappingCache) -> Mapping {
        cache
            .live
            .bytes
            .fetch_add(map.len() as u64, Ordering::Relaxed);
        cache.live.count.fetch_add(1, Ordering::Relaxed);
        Mapping {
            map,
            live: Arc::clone(&cache.live),
        }
    }
}

impl Deref for Mapping {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        self.live
            .bytes
            .fetch_sub(self.map.len() as u64, Ordering::Relaxed);
        self.live.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Mappings alive, held by the cache or by readers.
#[derive(Default)]
struct Live {
    bytes: AtomicU64,
    count: AtomicU64,
}

/// What a [`MappingCache`] holds, for gauges (`hearth_tsdb_mmap_bytes`) and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MappingStats {
    /// Bytes of the segment files the cache keeps mapped (file lengths; page rounding adds
    /// less than a page per mapping). At most the budget, except while a single segment
    /// larger than the budget is the only entry.
    pub cached_bytes: u64,
    /// Mappings the cache keeps; at most its mapping cap.
    pub cached_mappings: u64,
    /// Bytes of all mappings made through the cache that are still alive: the cached ones
    /// plus evicted ones a reader still holds. This is the address space in use.
    pub live_bytes: u64,
    /// Number of mappings counted in `live_bytes`.
    pub live_mappings: u64,
}

/// A least-recently-used set of chunk segment mappings shared by blocks, bounded by total
/// mapped bytes and by number of mappings. `Send + Sync`; see the module documentation.
///
/// Locking: `inner` is a leaf lock, held only for map lookups and updates. Files are opened,
/// mapped and checked by the caller without it (`insert` takes a finished
/// mapping), and evicted mappings are unmapped after it is released.
pub struct MappingCache {
    /// Fixed after construction.
    max_bytes: u64,
    /// Fixed after construction; at least 1.
    max_mappings: usize,
    inner: Mutex<Inner>,
    live: Arc<Live>,
}

/// Key of a cached mapping: (owner id, segment number). Ordered so one owner's entries are a
/// contiguous range.
type Key = (u64, u32);

#[derive(Default)]
struct Inner {
    /// Cached mappings with their last-use tick.
    entries: BTreeMap<Key, (Arc<Mapping>, u64)>,
    /// Last-use tick → key; the first entry is the least recently used.
    lru: BTreeMap<u64, Key>,
    /// Incremented on every use; never repeats.
    tick: u64,
    /// Sum of the lengths of the mappings in `entries`.
    bytes: u64,
}

impl Inner {
    fn touch(&mut self, key: Key) -> Option<Arc<Mapping>> {
        let (map, tick) = self.entries.get_mut(&key)?;
        self.lru.remove(tick);
        self.tick += 1;
        *tick = self.tick;
        self.lru.insert(self.tick, key);
        Some(Arc::clone(map))
    }

    fn remove(&mut self, key: Key) -> Option<Arc<Mapping>> {
        let (map, tick) = self.entries.remove(&key)?;
        self.lru.remove(&tick);
        self.bytes -= map.len() as u64;
        Some(map)
    }
}

impl std::fmt::Debug for MappingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappingCache")
            .field("max_bytes", &self.max_bytes)
            .field("max_mappings", &self.max_mappings)
            .field("stats", &self.stats())
            .finish()
    }
}

impl MappingCache {
    /// A cache keeping at most `max_bytes` of segment files in at most `max_mappings`
    /// mappings (at least 1). Blocks share one with [`Block::open_with`](super::Block::open_with);
    /// [`Block::open`](super::Block::open) uses [`global`](Self::global).
    pub fn new(max_bytes: u64, max_mappings: usize) -> MappingCache {
        MappingCache {
            max_bytes,
            max_mappings: max_mappings.max(1),
            inner: Mutex::new(Inner::default()),
            live: Arc::new(Live::default()),
        }
    }

    /// The process-wide cache every [`Block::open`](super::Block::open) uses:
    /// [`DEFAULT_MAX_MAPPED_BYTES`] in at most [`DEFAULT_MAX_MAPPINGS`] mappings.
    pub fn global() -> &'static Arc<MappingCache> {
        static GLOBAL: OnceLock<Arc<MappingCache>> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            Arc::new(MappingCache::new(
                DEFAULT_MAX_MAPPED_BYTES,
                DEFAULT_MAX_MAPPINGS,
            ))
        })
    }

    /// Most bytes the cache keeps mapped.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Most mappings the cache keeps.
    pub fn max_mappings(&self) -> usize {
        self.max_mappings
    }

    /// Current sizes; cheap (one short lock).
    pub fn stats(&self) -> MappingStats {
        let (cached_bytes, cached_mappings) = {
            let inner = self.inner.lock();
            (inner.bytes, inner.entries.len() as u64)
        };
        MappingStats {
            cached_bytes,
            cached_mappings,
            live_bytes: self.live.bytes.load(Ordering::Relaxed),
            live_mappings: self.live.count.load(Ordering::Relaxed),
        }
    }

    /// A new owner id for one block's segment reader.
    pub(super) fn new_owner() -> u64 {
        NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
    }

    /// The cached mapping of `owner`'s segment `seq`, marked most recently used.
    pub(super) fn get(&self, owner: u64, seq: u32) -> Option<Arc<Mapping>> {
        self.inner.lock().touch((owner, seq))
    }

    /// Caches `map` as `owner`'s segment `seq` and returns the cached mapping: `map`, or the
    /// one another thread inserted first. Evicts least recently used mappings until the
    /// budget and the mapping cap hold again, but never the one returned: a segment larger
    /// than the whole budget stays readable (everything else is evicted for it).
    pub(super) fn insert(&self, owner: u64, seq: u32, map: Mapping) -> Arc<Mapping> {
        let key = (owner, seq);
        let mut evicted = Vec::new();
        let mut inner = self.inner.lock();
        if let Some(existing) = inner.touch(key) {
            drop(inner);
            // `map` is unmapped here, outside the lock.
            return existing;
        }
        let map = Arc::new(map);
        inner.tick += 1;
        let tick = inner.tick;
        inner.bytes += map.len() as u64;
        inner.entries.insert(key, (Arc::clone(&map), tick));
        inner.lru.insert(tick, key);
        while inner.bytes > self.max_bytes || inner.entries.len() > self.max_mappings {
            let Some((_, &oldest)) = inner.lru.first_key_value() else {
                break;
            };
            if oldest == key {
                // Only the new mapping is left.
                break;
            }
            evicted.extend(inner.remove(oldest));
        }
        drop(inner);
        // Unmapped (unless a reader holds them) after the lock is released.
        drop(evicted);
        map
    }

    /// Drops every cached mapping of `owner` (its block is being dropped).
    pub(super) fn remove_owner(&self, owner: u64) {
        let mut inner = self.inner.lock();
        let keys: Vec<Key> = inner
            .entries
            .range((owner, 0)..=(owner, u32::MAX))
            .map(|(k, _)| *k)
            .collect();
        let evicted: Vec<_> = keys.into_iter().filter_map(|k| inner.remove(k)).collect();
        drop(inner);
        drop(evicted);
    }

    /// Mappings cached for `owner` (tests).
    #[cfg(test)]
    pub(super) fn owner_mappings(&self, owner: u64) -> usize {
        self.inner
            .lock()
            .entries
            .range((owner, 0)..=(owner, u32::MAX))
            .count()
    }
}
