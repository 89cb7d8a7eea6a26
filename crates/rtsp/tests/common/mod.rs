//! A small, strict RTSP client for tests: it sends what real clients send and records everything
//! the camera answers, including interleaved media.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use lockstep_media::g711::G711Law;
use lockstep_media::h264::H264Depacketizer;
use lockstep_media::H264Decoder;
use lockstep_rtsp::rtp::parse_rtp;
use lockstep_sync::NtpTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

#[derive(Debug, Clone)]
pub struct ClientResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl ClientResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The session id without its timeout parameter.
    pub fn session(&self) -> String {
        self.header("Session")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

pub struct RtspClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    /// Interleaved frames received: (channel, payload).
    pub interleaved: Vec<(u8, Vec<u8>)>,
    pub closed: bool,
}

impl RtspClient {
    pub async fn connect(addr: SocketAddr) -> RtspClient {
        RtspClient {
            stream: TcpStream::connect(addr).await.expect("camera accepts"),
            buf: Vec::new(),
            cseq: 0,
            interleaved: Vec::new(),
            closed: false,
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends a request with a fresh CSeq and the given headers; waits for the response.
    pub async fn request(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> ClientResponse {
        self.cseq += 1;
        let mut text = format!("{method} {uri} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        self.send_raw(text.as_bytes()).await;
        self.response().await.expect("a response")
    }

    /// Reads until a response is complete, keeping interleaved frames seen on the way.
    pub async fn response(&mut self) -> Option<ClientResponse> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self.take_response() {
                return Some(r);
            }
            if !self.read_more(deadline).await {
                return None;
            }
        }
    }

    async fn read_more(&mut self, deadline: Instant) -> bool {
        self.buf.reserve(65_536);
        match timeout(
            deadline.saturating_duration_since(Instant::now()),
            self.stream.read_buf(&mut self.buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.closed = true;
                false
            }
            Ok(Ok(_)) => true,
            Err(_) => false,
        }
    }

    /// Pulls complete interleaved frames and at most one response out of the buffer.
    fn take_response(&mut self) -> Option<ClientResponse> {
        loop {
            if self.buf.first() == Some(&b'$') {
                if self.buf.len() < 4 {
                    return None;
                }
                let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                if self.buf.len() < 4 + len {
                    return None;
                }
                let frame: Vec<u8> = self.buf.drain(..4 + len).collect();
                self.interleaved.push((frame[1], frame[4..].to_vec()));
                continue;
            }
            let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")?;
            let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let status = status_line.split(' ').nth(1)?.parse().ok()?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            if self.buf.len() < end + 4 + length {
                return None;
            }
            let body = String::from_utf8_lossy(&self.buf[end + 4..end + 4 + length]).to_string();
            self.buf.drain(..end + 4 + length);
            return Some(ClientResponse {
                status,
                headers,
                body,
            });
        }
    }

    /// Collects interleaved media for `duration`.
    pub async fn receive_for(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            if !self.read_more(deadline).await {
                break;
            }
            let _ = self.take_response();
        }
    }

    /// Sets up the video and audio tracks over TCP (channels 0-1 and 2-3) and plays.
    pub async fn play_tcp(&mut self, url: &str) -> ClientResponse {
        let describe = self.request("DESCRIBE", url, &[]).await;
        assert_eq!(describe.status, 200, "{describe:?}");
        let setup = self
            .request(
                "SETUP",
                &format!("{url}/trackID=0"),
                &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
            )
            .await;
        assert_eq!(setup.status, 200, "{setup:?}");
        let session = setup.session();
        let setup = self
            .request(
                "SETUP",
                &format!("{url}/trackID=1"),
                &[
                    ("Transport", "RTP/AVP/TCP;unicast;interleaved=2-3"),
                    ("Session", &session),
                ],
            )
            .await;
        assert_eq!(setup.status, 200, "{setup:?}");
        let play = self.request("PLAY", url, &[("Session", &session)]).await;
        assert_eq!(play.status, 200, "{play:?}");
        play
    }

    pub fn on_channel(&self, channel: u8) -> Vec<&[u8]> {
        self.interleaved
            .iter()
            .filter(|(c, _)| *c == channel)
            .map(|(_, p)| p.as_slice())
            .collect()
    }
}

/// A parsed sender report: (SSRC, wallclock ns since the Unix epoch, RTP time).
pub fn parse_sender_report(packet: &[u8]) -> Option<(u32, i64, u32)> {
    if packet.len() < 28 || packet[1] != 200 {
        return None;
    }
    let ssrc = u32::from_be_bytes(packet[4..8].try_into().ok()?);
    let ntp = u64::from_be_bytes(packet[8..16].try_into().ok()?);
    let rtp = u32::from_be_bytes(packet[16..20].try_into().ok()?);
    Some((ssrc, NtpTime::from_bits(ntp).as_unix_nanos(), rtp))
}

/// A decoded picture from the video channel: its RTP time and what the stripe and flash say.
#[derive(Debug, Clone, Copy)]
pub struct Picture {
    pub rtp_ts: u32,
    pub frame_index: u32,
    pub capture_unix_micros: Option<u64>,
    pub flash: bool,
}

/// Depacketizes and decodes the H.264 RTP packets of a channel.
pub fn decode_video(packets: &[&[u8]]) -> Vec<Picture> {
    let mut depacketizer = H264Depacketizer::default();
    let mut decoder = H264Decoder::new().expect("decoder");
    let mut last_seq: Option<u16> = None;
    let mut pictures = Vec::new();
    for packet in packets {
        let h = parse_rtp(packet).expect("valid RTP from the camera");
        if last_seq.is_some_and(|s| s.wrapping_add(1) != h.seq) {
            depacketizer.handle_loss();
        }
        last_seq = Some(h.seq);
        let Some(unit) = depacketizer.push(&packet[h.payload_offset..h.payload_end], h.marker)
        else {
            continue;
        };
        if let Ok(Some(luma)) = decoder.decode(&unit.annex_b) {
            let stripe =
                lockstep_media::pattern::read_stripe(&luma.y, luma.stride, luma.width, luma.height);
            let mean = lockstep_media::pattern::mean_luma_below_stripe(
                &luma.y,
                luma.stride,
                luma.width,
                luma.height,
            );
            if let Some(stripe) = stripe {
                pictures.push(Picture {
                    rtp_ts: h.timestamp,
                    frame_index: stripe.frame_index,
                    capture_unix_micros: stripe.capture_unix_micros,
                    flash: mean > 128.0,
                });
            }
        }
    }
    pictures
}

/// Decodes G.711 RTP packets: (RTP time of the first sample, samples in [-1, 1]).
pub fn decode_audio(packets: &[&[u8]]) -> Vec<(u32, Vec<f32>)> {
    packets
        .iter()
        .filter_map(|p| {
            let h = parse_rtp(p).ok()?;
            let law = match h.payload_type {
                0 => G711Law::MuLaw,
                8 => G711Law::ALaw,
                _ => return None,
            };
            let mut pcm = Vec::new();
            law.decode(&p[h.payload_offset..h.payload_end], &mut pcm);
            Some((
                h.timestamp,
                pcm.iter().map(|&s| f32::from(s) / 32_768.0).collect(),
            ))
        })
        .collect()
}
