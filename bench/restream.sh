#!/usr/bin/env bash
# RTSP restream: a camera whose audio clock runs 300 ppm slow (behind 40 ms of jitter) is
# restreamed by lockstep; ffmpeg (`-c copy`, over TCP) and GStreamer (`rtspsrc` → Matroska)
# record the restream for SECS seconds at once, and `lockstep measure` reads both files
# (container timestamps only, as a player would). Then the server's CPU per restream client:
# 0, 1, 10 and 50 ffmpeg clients (`-c copy -f null`) for 30 s each.
#
#   bash bench/restream.sh [SECS]      (default 300; 0: only the CPU figures)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-300}"
cargo build --release -q -p lockstep
bin=target/release/lockstep
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

$bin sim-camera --listen 127.0.0.1:0 --size 640x360 --audio pcmu --audio-clock-ppm -300 \
  --jitter-ms 40 > "$tmp/cam.out" 2>/dev/null &
sleep 2
url=$(sed -n 's/^sim-camera: serving //p' "$tmp/cam.out" | head -1)
rtsp_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf '[server]\nlisten = "127.0.0.1:0"\nauth = "off"\nrtsp_listen = "127.0.0.1:%s"\n[storage]\ndir = "%s/rec"\n[[camera]]\nname = "cam"\nurl = "%s"\nrecord = "off"\n' \
  "$rtsp_port" "$tmp" "$url" > "$tmp/lockstep.toml"
$bin serve --config "$tmp/lockstep.toml" > "$tmp/serve.out" 2>/dev/null &
server=$!
sleep 4
restream="rtsp://127.0.0.1:$rtsp_port/cam"

if [ "$secs" -gt 0 ]; then
  ffmpeg -nostdin -v error -rtsp_transport tcp -i "$restream" -t "$secs" -c copy "$tmp/ffmpeg.mp4" &
  recorder=$!
  timeout -s INT $((secs + 2)) gst-launch-1.0 -e -q rtspsrc "location=$restream" latency=200 name=s \
    s. ! rtph264depay ! h264parse ! queue ! matroskamux name=m ! filesink "location=$tmp/gst.mkv" \
    s. ! rtpopusdepay ! opusparse ! queue ! m. > /dev/null 2>&1 || true
  wait $recorder
  for f in ffmpeg.mp4 gst.mkv; do
    echo "== $f ($secs s)"
    $bin measure "$tmp/$f" | tail -4
    # Without the first 10 s (GStreamer's lip sync settles there).
    $bin measure "$tmp/$f" --json | python3 -c '
import json, sys
events = [e for e in json.load(sys.stdin)["events"] if e["flash_s"] >= 10]
worst = sorted(abs(e["offset_ms"]) for e in events)
n = len(worst)
xs = [e["flash_s"] / 60 for e in events]; ys = [e["offset_ms"] for e in events]
mx, my = sum(xs) / n, sum(ys) / n
slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
print(f"from 10 s: {n} events, p99 |offset| {worst[min(n - 1, int(0.99 * n))]:.2f} ms, max {worst[-1]:.2f} ms, drift {slope:+.3f} ms/min")'
  done
fi

ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
hz=$(getconf CLK_TCK)
for clients in 0 1 10 50; do
  pids=()
  for _ in $(seq 1 "$clients"); do
    ffmpeg -nostdin -v quiet -rtsp_transport tcp -i "$restream" -c copy -f null - &
    pids+=($!)
  done
  sleep 5
  before=$(ticks)
  sleep 30
  after=$(ticks)
  echo "clients $clients: server CPU $(echo "scale=1; ($after - $before) * 100 / $hz / 30" | bc) % of a core"
  if [ "$clients" -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
done
