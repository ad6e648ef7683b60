#!/usr/bin/env bash
# End-to-end scrape benchmark: hearth vs Prometheus scraping the same targets.
#
#   bash benches/scrape.sh [harness flags]     # e.g. --duration 120 --targets 200
#
# Builds release binaries of hearth and the harness, installs Prometheus (the Debian package
# `prometheus`, 2.42 on bookworm) if it is missing, then runs target/release/scrape, which
# serves the exposition body (by default ../shared/conformance/exposition/
# alltypes.237mfs.prom.txt, 237 families) on N ports of 127.0.0.1 and lets hearth, then
# Prometheus, each scrape all of them every 15 s for --duration seconds (default 150) on a
# fresh temp data dir. It prints each server's CPU seconds over that window, CPU per scrape,
# peak and final RSS, and the hearth/Prometheus ratios against the goals (<= 0.5x CPU,
# <= 0.3x peak RSS). `bash benches/scrape.sh --help` lists the flags. Takes about
# 2 x duration + build time; run it on a quiet machine: other load skews the numbers.
#
# Not part of CI: release builds are for benchmarks only. CI builds this crate in debug mode
# and runs its smoke test (benches/tests/scrape_smoke.rs), which starts no servers.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "scrape.sh: cargo (Rust toolchain) is required" >&2; exit 1; }
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
if [ ! -x "$PROMETHEUS" ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  # --no-install-recommends: the binary only, not prometheus-node-exporter and friends.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  [ -x "$PROMETHEUS" ] || { echo "scrape.sh: $PROMETHEUS missing after installing prometheus" >&2; exit 1; }
fi
# The Debian package starts a prometheus service scraping localhost; it only adds load
# (it listens on :9090 and its own targets, not ours), so say so if it is running.
if pgrep -x prometheus >/dev/null 2>&1; then
  echo "scrape.sh: WARNING: a prometheus process is already running and will skew the numbers" >&2
fi

cargo build --release -p hearth -p hearth-benches
exec target/release/scrape --hearth target/release/hearth --prometheus "$PROMETHEUS" "$@"
