#!/usr/bin/python3
"""An independent RTSP camera for lockstep's tests: GStreamer's gst-rtsp-server re-encodes
lockstep's beep-flash simulator into the codecs real cameras send (AAC as mpeg4-generic or
MP4A-LATM, Opus, G.711; H.264 or H.265), on its own clocks and with its own RTP packetizers and
sender reports. Lockstep's own code only makes the picture and the beeps.

    /usr/bin/python3 gst_camera.py SOURCE_RTSP_URL --port N --audio aac-generic [--video h265]

Prints "ready rtsp://127.0.0.1:N/cam" once it listens; runs until killed. Needs Debian's
python3-gi, gir1.2-gst-rtsp-server-1.0 and the GStreamer plugins (.ci/run installs them).
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

# What each audio codec is encoded and packetized with; the rate is what cameras use.
AUDIO = {
    "aac-generic": "audio/x-raw,rate=16000,channels=1 ! avenc_aac ! aacparse ! rtpmp4gpay",
    "aac-latm": "audio/x-raw,rate=16000,channels=1 ! avenc_aac ! aacparse ! rtpmp4apay",
    "opus": "audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 ! rtpopuspay",
    "pcma": "audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay",
}
VIDEO = {
    # The simulator's H.264 passes through (its own packetizer, GStreamer's timing).
    "h264": "rtph264depay ! h264parse ! rtph264pay config-interval=-1",
    "h265": (
        # The depayloaded stream has no frame rate, which x265 refuses to open without: the
        # simulator's 30 fps is set (the buffers keep their own times).
        "rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! "
        'capssetter caps="video/x-raw,framerate=30/1" ! '
        "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! "
        "h265parse ! rtph265pay config-interval=-1"
    ),
}


def main():
    args = argparse.ArgumentParser()
    args.add_argument("source")
    args.add_argument("--port", type=int, required=True)
    args.add_argument("--audio", choices=sorted(AUDIO), default="aac-generic")
    args.add_argument("--video", choices=sorted(VIDEO), default="h264")
    opts = args.parse_args()

    launch = (
        f"( rtspsrc location={opts.source} protocols=tcp latency=200 buffer-mode=none name=src "
        f"src. ! {VIDEO[opts.video]} name=pay0 pt=96 "
        f"src. ! rtppcmadepay ! alawdec ! audioconvert ! audioresample ! "
        f"{AUDIO[opts.audio]} name=pay1 pt=97 )"
    )
    serve(launch, opts.port, "gst_camera")


def serve(launch, port, who):
    """Serves the `launch` pipeline (payloaders pay0, pay1) at rtsp://127.0.0.1:PORT/cam, one
    media shared by every client; prints "ready URL" and runs until killed."""
    Gst.init(None)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"{who}: cannot listen on 127.0.0.1:{port}")
    print(f"ready rtsp://127.0.0.1:{port}/cam", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
