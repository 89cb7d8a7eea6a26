//! WHEP viewers and WHIP publishers (RFC 9725): an SDP offer in, an answer and a session out;
//! one task per peer; all of them on one UDP port.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lockstep_media::{Codec, SourceFeed};
use str0m::change::SdpOffer;
use str0m::config::CryptoProvider;
use str0m::rtp::Extension;
use str0m::{Candidate, IceCreds, Rtc, RtcConfig};
use tokio::sync::{mpsc, watch};

use crate::connect_deadline::{
    CONNECT_TIMEOUT, MAX_PENDING, MAX_PENDING_PER_CLIENT, MAX_PENDING_PER_SOURCE,
};
use crate::publisher::{Publisher, Received};
use crate::udp_mux::UdpMux;
use crate::viewer::{Viewer, ViewerCounters, WallclockEpoch};

/// Why an offer was refused; the HTTP layer maps these to statuses.
#[derive(Debug, thiserror::Error)]
pub enum WhepError {
    /// Not an SDP offer we can parse (HTTP 400).
    #[error("malformed SDP offer: {0}")]
    MalformedOffer(String),
    /// Parsed, but nothing in it we can send (HTTP 406).
    #[error("the offer has no codec we can send: {0}")]
    NoCompatibleCodec(String),
    /// Too many peers are still connecting (for this source, or in all): try again shortly.
    #[error("{0}")]
    TooManyPending(String),
}

/// The viewers of one camera, for the API and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewerTotals {
    pub viewers: usize,
    pub frames_sent: u64,
    /// Frames not sent because the viewer fell behind (it skips to the next keyframe).
    pub frames_skipped: u64,
    pub lag_events: u64,
}

#[derive(Debug)]
struct Session {
    camera: String,
    /// The address the offer came from.
    client: IpAddr,
    stop: watch::Sender<bool>,
    counters: Arc<ViewerCounters>,
    /// A WHIP publisher, not a viewer.
    publisher: bool,
}

/// Frames a publisher's peer may have waiting for the server (a few seconds of both tracks).
const PUBLISHED_FRAMES: usize = 1024;

/// Accepts WHEP offers and runs their viewers.
#[derive(Debug)]
pub struct WhepHost {
    mux: Arc<UdpMux>,
    candidates: Vec<SocketAddr>,
    crypto: Arc<CryptoProvider>,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

/// How a viewer is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewerOptions {
    /// Ask the browser to show video at once (`low` latency cameras).
    pub zero_playout_delay: bool,
    /// Send audio (the camera's `audio` switch).
    pub audio: bool,
}

impl WhepHost {
    /// Serves on `socket` (bound, non-blocking; the caller chooses its options). `advertise`:
    /// the addresses browsers reach it on (host candidates); empty means the bound address,
    /// or this machine's addresses if that is a wildcard. Needs a Tokio runtime.
    pub fn bind(socket: std::net::UdpSocket, advertise: &[IpAddr]) -> std::io::Result<WhepHost> {
        let udp = socket.local_addr()?;
        let mux = UdpMux::new(socket)?;
        let port = udp.port();
        let ips: Vec<IpAddr> = if !advertise.is_empty() {
            advertise.to_vec()
        } else if udp.ip().is_unspecified() {
            local_ips()
        } else {
            vec![udp.ip()]
        };
        // Building the first peer sets up the crypto (~20 ms); do it once here.
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let _ = RtcConfig::new()
            .set_crypto_provider(crypto.clone())
            .build(Instant::now());
        Ok(WhepHost {
            mux,
            candidates: ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
            crypto,
            sessions: Arc::default(),
        })
    }

    pub fn udp_addr(&self) -> std::io::Result<SocketAddr> {
        self.mux.local_addr()
    }

    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates
    }

    /// Answers `offer_sdp` for a viewer of `camera` (asked from `client`) and starts it. Returns
    /// the session id (the last segment of the WHEP resource URL) and the SDP answer.
    pub fn offer(
        &self,
        camera: &str,
        client: IpAddr,
        offer_sdp: &str,
        feed: Arc<SourceFeed>,
        options: ViewerOptions,
    ) -> Result<(String, String), WhepError> {
        // A camera that has not said yet is read as H.264 (every source kind but H.265
        // cameras), and says before its first frame.
        self.check_pending(camera, client)?;
        let video_codec = feed.video_codec().unwrap_or(Codec::H264);
        let (rtc, ufrag, answer) = self.answer(offer_sdp, Some(video_codec))?;
        let (stop, stop_rx) = watch::channel(false);
        let counters = Arc::new(ViewerCounters::default());
        let candidates = self.candidates.clone();
        let viewer = Viewer {
            rtc,
            mux: self.mux.clone(),
            net: self.mux.register(&ufrag),
            feed,
            stop: stop_rx,
            local_addr: Box::new(move |source| pick_candidate(&candidates, source)),
            counters: counters.clone(),
            zero_playout_delay: options.zero_playout_delay,
            audio: options.audio,
            video_codec,
            epoch: WallclockEpoch::now(),
        };
        let session = Session {
            camera: camera.to_owned(),
            client,
            stop,
            counters,
            publisher: false,
        };
        self.start(ufrag.clone(), session, viewer.run());
        Ok((ufrag, one_media_stream(&answer)))
    }

    /// Answers a WHIP publisher's `offer_sdp` for `source` and starts receiving. Returns the
    /// session id, the SDP answer, and the frames as they arrive.
    pub fn publish(
        &self,
        source: &str,
        client: IpAddr,
        offer_sdp: &str,
    ) -> Result<(String, String, mpsc::Receiver<Received>), WhepError> {
        self.check_pending(source, client)?;
        let (rtc, ufrag, answer) = self.answer(offer_sdp, None)?;
        let (stop, stop_rx) = watch::channel(false);
        let (out, frames) = mpsc::channel(PUBLISHED_FRAMES);
        let candidates = self.candidates.clone();
        let counters = Arc::new(ViewerCounters::default());
        let publisher = Publisher {
            rtc,
            mux: self.mux.clone(),
            net: self.mux.register(&ufrag),
            stop: stop_rx,
            local_addr: Box::new(move |source| pick_candidate(&candidates, source)),
            out,
            counters: counters.clone(),
        };
        let session = Session {
            camera: source.to_owned(),
            client,
            stop,
            counters,
            publisher: true,
        };
        self.start(ufrag.clone(), session, publisher.run());
        Ok((ufrag, answer, frames))
    }

    /// A str0m peer answering `offer_sdp` (ICE-lite, our host candidates, Opus and H.264).
    /// `sending`: the video codec a viewer is sent (H.264 or H.265, the only one answered), and
    /// what viewers need (playout delay, capture times, reports every second); `None` for a
    /// publisher (H.264).
    fn answer(
        &self,
        offer_sdp: &str,
        sending: Option<Codec>,
    ) -> Result<(Rtc, String, String), WhepError> {
        // The parser's own message carries its internal positions (heap addresses): ours says
        // what and where instead.
        let offer = SdpOffer::from_sdp_string(offer_sdp)
            .map_err(|_| WhepError::MalformedOffer(sdp_fault(offer_sdp)))?;
        let video = sending.unwrap_or(Codec::H264);
        check_codecs(offer_sdp, video)?;
        let creds = IceCreds::new();
        let ufrag = creds.ufrag.clone();
        let mut config = RtcConfig::new()
            .set_crypto_provider(self.crypto.clone())
            .set_local_ice_credentials(creds)
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(video == Codec::H264)
            .enable_h265(video == Codec::H265)
            .enable_opus(true, false);
        if sending.is_some() {
            config = config
                .set_extension(6, Extension::PlayoutDelay)
                .set_extension(15, Extension::AbsoluteCaptureTime)
                .set_stats_interval(Some(Duration::from_secs(1)))
                // A browser lip-syncs once it has two reports per track: send them every second
                // (str0m's audio default is 5 s, which leaves the first ten seconds unsynced).
                .set_rtcp_report_interval_audio(Duration::from_secs(1))
                .set_rtcp_report_interval_video(Duration::from_secs(1));
        }
        let mut rtc = config.build(Instant::now());
        for addr in &self.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(candidate) => {
                    rtc.add_local_candidate(candidate);
                }
                Err(e) => tracing::warn!("webrtc candidate {addr}: {e}"),
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WhepError::MalformedOffer(e.to_string()))?;
        Ok((rtc, ufrag, answer.to_sdp_string()))
    }

    /// Registers a session and runs its peer; the session is forgotten when the peer ends.
    fn start(
        &self,
        id: String,
        session: Session,
        peer: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.lock().insert(id.clone(), session);
        let sessions = self.sessions.clone();
        let mux = self.mux.clone();
        tokio::spawn(async move {
            peer.await;
            mux.unregister(&id);
            sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        });
    }

    /// Ends a viewer (WHEP DELETE). False if there is no such session.
    pub fn delete(&self, id: &str) -> bool {
        match self.lock().remove(id) {
            Some(session) => {
                let _ = session.stop.send(true);
                true
            }
            None => false,
        }
    }

    pub fn has_session(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// Refuses a new peer while too many are still connecting, for `source`, from `client`
    /// or in all.
    fn check_pending(&self, source: &str, client: IpAddr) -> Result<(), WhepError> {
        let sessions = self.lock();
        let pending = sessions
            .values()
            .filter(|s| !s.counters.connected.load(Ordering::Relaxed));
        let (mut here, mut theirs, mut all) = (0, 0, 0);
        for session in pending {
            all += 1;
            here += usize::from(session.camera == source);
            theirs += usize::from(session.client == client);
        }
        if here >= MAX_PENDING_PER_SOURCE || theirs >= MAX_PENDING_PER_CLIENT || all >= MAX_PENDING
        {
            return Err(WhepError::TooManyPending(format!(
                "{here} WebRTC peers of {source:?}, {theirs} from {client} and {all} in all are \
                 still connecting (at most {MAX_PENDING_PER_SOURCE}, {MAX_PENDING_PER_CLIENT} \
                 and {MAX_PENDING}); each is given up after {}s without connecting",
                CONNECT_TIMEOUT.as_secs()
            )));
        }
        Ok(())
    }

    /// The camera (or push source) session `id` belongs to.
    pub fn camera_of(&self, id: &str) -> Option<String> {
        self.lock().get(id).map(|s| s.camera.clone())
    }

    /// Totals over the live viewers of `camera`.
    pub fn viewer_totals(&self, camera: &str) -> ViewerTotals {
        use std::sync::atomic::Ordering::Relaxed;
        self.lock()
            .values()
            .filter(|s| s.camera == camera && !s.publisher)
            .fold(ViewerTotals::default(), |t, s| ViewerTotals {
                viewers: t.viewers + 1,
                frames_sent: t.frames_sent + s.counters.frames_sent.load(Relaxed),
                frames_skipped: t.frames_skipped + s.counters.frames_skipped.load(Relaxed),
                lag_events: t.lag_events + s.counters.lag_events.load(Relaxed),
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The offer must carry the source's video codec, or Opus audio for an H.264 source (an
/// audio-only viewer). A browser that cannot receive an H.265 camera is told so, with what to do.
pub fn check_codecs(sdp: &str, video: Codec) -> Result<(), WhepError> {
    let lower = sdp.to_ascii_lowercase();
    let has_h264 = lower.contains(" h264/90000");
    let has_h265 = lower.contains(" h265/90000");
    let has_opus = lower.contains(" opus/48000");
    let offered: Vec<&str> = sdp
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a=rtpmap:"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let offered = if offered.is_empty() {
        "no codecs".to_owned()
    } else {
        offered.join(", ")
    };
    match video {
        Codec::H265 if has_h265 => Ok(()),
        Codec::H265 => Err(WhepError::NoCompatibleCodec(format!(
            "this camera sends H.265 video, and the offer has {offered}: this browser cannot \
             receive H.265 over WebRTC. Give the camera its H.264 substream (substream_url, or \
             substream = true with a brand preset) and this browser is sent that, or set the \
             camera's main stream to H.264"
        ))),
        _ if has_h264 || has_opus => Ok(()),
        _ => Err(WhepError::NoCompatibleCodec(format!(
            "we take H.264 video and Opus audio; the offer has {offered}"
        ))),
    }
}

/// Puts every track of the answer in one MediaStream. str0m gives each answered m-line a
/// random stream id when the (receive-only) offer names none, and browsers only lip-sync tracks
/// of one stream (their "sync group"): two stream ids play audio and video unsynchronized.
pub fn one_media_stream(answer: &str) -> String {
    let Some(stream) = answer
        .lines()
        .find_map(|l| l.strip_prefix("a=msid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
    else {
        return answer.to_owned();
    };
    let mut out = String::with_capacity(answer.len());
    for line in answer.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        if body.starts_with("a=msid-semantic:") {
            out.push_str(&format!("a=msid-semantic: WMS {stream}"));
        } else if let Some(rest) = body.strip_prefix("a=msid:") {
            let track = rest.split_whitespace().nth(1).unwrap_or_default();
            out.push_str(&format!("a=msid:{stream} {track}"));
        } else if let Some((ssrc, track)) = body
            .strip_prefix("a=ssrc:")
            .and_then(|rest| rest.split_once(" msid:"))
            .and_then(|(ssrc, msid)| Some((ssrc, msid.split_whitespace().nth(1)?)))
        {
            out.push_str(&format!("a=ssrc:{ssrc} msid:{stream} {track}"));
        } else {
            out.push_str(body);
        }
        out.push_str(ending);
    }
    out
}

/// Which of our candidates a datagram from `source` arrived on: on a wildcard socket the kernel
/// does not say, and str0m matches it against the candidate it advertised.
fn pick_candidate(candidates: &[SocketAddr], source: SocketAddr) -> SocketAddr {
    let loopback = source.ip().is_loopback();
    candidates
        .iter()
        .find(|c| c.ip().is_loopback() == loopback && c.is_ipv4() == source.is_ipv4())
        .or_else(|| candidates.first())
        .copied()
        .unwrap_or(source)
}

/// This machine's addresses for a wildcard bind: loopback, and the address of the default route
/// (found by "connecting" a UDP socket, which sends nothing).
fn local_ips() -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let routed = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        s.connect("192.0.2.1:9")?;
        s.local_addr()
    });
    if let Ok(addr) = routed {
        if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
            ips.push(addr.ip());
        }
    }
    ips
}

/// What is wrong with an offer the SDP parser refused, and on which line.
fn sdp_fault(offer: &str) -> String {
    let shown = |line: &str| {
        let cut: String = line.chars().take(60).collect();
        format!("{:?}{}", cut, if cut.len() < line.len() { "…" } else { "" })
    };
    let lines: Vec<&str> = offer.lines().map(|l| l.trim_end_matches('\r')).collect();
    match lines.first() {
        None => return "the SDP offer is empty".into(),
        Some(&first) if first != "v=0" => {
            return format!(
                "the SDP offer must begin with v=0; line 1 is {}",
                shown(first)
            )
        }
        _ => {}
    }
    let well_formed = |line: &str| {
        let bytes = line.as_bytes();
        bytes.len() >= 2 && bytes[0].is_ascii_lowercase() && bytes[1] == b'='
    };
    if let Some((n, line)) = lines
        .iter()
        .enumerate()
        .find(|(_, l)| !l.is_empty() && !well_formed(l))
    {
        return format!(
            "line {} of the SDP offer is not <type>=<value>: {}",
            n + 1,
            shown(line)
        );
    }
    "the SDP offer has the form of SDP but not its content (o=, s=, t= and at least one m= \
     section with ICE and DTLS attributes)"
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_offer_says_what_and_where_and_never_the_parsers_internals() {
        for (offer, says) in [
            ("", "empty"),
            ("\0", "line 1"),
            ("x", "line 1"),
            ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nnot sdp\r\n", "line 3"),
            ("v=0\r\ns=-\r\n", "content"),
        ] {
            let fault = sdp_fault(offer);
            assert!(fault.contains(says), "{offer:?}: {fault}");
            assert!(
                SdpOffer::from_sdp_string(offer).is_err(),
                "{offer:?} parses"
            );
        }
        // What str0m itself says of a 1-byte body: its positions, which are addresses.
        let theirs = SdpOffer::from_sdp_string("x").unwrap_err().to_string();
        assert!(!sdp_fault("x").contains("0x"), "{theirs}");
    }

    #[test]
    fn offers_without_our_codecs_are_refused_with_what_they_had() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        let err = check_codecs(sdp, Codec::H264).unwrap_err().to_string();
        assert!(err.contains("VP8/90000"), "{err}");
        assert!(check_codecs("a=rtpmap:102 H264/90000\r\n", Codec::H264).is_ok());
        assert!(check_codecs("a=rtpmap:111 opus/48000/2\r\n", Codec::H264).is_ok());
    }

    #[test]
    fn an_h265_camera_needs_h265_in_the_offer_and_says_what_to_do() {
        let browser = "a=rtpmap:102 H264/90000\r\na=rtpmap:111 opus/48000/2\r\n";
        let err = check_codecs(browser, Codec::H265).unwrap_err().to_string();
        assert!(
            err.contains("H.265") && err.contains("H264/90000") && err.contains("substream"),
            "{err}"
        );
        assert!(check_codecs("a=rtpmap:104 H265/90000\r\n", Codec::H265).is_ok());
    }

    #[test]
    fn every_track_joins_one_media_stream() {
        let answer = "v=0\r\na=msid-semantic: WMS aaa bbb\r\nm=video 9 X 96\r\n\
                      a=msid:bbb vtrack\r\na=ssrc:1 cname:x\r\na=ssrc:1 msid:bbb vtrack\r\n\
                      m=audio 9 X 111\r\na=msid:aaa atrack\r\na=ssrc:2 msid:aaa atrack\r\n";
        let fixed = one_media_stream(answer);
        assert_eq!(
            fixed,
            "v=0\r\na=msid-semantic: WMS bbb\r\nm=video 9 X 96\r\n\
             a=msid:bbb vtrack\r\na=ssrc:1 cname:x\r\na=ssrc:1 msid:bbb vtrack\r\n\
             m=audio 9 X 111\r\na=msid:bbb atrack\r\na=ssrc:2 msid:bbb atrack\r\n"
        );
        assert_eq!(one_media_stream("v=0\r\n"), "v=0\r\n");
    }

    #[test]
    fn candidates_follow_the_source_family() {
        let c: Vec<SocketAddr> = vec![
            "127.0.0.1:5000".parse().unwrap(),
            "192.168.1.4:5000".parse().unwrap(),
        ];
        assert_eq!(pick_candidate(&c, "127.0.0.1:9".parse().unwrap()), c[0]);
        assert_eq!(pick_candidate(&c, "192.168.1.9:9".parse().unwrap()), c[1]);
    }
}
