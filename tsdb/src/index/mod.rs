//! The in-memory label index of the head block.
//!
//! Three parts, each in its own file:
//! - [`SymbolTable`] (`symbols.rs`): every distinct label string (names and values) is stored
//!   once; series carry `u32` symbol ids instead of strings.
//! - [`MemPostings`] (`postings.rs`): for every `name=value` pair, the set of series ids that
//!   carry it (a `RoaringTreemap`, since series ids are `u64`), plus the set of all series.
//!   [`MemPostings::select`] answers a PromQL selector's matchers.
//! - [`Matcher`] (`matcher.rs`): one label matcher (`=`, `!=`, `=~`, `!~`) with Prometheus's
//!   semantics, including its regex dialect (RE2, fully anchored, `.` matches `\n`).
//!
//! The index knows nothing about samples, chunks or the WAL: the head owns series creation and
//! calls [`MemPostings::add`] once per new series, with symbols it interned first.
//!
//! # Lock order
//! Both structures have their own `RwLock`. Whenever code holds both, it takes the
//! [`SymbolTable`]'s lock first and the [`MemPostings`]' lock second; neither write lock is ever
//! held while acquiring the other. `parking_lot`'s locks are fair (a waiting writer blocks new
//! readers), so a reversed order could deadlock even between readers.

mod matcher;
mod postings;
mod symbols;

pub use matcher::{MatchOp, Matcher};
pub use postings::{CardinalityStats, MemPostings, Stat};
pub use symbols::SymbolTable;

/// Errors of the label index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// A `=~` / `!~` matcher's pattern is not a valid regular expression in Prometheus's (Go
    /// RE2) dialect. The query layer maps this to Prometheus's `bad_data`.
    #[error("invalid regular expression {pattern:?}: {detail}")]
    BadRegex {
        /// The pattern as the user wrote it (before anchoring).
        pattern: String,
        /// What the regex parser or compiler reported.
        detail: String,
    },
}

#[cfg(test)]
mod tests;
