#!/usr/bin/env bash
# CPU of a whole `lockstep sim-camera` process (capture, encoding, RTP, one TCP client) over 20 s.
# Usage: bash bench/sim_camera_cpu.sh   (after cargo build --release -p lockstep)
set -euo pipefail
bin=target/release/lockstep
ticks=$(getconf CLK_TCK)
echo "| size | mode | CPU (% of a core) | cameras per core |"
echo "|---|---|---|---|"
for size in 640x360 1920x1080; do
  for mode in live replay; do
    extra=()
    [ "$mode" = replay ] && extra=(--replay)
    port=$((20000 + RANDOM % 20000))
    $bin sim-camera --listen 127.0.0.1:$port --size "$size" "${extra[@]}" >/dev/null 2>&1 &
    pid=$!
    sleep 2
    timeout 25 ffmpeg -v error -rtsp_transport tcp -i rtsp://127.0.0.1:$port/cam -t 22 -f null - &
    client=$!
    sleep 1
    read -r -a a < /proc/$pid/stat
    start=$((a[13] + a[14]))
    sleep 20
    read -r -a b < /proc/$pid/stat
    end=$((b[13] + b[14]))
    kill $pid; wait $client 2>/dev/null || true
    cpu=$(python3 -c "print(f'{($end-$start)/$ticks/20*100:.1f}')")
    per_core=$(python3 -c "print(f'{100/max(($end-$start)/$ticks/20*100, 0.01):.0f}')")
    echo "| $size | $mode | $cpu % | $per_core |"
  done
done
