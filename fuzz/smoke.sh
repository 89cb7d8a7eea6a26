#!/usr/bin/env bash
# Every fuzz target built and run SECS seconds (default 10) from its committed seeds: a smoke run
# in CI that keeps the targets compiling and finds what a short run finds. A debug build without
# a sanitizer (3–4 min on two cores, against ~9 for an optimized sancov build); real fuzzing is
# `cargo fuzz run TARGET` (README).
#
#   bash fuzz/smoke.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-10}"
export RUSTC_BOOTSTRAP=1 # cargo-fuzz's -Z flags on the stable toolchain
cargo fuzz build --dev --sanitizer none
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $(cargo fuzz list); do
  mkdir -p "$work/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  if cargo fuzz run --dev --sanitizer none "$target" "$work/$target" "${seeds[@]}" \
      -- -max_total_time="$secs" > "$work/$target.log" 2>&1; then
    echo "fuzz $target: $(grep -E '^Done [0-9]+ runs' "$work/$target.log" || echo done)"
  else
    tail -40 "$work/$target.log"
    echo "fuzz $target FAILED (its input is in the log above)"
    exit 1
  fi
done
