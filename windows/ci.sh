#!/usr/bin/env bash
# Windows in CI, from Linux: the workspace cross-built with mingw-w64, the suites that need no
# Linux-only peer run under wine, then `lockstep.exe demo` served from wine and watched by the
# Linux `lockstep measure` over WebRTC (media and sync checked), then the release zip's packing.
#
#   bash windows/ci.sh        (after the Linux build: it uses target/debug/lockstep)
#
# Under wine: the sync core, Opus, media, recording (segments, crash recovery, retention on
# wine's NTFS-like file semantics), RTSP (client, golden camera exchanges, sim-camera), WebRTC,
# and the server's own unit tests (config, config edits, auth, API pieces). Not under wine: the
# integration tests, which drive Linux peers (ffmpeg, GStreamer, Chromium, network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-pc-windows-gnu
out_dir="${CARGO_TARGET_DIR:-target}"
rustup target add "$target" >/dev/null 2>&1 || true
export WINEPREFIX="${WINEPREFIX:-$(realpath -m "$out_dir")/wine}" WINEDEBUG=-all
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine

echo "-- wine prefix, with a ProcessPrng shim (wine 8.0 has no bcryptprimitives.dll)"
wineboot -i >/dev/null 2>&1 || true
# Wine ends its services with the last ordinary program: a persistent server keeps them up
# (started anew: the one wineboot started is not persistent).
wineserver -k 2>/dev/null || true
wineserver -p
system32="$WINEPREFIX/drive_c/windows/system32"
x86_64-w64-mingw32-gcc -O2 -shared -o "$system32/bcryptprimitives.dll" \
  windows/bcryptprimitives_shim.c windows/bcryptprimitives_shim.def -ladvapi32
export WINEDLLOVERRIDES="bcryptprimitives=n"

echo "-- cross-build"
cargo build --locked --target "$target" -p lockstep --bin lockstep
exe="$out_dir/$target/debug/lockstep.exe"
imports=$(x86_64-w64-mingw32-objdump -p "$exe" | sed -n 's/^\s*DLL Name: //p' | sort -fu)
for dll in $imports; do
  case "${dll,,}" in
    kernel32.dll|ntdll.dll|msvcrt.dll|ws2_32.dll|userenv.dll|advapi32.dll|bcrypt.dll|\
    bcryptprimitives.dll|api-ms-win-core-synch-l1-2-0.dll|secur32.dll|crypt32.dll|iphlpapi.dll|\
    shell32.dll|ole32.dll|oleaut32.dll|user32.dll) ;;
    *) echo "lockstep.exe needs $dll, which Windows does not have"; exit 1 ;;
  esac
done

echo "-- clippy for the Windows target: the server's cfg(windows) code (service, sockets, folders)"
cargo clippy --locked --target "$target" -p lockstep -- -D warnings

echo "-- tests under wine"
cargo test --locked --target "$target" -p lockstep-sync -p lockstep-opus -p lockstep-media \
  -p lockstep-record -p lockstep-webrtc -p lockstep-rtsp --lib
cargo test --locked --target "$target" -p lockstep-sync --tests
# Crash recovery on wine's file semantics (the other segment tests read files with ffmpeg).
cargo test --locked --target "$target" -p lockstep-record --test segments -- a_crash recovery_never
cargo test --locked --target "$target" -p lockstep-rtsp --test golden --test sim_camera --test ingest
cargo test --locked --target "$target" -p lockstep --lib

echo "-- lockstep.exe demo under wine, watched from Linux"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$(mktemp -d)
wine "$exe" demo --listen "127.0.0.1:$port" > "$out/demo.out" 2> "$out/demo.err" &
demo=$!
trap 'kill $demo 2>/dev/null; wineserver -k 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 1 120); do grep -q "token=" "$out/demo.out" 2>/dev/null && break; sleep 0.5; done
token=$(sed -n 's/.*login?token=//p' "$out/demo.out")
[ -n "$token" ] || { cat "$out/demo.err"; echo "the demo did not start under wine"; exit 1; }
python3 -c 'import sys, urllib.request
page = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
assert "<title>lockstep</title>" in page, page[:200]' "http://127.0.0.1:$port/"
LOCKSTEP_TOKEN="$token" "$out_dir/debug/lockstep" measure \
  "http://127.0.0.1:$port/api/whep/demo-drifting" --duration 15 --json > "$out/report.json"
python3 - "$out/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
events = [e for e in report["events"] if e["flash_s"] >= 3]
offsets = sorted(abs(e["offset_ms"]) for e in events)
print(f"wine demo over WebRTC: {len(events)} events, offsets {[round(e['offset_ms'], 1) for e in events]}")
assert report["timing"] == "WebRTC sender reports", report["timing"]
assert len(events) >= 8, "too few flash/beep pairs reached the viewer"
# The rule of the live tests: every event within ±5 ms but at most one, and that within ±25.
assert offsets[-1] <= 25 and (len(offsets) < 2 or offsets[-2] <= 5), offsets
PY

echo "-- lockstep as a Windows service (wine's service manager), recording the Linux sim-camera"
"$out_dir/debug/lockstep" sim-camera --listen 127.0.0.1:0 --size 320x240 > "$out/cam.out" 2>/dev/null &
camera=$!
trap 'kill $demo $camera 2>/dev/null; wineserver -k 2>/dev/null || true; rm -rf "$out"' EXIT
kill $demo 2>/dev/null || true
for _ in $(seq 1 50); do grep -q serving "$out/cam.out" && break; sleep 0.2; done
camera_url=$(sed -n 's/^sim-camera: serving //p' "$out/cam.out")
service_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The config where install is told (wine's services see another %ProgramData% than its
# programs do); the service's log goes to logs\ beside it.
program_data="$WINEPREFIX/drive_c/lockstep-service"
rm -rf "$program_data"
mkdir -p "$program_data"
printf '[server]\nlisten = "127.0.0.1:%s"\nauth = "off"\n[storage]\nsegment_secs = 2\n[[camera]]\nname = "cam"\nurl = "%s"\n' \
  "$service_port" "$camera_url" > "$program_data/lockstep.toml"
wine "$exe" service install --config 'C:\lockstep-service\lockstep.toml'
wine "$exe" service start
timeline() {
  python3 -c 'import json, sys, time, urllib.request
url, want = sys.argv[1], sys.argv[2]
for _ in range(120):
    try:
        t = json.load(urllib.request.urlopen(url, timeout=5))
        if want == "recording" and t["recording"]["state"] == "recording" and t["segments"]: print("recording"); break
        if want == "stopped" and any(s["end_reason"] == "stopped" for s in t["segments"]): print("a segment ended as stopped"); break
    except Exception as e:
        t = str(e)
    time.sleep(0.5)
else:
    sys.exit(f"never {want}: {t}")' "http://127.0.0.1:$service_port/api/recordings/cam" "$1"
}
timeline recording
wine "$exe" service stop
for _ in $(seq 1 60); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $service_port), 1)" 2>/dev/null || break
  sleep 0.5
done
wine "$exe" service start
timeline stopped
wine "$exe" service stop
wine "$exe" service uninstall
grep -q "serving http://127.0.0.1:$service_port" "$program_data/logs/lockstep.log" \
  || { echo "the service's log says nothing of serving"; exit 1; }

echo "-- the release zip, packed from this build"
bash windows/package.sh dev
