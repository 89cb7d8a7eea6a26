#!/usr/bin/env bash
# An independent H.265 camera against the same camera in H.264: GStreamer's gst-rtsp-server
# (crates/server/tests/peers/gst_camera.py) reads `lockstep sim-camera`, re-encodes the picture with
# x265 (or passes the H.264 through) and the beeps as PCMA, on its own clocks and sender reports.
# `lockstep serve` records it and a WHEP viewer (`lockstep measure`) watches it for SECS seconds;
# then the recording is exported and measured. Prints the viewer's and the export's offsets and
# the server's CPU while watched and recording.
#
#   bash bench/h265_camera.sh [SECS]        (default 60; needs ffmpeg, python3-gi, gst-rtsp-server)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
cargo build --release -q -p lockstep
bin=target/release/lockstep
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

$bin sim-camera --listen 127.0.0.1:0 > "$tmp/sim.out" 2>/dev/null &
sleep 2
sim=$(sed -n 's/^sim-camera: serving //p' "$tmp/sim.out" | head -1)

for video in h264 h265; do
  port=$((18600 + RANDOM % 1000))
  /usr/bin/python3 crates/server/tests/peers/gst_camera.py "$sim" --port "$port" --audio pcma \
    --video "$video" > "$tmp/gst.out" 2>/dev/null &
  gst=$!
  sleep 2
  url=$(sed -n 's/^ready //p' "$tmp/gst.out" | head -1)
  rm -rf "$tmp/rec"
  printf '[server]\nlisten = "127.0.0.1:0"\nauth = "off"\n[storage]\ndir = "%s"\nsegment_secs = 10\n[[camera]]\nname = "cam"\nurl = "%s"\n' \
    "$tmp/rec" "$url" > "$tmp/lockstep.toml"
  $bin serve --config "$tmp/lockstep.toml" > "$tmp/serve.out" 2>/dev/null &
  serve=$!
  sleep 6
  base=$(head -1 "$tmp/serve.out")
  before=$(cpu_ticks "$serve")
  start=$(date +%s.%N)
  $bin measure "${base}api/whep/cam" --duration "$secs" --json > "$tmp/whep.json"
  cpu=$(python3 -c "print(f'{100 * ($(cpu_ticks "$serve") - $before) / $ticks / ($(date +%s.%N) - $start):.1f}')")
  sleep 12  # the segment being written closes
  # From the second segment: the first holds GStreamer's own lip-sync step.
  from=$(curl -s "${base}api/recordings/cam" | python3 -c \
    "import json,sys; s=[x for x in json.load(sys.stdin)['segments'] if not x['writing']]; print(s[1]['start'], s[-1]['end'])")
  read -r t0 t1 <<< "$from"
  curl -s -o "$tmp/export.mp4" "${base}api/recordings/cam/export.mp4?from=$t0&to=$t1"
  $bin measure "$tmp/export.mp4" --json > "$tmp/export.json"
  echo "== $video + PCMA camera, ${secs} s; lockstep serve at ${cpu} % of a core (watched, recording)"
  python3 - "$tmp/whep.json" "$tmp/export.json" <<'PY'
import json, sys
for label, path in (("WHEP viewer", sys.argv[1]), ("export", sys.argv[2])):
    r = json.load(open(path))
    ev = r["events"]
    first = ev[0]["flash_s"]
    # GStreamer's relay moves its own lip sync once, at its first sender reports.
    settled = [e for e in ev if e["flash_s"] >= first + (4 if label == "WHEP viewer" else 0)]
    kept = [e["offset_ms"] for e in settled]
    mags = sorted(abs(o) for o in kept)
    p = lambda q: mags[min(len(mags) - 1, int(round(q * (len(mags) - 1))))]
    # Drift: least-squares slope of the settled offsets (measure's own includes the step).
    ts = [e["flash_s"] for e in settled]
    mt, mo = sum(ts) / len(ts), sum(kept) / len(kept)
    slope = sum((t - mt) * (o - mo) for t, o in zip(ts, kept)) / sum((t - mt) ** 2 for t in ts)
    line = (f"{label}: {len(kept)} events, mean {mo:+.2f} ms, |offset| p50 "
            f"{p(0.5):.2f} p99 {p(0.99):.2f} max {mags[-1]:.2f} ms, drift "
            f"{60 * slope:+.3f} ms/min, dropped frames {r['dropped_frames']}")
    for k in ("video_latency", "audio_latency"):
        if r.get(k):
            line += f"; {k.split('_')[0]} capture → arrival p50 {r[k]['p50_ms']:.1f} ms"
    print(line)
PY
  kill "$serve" "$gst"
  wait "$serve" "$gst" 2>/dev/null || true
done
