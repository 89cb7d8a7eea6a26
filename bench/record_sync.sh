#!/usr/bin/env bash
# Recorded sync: a camera with an audio clock 300 ppm slow behind 40 ms of jitter is recorded
# for SECS seconds, the whole recording is exported as one MP4, and `lockstep measure` reads the
# export (container timestamps only, as any player would). Also prints ffmpeg's verdict on every
# segment and on the export.
#
#   bash bench/record_sync.sh [SECS]      (default 300)
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
printf '[server]\nlisten = "127.0.0.1:0"\nauth = "off"\n[storage]\ndir = "%s/rec"\n[[camera]]\nname = "cam"\nurl = "%s"\n' \
  "$tmp" "$url" > "$tmp/lockstep.toml"
$bin serve --config "$tmp/lockstep.toml" > "$tmp/serve.out" 2>/dev/null &
sleep 3
base=$(head -1 "$tmp/serve.out")
sleep "$secs"
from=$(curl -s "${base}api/recordings/cam" | sed -n 's/.*"segments":\[{"audio":[a-z]*,"bytes":[0-9]*,"end":"[^"]*","end_reason":[^,]*,"end_us":[0-9]*,"start":"\([^"]*\)".*/\1/p')
to=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
curl -s -o "$tmp/export.mp4" "${base}api/recordings/cam/export.mp4?from=$from&to=$to"
bad=0
for f in "$tmp"/rec/cam/*/*.mp4 "$tmp/export.mp4"; do
  out=$(ffmpeg -nostdin -v error -i "$f" -fps_mode passthrough -enc_time_base -1 -f null - 2>&1 || true)
  [ -n "$out" ] && { echo "ffmpeg on $f: $out"; bad=$((bad + 1)); }
done
segments=$(ls "$tmp"/rec/cam/*/*.mp4 | wc -l)
echo "recorded ${secs} s from $from: $segments segments, $(stat -c %s "$tmp/export.mp4") bytes exported; ffmpeg complaints: $bad"
$bin measure "$tmp/export.mp4" | tail -4
