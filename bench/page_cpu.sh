#!/usr/bin/env bash
# CPU of a page playing the demo's two cameras, lockstep's own player against Chromium's WebRTC
# player: a fresh release `lockstep demo` for each, a page that only plays them with their sound
# on (web/tests/play_page.mjs; with `metered`, the browser test of that player instead —
# web/tests/player.mjs, web/tests/live_view.mjs — its meter reading every picture), and the CPU
# of every Chromium process (browser, renderer, GPU, audio and network services) and of the
# server summed over WINDOW seconds once the page plays. Headless Chromium with --disable-gpu,
# so the compositor and video drawing run on the CPU, as on a machine without a GPU.
#
# PLAYERS="lockstep webrtc switched" adds a page whose cards played in the lockstep player and
# were then all switched to WebRTC (play_page.mjs).
#
#   bash bench/page_cpu.sh [WINDOW] [metered]       (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
window="${1:-30}"
metered="${2:-}"
cargo build --release -q -p lockstep
bin=target/release/lockstep
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
hz=$(getconf CLK_TCK)

# utime + stime of the given processes, in clock ticks.
ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done | awk '{s += $1} END {print s + 0}'; }
chromium_pids() { pgrep -f '/usr/lib/chromium/chromium' || true; }

printf '| player | page CPU (%% of one core, all Chromium processes) | server CPU | window |\n|---|---|---|---|\n'
for player in ${PLAYERS:-lockstep webrtc}; do
  $bin demo --listen 127.0.0.1:0 > "$tmp/demo.out" 2>/dev/null &
  demo=$!
  for _ in $(seq 50); do [ -s "$tmp/demo.out" ] && break; sleep 0.2; done
  base=$(head -1 "$tmp/demo.out")
  export LOCKSTEP_LOGIN=$(sed -n 2p "$tmp/demo.out")
  sleep 5
  if [ -z "$metered" ]; then
    node web/tests/play_page.mjs "$base" "$player" $((window + 30)) > "$tmp/page.json" &
  elif [ "$player" = lockstep ]; then
    node web/tests/player.mjs "$base" "$tmp/art" $((window + 30)) demo-drifting > "$tmp/page.json" &
  else
    node web/tests/live_view.mjs "$base" "$tmp/art" $((window + 30)) 15 > "$tmp/page.json" &
  fi
  page=$!
  sleep 20
  pids=$(chromium_pids)
  c0=$(ticks $pids); s0=$(ticks $demo); t0=$(date +%s.%N)
  sleep "$window"
  c1=$(ticks $pids); s1=$(ticks $demo); t1=$(date +%s.%N)
  wait $page || echo "($player: the page's own test failed; its CPU is still what it used)" >&2
  kill $demo; wait $demo 2>/dev/null || true
  awk -v p="$player" -v c=$((c1 - c0)) -v s=$((s1 - s0)) -v hz="$hz" -v t0="$t0" -v t1="$t1" \
    'BEGIN {dt = t1 - t0; printf "| %s | %.1f %% | %.1f %% | %.0f s |\n", p, 100 * c / hz / dt, 100 * s / hz / dt, dt}'
done
