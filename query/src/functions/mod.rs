//! Function kernels: the arithmetic of PromQL's functions, free of evaluation plumbing.
//!
//! The evaluator (`crate::eval`) selects series, slides windows and handles name removal and
//! annotation positions; these modules compute values. Contract:
//! - range-vector functions ([`range::kernel`]) see one series' samples inside one step's
//!   window `(start, end]` and that step's scalar parameters;
//! - per-value functions ([`math::kernel`]) map one float (with scalar parameters);
//! - classic-histogram functions ([`histogram`]) group `_bucket` series by their labels
//!   without `le` and compute per step;
//! - `label_replace`/`label_join` ([`labels`]) rewrite one label set;
//! - [`stats`] holds the numerics shared with aggregations (quantile, Kahan summation).

pub(crate) mod histogram;
pub(crate) mod labels;
pub(crate) mod math;
pub(crate) mod range;
pub(crate) mod stats;

use crate::value::Point;

/// The samples of one series inside one step's window `(start, end]` (ms), ascending, no
/// stale markers (the evaluator drops them).
pub(crate) struct Window<'a> {
    pub(crate) samples: &'a [Point],
    pub(crate) start: i64,
    pub(crate) end: i64,
}

/// An annotation raised by a kernel. `arg` is the index of the call argument it is about (the
/// evaluator turns it into the `(line:col)` position Prometheus appends).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Note {
    pub(crate) kind: NoteKind,
    /// The message without the `PromQL warning: ` prefix and without position.
    pub(crate) msg: String,
    pub(crate) arg: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoteKind {
    Warn,
    Info,
}

/// The step timestamps of an evaluation: `start, start+step, ..., end` (`step` is 1 for an
/// instant query, where `start == end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Steps {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) step: i64,
}

impl Steps {
    pub(crate) fn len(&self) -> usize {
        ((self.end - self.start) / self.step + 1) as usize
    }

    /// Index of step timestamp `t` (which must be on the grid).
    pub(crate) fn index(&self, t: i64) -> usize {
        ((t - self.start) / self.step) as usize
    }

    pub(crate) fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }
}
