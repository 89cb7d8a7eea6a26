#!/usr/bin/python3
"""A camera that really spends its bitrate, for load benchmarks: GStreamer's gst-rtsp-server
encodes fresh noise (`videotestsrc pattern=snow`) with x264 at a fixed bitrate and a sine as
G.711 A-law, once, shared by every client (one encoder however many cameras read it).

    /usr/bin/python3 bench/noise_camera.py --port N [--size 640x360] [--kbps 2000] [--gop 60]
        [--codec h264|h265]

Prints "ready rtsp://127.0.0.1:N/cam" once it listens; runs until killed.
"""

import argparse
import os
import sys

# The server half is the test cameras' (crates/server/tests/peers/gst_camera.py).
PEERS = os.path.join(os.path.dirname(__file__), "..", "crates", "server", "tests", "peers")
sys.path.insert(0, PEERS)
sys.dont_write_bytecode = True  # nothing written into the source tree
from gst_camera import serve  # noqa: E402


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--port", type=int, required=True)
    args.add_argument("--size", default="640x360")
    args.add_argument("--kbps", type=int, default=2000)
    args.add_argument("--gop", type=int, default=60, help="frames between keyframes")
    args.add_argument("--codec", choices=["h264", "h265"], default="h264")
    opts = args.parse_args()
    width, height = opts.size.split("x")
    if opts.codec == "h264":
        video = (
            f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={opts.kbps} "
            f"vbv-buf-capacity=1000 key-int-max={opts.gop} ! "
            "h264parse ! rtph264pay config-interval=-1 name=pay0 pt=96 "
        )
    else:
        video = (
            f"x265enc tune=zerolatency speed-preset=ultrafast bitrate={opts.kbps} "
            f"key-int-max={opts.gop} ! "
            "h265parse ! rtph265pay config-interval=-1 name=pay0 pt=96 "
        )

    launch = (
        "( videotestsrc is-live=true pattern=snow ! "
        f"video/x-raw,width={width},height={height},framerate=30/1 ! "
        f"{video}"
        "audiotestsrc is-live=true wave=sine freq=1000 volume=0.3 ! "
        "audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8 )"
    )
    serve(launch, opts.port, "noise_camera")


if __name__ == "__main__":
    main()
