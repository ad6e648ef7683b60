#!/usr/bin/env bash
# End-to-end remote_write ingest benchmark: hearth vs VictoriaMetrics on identical payloads.
#
#   bash benches/remote_write.sh [harness flags]     # e.g. --hosts 200 --senders 8
#
# Builds release binaries of hearth and the harness, installs VictoriaMetrics (the Debian
# package `victoria-metrics`) if it is missing, then runs target/release/remote_write, which
# starts each server on 127.0.0.1 with a fresh temp data dir, sends the same pre-encoded
# requests with N concurrent senders and prints samples/s, samples per server CPU-second,
# peak RSS and the hearth/VictoriaMetrics ratios. `bash benches/remote_write.sh --help` lists
# the flags. Run it on a quiet machine: other load skews the numbers.
#
# Not part of CI: release builds are for benchmarks only. CI builds this crate in debug mode
# and runs its smoke test (benches/tests/smoke.rs), which starts no servers.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "remote_write.sh: cargo (Rust toolchain) is required" >&2; exit 1; }
VM=${VM:-/usr/bin/victoria-metrics}
if [ ! -x "$VM" ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq victoria-metrics >/dev/null
  [ -x "$VM" ] || { echo "remote_write.sh: $VM missing after installing victoria-metrics" >&2; exit 1; }
fi

cargo build --release -p hearth -p hearth-benches
exec target/release/remote_write --hearth target/release/hearth --vm "$VM" "$@"
