#!/usr/bin/env python3
"""Beep onsets in what a PulseAudio sink actually played, on the Unix clock: the instrument
that cross-checks a browser's own account of when it played a sound.

    python3 bench/pulse_onsets.py SECONDS [SOURCE] > onsets.json

Reads SOURCE (default `null.monitor`, the monitor of a null sink) through `parec` as 48 kHz
mono s16 in small fragments. A sample's time is t0 + index / 48 kHz; t0 is the least, over every
read, of (the read's Unix time - the samples read so far / 48 kHz): a sample cannot be read
before it was played, so this bound is late by at most the least delivery delay of a read
(a fragment, 5 ms asked). Onsets: the first sample above 0.1 of full scale after 50 ms below.
Dropouts: within the first 90 ms of a beep (100 ms of a 1 kHz sine), a run of 1 ms below 0.01
of full scale — a sine is never near zero that long, a glitch in the output is.
Prints {"onsets_unix_ms": [...], "dropouts": n, "reads": n, "samples": n}. With
PULSE_ONSETS_RAW=FILE it also writes the recording there (s16le mono 48 kHz), to look at.
"""
import json
import os
import subprocess
import sys
import time

RATE_HZ = 48000
seconds = float(sys.argv[1])
source = sys.argv[2] if len(sys.argv) > 2 else "null.monitor"
rec = subprocess.Popen(
    ["parec", "-d", source, "--format=s16le", f"--rate={RATE_HZ}", "--channels=1",
     "--latency-msec=5", "--raw"],
    stdout=subprocess.PIPE,
)
samples = 0
t0 = float("inf")
reads = 0
recorded = bytearray()
end = time.time() + seconds
# While recording, only read and note the time (the analysis would take CPU from the player).
while time.time() < end:
    chunk = rec.stdout.read1(4096)
    now = time.time()
    if not chunk:
        break
    recorded += chunk
    samples = len(recorded) // 2
    reads += 1
    t0 = min(t0, now - samples / RATE_HZ)
rec.terminate()
if os.environ.get("PULSE_ONSETS_RAW"):
    with open(os.environ["PULSE_ONSETS_RAW"], "wb") as f:
        f.write(recorded)

threshold = int(0.1 * 32768)
silent = int(0.01 * 32768)
data = memoryview(recorded)[: samples * 2].cast("h")
onsets = []
quiet = RATE_HZ
for i, v in enumerate(data):
    if abs(v) > threshold:
        if quiet > RATE_HZ // 20:
            onsets.append(i)
        quiet = 0
    else:
        quiet += 1
# The beeps are 100 ms of a 1 kHz sine: inside the first 90 ms, a sine is never near zero for
# 1 ms; a glitch in the output is.
dropouts = 0
for onset in onsets:
    run = 0
    for v in data[onset: onset + RATE_HZ * 90 // 1000]:
        run = run + 1 if abs(v) < silent else 0
        if run == RATE_HZ // 1000:
            dropouts += 1
print(json.dumps({
    "onsets_unix_ms": [(t0 + i / RATE_HZ) * 1000 for i in onsets],
    "dropouts": dropouts,
    "reads": reads,
    "samples": samples,
}))
