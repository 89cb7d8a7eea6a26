#!/usr/bin/env python3
"""A talking head pushed to lockstep: the producer side of a digital human.

It speaks speech-like sound (a glottal buzz through vowel formants, in syllables and words) and
draws a face whose mouth opens with the speech envelope, and pushes both to a lockstep push source
over one WebSocket (`/api/push/NAME`, the protocol in ARCHITECTURE.md):

- audio: 24 kHz mono s16le in 20 ms chunks; video: 512x512 rgb24 at 30 fps;
- everything stamped from ONE monotonic anchor (`time.monotonic_ns`), so lockstep can put the
  voice and the lips on one timeline; media is generated ahead of time like a TTS engine does
  (0.5 s), and lockstep plays it when due;
- barge-in: every second answer is interrupted after 1.5 s, as if the user started talking: a
  `{"type":"flush"}` drops what lockstep has queued, at once, and the face stops talking;
- the server's events (`speaking_started`, `speaking_ended`, `underrun`, `stats`…) are printed;
- the connection is kept up: reconnect with exponential backoff and full jitter, honouring
  `Retry-After`.

    pip install numpy "websockets>=13"
    cargo run --release -- demo                 # in another terminal
    python3 examples/push_avatar.py             # then open http://127.0.0.1:8350/ (card "avatar")
"""

import argparse
import os
import asyncio
import json
import math
import random
import struct
import sys
import time

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

AUDIO, VIDEO = 1, 2
# How far ahead of real time media is generated and sent (a TTS engine runs ahead).
LEAD_S = 0.5


def now_us():
    return time.monotonic_ns() // 1000


def media(kind, capture_us, payload):
    """A push message: kind, capture time (µs on our monotonic clock, big-endian), payload."""
    return struct.pack(">Bq", kind, capture_us) + payload


class Voice:
    """Speech-like sound: a buzz at a wandering pitch, shaped by the formants of a vowel per
    syllable, with syllable and word envelopes. Not words, but it moves like speech."""

    VOWELS = [(730, 1090), (270, 2290), (530, 1840), (570, 840), (440, 1020), (300, 870)]

    def __init__(self, rate, seed=7):
        self.rate = rate
        self.rng = np.random.default_rng(seed)

    def utterance(self, seconds):
        rate, rng = self.rate, self.rng
        n = int(seconds * rate)
        out = np.zeros(n, dtype=np.float32)
        pos = int(0.05 * rate)
        while pos < n - int(0.2 * rate):
            # A word: 1 to 3 syllables, then a short pause.
            for _ in range(rng.integers(1, 4)):
                length = int(rng.uniform(0.14, 0.28) * rate)
                if pos + length >= n:
                    break
                t = np.arange(length) / rate
                f0 = rng.uniform(105, 150) * (1 + 0.06 * np.sin(2 * np.pi * 3.0 * t))
                phase = 2 * np.pi * np.cumsum(f0) / rate
                f1, f2 = self.VOWELS[rng.integers(len(self.VOWELS))]
                syllable = np.zeros(length)
                for k in range(1, 40):
                    freq = k * f0
                    weight = (np.exp(-((freq - f1) / 90.0) ** 2)
                              + 0.6 * np.exp(-((freq - f2) / 120.0) ** 2) + 0.02 / k)
                    syllable += weight * np.sin(k * phase)
                envelope = np.sin(np.pi * np.arange(length) / length) ** 0.6
                out[pos:pos + length] = syllable * envelope
                pos += length + int(rng.uniform(0.0, 0.04) * rate)
            pos += int(rng.uniform(0.08, 0.25) * rate)
        peak = np.max(np.abs(out)) or 1.0
        return (0.35 * out / peak).astype(np.float32)


class Face:
    """A face on a blue background; the mouth opens with the voice."""

    def __init__(self, size):
        self.size = s = size
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
        img = np.zeros((s, s, 3), dtype=np.uint8)
        img[:] = (40, 70, 120)
        face = ((xx - 0.5) / 0.33) ** 2 + ((yy - 0.52) / 0.42) ** 2 <= 1
        img[face] = (224, 182, 150)
        for ex in (0.38, 0.62):
            eye = ((xx - ex) / 0.05) ** 2 + ((yy - 0.42) / 0.03) ** 2 <= 1
            img[eye] = (30, 30, 40)
        self.base = img
        # The mouth's box: x 0.36-0.64, y 0.64-0.84 of the picture.
        self.box = (int(0.64 * s), int(0.84 * s), int(0.36 * s), int(0.64 * s))
        y0, y1, x0, x1 = self.box
        self.my, self.mx = yy[y0:y1, x0:x1], xx[y0:y1, x0:x1]

    def render(self, openness):
        img = self.base.copy()
        y0, y1, x0, x1 = self.box
        height = 0.008 + 0.07 * min(1.0, openness)
        mouth = ((self.mx - 0.5) / 0.11) ** 2 + ((self.my - 0.72) / height) ** 2 <= 1
        img[y0:y1, x0:x1][mouth] = (120, 20, 30)
        return img.tobytes()


class Avatar:
    """What the avatar says and shows at each instant (seconds since the anchor)."""

    def __init__(self, rate, fps, size, barge_in):
        self.rate, self.fps = rate, fps
        self.voice = Voice(rate)
        # Prepared before the clock starts, as a TTS engine would have them: synthesizing on the
        # fly would stall the pacing loop for a moment at each answer.
        self.answers_ready = [self.voice.utterance(random.uniform(3.0, 5.0)) for _ in range(4)]
        self.face = Face(size)
        self.barge_in = barge_in
        self.speech = None  # (start_s, samples)
        self.next_answer_s = 1.0
        self.answers = 0
        self.interrupt_at = None

    def plan(self, t):
        """Starts an answer when it is time (one of the prepared 3-5 s ones, every few seconds)."""
        if self.speech is None and t >= self.next_answer_s:
            samples = self.answers_ready[self.answers % len(self.answers_ready)]
            self.speech = (t, samples)
            self.answers += 1
            end = t + len(samples) / self.rate
            self.interrupt_at = t + 1.5 if self.barge_in and self.answers % 2 == 0 else None
            self.next_answer_s = end + random.uniform(1.0, 2.5)
        if self.speech is not None:
            start, samples = self.speech
            if t > start + len(samples) / self.rate:
                self.speech = None

    def interrupt(self, t):
        self.speech = None
        self.interrupt_at = None
        self.next_answer_s = t + 2.0

    def audio(self, t, n):
        """n samples from t, or None while silent (lockstep fills silence itself)."""
        if self.speech is None:
            return None
        start, samples = self.speech
        i = int(round((t - start) * self.rate))
        if i >= len(samples) or i + n <= 0:
            return None
        chunk = np.zeros(n, dtype=np.float32)
        lo, hi = max(i, 0), min(i + n, len(samples))
        chunk[lo - i:hi - i] = samples[lo:hi]
        return (chunk * 32767).astype("<i2").tobytes()

    def openness(self, t):
        if self.speech is None:
            return 0.0
        start, samples = self.speech
        i = int((t - start) * self.rate)
        window = samples[max(i - self.rate // 50, 0):max(i + self.rate // 50, 0)]
        if len(window) == 0:
            return 0.0
        return float(np.sqrt(np.mean(window ** 2))) * 6.0


async def read_events(ws, quiet):
    async for message in ws:
        if isinstance(message, str) and not quiet:
            print(message, flush=True)


async def session(args, avatar, anchor_us):
    """One connection: hello, then media paced from the anchor until it drops."""
    # A server that asks who is pushing takes an API token with the publish permission.
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    async with connect(args.url, max_size=None, close_timeout=5, additional_headers=headers) as ws:
        hello = {
            "type": "hello",
            "clock_us": now_us(),
            "audio": {"rate": args.rate, "channels": 1, "format": "s16le"},
            "video": {"width": args.size, "height": args.size, "format": "rgb24", "fps": args.fps},
        }
        await ws.send(json.dumps(hello))
        events = asyncio.create_task(read_events(ws, args.quiet))
        chunk_s, frame_s = 0.02, 1.0 / args.fps
        chunk_n = args.rate // 50
        elapsed = (now_us() - anchor_us) / 1e6
        # Media restarts at the next grid point after now (what was queued before is gone).
        audio_i = math.ceil(elapsed / chunk_s)
        video_i = math.ceil(elapsed / frame_s)
        next_clock = now_us() + 1_000_000
        try:
            while args.duration is None or elapsed < args.duration:
                elapsed = (now_us() - anchor_us) / 1e6
                if now_us() >= next_clock:
                    # Our clock's now, once a second: lockstep follows it if it runs off.
                    next_clock += 1_000_000
                    await ws.send(json.dumps({"type": "clock", "clock_us": now_us()}))
                if avatar.interrupt_at is not None and elapsed >= avatar.interrupt_at:
                    # Barge-in: drop what lockstep holds, and go on from now.
                    await ws.send(json.dumps({"type": "flush"}))
                    avatar.interrupt(elapsed)
                    audio_i = math.ceil(elapsed / chunk_s)
                    video_i = math.ceil(elapsed / frame_s)
                    if not args.quiet:
                        print(json.dumps({"producer": "barge-in", "at_s": round(elapsed, 3)}), flush=True)
                horizon = elapsed + LEAD_S
                while audio_i * chunk_s < horizon or video_i * frame_s < horizon:
                    if audio_i * chunk_s <= video_i * frame_s:
                        t = audio_i * chunk_s
                        avatar.plan(t)
                        pcm = avatar.audio(t, chunk_n)
                        if pcm is not None:
                            await ws.send(media(AUDIO, anchor_us + round(t * 1e6), pcm))
                        audio_i += 1
                    else:
                        t = video_i * frame_s
                        avatar.plan(t)
                        frame = avatar.face.render(avatar.openness(t))
                        await ws.send(media(VIDEO, anchor_us + round(t * 1e6), frame))
                        video_i += 1
                await asyncio.sleep(0.01)
            await ws.send(json.dumps({"type": "end"}))
            # The server closes first (RFC 6455): wait for it.
            await asyncio.wait_for(ws.wait_closed(), 5)
        finally:
            events.cancel()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:8350/api/push/avatar")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--rate", type=int, default=24000)
    parser.add_argument("--duration", type=float, help="seconds, then end (default: forever)")
    parser.add_argument("--no-barge-in", dest="barge_in", action="store_false")
    parser.add_argument("--quiet", action="store_true", help="do not print the server's events")
    parser.add_argument("--token", default=os.environ.get("LOCKSTEP_TOKEN"),
                        help="API token with the publish permission (default: $LOCKSTEP_TOKEN)")
    args = parser.parse_args()
    avatar = Avatar(args.rate, args.fps, args.size, args.barge_in)
    anchor_us = now_us()
    attempt = 0
    while True:
        started = time.monotonic()
        try:
            await session(args, avatar, anchor_us)
            return
        except InvalidStatus as e:
            status = e.response.status_code
            retry_after = e.response.headers.get("Retry-After")
            print(f"push_avatar: refused ({status}): {e.response.body.decode(errors='replace')}",
                  file=sys.stderr)
            if status == 404:
                sys.exit(1)
            delay = float(retry_after) if retry_after else None
        except (OSError, ConnectionClosed, asyncio.TimeoutError) as e:
            print(f"push_avatar: connection lost: {e}", file=sys.stderr)
            delay = None
        if args.duration is not None and (now_us() - anchor_us) / 1e6 >= args.duration:
            return
        # Exponential backoff with full jitter (0.5 s doubling to 30 s), or what the server asked;
        # a session that lasted starts the count again.
        attempt = 1 if time.monotonic() - started > 30 else attempt + 1
        if delay is None:
            delay = random.uniform(0, min(30.0, 0.5 * 2 ** attempt))
        print(f"push_avatar: reconnecting in {delay:.1f} s", file=sys.stderr)
        await asyncio.sleep(delay)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
