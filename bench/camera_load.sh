#!/usr/bin/env bash
# Cost of N real-bitrate cameras: one GStreamer camera (bench/noise_camera.py: x264 noise at
# KBPS, G.711 A-law; one shared encoder) read N times by `lockstep serve`, every camera recorded
# with audio (RECORD=continuous, the default), recorded silent (RECORD=silent) or not (RECORD=off).
# Prints the server's CPU (% of one core) and RSS over MEASURE seconds after SETTLE seconds, the
# bytes it wrote per second, and the frames the cameras' sync reported dropped at start-up and
# during the window.
#
#   bash bench/camera_load.sh [N] [KBPS] [SIZE]        e.g. bash bench/camera_load.sh 100 2000
#   CODEC=h265 bash bench/camera_load.sh 20 8000 1280x720
# PIN=1 pins camera and server to a core each; TRANSPORT=udp|tcp|auto sets the cameras' transport.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-100}"
kbps="${2:-2000}"
size="${3:-640x360}"
record="${RECORD:-continuous}"
settle="${SETTLE:-20}"
measure="${MEASURE:-30}"
# PIN=1: the camera on CPU 0, the server on CPU 1, so the camera is never starved by the server
# (then the server has one core: the target is under 100 % of it).
pin_camera=(); pin_server=()
if [ "${PIN:-0}" = 1 ]; then pin_camera=(taskset -c 0); pin_server=(taskset -c 1); fi
cargo build --release -q -p lockstep
bin=target/release/lockstep
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

port=$((20000 + RANDOM % 20000))
"${pin_camera[@]}" /usr/bin/python3 bench/noise_camera.py --port "$port" --size "$size" --kbps "$kbps" --codec "${CODEC:-h264}" > "$tmp/cam.out" &
cam_pid=$!
for _ in $(seq 50); do grep -q ready "$tmp/cam.out" && break; sleep 0.2; done
url=$(sed -n 's/^ready //p' "$tmp/cam.out")

{
  echo '[server]'
  echo 'listen = "127.0.0.1:0"'
  echo 'auth = "off"'
  printf '[storage]\ndir = "%s/recordings"\n' "$tmp"
  for i in $(seq 1 "$n"); do
    printf '[[camera]]\nname = "cam-%d"\nurl = "%s"\n' "$i" "$url"
    [ -n "${TRANSPORT:-}" ] && printf 'transport = "%s"\n' "$TRANSPORT"
    case "$record" in
      off) echo 'record = "off"' ;;
      silent) echo 'record_audio = false' ;;
    esac
  done
} > "$tmp/lockstep.toml"
"${pin_server[@]}" $bin serve --config "$tmp/lockstep.toml" > "$tmp/serve.out" 2> "$tmp/serve.err" &
pid=$!
for _ in $(seq 50); do [ -s "$tmp/serve.out" ] && break; sleep 0.2; done
base=$(head -1 "$tmp/serve.out")

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
written() { awk '/^write_bytes/ {print $2}' "/proc/$1/io"; }
dropped() {
  curl -s "${base}api/cameras" | /usr/bin/python3 -c '
import json, sys
cams = json.load(sys.stdin)
print(sum((c.get("sync") or {}).get("dropped_frames", 0) for c in cams),
      sum(1 for c in cams if c.get("state") == "live"))'
}
hz=$(getconf CLK_TCK)
sleep "$settle"
read -r drop0 live0 < <(dropped)
a=$(ticks $pid); c=$(ticks $cam_pid); w0=$(written $pid); t0=$(date +%s.%N)
sleep "$measure"
b=$(ticks $pid); d=$(ticks $cam_pid); w1=$(written $pid); t1=$(date +%s.%N)
read -r drop1 live1 < <(dropped)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
# How the cameras' sync saw the camera: delay (capture to output), arrival jitter, concealed audio.
curl -s "${base}api/cameras" | /usr/bin/python3 -c '
import json, statistics, sys
cams = [c.get("sync") or {} for c in json.load(sys.stdin)]
for key in ("latency_ms", "jitter_ms", "concealed_ms", "dropped_frames"):
    v = sorted(c.get(key, 0) or 0 for c in cams)
    print(f"{key}: min {v[0]:.1f} median {statistics.median(v):.1f} max {v[-1]:.1f}")'
kill $pid; wait $pid 2>/dev/null || true

printf '| cameras (live) | kbit/s | recording | server CPU %% of a core | per camera | RSS MiB | written MB/s | frames dropped: first %ss / next %ss | camera CPU %% |\n|---|---|---|---|---|---|---|---|---|\n' "$settle" "$measure"
awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v t0="$t0" -v t1="$t1" -v hz="$hz" -v n="$n" \
    -v rss="$rss" -v live="$live1" -v kbps="$kbps" -v rec="$record" -v w0="$w0" -v w1="$w1" \
    -v d0="$drop0" -v d1="$drop1" 'BEGIN {
  cpu = (b - a) / hz / (t1 - t0) * 100; cam = (d - c) / hz / (t1 - t0) * 100;
  printf "| %d (%d) | %d | %s | %.1f | %.2f | %.0f | %.1f | %d / %d | %.1f |\n",
    n, live, kbps, rec, cpu, cpu / n, rss / 1024, (w1 - w0) / (t1 - t0) / 1e6, d0, d1 - d0, cam }'
grep -ciE "warn|error" "$tmp/serve.err" | sed 's/^/server log warnings+errors: /'
grep -iE "warn|error" "$tmp/serve.err" | sed 's/.*\(WARN\|ERROR\)/\1/' | cut -c1-160 | sort | uniq -c | sort -rn | head -5
