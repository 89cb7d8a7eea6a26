#!/usr/bin/env bash
# Discovery: COUNT ONVIF device stand-ins (tests/peers/onvif_device.py, one process) in a network
# namespace of our own; `lockstep discover --user admin --json` probes for TIMEOUT seconds and
# then asks every device for its information, profiles and stream URLs. Prints the wall time,
# the devices found and those read whole.
#
#   bash bench/discover.sh [COUNT] [TIMEOUT]      (default 20 devices, 3 s)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-20}"
timeout="${2:-3}"
cargo build --release -q -p lockstep
export BIN="$PWD/target/release/lockstep" DEVICES="$PWD/crates/server/tests/peers/onvif_device.py"
export COUNT="$count" TIMEOUT="$timeout"
unshare --net sh -c '
set -e
ip link set lo up; ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo
/usr/bin/python3 "$DEVICES" --first-port 9001 --count "$COUNT" --user admin --password pw > /dev/null 2>&1 &
devices=$!
trap "kill $devices 2>/dev/null || true" EXIT
sleep 1
start=$(date +%s.%N)
LOCKSTEP_ONVIF_PASSWORD=pw "$BIN" discover --user admin --timeout "$TIMEOUT" --json > /tmp/discover-bench.json
end=$(date +%s.%N)
found=$(/usr/bin/python3 -c "import json; print(len(json.load(open(\"/tmp/discover-bench.json\"))))")
whole=$(/usr/bin/python3 -c "import json; print(sum(1 for d in json.load(open(\"/tmp/discover-bench.json\")) if d[\"camera\"]))")
echo "$COUNT stand-ins, probe $TIMEOUT s: $(echo "$end - $start" | bc) s wall, $found found, $whole read whole"
'
