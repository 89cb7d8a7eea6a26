# Sourced by the benches that listen to what Chromium really plays (player_pulse.sh,
# webrtc_pulse.sh): a release `lockstep demo` beside a private PulseAudio with one 48 kHz null
# sink, reached through a socket of its own (PULSE_SERVER, exported). Needs `tmp` (a scratch
# folder the caller removes) and sets `base` (the demo's URL) and LOCKSTEP_LOGIN (its login).
cargo build --release -q -p lockstep
bin=target/release/lockstep
export PULSE_SERVER="unix:$tmp/pulse.sock"
HOME="$tmp" pulseaudio -n --daemonize=no --exit-idle-time=-1 --use-pid-file=no \
  --disable-shm=yes -L "module-null-sink sink_name=null rate=48000" \
  -L "module-native-protocol-unix socket=$tmp/pulse.sock auth-anonymous=1" 2>"$tmp/pulse.log" &
for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.2; done
$bin demo --listen 127.0.0.1:0 > "$tmp/demo.out" 2>/dev/null &
for _ in $(seq 50); do [ -s "$tmp/demo.out" ] && break; sleep 0.2; done
base=$(head -1 "$tmp/demo.out")
export LOCKSTEP_LOGIN=$(sed -n 2p "$tmp/demo.out")
