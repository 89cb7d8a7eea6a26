#!/usr/bin/env bash
# Server cost per camera count: CPU (% of one core) and RSS of the `lockstep serve` process,
# with no viewers, every camera synced (jitter buffer, sender-report clocks, retimer, scheduler)
# and its video passed through to the feed. One `sim-camera --replay` process serves every
# camera's RTSP session (clients share its live timeline), so the simulator's own cost stays
# small and is printed apart.
#
# With RECORD=1 every camera is also recorded (audio included; RECORD=silent: video only) into a
# temporary folder, so the difference between the runs is what recording costs per camera.
#
#   bash bench/live_cost.sh [SIZE] [COUNTS...]     e.g. bash bench/live_cost.sh 1920x1080 1 10 50 100
#   RECORD=1 bash bench/live_cost.sh 640x360 10
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-640x360}"
shift || true
counts=("${@:-1 10 50}")
[ ${#counts[@]} -eq 0 ] && counts=(1 10 50)
cargo build --release -q -p lockstep
bin=target/release/lockstep
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

$bin sim-camera --listen 127.0.0.1:0 --replay --size "$size" > "$tmp/cam.out" 2>/dev/null &
cam_pid=$!
sleep 2
url=$(sed -n 's/^sim-camera: serving //p' "$tmp/cam.out" | head -1)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

printf '| cameras | size | server CPU %% of a core | per camera | server RSS MiB | sim-camera CPU %% |\n|---|---|---|---|---|---|\n'
for n in ${counts[@]}; do
  {
    echo '[server]'
    echo 'listen = "127.0.0.1:0"'
    echo 'auth = "off"'
    printf '[storage]\ndir = "%s/recordings"\n' "$tmp"
    record='record = "off"'
    [ "${RECORD:-0}" = 1 ] && record='record = "continuous"'
    [ "${RECORD:-0}" = silent ] && record='record_audio = false'
    for i in $(seq 1 "$n"); do
      printf '[[camera]]\nname = "cam-%d"\nurl = "%s"\n%s\n' "$i" "$url" "$record"
    done
  } > "$tmp/lockstep.toml"
  $bin serve --config "$tmp/lockstep.toml" > "$tmp/serve.out" 2>/dev/null &
  pid=$!
  sleep 15   # connect and settle
  a=$(ticks $pid); c=$(ticks $cam_pid); t0=$(date +%s.%N)
  sleep 20
  b=$(ticks $pid); d=$(ticks $cam_pid); t1=$(date +%s.%N)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  live=$(curl -s "$(head -1 "$tmp/serve.out")api/cameras" | grep -o '"state":"live"' | wc -l)
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$tmp/recordings"
  awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v t0="$t0" -v t1="$t1" -v hz="$hz" -v n="$n" \
      -v rss="$rss" -v size="$size" -v live="$live" 'BEGIN {
    cpu = (b - a) / hz / (t1 - t0) * 100; cam = (d - c) / hz / (t1 - t0) * 100;
    printf "| %d (%d live) | %s | %.1f | %.2f | %.0f | %.1f |\n", n, live, size, cpu, cpu / n, rss / 1024, cam }'
done
