#!/usr/bin/python3
"""An independent ONVIF camera with a speaker, for lockstep's talk tests: GStreamer's
gst-rtsp-server ONVIF server (RTSPOnvifServer, RTSPOnvifMediaFactory, as in GStreamer's own
test-onvif-backchannel example). It sends H.264 video and a PCMU microphone (a tone), and takes
PCMU on its backchannel (announced only to a DESCRIBE with `Require:
www.onvif.org/ver20/backchannel`), decoded to the speaker: a fakesink whose buffers it reports.

    /usr/bin/python3 onvif_camera.py --port N [--user U --password P] [--record FILE]
                                     [--speaker-codec pcmu|g726]

Prints "ready rtsp://127.0.0.1:N/cam" once it listens, then for every buffer the speaker is
handed "speaker UNIX_MS SAMPLES PEAK" (its arrival time in ms, 8 kHz samples, the largest
|sample|), and "teardown" when a client's session ends. `--record` also appends every speaker
sample to FILE (16-bit little-endian, 8 kHz), in the order handed. Runs until killed. Needs Debian's
python3-gi, gir1.2-gst-rtsp-server-1.0 and the GStreamer plugins (`/usr/bin/python3`).
"""

import argparse
import array
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

# GStreamer's server fails the whole pipeline when a client leaves one of its streams unset
# (the payloader's "not linked" stops the source); cameras do not. The tees let this one serve a
# talk session that sets up only the audio and the backchannel, as lockstep's does.
MEDIA = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! "
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 sliced-threads=false "
    "threads=1 bitrate=300 ! tee allow-not-linked=true ! rtph264pay pt=96 config-interval=-1 name=pay0 "
    "audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! "
    "audio/x-raw,rate=8000,channels=1 ! mulawenc ! tee allow-not-linked=true ! rtppcmupay name=pay1 )"
)
SPEAKERS = {
    "pcmu": (
        '( capsfilter caps="application/x-rtp, media=audio, payload=0, clock-rate=8000, '
        'encoding-name=PCMU" name=depay_backchannel ! rtppcmudepay ! mulawdec ! '
        "fakesink name=speaker async=false sync=false signal-handoffs=true )"
    ),
    # RFC 3551 packing (rtpg726depay assumes AAL2's unless told not to); ffmpeg's decoder.
    "g726": (
        '( capsfilter caps="application/x-rtp, media=audio, payload=96, clock-rate=8000, '
        'encoding-name=G726-32" name=depay_backchannel ! rtpg726depay force-aal2=false ! '
        "avdec_g726 ! fakesink name=speaker async=false sync=false signal-handoffs=true )"
    ),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--record")
    parser.add_argument("--speaker-codec", choices=sorted(SPEAKERS), default="pcmu")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPOnvifServer.new()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPOnvifMediaFactory.new()
    factory.set_launch(MEDIA)
    factory.set_backchannel_launch(SPEAKERS[args.speaker_codec])
    factory.set_shared(False)
    factory.set_media_gtype(GstRtspServer.RTSPOnvifMedia.__gtype__)
    if args.user:
        auth = GstRtspServer.RTSPAuth.new()
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_digest(args.user, args.password, token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions.new()
        permissions.add_role_from_structure(
            Gst.Structure.new_from_string(
                "user, media.factory.access=(boolean)true, "
                "media.factory.construct=(boolean)true"
            )
        )
        factory.set_permissions(permissions)

    record = open(args.record, "ab", buffering=0) if args.record else None

    def handoff(_sink, buffer, _pad):
        ok, info = buffer.map(Gst.MapFlags.READ)
        if not ok:
            return
        data = bytes(info.data)
        samples = array.array("h", data)
        buffer.unmap(info)
        if record is not None:
            record.write(data)
        peak = max((abs(s) for s in samples), default=0)
        print(f"speaker {time.time() * 1000:.1f} {len(samples)} {peak}", flush=True)

    def configured(_factory, media):
        speaker = media.get_element().get_by_name("speaker")
        if speaker is not None:
            speaker.connect("handoff", handoff)

    def client_connected(_server, client):
        client.connect("teardown-request", lambda *_: print("teardown", flush=True))

    factory.connect("media-configure", configured)
    server.connect("client-connected", client_connected)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print("cannot listen", file=sys.stderr)
        sys.exit(1)
    print(f"ready rtsp://127.0.0.1:{args.port}/cam", flush=True)
    GLib.MainLoop().run()


main()
