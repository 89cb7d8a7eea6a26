#!/usr/bin/python3
"""A stand-in for a Hikvision camera's ISAPI two-way audio, for lockstep's talk tests. No real
device is here: this follows the exchange documented in Hikvision's "Intelligent Security API
(General Application) Developer Guide" (two-way audio programming flow; 15.10.185-190):

    GET  /ISAPI/System/TwoWayAudio/channels              -> TwoWayAudioChannelList
    PUT  /ISAPI/System/TwoWayAudio/channels/<ID>/open     -> TwoWayAudioSession (sessionId)
    PUT  /ISAPI/System/TwoWayAudio/channels/<ID>/audioData?sessionId=<S>
         Content-Type: application/octet-stream, body: raw G.711 at 8 kHz, played as it comes
    PUT  /ISAPI/System/TwoWayAudio/channels/<ID>/close    -> ResponseStatus

Every request needs HTTP Digest (qop=auth, as the cameras ask). One session at a time: a
second open while one is open gets ResponseStatus "Device Busy" (statusCode 2), audio for a
session that is not open gets "Invalid Operation" (statusCode 4).

    python3 isapi_camera.py --port N --user U --password P [--codec G.711ulaw]

Prints "ready http://127.0.0.1:N" once it listens, then "speaker UNIX_MS SAMPLES PEAK" for
every 20 ms of audio the speaker is handed (the same lines as onvif_camera.py), "open ID" and
"teardown" for the session's open and close, and "refused WHY" for each refused request.
"""

import argparse
import hashlib
import http.server
import os
import re
import sys
import threading
import time

NS = 'version="2.0" xmlns="http://www.isapi.com/ver20/XMLSchema"'
REALM = "DS-2CD2347G2-LU (stand-in)"
CHUNK = 160  # 20 ms of G.711 at 8 kHz


def ulaw_to_linear(byte):
    byte = ~byte & 0xFF
    sign = byte & 0x80
    exponent = (byte >> 4) & 0x07
    mantissa = byte & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -magnitude if sign else magnitude


def alaw_to_linear(byte):
    byte ^= 0x55
    sign = byte & 0x80
    exponent = (byte >> 4) & 0x07
    mantissa = byte & 0x0F
    if exponent == 0:
        magnitude = (mantissa << 4) + 8
    else:
        magnitude = ((mantissa << 4) + 0x108) << (exponent - 1)
    return magnitude if sign else -magnitude


def say(line):
    print(line, flush=True)


class Camera:
    def __init__(self, args):
        self.user = args.user
        self.password = args.password
        self.codec = args.codec
        self.nonce = os.urandom(16).hex()
        self.session = None
        self.lock = threading.Lock()
        table = alaw_to_linear if self.codec == "G.711alaw" else ulaw_to_linear
        self.decode = [table(b) for b in range(256)]


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    camera = None

    def log_message(self, *_):
        pass

    def reply(self, status, body, content_type="application/xml"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def status(self, http_status, code, text, sub):
        if code != 1:
            say(f"refused {self.command} {self.path}: {text}")
        self.reply(
            http_status,
            f'<?xml version="1.0" encoding="UTF-8"?>\n<ResponseStatus {NS}>'
            f"<requestURL>{self.path}</requestURL><statusCode>{code}</statusCode>"
            f"<statusString>{text}</statusString><subStatusCode>{sub}</subStatusCode>"
            "</ResponseStatus>",
        )

    def authorized(self):
        header = self.headers.get("Authorization", "")
        if header.startswith("Digest "):
            params = dict(re.findall(r'(\w+)="?([^",]*)"?', header[7:]))
            ha1 = md5(f"{self.camera.user}:{REALM}:{self.camera.password}")
            ha2 = md5(f"{self.command}:{params.get('uri', '')}")
            expected = md5(
                f"{ha1}:{params.get('nonce')}:{params.get('nc')}:{params.get('cnonce')}:auth:{ha2}"
            )
            uri_matches = params.get("uri") == self.path
            if (
                params.get("username") == self.camera.user
                and params.get("nonce") == self.camera.nonce
                and params.get("qop") == "auth"
                and uri_matches
                and params.get("response") == expected
            ):
                return True
        # Drain a small body so the connection stays usable; a stream is not read.
        length = int(self.headers.get("Content-Length", "0") or 0)
        if 0 < length <= 65536:
            self.rfile.read(length)
        self.send_response(401)
        self.send_header(
            "WWW-Authenticate",
            f'Digest qop="auth", realm="{REALM}", nonce="{self.camera.nonce}", stale="FALSE"',
        )
        self.send_header("Content-Length", "0")
        self.end_headers()
        if 65536 < length:
            self.close_connection = True
        return False

    def do_GET(self):
        if not self.authorized():
            return
        if self.path == "/ISAPI/System/TwoWayAudio/channels":
            return self.reply(
                200,
                f'<?xml version="1.0" encoding="UTF-8"?>\n<TwoWayAudioChannelList {NS}>'
                "<TwoWayAudioChannel><id>1</id><enabled>false</enabled>"
                f"<audioCompressionType>{self.camera.codec}</audioCompressionType>"
                "<audioInputType>MicIn</audioInputType><speakerVolume>50</speakerVolume>"
                "<noisereduce>false</noisereduce></TwoWayAudioChannel>"
                "</TwoWayAudioChannelList>",
            )
        self.status(404, 4, "Invalid Operation", "notSupport")

    def do_PUT(self):
        if not self.authorized():
            return
        match = re.fullmatch(
            r"/ISAPI/System/TwoWayAudio/channels/(\w+)/(open|close|audioData)(\?sessionId=(\w+))?",
            self.path,
        )
        if not match or match.group(1) != "1":
            return self.status(404, 4, "Invalid Operation", "notSupport")
        action, session = match.group(2), match.group(4)
        camera = self.camera
        if action == "open":
            with camera.lock:
                if camera.session is not None:
                    return self.status(403, 2, "Device Busy", "deviceBusy")
                camera.session = str(int.from_bytes(os.urandom(4), "big"))
            say(f"open {camera.session}")
            return self.reply(
                200,
                f'<?xml version="1.0" encoding="UTF-8"?>\n<TwoWayAudioSession {NS}>'
                f"<sessionId>{camera.session}</sessionId></TwoWayAudioSession>",
            )
        if action == "close":
            with camera.lock:
                was_open = camera.session is not None
                camera.session = None
            if was_open:
                say("teardown")
            return self.status(200, 1, "OK", "ok")
        with camera.lock:
            current = camera.session
        if current is None or (session is not None and session != current):
            return self.status(403, 4, "Invalid Operation", "sessionNotOpen")
        self.play(int(self.headers.get("Content-Length", "0") or 0), current)

    def play(self, length, session):
        """Reads the audio as it comes (the speaker plays it at once), 20 ms at a time, until
        the declared length, the client's end of the stream, or the session's close."""
        left = length
        pending = b""
        while left > 0:
            data = self.rfile.read1(min(left, 4096))
            if not data:
                break
            left -= len(data)
            pending += data
            while len(pending) >= CHUNK:
                chunk, pending = pending[:CHUNK], pending[CHUNK:]
                peak = max(abs(self.camera.decode[b]) for b in chunk)
                say(f"speaker {time.time() * 1000:.1f} {len(chunk)} {peak}")
            if self.camera.session != session:
                break
        self.close_connection = True
        self.status(200, 1, "OK", "ok")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", required=True)
    parser.add_argument("--codec", default="G.711ulaw")
    args = parser.parse_args()
    Handler.camera = Camera(args)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    say(f"ready http://127.0.0.1:{args.port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


main()
