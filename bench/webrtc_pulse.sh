#!/usr/bin/env bash
# Chromium's WebRTC player, measured on what it really plays: headless Chromium plays one demo
# camera over WHEP with its sound on into a private PulseAudio null sink; the sink's monitor is
# recorded (bench/pulse_onsets.py) and each flash the page rendered (requestVideoFrameCallback's
# expected display time) is paired with the beep onset the sink received. Beside it, the offset
# the page reads from Chromium's own playout clocks (`estimatedPlayoutTimestamp`, what
# web/tests/live_view.mjs reports). Offsets are audio minus video (positive: audio late).
# Needs Debian's chromium, pulseaudio and pulseaudio-utils, and `npm ci --prefix web/tests`.
#
#   bash bench/webrtc_pulse.sh [SECS] [CAMERA]      (default 60 demo-clean)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
cam="${2:-demo-clean}"
settle=15
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
. bench/pulse_demo.sh
sleep 3
python3 bench/pulse_onsets.py $((secs + settle + 20)) > "$tmp/monitor.json" &
recorder=$!
LOCKSTEP_UNMUTE=1 node web/tests/webrtc_sink.mjs "$base" "$cam" "$secs" "$settle" > "$tmp/page.json" || {
  cat "$tmp/page.json"; exit 1; }
wait $recorder
python3 - "$tmp/page.json" "$tmp/monitor.json" <<'PY'
import json, statistics, sys
page = json.load(open(sys.argv[1]))
recorded = json.load(open(sys.argv[2]))
monitor = recorded["onsets_unix_ms"]

def figures(name, xs):
    xs = sorted(xs)
    if not xs:
        return f"{name}: none"
    return (f"{name}: {len(xs)} flashes, mean {statistics.mean(xs):+.1f} ms, "
            f"p50 {xs[len(xs)//2]:+.1f}, min {xs[0]:+.1f}, max {xs[-1]:+.1f}, "
            f"stdev {statistics.pstdev(xs):.1f}")

print(figures("page (Chromium's playout clocks)", page["offsets_ms"]))
sink = []
for shown in page["flashes_unix_ms"]:
    near = min(monitor, key=lambda m: abs(m - shown), default=None)
    if near is not None and abs(near - shown) < 500:
        sink.append(near - shown)
print(figures("sink (the monitor's beep onset - the rendered flash)", sink))
print(f"capture -> shown p50 {page['video_latency_p50_ms']:.1f} ms; the page's played "
      f"p50 {page['audio_latency_p50_ms']:.1f} ms; {len(monitor)} onsets in the monitor, "
      f"dropouts inside beeps: {recorded['dropouts']}")
PY
