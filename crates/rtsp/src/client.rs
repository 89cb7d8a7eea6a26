//! Lockstep's RTSP client (RFC 2326) for cameras: one TCP connection, requests with CSeq and
//! the camera's session, Digest or Basic authentication when challenged, media interleaved on
//! the same connection after PLAY, and keepalives while it plays. It passes packets on in the
//! order they arrive — reordering and loss are the sync core's jitter buffer's job — and times
//! nothing.
//!
//! [`RtspClient::next_frame`] is cancel-safe (callers select on it beside their timers): bytes
//! read are kept in the client before the next await, and what it writes goes through a buffer
//! that records every partial write, so a dropped call never loses or half-sends anything.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use crate::auth::{Challenge, Credentials};
use crate::message::{parse_frame, Frame, Reply};

/// How long a camera may take to answer a request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a playing camera may stay silent before the session is given up.
pub(crate) const SILENCE_TIMEOUT: Duration = Duration::from_secs(20);
/// The session timeout a camera that names none is assumed to have (RFC 2326 §12.37).
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Media frames kept while a request waits for its answer (a keepalive while playing).
const MAX_PENDING_FRAMES: usize = 4096;

/// Why a request or the session failed, for the camera's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No TCP connection, or it failed.
    #[error("{0}")]
    Connection(String),
    /// The camera closed the connection (a camera ending its stream).
    #[error("the camera closed the connection")]
    Closed,
    /// The camera answered with an error status.
    #[error("{method} answered {status} {reason}")]
    Status {
        method: String,
        status: u16,
        reason: String,
    },
    /// The camera said something we cannot read (a malformed answer, a missing header).
    #[error("{0}")]
    Protocol(String),
}

/// The media channels of a track set up over TCP: RTP on `rtp`, RTCP on `rtp + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interleaved {
    pub rtp: u8,
}

/// What the camera answered to a SETUP over UDP: the ports it sends from (RTP, RTCP), when
/// it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpSetup {
    pub server_ports: Option<(u16, u16)>,
}

/// One stream's `RTP-Info` entry from PLAY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpInfo {
    pub url: String,
    pub seq: Option<u16>,
    pub rtptime: Option<u32>,
}

/// A connection to a camera.
pub struct RtspClient {
    stream: TcpStream,
    /// Bytes read and not parsed yet start at `buf_start` (compacted when reading more).
    buf: Vec<u8>,
    buf_start: usize,
    /// Bytes to write, sent before anything else happens.
    outgoing: Vec<u8>,
    cseq: u32,
    credentials: Option<Credentials>,
    challenge: Option<Challenge>,
    /// Requests answered with the current challenge's nonce (Digest `nc`).
    challenge_uses: u32,
    session: Option<String>,
    session_timeout: Duration,
    keepalive_method: &'static str,
    keepalive_uri: String,
    next_keepalive: Instant,
    pending: VecDeque<(u8, Vec<u8>)>,
    /// A `Require` every request carries (the ONVIF backchannel's feature tag).
    require: Option<&'static str>,
    user_agent: &'static str,
    /// Media comes on this connection (false over UDP: then only answers do, and silence
    /// here is normal).
    media_interleaved: bool,
}

impl std::fmt::Debug for RtspClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspClient")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl RtspClient {
    /// Opens the TCP connection to the URL's host (port 554 by default).
    pub async fn connect(
        url: &url::Url,
        credentials: Option<Credentials>,
        user_agent: &'static str,
    ) -> Result<RtspClient, ClientError> {
        let address = socket_address(url)
            .ok_or_else(|| ClientError::Connection("the URL has no host".into()))?;
        let stream = timeout(ANSWER_TIMEOUT, TcpStream::connect(&address))
            .await
            .map_err(|_| {
                ClientError::Connection(format!("no TCP connection to {address} in 10 s"))
            })?
            .map_err(|e| ClientError::Connection(format!("cannot connect to {address}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(RtspClient {
            stream,
            buf: Vec::with_capacity(64 << 10),
            buf_start: 0,
            outgoing: Vec::new(),
            cseq: 0,
            credentials,
            challenge: None,
            challenge_uses: 0,
            session: None,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            keepalive_method: "OPTIONS",
            keepalive_uri: url.to_string(),
            next_keepalive: Instant::now() + DEFAULT_SESSION_TIMEOUT / 2,
            pending: VecDeque::new(),
            require: None,
            user_agent,
            media_interleaved: true,
        })
    }

    /// Sends a request and waits for its answer; a 401 is answered once with the credentials.
    /// Non-2xx answers are errors.
    pub async fn request(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, String)],
    ) -> Result<Reply, ClientError> {
        let mut reply = self.exchange(method, uri, headers).await?;
        if reply.status == 401 && self.credentials.is_some() {
            let challenge = Challenge::choose(reply.headers_named("WWW-Authenticate"))
                .map_err(ClientError::Protocol)?;
            // The challenge we already answered: the credentials themselves were refused.
            let already_answered = self.challenge.as_ref() == Some(&challenge);
            if !already_answered {
                self.challenge = Some(challenge);
                self.challenge_uses = 0;
                reply = self.exchange(method, uri, headers).await?;
            }
        }
        if !(200..300).contains(&reply.status) {
            let reason = if reply.status == 401 && self.credentials.is_none() {
                format!(
                    "{} (the camera asks for credentials: put them in its URL)",
                    reply.reason
                )
            } else if reply.status == 401 {
                format!("{} (the camera refused the credentials)", reply.reason)
            } else {
                reply.reason.clone()
            };
            return Err(ClientError::Status {
                method: method.to_owned(),
                status: reply.status,
                reason,
            });
        }
        Ok(reply)
    }

    /// Writes one request and reads until its answer (media frames in between are kept).
    async fn exchange(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, String)],
    ) -> Result<Reply, ClientError> {
        let cseq = self.send(method, uri, headers).await?;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let frame = match timeout_at(deadline, self.read_frame()).await {
                Some(frame) => frame?,
                None => {
                    return Err(ClientError::Connection(format!(
                        "no answer to {method} in {} s",
                        ANSWER_TIMEOUT.as_secs()
                    )))
                }
            };
            match frame {
                Frame::Response(reply) if reply.cseq() == Some(cseq) => return Ok(reply),
                // An answer to an earlier keepalive.
                Frame::Response(_) => {}
                Frame::Interleaved { channel, payload } => self.keep(channel, payload),
                Frame::Request(request) => self.refuse(&request).await?,
            }
        }
    }

    async fn send(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, String)],
    ) -> Result<u32, ClientError> {
        self.cseq += 1;
        let mut text = format!(
            "{method} {uri} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: {}\r\n",
            self.cseq, self.user_agent
        );
        if let Some(session) = &self.session {
            text.push_str(&format!("Session: {session}\r\n"));
        }
        if let (Some(challenge), Some(credentials)) = (&self.challenge, &self.credentials) {
            self.challenge_uses += 1;
            let cnonce = format!("{:016x}", cnonce_seed() ^ u64::from(self.cseq));
            let authorization =
                challenge.authorization(credentials, method, uri, self.challenge_uses, &cnonce);
            text.push_str(&format!("Authorization: {authorization}\r\n"));
        }
        if let Some(feature) = self.require {
            text.push_str(&format!("Require: {feature}\r\n"));
        }
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        self.outgoing.extend_from_slice(text.as_bytes());
        self.flush().await?;
        Ok(self.cseq)
    }

    /// Writes what is queued; each completed write is taken off the queue at once.
    async fn flush(&mut self) -> Result<(), ClientError> {
        while !self.outgoing.is_empty() {
            let n =
                self.stream.write(&self.outgoing).await.map_err(|e| {
                    ClientError::Connection(format!("cannot write to the camera: {e}"))
                })?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.outgoing.drain(..n);
        }
        Ok(())
    }

    /// A camera's own request (some send SET_PARAMETER or ANNOUNCE): not something we serve.
    async fn refuse(&mut self, request: &crate::message::Request) -> Result<(), ClientError> {
        let cseq = request.cseq().unwrap_or(0);
        let answer = format!("RTSP/1.0 501 Not Implemented\r\nCSeq: {cseq}\r\n\r\n");
        self.outgoing.extend_from_slice(answer.as_bytes());
        self.flush().await
    }

    fn keep(&mut self, channel: u8, payload: Vec<u8>) {
        if self.pending.len() == MAX_PENDING_FRAMES {
            self.pending.pop_front();
        }
        self.pending.push_back((channel, payload));
    }

    /// The next frame off the connection.
    async fn read_frame(&mut self) -> Result<Frame, ClientError> {
        loop {
            if let Some(frame) = self.parse_buffered()? {
                return Ok(frame);
            }
            // One move of the unparsed tail per read, not one per frame.
            self.buf.drain(..self.buf_start);
            self.buf_start = 0;
            self.buf.reserve(32 << 10);
            // Cancel-safe: the bytes are in `buf` when it returns, or nothing was read.
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| ClientError::Connection(format!("connection lost: {e}")))?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    /// The next whole frame already read, if there is one (no await, no timer).
    fn parse_buffered(&mut self) -> Result<Option<Frame>, ClientError> {
        match parse_frame(&self.buf[self.buf_start..]) {
            Ok(Some((frame, used))) => {
                self.buf_start += used;
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(ClientError::Protocol(format!(
                "the camera sent something that is not RTSP: {e}"
            ))),
        }
    }

    /// The camera owes us no media on this connection (a backchannel we send on): its silence
    /// does not end the session, the keepalives' answers keep it checked.
    pub fn expect_no_media(&mut self) {
        self.media_interleaved = false;
    }

    /// Every request from now on carries `Require: feature` (ONVIF: the backchannel's tag on
    /// DESCRIBE, SETUP, PLAY and TEARDOWN).
    pub fn require(&mut self, feature: &'static str) {
        self.require = Some(feature);
    }

    /// Sends `payload` as an interleaved frame on `channel` (RFC 2326 10.12): the backchannel's
    /// RTP after PLAY.
    pub async fn send_interleaved(
        &mut self,
        channel: u8,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        let len = u16::try_from(payload.len())
            .map_err(|_| ClientError::Protocol("an interleaved frame over 64 KiB".into()))?;
        self.outgoing.extend_from_slice(&[b'$', channel]);
        self.outgoing.extend_from_slice(&len.to_be_bytes());
        self.outgoing.extend_from_slice(payload);
        self.flush().await
    }

    /// OPTIONS: learns whether keepalives can be GET_PARAMETER (what cameras expect when they
    /// offer it).
    pub async fn options(&mut self, uri: &str) -> Result<(), ClientError> {
        let reply = self.request("OPTIONS", uri, &[]).await?;
        if reply.header("Public").is_some_and(|p| {
            p.split(',')
                .any(|m| m.trim().eq_ignore_ascii_case("GET_PARAMETER"))
        }) {
            self.keepalive_method = "GET_PARAMETER";
        }
        Ok(())
    }

    /// DESCRIBE: the SDP text and the base URL its controls are relative to.
    pub async fn describe(&mut self, url: &url::Url) -> Result<(String, url::Url), ClientError> {
        let reply = self
            .request(
                "DESCRIBE",
                url.as_str(),
                &[("Accept", "application/sdp".into())],
            )
            .await?;
        let sdp = String::from_utf8(reply.body.clone())
            .map_err(|_| ClientError::Protocol("the camera's SDP is not UTF-8".into()))?;
        if sdp.trim().is_empty() {
            return Err(ClientError::Protocol(
                "the camera's DESCRIBE has no SDP".into(),
            ));
        }
        let base = reply
            .header("Content-Base")
            .or_else(|| reply.header("Content-Location"))
            .and_then(|b| url::Url::parse(b.trim()).ok())
            .unwrap_or_else(|| url.clone());
        Ok((sdp, base))
    }

    /// SETUP over this connection, asking for `channel` and `channel + 1`; returns what the
    /// camera chose (cameras may pick their own channels).
    pub async fn setup_interleaved(
        &mut self,
        url: &url::Url,
        channel: u8,
    ) -> Result<Interleaved, ClientError> {
        let transport = format!(
            "RTP/AVP/TCP;unicast;interleaved={channel}-{}",
            channel.wrapping_add(1)
        );
        let reply = self
            .request("SETUP", url.as_str(), &[("Transport", transport)])
            .await?;
        self.take_session(&reply)?;
        let chosen = transport_param(&reply, "interleaved")
            .and_then(|c| c.split('-').next()?.trim().parse::<u8>().ok())
            .unwrap_or(channel);
        Ok(Interleaved { rtp: chosen })
    }

    /// SETUP over UDP to our `client_ports` (RTP, RTCP). A camera that cannot answers an
    /// error status (461 Unsupported Transport, usually); one that answers TCP instead is
    /// refused here, since nothing would come to the ports.
    pub async fn setup_udp(
        &mut self,
        url: &url::Url,
        client_ports: (u16, u16),
    ) -> Result<UdpSetup, ClientError> {
        let transport = format!(
            "RTP/AVP;unicast;client_port={}-{}",
            client_ports.0, client_ports.1
        );
        let reply = self
            .request("SETUP", url.as_str(), &[("Transport", transport)])
            .await?;
        self.take_session(&reply)?;
        if reply
            .header("Transport")
            .is_some_and(|t| t.to_ascii_uppercase().contains("RTP/AVP/TCP"))
        {
            return Err(ClientError::Protocol(
                "SETUP over UDP was answered with TCP interleaving".into(),
            ));
        }
        self.media_interleaved = false;
        let server_ports = transport_param(&reply, "server_port").and_then(|p| {
            let (rtp, rtcp) = p.split_once('-').unwrap_or((p, ""));
            let rtp: u16 = rtp.trim().parse().ok()?;
            let rtcp = rtcp.trim().parse().unwrap_or(rtp.wrapping_add(1));
            Some((rtp, rtcp))
        });
        Ok(UdpSetup { server_ports })
    }

    /// The session id (and timeout) a SETUP answer gives; every later SETUP must keep it.
    fn take_session(&mut self, reply: &Reply) -> Result<(), ClientError> {
        let Some(session) = reply.header("Session") else {
            return match self.session {
                Some(_) => Ok(()),
                None => Err(ClientError::Protocol("SETUP answered no Session".into())),
            };
        };
        let mut parts = session.split(';');
        let id = parts.next().unwrap_or_default().trim();
        if id.is_empty() {
            return Err(ClientError::Protocol(
                "SETUP answered an empty Session".into(),
            ));
        }
        self.session = Some(id.to_owned());
        if let Some(secs) = parts
            .filter_map(|p| p.trim().strip_prefix("timeout="))
            .find_map(|t| t.trim().parse::<u64>().ok())
        {
            self.session_timeout = Duration::from_secs(secs.clamp(5, 3600));
        }
        Ok(())
    }

    /// TEARDOWN of the session, waiting at most `wait` for the answer (ending a UDP session
    /// stops the camera sending to ports nobody reads).
    pub async fn teardown(&mut self, url: &url::Url, wait: Duration) {
        if self.session.is_some() {
            let _ = timeout(wait, self.request("TEARDOWN", url.as_str(), &[])).await;
        }
    }

    /// The camera's address and ours on this connection: UDP media is received on the
    /// interface that reaches the camera, from the camera's address.
    pub fn addresses(&self) -> Result<(std::net::IpAddr, std::net::IpAddr), ClientError> {
        let peer = self.stream.peer_addr();
        let local = self.stream.local_addr();
        match (peer, local) {
            (Ok(peer), Ok(local)) => Ok((peer.ip(), local.ip())),
            (Err(e), _) | (_, Err(e)) => {
                Err(ClientError::Connection(format!("connection lost: {e}")))
            }
        }
    }

    /// PLAY from the start of what the camera has (`Range: npt=0.000-`, what ingest asks
    /// for); returns the `RTP-Info` entries (empty when the camera sends none).
    pub async fn play(&mut self, url: &url::Url) -> Result<Vec<RtpInfo>, ClientError> {
        self.play_range(url, "npt=0.000-").await
    }

    /// PLAY of a live session with no position (a backchannel): `Range: npt=now-`, which
    /// GStreamer's ONVIF server takes where it fails the seek `npt=0.000-` asks for.
    pub async fn play_now(&mut self, url: &url::Url) -> Result<Vec<RtpInfo>, ClientError> {
        self.play_range(url, "npt=now-").await
    }

    async fn play_range(
        &mut self,
        url: &url::Url,
        range: &str,
    ) -> Result<Vec<RtpInfo>, ClientError> {
        let reply = self
            .request("PLAY", url.as_str(), &[("Range", range.into())])
            .await?;
        self.keepalive_uri = url.to_string();
        self.next_keepalive = Instant::now() + self.session_timeout / 2;
        Ok(reply
            .header("RTP-Info")
            .map(parse_rtp_info)
            .unwrap_or_default())
    }

    /// The next interleaved media frame while playing: `(channel, bytes)`. Sends keepalives
    /// when due; a camera silent for 20 s, or a closed connection, ends the session.
    pub async fn next_frame(&mut self) -> Result<(u8, Vec<u8>), ClientError> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Ok(frame);
            }
            // A keepalive queued by a call that was dropped goes out first.
            self.flush().await?;
            if Instant::now() >= self.next_keepalive {
                self.next_keepalive = Instant::now() + self.session_timeout / 2;
                let (method, uri) = (self.keepalive_method, self.keepalive_uri.clone());
                // Its answer is read (and skipped) with the media.
                self.send(method, &uri, &[]).await?;
            }
            // Frames already read need no timer (most packets: one socket read holds several).
            let frame = match self.parse_buffered()? {
                Some(frame) => frame,
                None => {
                    let silence_ends = if self.media_interleaved {
                        Instant::now() + SILENCE_TIMEOUT
                    } else {
                        // Over UDP the connection is quiet between answers; the media's own
                        // silence is watched where it arrives.
                        self.next_keepalive
                    };
                    let deadline = silence_ends.min(self.next_keepalive);
                    let Some(frame) = timeout_at(deadline, self.read_frame()).await else {
                        if Instant::now() >= self.next_keepalive {
                            continue;
                        }
                        return Err(ClientError::Connection(format!(
                            "the camera sent nothing for {} s",
                            SILENCE_TIMEOUT.as_secs()
                        )));
                    };
                    frame?
                }
            };
            match frame {
                Frame::Interleaved { channel, payload } => return Ok((channel, payload)),
                Frame::Response(reply)
                    if reply.status >= 400 && reply.status != 405 && reply.status != 501 =>
                {
                    return Err(ClientError::Status {
                        method: self.keepalive_method.to_owned(),
                        status: reply.status,
                        reason: reply.reason,
                    })
                }
                Frame::Response(_) => {}
                Frame::Request(request) => self.refuse(&request).await?,
            }
        }
    }
}

/// One parameter of a reply's `Transport` header (`interleaved`, `server_port`).
fn transport_param<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.header("Transport")?.split(';').find_map(|p| {
        let (key, value) = p.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// `host:port` of an RTSP URL (554 when none is given), IPv6 in brackets.
pub fn socket_address(url: &url::Url) -> Option<String> {
    // `host_str` keeps an IPv6 address's brackets.
    let host = url.host_str().filter(|h| !h.is_empty())?;
    Some(format!("{host}:{}", url.port().unwrap_or(554)))
}

/// `url=…;seq=…;rtptime=…, url=…` (RFC 2326 §12.33). Entries split at `,url=` only: URLs may
/// hold commas.
pub fn parse_rtp_info(value: &str) -> Vec<RtpInfo> {
    let mut entries = Vec::new();
    let mut starts: Vec<usize> = value.match_indices("url=").map(|(i, _)| i).collect();
    starts.push(value.len());
    for pair in starts.windows(2) {
        let entry = value[pair[0]..pair[1]].trim().trim_end_matches(',').trim();
        let mut info = RtpInfo {
            url: String::new(),
            seq: None,
            rtptime: None,
        };
        // The URL runs up to the first `;seq=` or `;rtptime=`.
        let url_end = ["seq=", "rtptime="]
            .iter()
            .filter_map(|k| entry.find(&format!(";{k}")))
            .min()
            .unwrap_or(entry.len());
        info.url = entry[4..url_end].to_owned();
        for param in entry[url_end..].split(';') {
            if let Some(v) = param.trim().strip_prefix("seq=") {
                info.seq = v.trim().parse().ok();
            } else if let Some(v) = param.trim().strip_prefix("rtptime=") {
                info.rtptime = v.trim().parse().ok();
            }
        }
        entries.push(info);
    }
    entries
}

/// Waits for `future` until `deadline`; `None` when the deadline passed first.
async fn timeout_at<T>(
    deadline: Instant,
    future: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::time::timeout_at(deadline, future).await.ok()
}

/// A per-process value for Digest client nonces (they need only differ between requests).
fn cnonce_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_info_entries_keep_their_urls() {
        let info = parse_rtp_info(
            "url=rtsp://h/cam/realmonitor?channel=1&subtype=0/trackID=0;seq=17;rtptime=3000, \
             url=rtsp://h/a,b/trackID=1;rtptime=4294967295",
        );
        assert_eq!(info.len(), 2);
        assert_eq!(
            info[0].url,
            "rtsp://h/cam/realmonitor?channel=1&subtype=0/trackID=0"
        );
        assert_eq!((info[0].seq, info[0].rtptime), (Some(17), Some(3000)));
        assert_eq!(info[1].url, "rtsp://h/a,b/trackID=1");
        assert_eq!((info[1].seq, info[1].rtptime), (None, Some(u32::MAX)));
        assert!(parse_rtp_info("").is_empty());
        let address = |u: &str| socket_address(&url::Url::parse(u).unwrap());
        assert_eq!(
            address("rtsp://[fe80::1]/cam").as_deref(),
            Some("[fe80::1]:554")
        );
        assert_eq!(
            address("rtsp://cam.local:8554/").as_deref(),
            Some("cam.local:8554")
        );
        assert_eq!(parse_rtp_info("url=x;seq=banana")[0].seq, None);
    }
}
