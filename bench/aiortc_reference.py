#!/usr/bin/env python3
"""The reference design of the seed article (a digital human on aiortc), built as described, for
side-by-side measurement with lockstep's push sources (bench/push_bench.sh).

- SingleFrameVideoStreamTrack: recv() returns the current frame stamped from time.monotonic()
  at the moment WebRTC pulls it (90 kHz), paced at the frame rate.
- SingleFrameAudioStreamTrack: a deque of 20 ms 24 kHz PCM blocks; recv() waits while it is empty
  (the track stalls) and stamps pts = samples sent so far.
- push_av_segment(): one start_time = time.monotonic(); an audio coroutine pushes a block at
  start + idx*0.02, a video coroutine updates the frame at start + i/fps.
- aiortc sends RTCP sender reports from its own send-time clock.

Content: the beep-flash pattern `lockstep measure` reads (a 1 kHz beep and a white picture at
each whole second of the anchor, every frame's index and capture wallclock in the stripe).
Served over WHEP: POST /whep with an SDP offer → 201 and the answer.

    python3 bench/aiortc_reference.py --port 8360 [--size 512]
"""

import argparse
import asyncio
import fractions
import math
import time
from collections import deque

import aioice.ice
import numpy as np
from aiohttp import web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

# aioice leaves loopback out of its host candidates; the benchmark runs on loopback.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

RATE = 24000
FPS = 30


class SingleFrameVideoStreamTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, frame, start_time):
        super().__init__()
        self._current_frame = frame
        self._start_time = start_time
        self._time_base = fractions.Fraction(1, 90000)
        self._next = 0

    async def recv(self):
        # Paced at the frame rate (what aiortc's VideoStreamTrack does), stamped at pull time.
        self._next += 1
        target = self._start_time + self._next / FPS
        now = time.monotonic()
        if now < target:
            await asyncio.sleep(target - now)
        elapsed = time.monotonic() - self._start_time
        frame = self._current_frame
        frame.pts = int(elapsed * 90000)
        frame.time_base = self._time_base
        return frame

    async def update_frame(self, new_frame):
        self._current_frame = new_frame


class SingleFrameAudioStreamTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self):
        super().__init__()
        self._time_base = fractions.Fraction(1, RATE)
        self.audio_queue = deque(maxlen=100)
        self._samples_sent = 0

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        while not self.audio_queue:
            await asyncio.sleep(0.001)
        pcm = self.audio_queue.popleft()
        frame = AudioFrame(format="s16", layout="mono", samples=pcm.shape[0])
        frame.sample_rate = RATE
        frame.time_base = self._time_base
        frame.planes[0].update(pcm.tobytes())
        frame.pts = self._samples_sent
        self._samples_sent += pcm.shape[0]
        return frame

    def push_audio_data(self, pcm):
        self.audio_queue.append(pcm)


def crc8(data):
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def pattern_frame(size, index, flash):
    """The beep-flash picture with its stripe (crates/media/src/pattern.rs), as I420."""
    y = np.full((size, size), 235 if flash else 40, dtype=np.uint8)
    micros = time.time_ns() // 1000 & ((1 << 56) - 1)
    data = index.to_bytes(4, "big") + micros.to_bytes(8, "big")[1:]
    data += bytes([crc8(data)])
    cell = size // 24
    for i in range(96):
        bit = data[i // 8] & (0x80 >> (i % 8))
        row, col = divmod(i, 24)
        y[row * 16:(row + 1) * 16, col * cell:(col + 1) * cell] = 235 if bit else 16
    yuv = np.concatenate([y.reshape(-1), np.full(size * size // 2, 128, dtype=np.uint8)])
    return VideoFrame.from_ndarray(yuv.reshape(size * 3 // 2, size), format="yuv420p")


async def push_av_segment(audio_track, video_track, start_time, size):
    chunk = RATE // 50

    async def audio_task():
        idx = 0
        while True:
            target = start_time + idx * 0.02
            now = time.monotonic()
            if now < target:
                await asyncio.sleep(target - now)
            t = idx * 0.02 + np.arange(chunk) / RATE
            into = t - np.floor(t)
            beep = np.where(into < 0.1, 0.5 * np.sin(2 * np.pi * 1000 * into), 0.0)
            audio_track.push_audio_data((beep * 32767).astype(np.int16))
            idx += 1

    async def video_task():
        i = 0
        while True:
            target = start_time + i / FPS
            now = time.monotonic()
            if now < target:
                await asyncio.sleep(target - now)
            await video_track.update_frame(pattern_frame(size, i, i % FPS == 0))
            i += 1

    await asyncio.gather(audio_task(), video_task())


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8360)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    peers = set()

    async def whep(request):
        offer = RTCSessionDescription(sdp=await request.text(), type="offer")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peers.add(pc)
        start_time = time.monotonic()
        audio = SingleFrameAudioStreamTrack()
        video = SingleFrameVideoStreamTrack(pattern_frame(args.size, 0, False), start_time)
        pc.addTrack(audio)
        pc.addTrack(video)
        task = asyncio.ensure_future(push_av_segment(audio, video, start_time, args.size))

        @pc.on("connectionstatechange")
        async def on_state():
            if pc.connectionState in ("failed", "closed"):
                task.cancel()
                peers.discard(pc)
                await pc.close()

        await pc.setRemoteDescription(offer)
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(status=201, content_type="application/sdp",
                            text=pc.localDescription.sdp,
                            headers={"Location": f"/whep/{id(pc)}"})

    app = web.Application()
    app.router.add_post("/whep", whep)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    print(f"http://127.0.0.1:{args.port}/whep", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
