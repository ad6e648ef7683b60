#!/usr/bin/env bash
# Runs every hearth test. Installs what the tests need (Debian packages via apt-get, npm
# packages) when it is missing, so a fresh machine needs nothing but this script.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
apt_updated=""
# need_deb COMMAND PACKAGE: install PACKAGE with apt-get unless COMMAND is on PATH.
need_deb() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$2" >/dev/null
  command -v "$1" >/dev/null 2>&1 || { echo "test.sh: failed to install $2" >&1; exit 1; }
}

command -v cargo >/dev/null || { echo "test.sh: cargo (Rust toolchain) is required" >&2; exit 1; }
# Real peers the integration tests run against (Debian packages). A test whose peer is
# missing fails; it never skips.
need_deb prometheus prometheus
need_deb promtool prometheus
need_deb prometheus-node-exporter prometheus-node-exporter
test -d ../shared/conformance || echo "test.sh: note: ../shared/conformance not found beside the repo" >&2

# One profile, one build: unit, integration (they run the binary this build produced) and
# benchmarks in test mode (each benchmark body runs once, so they cannot rot).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --all-targets --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
