//! `storage`: bytes on disk per sample, peak RSS and ingest time of hearth, Prometheus and
//! VictoriaMetrics on the same data. Run it through `benches/storage.sh`; `--help` lists
//! the flags.

use std::process::ExitCode;

use hearth_benches::storage::{run, Options};

fn main() -> ExitCode {
    hearth_benches::cli::main_with("storage", Options::parse, run)
}
