//! `remote_write`: hearth vs VictoriaMetrics remote_write ingest, end to end. Run it through
//! `benches/remote_write.sh`; `--help` lists the flags.

use std::process::ExitCode;

use hearth_benches::remote_write::{run, Options};

fn main() -> ExitCode {
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("remote_write: FAILED:\n{e}");
            ExitCode::FAILURE
        }
    }
}
