//! `query`: hearth vs Prometheus vs VictoriaMetrics PromQL range queries, end to end. Run it
//! through `benches/query.sh`; `--help` lists the flags.

use std::process::ExitCode;

use hearth_benches::query::{run, Options};

fn main() -> ExitCode {
    hearth_benches::cli::main_with("query", Options::parse, run)
}
