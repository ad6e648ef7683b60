//! `scrape`: hearth vs Prometheus scraping the same targets, end to end. Run it through
//! `benches/scrape.sh`; `--help` lists the flags.

use std::process::ExitCode;

use hearth_benches::scrape::{run, Options};

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
            eprintln!("scrape: FAILED:\n{e}");
            ExitCode::FAILURE
        }
    }
}
