#!/usr/bin/env bash
# End-to-end PromQL range-query benchmark: hearth vs Prometheus vs VictoriaMetrics.
#
#   bash benches/query.sh [harness flags]     # e.g. --hosts 16 --repeat 9 --ranges 1h,24h
#
# Builds release binaries of hearth and the harness, installs Prometheus (the Debian package
# `prometheus`, 2.42 on bookworm) and VictoriaMetrics (`victoria-metrics`) if missing, then
# runs target/release/query, which starts the three servers on 127.0.0.1 with fresh temp
# data dirs, sends them the same node-exporter-like data over remote_write (by default
# 8 hosts x 500 series over the last 24 h plus 2 hosts x 500 series over 7 d, scraped every
# 15 s: about 63 M samples), waits until they are idle, and times six dashboard queries over
# 1 h, 24 h and 7 d ranges. It prints the median latency per query and server, the
# hearth/Prometheus and hearth/VictoriaMetrics ratios against the goals (<= 0.5x and
# <= 1.0x), peak RSS over the query phase, and warns where the answers disagree.
# `bash benches/query.sh --help` lists the flags. Takes about 10 minutes on 2 cores, most of
# it ingest; run it on a quiet machine: other load skews the numbers.
#
# Not part of CI: release builds are for benchmarks only. CI builds this crate in debug mode
# and runs its unit tests, which start no servers.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "query.sh: cargo (Rust toolchain) is required" >&2; exit 1; }
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
VM=${VM:-/usr/bin/victoria-metrics}
missing=()
[ -x "$PROMETHEUS" ] || missing+=(prometheus)
[ -x "$VM" ] || missing+=(victoria-metrics)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  # --no-install-recommends: the binaries only, not prometheus-node-exporter and friends.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -x "$PROMETHEUS" ] || { echo "query.sh: $PROMETHEUS missing after installing prometheus" >&2; exit 1; }
  [ -x "$VM" ] || { echo "query.sh: $VM missing after installing victoria-metrics" >&2; exit 1; }
fi
# The Debian packages start services of their own; they only add load, so say so.
for p in prometheus victoria-metrics; do
  if pgrep -x "$p" >/dev/null 2>&1; then
    echo "query.sh: WARNING: a $p process is already running and will skew the numbers" >&2
  fi
done

cargo build --release -p hearth -p hearth-benches
BIN=${CARGO_TARGET_DIR:-target}/release
exec "$BIN/query" --hearth "$BIN/hearth" --prometheus "$PROMETHEUS" --vm "$VM" "$@"
