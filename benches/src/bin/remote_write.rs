//! `remote_write`: hearth vs VictoriaMetrics remote_write ingest, end to end. Run it through
//! `benches/remote_write.sh`; `--help` lists the flags.

use std::process::ExitCode;

use hearth_benches::remote_write::{run, Options};

fn main() -> ExitCode {
    hearth_benches::cli::main_with("remote_write", Options::parse, run)
}
