//! `scrape`: hearth vs Prometheus scraping the same targets, end to end. Run it through
//! `benches/scrape.sh`; `--help` lists the flags.

use std::process::ExitCode;

use hearth_benches::scrape::{run, Options};

fn main() -> ExitCode {
    hearth_benches::cli::main_with("scrape", Options::parse, run)
}
