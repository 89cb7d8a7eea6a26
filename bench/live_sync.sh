#!/usr/bin/env bash
# Live sync benchmark: a camera with an audio clock 300 ppm slow and 40 ms of jitter
# (`sim-camera`, RTSP over TCP: the simulator's --loss applies to UDP only, so none is asked),
# served by `lockstep serve`, watched over WHEP for SECS seconds by
#  (a) `lockstep measure`'s str0m peer, which rebuilds each track from the sender reports
#      (timestamp level: what any report-honouring player would play), and
#  (b) real headless Chromium (web/tests/live_view.mjs): rendered flashes against the audio
#      playout clock, the beeps heard on a WebAudio tap, and capture → display latency from the
#      stripe. Needs Debian's chromium and `npm ci --prefix web/tests`.
#
#   bash bench/live_sync.sh [SECS]          (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
cargo build --release -q -p lockstep
bin=target/release/lockstep
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

$bin sim-camera --listen 127.0.0.1:0 --audio-clock-ppm -300 --jitter-ms 40 \
  > "$tmp/cam.out" 2>/dev/null &
sleep 2
url=$(sed -n 's/^sim-camera: serving //p' "$tmp/cam.out" | head -1)
printf '[server]\nlisten = "127.0.0.1:0"\nauth = "off"\n[[camera]]\nname = "cam"\nurl = "%s"\nrecord = "off"\n' "$url" \
  > "$tmp/lockstep.toml"
$bin serve --config "$tmp/lockstep.toml" > "$tmp/serve.out" 2>/dev/null &
sleep 3
base=$(head -1 "$tmp/serve.out")

echo "== (a) timestamp level: lockstep measure ${base}api/whep/cam --duration $secs"
$bin measure "${base}api/whep/cam" --duration "$secs" --json > "$tmp/measure.json"
python3 - "$tmp/measure.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ev = r["events"]
first = ev[0]["flash_s"]
settled = sorted(abs(e["offset_ms"]) for e in ev if e["flash_s"] >= first + 5)
mean = sum(e["offset_ms"] for e in ev if e["flash_s"] >= first + 5) / len(settled)
p = lambda q: settled[min(len(settled) - 1, int(round(q * (len(settled) - 1))))]
print(f"events {len(ev)} ({len(settled)} after the first 5 s); mean {mean:+.2f} ms; "
      f"|offset| p50 {p(0.5):.2f} p99 {p(0.99):.2f} max {settled[-1]:.2f} ms; "
      f"drift {r['drift_ms_per_min']:+.3f} ms/min; dropped frames {r['dropped_frames']}")
for k in ("video_latency", "audio_latency"):
    if r.get(k): print(f"{k} capture → arrival: p50 {r[k]['p50_ms']:.1f} ms, p99 {r[k]['p99_ms']:.1f} ms")
PY

echo "== (b) rendered in Chromium: web/tests/live_view.mjs (15 s settle, $((secs < 300 ? secs : 300)) s measured)"
node web/tests/live_view.mjs "$base" "$tmp/artifacts" "$((secs < 300 ? secs : 300))" 15 > "$tmp/browser.json" || true
python3 - "$tmp/browser.json" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
for name, c in r.get("cameras", {}).items():
    o = sorted(abs(x) for x in c["offsets_ms"])
    p99 = o[min(len(o) - 1, int(round(0.99 * (len(o) - 1))))] if o else float("nan")
    print(f"{name}: played offset mean {c['mean_ms']:+.1f} ms, |p99| {p99:.1f} ms over {len(o)} flashes; "
          f"heard on the WebAudio tap {c['tapped']['mean_ms']:+.1f} ms (tap FIFO {c['tap_delay_ms']:.1f} ms); "
          f"latency capture → display p50 {c['video_latency_p50_ms']:.1f} ms, capture → played p50 "
          f"{c['audio_latency_p50_ms']:.1f} ms; frames dropped {c['frames_dropped']}, "
          f"audio concealed {100 * (c['concealed_ratio'] or 0):.2f} %")
if not r.get("ok"): print("browser check failed:", r.get("message"))
PY
