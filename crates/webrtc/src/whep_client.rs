//! A WHEP viewer in Rust (str0m), for `lockstep measure` and the load benchmark: it offers to
//! receive H.264, H.265 and Opus, POSTs the offer over plain HTTP/1.1, and hands out what a browser
//! would get — depacketized frames with their RTP times, and the sender reports.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Debug, thiserror::Error)]
pub enum WhepClientError {
    #[error("{0}")]
    Endpoint(String),
    #[error("WHEP offer refused ({status}): {body}")]
    Refused { status: String, body: String },
    #[error("webrtc: {0}")]
    Rtc(#[from] str0m::RtcError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("the WebRTC connection dropped")]
    Disconnected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
}

#[derive(Debug)]
pub enum ClientEvent {
    Connected,
    /// One depacketized frame (H.264 or H.265 in Annex B, or an Opus packet); `contiguous` is false after a
    /// gap in the RTP sequence.
    Media {
        track: Track,
        rtp_time: u32,
        received: Instant,
        contiguous: bool,
        data: std::sync::Arc<[u8]>,
    },
    SenderReport {
        track: Track,
        rtp_time: u32,
        ntp: SystemTime,
    },
}

#[derive(Debug)]
pub struct WhepClient {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    video: Mid,
    audio: Mid,
    /// The video codec the server answered with (H.264 until a frame says otherwise).
    video_codec: lockstep_media::Codec,
    events: VecDeque<ClientEvent>,
    buf: Vec<u8>,
}

/// A client whose offer is made and whose answer has not come yet (for signalling other than
/// a WHEP POST, e.g. lockstep's WebSocket).
#[derive(Debug)]
pub struct PendingClient {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    video: Mid,
    audio: Mid,
    pending: str0m::change::SdpPendingOffer,
    offer: String,
}

/// A client's str0m peer (H.264, H.265 and Opus, one host candidate) and its UDP socket: on loopback
/// for a server on loopback.
pub(crate) async fn client_peer(
    server: SocketAddr,
) -> Result<(Rtc, UdpSocket, SocketAddr), WhepClientError> {
    let ip: std::net::IpAddr = if server.ip().is_loopback() {
        [127, 0, 0, 1].into()
    } else {
        [0, 0, 0, 0].into()
    };
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    let local = socket.local_addr()?;
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_h264(true)
        .enable_h265(true)
        .enable_opus(true, false)
        .build(Instant::now());
    let candidate = Candidate::host(local, "udp")
        .map_err(|e| WhepClientError::Endpoint(format!("candidate {local}: {e}")))?;
    rtc.add_local_candidate(candidate);
    Ok((rtc, socket, local))
}

/// Waits up to `wait` for a datagram: the peer's input (a timeout when none came).
pub(crate) async fn next_input<'b>(
    socket: &UdpSocket,
    buf: &'b mut [u8],
    local: SocketAddr,
    wait: std::time::Duration,
) -> Result<Input<'b>, WhepClientError> {
    Ok(
        match tokio::time::timeout(wait, socket.recv_from(buf)).await {
            Ok(Ok((n, source))) => Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents: buf[..n]
                        .try_into()
                        .map_err(|e| WhepClientError::Endpoint(format!("datagram: {e}")))?,
                },
            ),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => Input::Timeout(Instant::now()),
        },
    )
}

impl PendingClient {
    /// Offers to receive video and audio from a server at `server` (its address decides
    /// whether we listen on loopback).
    pub async fn new(server: SocketAddr) -> Result<PendingClient, WhepClientError> {
        let (mut rtc, socket, local) = client_peer(server).await?;
        let mut api = rtc.sdp_api();
        let video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let audio = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| WhepClientError::Endpoint("cannot make an SDP offer".into()))?;
        Ok(PendingClient {
            rtc,
            socket,
            local,
            video,
            audio,
            pending,
            offer: offer.to_sdp_string(),
        })
    }

    /// The SDP offer to send.
    pub fn offer(&self) -> &str {
        &self.offer
    }

    /// Takes the server's answer: the client is ready to receive.
    pub fn accept(mut self, answer: &str) -> Result<WhepClient, WhepClientError> {
        let answer = SdpAnswer::from_sdp_string(answer)
            .map_err(|e| WhepClientError::Endpoint(format!("the answer is not valid SDP: {e}")))?;
        self.rtc.sdp_api().accept_answer(self.pending, answer)?;
        Ok(WhepClient {
            rtc: self.rtc,
            socket: self.socket,
            local: self.local,
            video: self.video,
            audio: self.audio,
            video_codec: lockstep_media::Codec::H264,
            events: VecDeque::new(),
            buf: vec![0; 2048],
        })
    }
}

impl WhepClient {
    /// Offers to receive video and audio from `endpoint` (`http://host:port/api/whep/NAME`).
    pub async fn connect(endpoint: &str) -> Result<WhepClient, WhepClientError> {
        WhepClient::connect_with(endpoint, None).await
    }

    /// [`WhepClient::connect`] to a server that asks who is watching: `token` goes in
    /// `Authorization: Bearer` (RFC 9725).
    pub async fn connect_with(
        endpoint: &str,
        token: Option<&str>,
    ) -> Result<WhepClient, WhepClientError> {
        let server = http_addr(endpoint)?;
        let pending = PendingClient::new(server).await?;
        let answer = post_offer(endpoint, server, token, pending.offer()).await?;
        pending.accept(&answer)
    }

    /// The next event, or `None` once `deadline` passes.
    pub async fn next_event(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<ClientEvent>, WhepClientError> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            let timeout = self.drain()?;
            if !self.events.is_empty() {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = timeout.min(deadline).saturating_duration_since(now);
            let input = next_input(&self.socket, &mut self.buf, self.local, wait).await?;
            self.rtc.handle_input(input)?;
        }
    }

    /// Sends what the peer has to send and queues its events; returns its next timeout.
    fn drain(&mut self) -> Result<Instant, WhepClientError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(at) => return Ok(at),
                Output::Transmit(t) => {
                    // A full socket buffer drops the datagram, as the network would.
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(event) => match event {
                    Event::Connected => self.events.push_back(ClientEvent::Connected),
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return Err(WhepClientError::Disconnected)
                    }
                    Event::MediaData(data) => {
                        if data.mid == self.video && data.params.spec().codec == Codec::H265 {
                            self.video_codec = lockstep_media::Codec::H265;
                        }
                        if let Some(track) = self.track(data.mid) {
                            self.events.push_back(ClientEvent::Media {
                                track,
                                rtp_time: data.time.numer() as u32,
                                received: data.network_time,
                                contiguous: data.contiguous,
                                data: data.data,
                            });
                        }
                    }
                    Event::SenderFeedback(feedback) => {
                        if let Some(track) = self.track(feedback.mid) {
                            self.events.push_back(ClientEvent::SenderReport {
                                track,
                                rtp_time: feedback.sender_info.rtp_time.numer() as u32,
                                ntp: feedback.sender_info.ntp_time,
                            });
                        }
                    }
                    _ => {}
                },
            }
        }
    }

    fn track(&self, mid: Mid) -> Option<Track> {
        if mid == self.video {
            Some(Track::Video)
        } else if mid == self.audio {
            Some(Track::Audio)
        } else {
            None
        }
    }

    /// The video codec the frames are in (known from the first video frame on).
    pub fn video_codec(&self) -> lockstep_media::Codec {
        self.video_codec
    }

    pub fn disconnect(&mut self) {
        self.rtc.disconnect();
        let _ = self.drain();
    }
}

/// `http://host:port/…` → the server's address.
pub(crate) fn http_addr(endpoint: &str) -> Result<SocketAddr, WhepClientError> {
    let bad = |why: &str| WhepClientError::Endpoint(format!("{endpoint}: {why}"));
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| bad("the WHEP client speaks plain http://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let with_port = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    std::net::ToSocketAddrs::to_socket_addrs(&with_port)
        .map_err(|e| bad(&format!("cannot resolve the host ({e})")))?
        .next()
        .ok_or_else(|| bad("cannot resolve the host"))
}

/// WHEP/WHIP step one: POST the offer, get the answer (HTTP/1.1, one request, connection
/// closed).
pub(crate) async fn post_offer(
    endpoint: &str,
    server: SocketAddr,
    token: Option<&str>,
    offer: &str,
) -> Result<String, WhepClientError> {
    let (head, body) = http_request(endpoint, server, token, "POST", offer).await?;
    let status = head.split_whitespace().nth(1).unwrap_or("?").to_owned();
    if status != "201" {
        return Err(WhepClientError::Refused {
            status,
            body: body.trim().to_owned(),
        });
    }
    Ok(body)
}

/// One plain HTTP/1.1 request to `endpoint` (an SDP body, or none): the response's head and
/// body. For DELETE the endpoint is the session's resource URL. `token`: a bearer token.
pub(crate) async fn http_request(
    endpoint: &str,
    server: SocketAddr,
    token: Option<&str>,
    method: &str,
    sdp: &str,
) -> Result<(String, String), WhepClientError> {
    let rest = endpoint.trim_start_matches("http://");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = TcpStream::connect(server).await.map_err(|e| {
        WhepClientError::Endpoint(format!(
            "{endpoint}: cannot connect to the WHEP/WHIP endpoint ({e})"
        ))
    })?;
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/sdp\r\n\
         {authorization}Content-Length: {}\r\nConnection: close\r\n\r\n{sdp}",
        sdp.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .map_err(|_| WhepClientError::Endpoint(format!("{endpoint}: no answer in 10 s")))??;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| WhepClientError::Endpoint(format!("{endpoint}: not an HTTP response")))?;
    Ok((head.to_owned(), body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_plain_http_with_a_host() {
        assert_eq!(
            http_addr("http://127.0.0.1:8350/api/whep/cam").unwrap(),
            "127.0.0.1:8350".parse().unwrap()
        );
        assert!(http_addr("https://127.0.0.1/api/whep/cam").is_err());
        assert!(http_addr("rtsp://127.0.0.1/cam").is_err());
    }
}
