//! A WHIP publisher in Rust (str0m), for `lockstep push-sim --whip` and tests: it offers to send
//! H.264 and Opus, POSTs the offer, and writes frames stamped with their capture wallclock, from
//! which str0m times its sender reports — what a careful encoder (a browser, OBS) does.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpAnswer;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime};
use str0m::{Event, IceConnectionState, Output, Rtc};
use tokio::net::UdpSocket;

use crate::viewer::Tracks;
use crate::whep_client::{
    client_peer, http_addr, http_request, next_input, Track, WhepClientError,
};

#[derive(Debug)]
pub struct WhipClient {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    tracks: Tracks,
    connected: bool,
    buf: Vec<u8>,
    server: SocketAddr,
    /// The WHIP session's URL (from `Location`).
    resource: Option<String>,
    /// The bearer token the session was opened with (its DELETE carries it too).
    token: Option<String>,
}

impl WhipClient {
    /// Offers to send video and audio to `endpoint` (`http://host:port/api/whip/NAME`).
    pub async fn connect(endpoint: &str) -> Result<WhipClient, WhepClientError> {
        WhipClient::connect_with(endpoint, None).await
    }

    /// [`WhipClient::connect`] to a server that asks who is publishing: `token` goes in
    /// `Authorization: Bearer` (RFC 9725).
    pub async fn connect_with(
        endpoint: &str,
        token: Option<&str>,
    ) -> Result<WhipClient, WhepClientError> {
        let server = http_addr(endpoint)?;
        let (mut rtc, socket, local) = client_peer(server).await?;
        let mut api = rtc.sdp_api();
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| WhepClientError::Endpoint("cannot make an SDP offer".into()))?;
        let (head, answer) =
            http_request(endpoint, server, token, "POST", &offer.to_sdp_string()).await?;
        let status = head.split_whitespace().nth(1).unwrap_or("?");
        if status != "201" {
            return Err(WhepClientError::Refused {
                status: status.to_owned(),
                body: answer.trim().to_owned(),
            });
        }
        // The session's resource, for DELETE at the end.
        let resource = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("location")
                    .then(|| value.trim().to_owned())
            })
            .map(|path| format!("http://{server}{path}"));
        let answer = SdpAnswer::from_sdp_string(&answer)
            .map_err(|e| WhepClientError::Endpoint(format!("the answer is not valid SDP: {e}")))?;
        rtc.sdp_api().accept_answer(pending, answer)?;
        Ok(WhipClient {
            rtc,
            socket,
            local,
            tracks: Tracks {
                video: Some((video, None)),
                audio: Some((audio, None)),
            },
            connected: false,
            buf: vec![0; 2048],
            server,
            resource,
            token: token.map(str::to_owned),
        })
    }

    /// The session's URL (the answer's `Location`), for PATCH and DELETE.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// Connected, with a payload type for both tracks.
    pub fn ready(&self) -> bool {
        self.connected && self.tracks.both_ready()
    }

    /// Runs the connection (network, timers) until `until`.
    pub async fn pump(&mut self, until: Instant) -> Result<(), WhepClientError> {
        loop {
            let timeout = self.drain()?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            let wait = timeout.min(until).saturating_duration_since(now);
            let input = next_input(&self.socket, &mut self.buf, self.local, wait).await?;
            self.rtc.handle_input(input)?;
        }
    }

    /// Writes one frame: `rtp_time` in the track's clock (90 kHz, 48 kHz), `captured` the
    /// instant it was captured (the sender reports' wallclock).
    pub fn write(
        &mut self,
        track: Track,
        rtp_time: u64,
        captured: Instant,
        data: Vec<u8>,
    ) -> Result<(), WhepClientError> {
        let (slot, frequency) = match track {
            Track::Video => (self.tracks.video, Frequency::NINETY_KHZ),
            Track::Audio => (self.tracks.audio, Frequency::FORTY_EIGHT_KHZ),
        };
        let Some((mid, Some(pt))) = slot else {
            return Ok(());
        };
        if let Some(writer) = self.rtc.writer(mid) {
            writer.write(pt, captured, MediaTime::new(rtp_time, frequency), data)?;
        }
        self.drain()?;
        Ok(())
    }

    fn drain(&mut self) -> Result<Instant, WhepClientError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(at) => return Ok(at),
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(event) => match event {
                    Event::Connected => {
                        self.connected = true;
                        self.tracks
                            .choose_payload_types(&mut self.rtc, lockstep_media::Codec::H264);
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return Err(WhepClientError::Disconnected)
                    }
                    _ => {}
                },
            }
        }
    }

    /// Ends the session: the peer closes and the server is told (WHIP DELETE).
    pub async fn close(mut self) -> Result<(), WhepClientError> {
        self.rtc.disconnect();
        let _ = self.drain();
        if let Some(resource) = &self.resource {
            http_request(resource, self.server, self.token.as_deref(), "DELETE", "").await?;
        }
        Ok(())
    }
}
