//! The command-line plumbing the benchmark binaries share: `--flag value` / `--flag=value`
//! walking, positive-integer values, and server lists.

/// Walks `args` (without the program name). For each flag, `on(name, value)` is called,
/// where `value()` yields the flag's value (inline after `=`, or the next argument);
/// `on` returns `Ok(false)` for a flag it does not know. `-h`/`--help` and errors come back
/// as `Err` with the message to print (`usage` appended where it helps).
pub fn parse_flags(
    args: impl IntoIterator<Item = String>,
    usage: &str,
    mut on: impl FnMut(&str, &mut dyn FnMut() -> Result<String, String>) -> Result<bool, String>,
) -> Result<(), String> {
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(usage.to_string());
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value\n\n{usage}"))
        };
        if !on(&name, &mut value)? {
            return Err(format!("unknown flag {flag:?}\n\n{usage}"));
        }
    }
    Ok(())
}

/// A positive integer value of flag `name`.
pub fn positive(name: &str, v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{name}: expected a positive integer, got {v:?}")),
    }
}

/// A comma-separated `--servers` list, each name matched against `flag` of `all`.
pub fn servers<T: Copy>(
    v: &str,
    all: &[T],
    flag: impl Fn(T) -> &'static str,
) -> Result<Vec<T>, String> {
    v.split(',')
        .map(|s| {
            all.iter()
                .copied()
                .find(|t| flag(*t) == s.trim())
                .ok_or_else(|| format!("--servers: unknown server {s:?}"))
        })
        .collect()
}

/// A benchmark binary's `main`: options from the command line (exit 2 on a usage error),
/// then the run (exit 1 with the error on failure).
pub fn main_with<O, E: std::fmt::Display>(
    name: &str,
    parse: impl FnOnce(std::env::Args) -> Result<O, String>,
    run: impl FnOnce(&O) -> Result<(), E>,
) -> std::process::ExitCode {
    let mut args = std::env::args();
    args.next();
    let opts = match parse(args) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: FAILED:\n{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
