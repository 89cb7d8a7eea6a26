#!/usr/bin/env bash
# Cross-check of the lockstep player's own account of when it plays a sound against what a real
# sink played: headless Chromium plays the demo's clean camera into a PulseAudio null sink; its
# monitor is recorded (bench/pulse_onsets.py) and each beep onset the page timed (the samples
# leaving its AudioWorklet, at the AudioContext's output timestamp) is matched with the onset in
# the monitor. Prints the page's run (web/tests/player.mjs) and the differences (monitor - page).
# Needs Debian's chromium, pulseaudio and pulseaudio-utils, and `npm ci --prefix web/tests`.
#
#   bash bench/player_pulse.sh [SECS] [CAMERA]      (default 60 demo-clean)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
cam="${2:-demo-clean}"
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
. bench/pulse_demo.sh
sleep 3
# The recording spans the whole page run: its start, the measured part, the busy-page part.
python3 bench/pulse_onsets.py $((secs + 40)) > "$tmp/monitor.json" &
recorder=$!
LOCKSTEP_UNMUTE=1 node web/tests/player.mjs "$base" "$tmp/art" "$secs" "$cam" > "$tmp/page.json" || {
  cat "$tmp/page.json"; exit 1; }
wait $recorder
python3 - "$tmp/page.json" "$tmp/monitor.json" <<'PY'
import json, statistics, sys
page = json.load(open(sys.argv[1]))
recorded = json.load(open(sys.argv[2]))
monitor = recorded["onsets_unix_ms"]
s = page["steady"]
print(json.dumps({k: s[k] for k in ("mean_ms", "p50_ms", "p99_abs_ms", "video_latency_p50_ms",
                                   "audio_latency_p50_ms", "underruns")}))
print("player:", json.dumps({k: s["player"].get(k) for k in (
    "delay_ms", "output_latency_ms", "audio_least_fill_ms", "audio_target_ms", "extra_delay_ms",
    "corrections", "jitter_ms", "audio_arrival", "speed")}))
diffs = []
for heard in s["beeps_unix_ms"]:
    near = min(monitor, key=lambda m: abs(m - heard), default=None)
    if near is not None and abs(near - heard) < 200:
        diffs.append(near - heard)
if not diffs:
    sys.exit(f"no page onset matched one of the {len(monitor)} in the monitor")
diffs.sort()
print(f"monitor - page: {len(diffs)} of {len(s['beeps_unix_ms'])} onsets matched "
      f"({len(monitor)} in the monitor): mean {statistics.mean(diffs):+.1f} ms, "
      f"p50 {diffs[len(diffs)//2]:+.1f}, min {diffs[0]:+.1f}, max {diffs[-1]:+.1f}, "
      f"stdev {statistics.pstdev(diffs):.1f}; dropouts inside beeps: {recorded['dropouts']}")
PY
