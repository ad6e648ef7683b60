#!/usr/bin/env bash
# Storage benchmark: bytes on disk per sample of hearth vs Prometheus vs VictoriaMetrics.
#
#   bash benches/storage.sh [harness flags]     # e.g. --hosts 10 --hours 12 --servers vm,hearth
#
# Builds release binaries of hearth and the harness, installs Prometheus (the Debian package
# `prometheus`, 2.42 on bookworm) and VictoriaMetrics (`victoria-metrics`) if missing, then
# runs target/release/storage, which generates a node-exporter-like dataset (by default
# 20 hosts x 500 series over the last 24 h at 15 s: 57.6 M samples) and, one server at a
# time on 127.0.0.1 with a fresh temp data dir, sends it over remote_write in time order,
# lets the server persist what it holds (VictoriaMetrics: force_flush + force_merge;
# Prometheus: its head compactions, then a snapshot with the head as a block; hearth: its
# block persistence, bounded) and measures the data dir. It prints bytes on disk per
# sample (allocated and apparent), where the bytes are, peak RSS during ingest, ingest
# time, and the hearth/peer ratios against the goals (<= 1.0x VictoriaMetrics and
# <= 0.3x Prometheus bytes per sample). `bash benches/storage.sh --help` lists the flags.
# Takes about 10 minutes on 2 cores; run it on a quiet machine.
#
# Not part of CI: release builds are for benchmarks only. CI builds this crate in debug mode
# and runs its unit tests, which start no servers.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "storage.sh: cargo (Rust toolchain) is required" >&2; exit 1; }
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
  [ -x "$PROMETHEUS" ] || { echo "storage.sh: $PROMETHEUS missing after installing prometheus" >&2; exit 1; }
  [ -x "$VM" ] || { echo "storage.sh: $VM missing after installing victoria-metrics" >&2; exit 1; }
fi
# The Debian packages start services of their own; they only add load, so say so.
for p in prometheus victoria-metrics; do
  if pgrep -x "$p" >/dev/null 2>&1; then
    echo "storage.sh: WARNING: a $p process is already running and will skew the numbers" >&2
  fi
done

cargo build --release -p hearth -p hearth-benches
BIN=${CARGO_TARGET_DIR:-target}/release
exec "$BIN/storage" --hearth "$BIN/hearth" --prometheus "$PROMETHEUS" --vm "$VM" "$@"
