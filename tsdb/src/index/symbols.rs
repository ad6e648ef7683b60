//! The symbol table: every distinct label string stored once, referred to by a dense `u32` id.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard};

/// Interns label names and values.
///
/// Ids are dense (`0..len()`), handed out in interning order, and never reused or changed: a
/// string keeps its id for the life of the table, so ids may be stored in series, postings and
/// the WAL. Interning a string that is already present takes only the read lock, which is the
/// common case on the ingest path (label strings repeat across series).
#[derive(Debug, Default)]
pub struct SymbolTable {
    inner: RwLock<Inner>,
}

/// Everything behind the table's lock.
#[derive(Debug, Default)]
struct Inner {
    /// `by_id[id]` is the string of symbol `id`. Only grows.
    by_id: Vec<Arc<str>>,
    /// The inverse of `by_id`; shares the same allocations.
    ids: HashMap<Arc<str>, u32>,
    /// Sum of the byte lengths of all strings, kept for `heap_bytes`.
    string_bytes: usize,
}

/// Per-string overhead of an `Arc<str>` allocation: the strong and weak counts.
const ARC_HEADER_BYTES: usize = 2 * std::mem::size_of::<usize>();

impl SymbolTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `s`, adding it if it is new.
    ///
    /// # Panics
    /// If more than `u32::MAX` distinct strings are interned (a broken invariant: the head
    /// limits series long before that).
    pub fn intern(&self, s: &str) -> u32 {
        if let Some(&id) = self.inner.read().ids.get(s) {
            return id;
        }
        let mut inner = self.inner.write();
        // Another thread may have interned `s` between our read and write lock.
        if let Some(&id) = inner.ids.get(s) {
            return id;
        }
        let id = u32::try_from(inner.by_id.len())
            .expect("BUG: symbol table exceeded u32::MAX distinct strings");
        let arc: Arc<str> = Arc::from(s);
        inner.by_id.push(Arc::clone(&arc));
        inner.ids.insert(arc, id);
        inner.string_bytes += s.len();
        id
    }

    /// The id of `s` if it was interned.
    pub fn lookup(&self, s: &str) -> Option<u32> {
        self.inner.read().ids.get(s).copied()
    }

    /// The string of symbol `id` (a reference-count increment, no copy).
    pub fn get(&self, id: u32) -> Option<Arc<str>> {
        self.inner.read().by_id.get(id as usize).cloned()
    }

    /// Calls `f` with the string of symbol `id`, without touching its reference count.
    pub fn with_str<R>(&self, id: u32, f: impl FnOnce(&str) -> R) -> Option<R> {
        let inner = self.inner.read();
        inner.by_id.get(id as usize).map(|s| f(s))
    }

    /// Appends the strings of `ids` to `out`, in order, taking the read lock once.
    ///
    /// # Panics
    /// If an id was never handed out by this table: ids only come from [`SymbolTable::intern`],
    /// so that is a broken invariant, not bad input.
    pub fn resolve_into(&self, ids: &[u32], out: &mut Vec<Arc<str>>) {
        let inner = self.inner.read();
        out.reserve(ids.len());
        for &id in ids {
            let s = inner
                .by_id
                .get(id as usize)
                .unwrap_or_else(|| panic!("BUG: unknown symbol id {id}"));
            out.push(Arc::clone(s));
        }
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.inner.read().by_id.len()
    }

    /// Whether no string was interned yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate heap memory in bytes (strings, their `Arc` headers, the id vector and the
    /// hash map's slots), for memory accounting and the TSDB status page.
    pub fn heap_bytes(&self) -> usize {
        let inner = self.inner.read();
        let arc = std::mem::size_of::<Arc<str>>();
        // A hashbrown slot holds the key and value plus one control byte.
        let slot = arc + std::mem::size_of::<u32>() + 1;
        inner.string_bytes
            + inner.by_id.len() * ARC_HEADER_BYTES
            + inner.by_id.capacity() * arc
            + inner.ids.capacity() * slot
    }

    /// Takes the read lock for a batch of look-ups inside this module (used by
    /// [`MemPostings`](super::MemPostings) so a query resolves all its strings under one lock).
    pub(crate) fn read(&self) -> SymbolsRead<'_> {
        SymbolsRead(self.inner.read())
    }
}

/// A held read lock on a [`SymbolTable`]. Do not call the table's own methods while holding
/// it: `parking_lot` read locks are not reentrant once a writer waits.
pub(crate) struct SymbolsRead<'a>(RwLockReadGuard<'a, Inner>);

impl SymbolsRead<'_> {
    pub(crate) fn lookup(&self, s: &str) -> Option<u32> {
        self.0.ids.get(s).copied()
    }

    pub(crate) fn str(&self, id: u32) -> Option<&str> {
        self.0.by_id.get(id as usize).map(|s| &**s)
    }

    pub(crate) fn arc(&self, id: u32) -> Option<Arc<str>> {
        self.0.by_id.get(id as usize).cloned()
    }
}
