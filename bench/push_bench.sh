#!/usr/bin/env bash
# Push source → WebRTC viewer, lockstep against the seed article's aiortc design, in one run on
# one machine, measured by the same viewer (`lockstep measure`, a str0m peer that honours sender
# reports as a browser does) on the same beep-flash content (512x512 at 30 fps, 24 kHz audio in
# 20 ms chunks, paced from one monotonic anchor):
# - lockstep: `lockstep serve` with a [[push]] source, fed by `lockstep push-sim` over the push
#   WebSocket (raw I420 frames, PCM, stamped), H.264 by OpenH264, Opus;
# - reference: bench/aiortc_reference.py (aiortc 1.16, libx264 through PyAV, Opus), built as the
#   article describes, serving WHEP.
# CPU is % of one core over the measured window: lockstep's server and producer apart; the
# reference is one process (it produces and serves).
#
#   bash bench/push_bench.sh [SECONDS]        (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
cargo build --release -q -p lockstep
bin=target/release/lockstep
venv=target/bench-venv
if ! "$venv/bin/python" -c "import aiortc, aiohttp, numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q aiortc aiohttp numpy
fi
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
cpu() { python3 -c "print(f'{100 * ($2 - $1) / $hz / $secs:.1f}')"; }

printf '[server]\nlisten = "127.0.0.1:0"\nauth = "off"\n[[push]]\nname = "avatar"\n' > "$tmp/lockstep.toml"
$bin serve --config "$tmp/lockstep.toml" > "$tmp/serve.out" 2>/dev/null &
server=$!
for _ in $(seq 50); do [ -s "$tmp/serve.out" ] && break; sleep 0.1; done
base=$(head -1 "$tmp/serve.out" | sed 's#/$##')
$bin push-sim "${base/http/ws}/api/push/avatar" --size 512x512 --duration $((secs + 30)) \
  > "$tmp/events.out" 2>/dev/null &
producer=$!
sleep 3
s0=$(ticks $server); p0=$(ticks $producer)
$bin measure "$base/api/whep/avatar" --duration "$secs" --json > "$tmp/lockstep.json"
s1=$(ticks $server); p1=$(ticks $producer)
lockstep_cpu="server $(cpu $s0 $s1) + producer $(cpu $p0 $p1)"
kill $producer $server 2>/dev/null || true

port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$venv/bin/python" bench/aiortc_reference.py --port "$port" --size 512 > "$tmp/ref.out" 2>"$tmp/ref.err" &
reference=$!
for _ in $(seq 100); do [ -s "$tmp/ref.out" ] && break; sleep 0.1; done
r0=$(ticks $reference)
$bin measure "http://127.0.0.1:$port/whep" --duration "$secs" --json > "$tmp/reference.json" \
  || { echo "reference: measure failed"; cat "$tmp/ref.err"; }
r1=$(ticks $reference)
reference_cpu="$(cpu $r0 $r1) (one process)"

python3 - "$tmp/lockstep.json" "$lockstep_cpu" "$tmp/reference.json" "$reference_cpu" <<'PY'
import json, sys
print("| implementation | events | A/V offset mean ms | p50 | p99 \\|offset\\| | max \\|offset\\| | drift ms/min | dropped / repeated frames | audio pacing p50 / p99 ms | capture → arrival p50 video / audio ms | CPU % of a core |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name, path, cpu in (("lockstep (push)", sys.argv[1], sys.argv[2]), ("aiortc reference", sys.argv[3], sys.argv[4])):
    try:
        r = json.load(open(path))
    except Exception as e:
        print(f"| {name} | measure failed: {e} ||||||||||")
        continue
    # The viewer's sender-report clock settles over its first reports: judge events from 2 s on
    # (as the tests do), both implementations alike.
    first = r["events"][0]["flash_s"]
    ev = [e for e in r["events"] if e["flash_s"] >= first + 2.0]
    offs = [e["offset_ms"] for e in ev]
    srt = sorted(abs(o) for o in offs)
    pct = lambda q: srt[min(len(srt) - 1, int(q * len(srt)))]
    med = sorted(offs)[len(offs) // 2]
    n = len(ev)
    mx = sum(e["flash_s"] for e in ev) / n
    my = sum(offs) / n
    sxx = sum((e["flash_s"] - mx) ** 2 for e in ev)
    drift = 60 * sum((e["flash_s"] - mx) * (o - my) for e, o in zip(ev, offs)) / sxx if sxx else 0.0
    pacing = r.get("audio_pacing") or {}
    vl, al = r.get("video_latency") or {}, r.get("audio_latency") or {}
    print(f"| {name} | {n} | {my:+.2f} | {med:+.2f} | {pct(0.99):.2f} | {srt[-1]:.2f} | {drift:+.2f} | "
          f"{r['dropped_frames']} / {r['repeated_frames']} | "
          f"{pacing.get('p50_ms', float('nan')):.2f} / {pacing.get('p99_ms', float('nan')):.2f} | "
          f"{vl.get('p50_ms', float('nan')):.1f} / {al.get('p50_ms', float('nan')):.1f} | {cpu} |")
PY
