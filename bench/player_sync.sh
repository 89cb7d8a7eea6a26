#!/usr/bin/env bash
# lockstep's own player against the browser's WebRTC player, on the demo's two cameras (clean;
# audio clock -300 ppm behind 40 ms of jitter), release build, headless Chromium:
#  (a) timestamp level: `lockstep measure ws://…/api/media/NAME` (what the player is sent);
#  (b) the player (web/tests/player.mjs): drawn flashes at the vsync that shows them against
#      beep onsets in the samples leaving its AudioWorklet, timed by the output timestamp; then
#      10 s with the page's main thread blocked 200 ms every second;
#  (c) WebRTC in the same server (web/tests/live_view.mjs): rendered flashes against the audio
#      playout clock.
# Needs Debian's chromium and `npm ci --prefix web/tests`.
#
#   bash bench/player_sync.sh [SECS]        (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
cargo build --release -q -p lockstep
bin=target/release/lockstep
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
$bin demo --listen 127.0.0.1:0 > "$tmp/demo.out" 2>/dev/null &
for _ in $(seq 50); do [ -s "$tmp/demo.out" ] && break; sleep 0.2; done
base=$(head -1 "$tmp/demo.out")
# The demo has no users: the pages log in with the run's token, measure sends it as a bearer.
export LOCKSTEP_LOGIN=$(sed -n 2p "$tmp/demo.out")
export LOCKSTEP_TOKEN=${LOCKSTEP_LOGIN#*token=}
sleep 5
for cam in demo-clean demo-drifting; do
  echo "== (a) $cam: lockstep measure ${base/http/ws}api/media/$cam --duration $secs"
  $bin measure "${base/http/ws}api/media/$cam" --duration "$secs" | tail -5
  echo "== (b) $cam: node web/tests/player.mjs $base artifacts $secs $cam"
  node web/tests/player.mjs "$base" "$tmp/art" "$secs" "$cam" | tail -1
done
echo "== (c) WebRTC: node web/tests/live_view.mjs $base artifacts $secs 15"
node web/tests/live_view.mjs "$base" "$tmp/art" "$secs" 15 | tail -1
