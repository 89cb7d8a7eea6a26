#!/usr/bin/env python3
"""ONVIF device stand-ins for `lockstep discover`, written from the ONVIF Core and Media
specifications (WS-Discovery 2005/04 ProbeMatch, SOAP 1.2, WS-Security UsernameToken with a
password digest) — not from any vendor's firmware, and said so wherever they are used.

    python3 onvif_device.py --first-port 8081 --count 3 [--user admin --password secret]
        [--refuse-profiles 2] [--garbage 3] [--stream rtsp://…]

Device k (1-based) serves HTTP on 127.0.0.1:(first-port + k - 1) and answers discovery on UDP
3702 (the multicast group 239.255.255.250, joined on every interface). `--refuse-profiles K`
makes device K fault GetProfiles (it answers discovery and GetDeviceInformation);
`--garbage K` makes device K answer discovery with a datagram that is not XML. Device 1 has a
backchannel (an audio output in its first profile). Prints "ready" once listening.
"""

import argparse
import base64
import hashlib
import re
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GROUP = "239.255.255.250"
PORT = 3702


def probe_matches(relates_to, k, http_port):
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:wsdd="http://schemas.xmlsoap.org/ws/2005/04/discovery"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
<SOAP-ENV:Header>
<wsa:MessageID>urn:uuid:00000000-0000-4000-8000-{k:012d}</wsa:MessageID>
<wsa:RelatesTo>{relates_to}</wsa:RelatesTo>
<wsa:To SOAP-ENV:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>
<wsa:Action SOAP-ENV:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action>
</SOAP-ENV:Header>
<SOAP-ENV:Body><wsdd:ProbeMatches><wsdd:ProbeMatch>
<wsa:EndpointReference><wsa:Address>urn:uuid:c0ffee00-0000-4000-8000-{k:012d}</wsa:Address></wsa:EndpointReference>
<wsdd:Types>dn:NetworkVideoTransmitter tds:Device</wsdd:Types>
<wsdd:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/Profile/Streaming onvif://www.onvif.org/name/Stand-in%20Camera%20{k} onvif://www.onvif.org/hardware/SI-{k}00</wsdd:Scopes>
<wsdd:XAddrs>http://127.0.0.1:{http_port}/onvif/device_service</wsdd:XAddrs>
<wsdd:MetadataVersion>1</wsdd:MetadataVersion>
</wsdd:ProbeMatch></wsdd:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>"""


def envelope(body):
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"
 xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl"
 xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:ter="http://www.onvif.org/ver10/error">
<env:Body>{body}</env:Body></env:Envelope>"""


def fault(subcode, reason):
    return envelope(f"""<env:Fault><env:Code><env:Value>env:Sender</env:Value>
<env:Subcode><env:Value>{subcode}</env:Value></env:Subcode></env:Code>
<env:Reason><env:Text xml:lang="en">{reason}</env:Text></env:Reason></env:Fault>""")


def profiles(k, backchannel):
    output = ('<tt:Extension><tt:AudioOutputConfiguration token="out0"><tt:Name>speaker</tt:Name>'
              '<tt:OutputToken>speaker</tt:OutputToken></tt:AudioOutputConfiguration>'
              '<tt:AudioDecoderConfiguration token="dec0"><tt:Name>dec</tt:Name>'
              '</tt:AudioDecoderConfiguration></tt:Extension>') if backchannel else ""
    return envelope(f"""<trt:GetProfilesResponse>
<trt:Profiles token="Profile_{k}01" fixed="true"><tt:Name>mainStream</tt:Name>
<tt:VideoEncoderConfiguration token="venc0"><tt:Name>main</tt:Name><tt:Encoding>H264</tt:Encoding>
<tt:Resolution><tt:Width>1920</tt:Width><tt:Height>1080</tt:Height></tt:Resolution>
<tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit><tt:BitrateLimit>4096</tt:BitrateLimit></tt:RateControl>
</tt:VideoEncoderConfiguration>
<tt:AudioEncoderConfiguration token="aenc0"><tt:Name>mic</tt:Name><tt:Encoding>G711</tt:Encoding>
<tt:Bitrate>64</tt:Bitrate><tt:SampleRate>8</tt:SampleRate></tt:AudioEncoderConfiguration>
{output}</trt:Profiles>
<trt:Profiles token="Profile_{k}02" fixed="true"><tt:Name>subStream</tt:Name>
<tt:VideoEncoderConfiguration token="venc1"><tt:Name>sub</tt:Name><tt:Encoding>H264</tt:Encoding>
<tt:Resolution><tt:Width>640</tt:Width><tt:Height>360</tt:Height></tt:Resolution>
</tt:VideoEncoderConfiguration></trt:Profiles>
</trt:GetProfilesResponse>""")


def authorized(body, user, password):
    """The WS-Security UsernameToken's digest: base64(SHA-1(nonce + created + password))."""
    if user is None:
        return True
    name = re.search(r"<(?:\w+:)?Username>([^<]*)<", body)
    digest = re.search(r"<(?:\w+:)?Password[^>]*>([^<]*)<", body)
    nonce = re.search(r"<(?:\w+:)?Nonce[^>]*>([^<]*)<", body)
    created = re.search(r"<(?:\w+:)?Created[^>]*>([^<]*)<", body)
    if not (name and digest and nonce and created) or name.group(1) != user:
        return False
    expected = base64.b64encode(hashlib.sha1(
        base64.b64decode(nonce.group(1)) + created.group(1).encode() + password.encode()
    ).digest()).decode()
    return expected == digest.group(1)


def serve_http(k, port, opts):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode("utf-8", "replace")
            status, answer = self.answer(body)
            data = answer.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def answer(self, body):
            if not authorized(body, opts.user, opts.password):
                return 400, fault("ter:NotAuthorized", "Sender not Authorized")
            if "GetDeviceInformation" in body:
                return 200, envelope(f"""<tds:GetDeviceInformationResponse>
<tds:Manufacturer>Stand-in</tds:Manufacturer><tds:Model>SI-{k}00</tds:Model>
<tds:FirmwareVersion>V1.{k}.0 build 261206</tds:FirmwareVersion>
<tds:SerialNumber>SI{k:08d}</tds:SerialNumber><tds:HardwareId>{k}</tds:HardwareId>
</tds:GetDeviceInformationResponse>""")
            if "GetCapabilities" in body:
                return 200, envelope(f"""<tds:GetCapabilitiesResponse><tds:Capabilities>
<tt:Media><tt:XAddr>http://127.0.0.1:{port}/onvif/media_service</tt:XAddr>
<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>
<tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>
</tds:Capabilities></tds:GetCapabilitiesResponse>""")
            if "GetProfiles" in body:
                if k == opts.refuse_profiles:
                    return 500, fault("ter:ActionNotSupported", "GetProfiles is not supported")
                return 200, profiles(k, backchannel=(k == 1))
            if "GetStreamUri" in body:
                token = re.search(r"ProfileToken>([^<]*)<", body)
                which = "main" if token and token.group(1).endswith("01") else "sub"
                # One stream for both profiles when given (a simulator serves one path).
                uri = opts.stream or f"rtsp://127.0.0.1:554/device{k}/{which}"
                return 200, envelope(f"""<trt:GetStreamUriResponse><trt:MediaUri>
<tt:Uri>{uri}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>
<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout>
</trt:MediaUri></trt:GetStreamUriResponse>""")
            return 400, fault("ter:ActionNotSupported", "unknown action")

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def serve_discovery(opts):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", PORT))
    membership = struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton("0.0.0.0"))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    print("ready", flush=True)
    while True:
        data, sender = sock.recvfrom(65536)
        text = data.decode("utf-8", "replace")
        if "Probe" not in text or "ProbeMatches" in text:
            continue
        message_id = re.search(r"MessageID[^>]*>([^<]*)<", text)
        relates = message_id.group(1) if message_id else ""
        for k in range(1, opts.count + 1):
            if k == opts.garbage:
                sock.sendto(b"\x00not xml at all", sender)
                continue
            answer = probe_matches(relates, k, opts.first_port + k - 1)
            sock.sendto(answer.encode(), sender)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--first-port", type=int, required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--user")
    parser.add_argument("--password", default="")
    parser.add_argument("--refuse-profiles", type=int, default=0)
    parser.add_argument("--garbage", type=int, default=0)
    parser.add_argument("--stream", help="the main stream URL every device gives (else made up)")
    opts = parser.parse_args()
    for k in range(1, opts.count + 1):
        if k != opts.garbage:
            serve_http(k, opts.first_port + k - 1, opts)
    serve_discovery(opts)


if __name__ == "__main__":
    sys.exit(main())
