//! PromQL conformance: Prometheus's own test scripts (`promql/promqltest/testdata`, kept in
//! `../shared/conformance/promql/`) run against hearth's engine over a real `hearth_tsdb::Db`.
//!
//! Every eval of a core file must pass (evals needing native histograms are skipped, see
//! `promqltest`); the other files run and are reported but never fail the test.
//!
//! Environment:
//! * `PROMQLTEST_FILE=<name>[,<name>...]` runs only these scripts (`functions` or
//!   `functions.test`).
//! * `PROMQLTEST_VERBOSE=1` prints every eval's outcome.
//! * `PROMQLTEST_RANGE_CHECK=1` also re-runs each instant eval as a range query around its
//!   time, as Prometheus's runner does.
//!
//! `cargo test -p hearth-query --test conformance -- --nocapture` shows the report.

mod promqltest;

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

#[test]
fn promql_conformance() {
    let opts = promqltest::Options {
        range_check: env_flag("PROMQLTEST_RANGE_CHECK"),
        verbose: env_flag("PROMQLTEST_VERBOSE"),
    };
    let mut files = promqltest::corpus_files();
    if let Ok(only) = std::env::var("PROMQLTEST_FILE") {
        let wanted: Vec<&str> = only
            .split(',')
            .map(|s| s.trim().trim_end_matches(".test"))
            .filter(|s| !s.is_empty())
            .collect();
        files.retain(|(name, _)| wanted.contains(&name.as_str()));
        assert!(
            !files.is_empty(),
            "PROMQLTEST_FILE={only} matches no script"
        );
    }
    for core in promqltest::CORE_FILES {
        assert!(
            promqltest::corpus_files().iter().any(|(n, _)| n == core),
            "core script {core}.test is missing"
        );
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let reports = promqltest::run_files(&files, &opts, threads);
    let core_failed = promqltest::print_summary(&reports);
    assert_eq!(
        core_failed, 0,
        "{core_failed} evals failed in core PromQL test files (see the report above)"
    );
}
