//! A camera's front end: lockstep's own RTSP client ([`crate::client`]) keeps the session
//! (auth, keepalives), media comes interleaved on its TCP connection or over UDP
//! ([`crate::udp_media`]), and raw RTP and RTCP become
//! [`SourceInput`]s of the camera's [`Source`](lockstep_sync::Source) — the one pipeline every
//! source kind goes through. Packets pass in arrival order, reordered or not: the sync core's
//! jitter buffer puts them back in order. Nothing here times or decodes anything;
//! [`CameraTracks`] says what the codecs are.

use std::time::{Duration, Instant};

use lockstep_media::{
    h264, h265, AudioTrackDecoder, Codec, MediaPayload, MediaSource, Pcm, RtpAudioTrack, VideoTrack,
};
use lockstep_sync::{LocalInstant, SourceConfig, SourceEvent, SourceInput, TrackKind};

use crate::auth::Credentials;
use crate::client::{ClientError, RtpInfo, RtspClient, SILENCE_TIMEOUT};
use crate::rtp::{parse_rtp, parse_sender_report};
use crate::sdp::{resolve_control, Sdp, SdpMedia};
use crate::udp_media::{UdpMedia, UdpTrack};

/// How long `auto` waits for the first packet over UDP before it asks for TCP.
const AUTO_UDP_WAIT: Duration = Duration::from_secs(3);

/// How a camera's media travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtpTransport {
    /// Interleaved on the RTSP connection: passes any firewall, never loses a packet (a camera
    /// that cannot send in time drops its own).
    #[default]
    Tcp,
    /// UDP to ports we open: the lowest latency, loss and reordering are the jitter buffer's.
    Udp,
    /// UDP when the camera agrees and its packets arrive within 3 s, else TCP.
    Auto,
}

impl std::str::FromStr for RtpTransport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(RtpTransport::Tcp),
            "udp" => Ok(RtpTransport::Udp),
            "auto" => Ok(RtpTransport::Auto),
            other => Err(format!(
                "transport \"{other}\" is not one of \"tcp\", \"udp\", \"auto\""
            )),
        }
    }
}

impl RtpTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            RtpTransport::Tcp => "tcp",
            RtpTransport::Udp => "udp",
            RtpTransport::Auto => "auto",
        }
    }
}

/// The process's one origin for [`LocalInstant`]: the sync core never reads a clock itself.
#[derive(Debug, Clone, Copy)]
pub struct LocalClock {
    origin: Instant,
}

impl Default for LocalClock {
    fn default() -> Self {
        LocalClock::new()
    }
}

impl LocalClock {
    pub fn new() -> Self {
        LocalClock {
            origin: Instant::now(),
        }
    }

    pub fn now(&self) -> LocalInstant {
        LocalInstant::from_nanos(
            i64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(i64::MAX),
        )
    }

    /// The local time of an `Instant` (an arrival the network stack stamped).
    pub fn local(&self, at: Instant) -> LocalInstant {
        match at.checked_duration_since(self.origin) {
            Some(after) => {
                LocalInstant::from_nanos(i64::try_from(after.as_nanos()).unwrap_or(i64::MAX))
            }
            None => LocalInstant::from_nanos(
                -i64::try_from(self.origin.duration_since(at).as_nanos()).unwrap_or(i64::MAX),
            ),
        }
    }

    /// The `Instant` of a local time, for timers.
    pub fn instant(&self, at: LocalInstant) -> Instant {
        self.origin + Duration::from_nanos(u64::try_from(at.as_nanos()).unwrap_or(0))
    }
}

/// What a camera sends, as its DESCRIBE told.
#[derive(Debug)]
pub struct CameraTracks {
    pub video: VideoFormat,
    /// The audio track, if we decode it.
    pub audio: Option<RtpAudioTrack>,
    /// Why the camera's audio is not played, when it has audio we cannot read.
    pub audio_refused: Option<String>,
}

impl CameraTracks {
    /// The camera's [`MediaSource`]: its video track and, if we decode it, its audio.
    pub fn into_source(self, config: SourceConfig) -> MediaSource {
        let audio = self.audio.map(|a| (a.rate_hz, a.decoder));
        let video = VideoTrack::new(self.video.codec, self.video.parameter_sets);
        MediaSource::new(config, Some(video), audio)
    }
}

/// A camera's video track, as its DESCRIBE told.
#[derive(Debug, Clone)]
pub struct VideoFormat {
    /// The track's index among the DESCRIBE's streams.
    pub index: usize,
    /// H.264 or H.265.
    pub codec: Codec,
    /// The SDP's parameter sets (SPS, PPS; H.265 also VPS first), for cameras that send them
    /// only there (not before each keyframe); empty if the SDP has none.
    pub parameter_sets: Vec<Vec<u8>>,
}

/// Why a camera stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The camera cannot be read as configured (no video we read, a refused track): retrying will not
    /// help until it is changed.
    #[error("{url}: {reason}")]
    Setup { url: String, reason: String },
    /// The camera could not be reached or refused the session: it may come back.
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url}: stream error: {reason}")]
    Stream { url: String, reason: String },
    #[error("{url}: the camera ended the stream")]
    Ended { url: String },
}

/// The first audio track of a DESCRIBE that lockstep decodes, with its section index; or why
/// none is (the first audio track's reason), if the camera has audio. ONVIF backchannel
/// sections (the client sends) are not candidates.
pub fn find_audio_track(sdp: &Sdp) -> (Option<(usize, RtpAudioTrack)>, Option<String>) {
    let mut refused = None;
    for (i, section) in sdp.media.iter().enumerate() {
        if section.media != "audio" || section.sendonly {
            continue;
        }
        let fmtp = section.fmtp.clone().unwrap_or_default();
        let channels = section.channels.map_or(1, |c| c.clamp(1, 2) as u8);
        let name = section.encoding.as_str();
        match AudioTrackDecoder::for_rtp(name, section.clock_rate_hz, channels, &fmtp) {
            Some(Ok(track)) => return (Some((i, track)), None),
            Some(Err(reason)) => {
                refused.get_or_insert(format!("audio {name}: {reason}"));
            }
            None => {
                refused.get_or_insert(format!("audio {name} is not supported"));
            }
        }
    }
    (None, refused)
}

/// The video track of a DESCRIBE lockstep reads (the first H.264 one, else the first H.265
/// one), or why there is none and what to do.
pub fn find_video_track(sdp: &Sdp) -> Result<VideoFormat, String> {
    let first = |name: &str| {
        sdp.media
            .iter()
            .position(|s| s.media == "video" && s.encoding == name)
    };
    let fmtp = |index: usize| sdp.media[index].fmtp.clone().unwrap_or_default();
    if let Some(index) = first("h264") {
        return Ok(VideoFormat {
            index,
            codec: Codec::H264,
            parameter_sets: h264::sdp_parameter_sets(&fmtp(index)),
        });
    }
    if let Some(index) = first("h265") {
        let fmtp = fmtp(index);
        let refused = |reason: String| format!("the H.265 track cannot be read: {reason}");
        h265::check_decoding_order(&fmtp).map_err(refused)?;
        let parameter_sets = h265::sdp_parameter_sets(&fmtp).map_err(refused)?;
        return Ok(VideoFormat {
            index,
            codec: Codec::H265,
            parameter_sets,
        });
    }
    Err(match sdp.media.iter().find(|s| s.media == "video") {
        Some(s) if s.encoding.is_empty() => format!(
            "this stream's video (payload type {}) has no encoding lockstep reads: use an H.264 \
             or H.265 stream of the camera",
            s.payload_type
        ),
        Some(s) => format!(
            "this stream's video is {}, which lockstep does not read: use an H.264 or H.265 \
             stream of the camera",
            s.encoding
        ),
        None => "the camera's stream has no video track".into(),
    })
}

/// `rtsp://user:pass@host/…` → the URL without credentials, and the credentials, decoded
/// (`p%40ss` is the password `p@ss`).
pub fn split_credentials(url: &str) -> Result<(url::Url, Option<Credentials>), String> {
    let mut url = url::Url::parse(url).map_err(|e| format!("not a valid URL ({e})"))?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|d| d.into_owned())
            .map_err(|_| "the URL's user or password is not UTF-8 once decoded".to_owned())
    };
    let creds = if url.username().is_empty() {
        None
    } else {
        Some(Credentials {
            user: decode(url.username())?,
            password: decode(url.password().unwrap_or_default())?,
        })
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, creds))
}

/// Where a playing session's media comes from.
#[derive(Debug)]
enum MediaPath {
    /// The RTP channel of the video track and of the audio track (RTCP on the next one).
    Interleaved {
        video_channel: u8,
        audio_channel: Option<u8>,
    },
    Udp(UdpMedia),
}

/// One playing RTSP session: its packets as source inputs.
pub struct CameraSession {
    client: RtspClient,
    media: MediaPath,
    play_url: url::Url,
    /// The PLAY answer's RTP-Info, per track.
    rtp_info: Vec<(TrackKind, u32)>,
    shown: String,
}

impl std::fmt::Debug for CameraSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraSession")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl CameraSession {
    /// OPTIONS, DESCRIBE, SETUP of the video track and the first audio track we decode, PLAY,
    /// over TCP.
    pub async fn connect(url: &str) -> Result<(CameraSession, CameraTracks), IngestError> {
        CameraSession::connect_with(url, RtpTransport::Tcp, "lockstep").await
    }

    /// The same over `transport`, naming the client (`lockstep-measure` for the instrument).
    /// `Auto` tries UDP and starts again over TCP when the camera refuses UDP or nothing
    /// arrives in 3 s.
    pub async fn connect_with(
        url: &str,
        transport: RtpTransport,
        user_agent: &'static str,
    ) -> Result<(CameraSession, CameraTracks), IngestError> {
        let failed = |attempt: Attempt| match attempt {
            Attempt::Failed(e) | Attempt::UdpRefused(e) => e,
        };
        match transport {
            RtpTransport::Tcp => Self::connect_once(url, false, user_agent)
                .await
                .map_err(failed),
            RtpTransport::Udp => Self::connect_once(url, true, user_agent)
                .await
                .map_err(failed),
            RtpTransport::Auto => match Self::connect_once(url, true, user_agent).await {
                Ok((mut session, tracks)) => {
                    if session.udp_arrives().await {
                        return Ok((session, tracks));
                    }
                    tracing::info!(
                        "{}: nothing arrived over UDP in {} s: using TCP",
                        session.shown,
                        AUTO_UDP_WAIT.as_secs()
                    );
                    session.close().await;
                    Self::connect_once(url, false, user_agent)
                        .await
                        .map_err(failed)
                }
                Err(Attempt::UdpRefused(e)) => {
                    tracing::info!("{e}: using TCP");
                    Self::connect_once(url, false, user_agent)
                        .await
                        .map_err(failed)
                }
                Err(Attempt::Failed(e)) => Err(e),
            },
        }
    }

    /// Whether the first video packet over UDP comes within [`AUTO_UDP_WAIT`] (kept for
    /// [`CameraSession::next_input`]). Always true over TCP.
    async fn udp_arrives(&mut self) -> bool {
        match &mut self.media {
            MediaPath::Udp(udp) => udp.first_packet_within(AUTO_UDP_WAIT).await,
            MediaPath::Interleaved { .. } => true,
        }
    }

    /// Ends the session with a TEARDOWN (waiting a second at most): a camera sending over UDP
    /// otherwise keeps sending until its session times out.
    pub async fn close(mut self) {
        let url = self.play_url.clone();
        self.client.teardown(&url, Duration::from_secs(1)).await;
    }

    /// The transport the session plays over (`Tcp` or `Udp`).
    pub fn transport(&self) -> RtpTransport {
        match self.media {
            MediaPath::Interleaved { .. } => RtpTransport::Tcp,
            MediaPath::Udp(_) => RtpTransport::Udp,
        }
    }

    async fn connect_once(
        url: &str,
        udp: bool,
        user_agent: &'static str,
    ) -> Result<(CameraSession, CameraTracks), Attempt> {
        let (url, creds) = split_credentials(url).map_err(|reason| {
            Attempt::Failed(IngestError::Setup {
                url: "(camera url)".into(),
                reason,
            })
        })?;
        let shown = crate::redact::redacted_url(&url);
        let unreachable = |e: ClientError| {
            Attempt::Failed(IngestError::Unreachable {
                url: shown.clone(),
                reason: e.to_string(),
            })
        };
        let setup_error = |reason: String| {
            Attempt::Failed(IngestError::Setup {
                url: shown.clone(),
                reason,
            })
        };
        let mut client = RtspClient::connect(&url, creds, user_agent)
            .await
            .map_err(unreachable)?;
        // Some cameras answer OPTIONS with an error and serve the rest: it only picks the
        // keepalive.
        if let Err(e @ ClientError::Connection(_)) = client.options(url.as_str()).await {
            return Err(unreachable(e));
        }
        let (sdp_text, base) = client.describe(&url).await.map_err(unreachable)?;
        let sdp = Sdp::parse(&sdp_text);
        for why in &sdp.skipped {
            tracing::debug!("{shown}: a media section left out: {why}");
        }
        let video = find_video_track(&sdp).map_err(setup_error)?;
        let (audio, audio_refused) = find_audio_track(&sdp);
        if let Some(reason) = &audio_refused {
            tracing::warn!("{shown}: {reason}; the video plays without it");
        }
        let mut setups = vec![(TrackKind::Video, &sdp.media[video.index])];
        if let Some((index, _)) = &audio {
            setups.push((TrackKind::Audio, &sdp.media[*index]));
        }
        let setups: Vec<_> = setups
            .into_iter()
            .map(|(kind, section)| (kind, section.setup_url(&base), section))
            .collect();
        let media = if udp {
            setup_udp(&mut client, &setups).await.map_err(|e| match e {
                // The camera's answer, not the network's: it will not change by retrying.
                ClientError::Status { .. } | ClientError::Protocol(_) => {
                    Attempt::UdpRefused(IngestError::Setup {
                        url: shown.clone(),
                        reason: format!(
                            "the camera refused RTP over UDP ({e}): use transport = \"tcp\" \
                             or \"auto\""
                        ),
                    })
                }
                other => unreachable(other),
            })?
        } else {
            setup_interleaved(&mut client, &setups)
                .await
                .map_err(unreachable)?
        };
        // PLAY the aggregate (the session's control) when the SDP names one, else the track.
        let play_url = match sdp.control.as_deref() {
            Some(control) if !control.is_empty() => resolve_control(&base, Some(control)),
            _ => setups[0].1.clone(),
        };
        let rtp_info = client.play(&play_url).await.map_err(unreachable)?;
        let rtp_info = rtp_info_per_track(&rtp_info, &setups);
        let session = CameraSession {
            client,
            media,
            play_url,
            rtp_info,
            shown,
        };
        let tracks = CameraTracks {
            video,
            audio: audio.map(|(_, track)| track),
            audio_refused,
        };
        Ok((session, tracks))
    }

    /// The `rtptime` the PLAY answer's RTP-Info gives each track (none when it has none for
    /// every track). Not fed to the sync core: GStreamer's shared media answers a second
    /// client with RTP-Info that its first sender reports then contradict, and the step from
    /// one mapping to the other concealed a second of audio on an AAC camera. The instrument
    /// uses it as retina did, for stream time without reports.
    pub fn rtp_info(&self) -> &[(TrackKind, u32)] {
        &self.rtp_info
    }

    /// The next media packet or sender report, when it arrived; `Err` when the session ends.
    pub async fn next_input(
        &mut self,
        clock: &LocalClock,
    ) -> Result<(LocalInstant, SourceInput<MediaPayload>), IngestError> {
        loop {
            let (kind, rtcp, data, arrived) = match &mut self.media {
                MediaPath::Interleaved {
                    video_channel,
                    audio_channel,
                } => {
                    let (channel, data) = self
                        .client
                        .next_frame()
                        .await
                        .map_err(|e| session_error(&self.shown, e))?;
                    let now = clock.now();
                    let Some((kind, rtcp)) = channel_of(channel, *video_channel, *audio_channel)
                    else {
                        continue;
                    };
                    (kind, rtcp, data, now)
                }
                MediaPath::Udp(udp) => {
                    // The connection carries keepalives and their answers; its end or an error
                    // status ends the session.
                    tokio::select! {
                        frame = self.client.next_frame() => {
                            frame.map_err(|e| session_error(&self.shown, e))?;
                            continue;
                        }
                        datagram = tokio::time::timeout(SILENCE_TIMEOUT, udp.recv()) => {
                            let datagram = datagram
                                .map_err(|_| IngestError::Stream {
                                    url: self.shown.clone(),
                                    reason: format!(
                                        "the camera sent nothing over UDP for {} s (a \
                                         firewall or NAT in between? transport = \"auto\" \
                                         falls back to TCP)",
                                        SILENCE_TIMEOUT.as_secs()
                                    ),
                                })?
                                .map_err(|e| IngestError::Stream {
                                    url: self.shown.clone(),
                                    reason: format!("UDP receive failed: {e}"),
                                })?;
                            let arrived = clock.local(datagram.arrived);
                            (datagram.kind, datagram.rtcp, datagram.data, arrived)
                        }
                    }
                }
            };
            if let Some(input) = source_input(kind, rtcp, data) {
                return Ok((arrived, input));
            }
        }
    }
}

/// Why one connection attempt failed: `UdpRefused` when the camera answered SETUP over UDP
/// with an error (`auto` then tries TCP).
enum Attempt {
    Failed(IngestError),
    UdpRefused(IngestError),
}

/// The session's end, as the camera's state says it.
fn session_error(shown: &str, e: ClientError) -> IngestError {
    match e {
        ClientError::Closed => IngestError::Ended { url: shown.into() },
        other => IngestError::Stream {
            url: shown.into(),
            reason: other.to_string(),
        },
    }
}

/// The track and whether it is RTCP, for an interleaved channel.
fn channel_of(channel: u8, video: u8, audio: Option<u8>) -> Option<(TrackKind, bool)> {
    let of = |rtp: u8| (channel == rtp || channel == rtp.wrapping_add(1)).then_some(channel != rtp);
    if let Some(rtcp) = of(video) {
        return Some((TrackKind::Video, rtcp));
    }
    let rtcp = of(audio?)?;
    Some((TrackKind::Audio, rtcp))
}

/// A packet as the source's input: RTP, or the sender report of an RTCP packet (other RTCP
/// and malformed packets give none — a sequence gap shows the loss, the session goes on).
fn source_input(kind: TrackKind, rtcp: bool, data: Vec<u8>) -> Option<SourceInput<MediaPayload>> {
    if rtcp {
        let sr = parse_sender_report(&data)?;
        return Some(SourceInput::SenderReport {
            kind,
            ssrc: sr.ssrc,
            rtp_ts: sr.rtp_timestamp,
            ntp: sr.ntp,
        });
    }
    let header = parse_rtp(&data).ok()?;
    // Geovision cameras interleave payload type 50 packets that carry nothing; a firewall
    // pinhole packet of ours echoed back carries nothing either.
    if header.payload_type == 50 || header.payload_offset == header.payload_end {
        return None;
    }
    // The payload keeps the packet's allocation (no second copy).
    let mut data = data;
    data.truncate(header.payload_end);
    data.drain(..header.payload_offset);
    Some(SourceInput::Rtp {
        kind,
        ssrc: header.ssrc,
        seq: header.seq,
        ts: header.timestamp,
        payload: MediaPayload::Rtp {
            data,
            marker: header.marker,
        },
    })
}

/// SETUP of each track over TCP interleaving: video on channels 0–1, audio on 2–3 (or what
/// the camera picks).
async fn setup_interleaved(
    client: &mut RtspClient,
    setups: &[(TrackKind, url::Url, &SdpMedia)],
) -> Result<MediaPath, ClientError> {
    let mut channels = Vec::new();
    let mut next = 0u8;
    for (_, url, _) in setups {
        let chosen = client.setup_interleaved(url, next).await?.rtp;
        channels.push(chosen);
        next = chosen.wrapping_add(2);
    }
    Ok(MediaPath::Interleaved {
        video_channel: channels[0],
        audio_channel: channels.get(1).copied(),
    })
}

/// SETUP of each track over UDP to a port pair of ours on the interface that reaches the
/// camera; then the first packets out, so a firewall here lets the camera's in.
async fn setup_udp(
    client: &mut RtspClient,
    setups: &[(TrackKind, url::Url, &SdpMedia)],
) -> Result<MediaPath, ClientError> {
    let (camera_ip, local_ip) = client.addresses()?;
    let mut tracks = Vec::new();
    let mut camera_rtp_ports = Vec::new();
    for (kind, url, section) in setups {
        let clock_rate_hz = section.clock_rate_hz;
        let track = UdpTrack::bind(*kind, local_ip, clock_rate_hz)
            .await
            .map_err(|e| ClientError::Connection(format!("cannot open UDP ports: {e}")))?;
        let answer = client.setup_udp(url, track.ports()).await?;
        camera_rtp_ports.push(answer.server_ports.map(|p| p.0));
        tracks.push((track, answer.server_ports.map(|p| p.1)));
    }
    let our_ssrc = 0x4c53_0000 | u32::from(tracks[0].0.ports().0);
    let media = UdpMedia::new(tracks, camera_ip, our_ssrc);
    media.open_pinholes(&camera_rtp_ports).await;
    Ok(MediaPath::Udp(media))
}

/// The PLAY answer's `RTP-Info` per track set up, matched by URL (the entry's URL is the
/// track's, or ends with its control), else by order when every track has one. Only entries
/// with an `rtptime` count.
fn rtp_info_per_track(
    entries: &[RtpInfo],
    setups: &[(TrackKind, url::Url, &SdpMedia)],
) -> Vec<(TrackKind, u32)> {
    let matched: Vec<Option<u32>> = setups
        .iter()
        .map(|(_, url, section)| {
            entries
                .iter()
                .find(|e| {
                    e.url == url.as_str()
                        || section
                            .control
                            .as_deref()
                            .is_some_and(|c| c != "*" && e.url.ends_with(c))
                })
                .and_then(|e| e.rtptime)
        })
        .collect();
    let rtptimes: Vec<Option<u32>> = if matched.iter().all(Option::is_some) {
        matched
    } else if entries.len() == setups.len() {
        entries.iter().map(|e| e.rtptime).collect()
    } else {
        Vec::new()
    };
    setups
        .iter()
        .zip(rtptimes)
        .filter_map(|((kind, ..), rtptime)| Some((*kind, rtptime?)))
        .collect()
}

/// Plays a camera through the production [`Source`] and codecs until `until`, handing every
/// output to `sink`: the instruments' and tests' way to read a camera without the server
/// (which runs the same source through its driver, encoder and pacer).
pub async fn play_until(
    url: &str,
    transport: RtpTransport,
    config: SourceConfig,
    clock: LocalClock,
    until: Instant,
    mut sink: impl FnMut(SourceEvent<Pcm, Vec<u8>>),
) -> Result<(), IngestError> {
    let (mut session, tracks) = CameraSession::connect_with(url, transport, "lockstep").await?;
    let mut source = tracks.into_source(config);
    let mut wakeup: Option<LocalInstant> = None;
    while Instant::now() < until {
        let sleep = wakeup.map_or(until, |w| clock.instant(w)).min(until);
        tokio::select! {
            input = session.next_input(&clock) => {
                let (arrived, input) = input?;
                source.handle_input(arrived, input);
            }
            () = tokio::time::sleep_until(sleep.into()) => {}
        }
        wakeup = loop {
            match source.poll_output(clock.now()) {
                SourceEvent::Drained { next_wakeup } => break next_wakeup,
                event => sink(event),
            }
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_decoded() {
        let (url, creds) = split_credentials("rtsp://admin:s3cret@127.0.0.1:8554/cam").unwrap();
        assert_eq!(url.as_str(), "rtsp://127.0.0.1:8554/cam");
        let creds = creds.unwrap();
        assert_eq!(
            (creds.user.as_str(), creds.password.as_str()),
            ("admin", "s3cret")
        );
        assert!(split_credentials("rtsp://h/cam").unwrap().1.is_none());
        // Percent-encoded as a URL must hold them: the camera is sent the password itself.
        let (_, creds) =
            split_credentials("rtsp://ad%20min:p%40ss%3Aw%2Frd%25%23%3F@h/cam").unwrap();
        let creds = creds.unwrap();
        assert_eq!(
            (creds.user.as_str(), creds.password.as_str()),
            ("ad min", "p@ss:w/rd%#?")
        );
        // The error does not echo the input (it may hold a password).
        let err = split_credentials("rtsp://admin:s3cret@[bad").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn rtp_info_reaches_each_track_by_url_or_order() {
        let sdp = Sdp::parse(
            "m=video 0 RTP/AVP 96\r\na=control:trackID=0\r\na=rtpmap:96 H264/90000\r\n\
             m=audio 0 RTP/AVP 8\r\na=control:trackID=1\r\n",
        );
        let base = url::Url::parse("rtsp://h/cam").unwrap();
        let setups: Vec<_> = [TrackKind::Video, TrackKind::Audio]
            .into_iter()
            .zip(&sdp.media)
            .map(|(kind, m)| (kind, m.setup_url(&base), m))
            .collect();
        let entry = |url: &str, rtptime| RtpInfo {
            url: url.into(),
            seq: None,
            rtptime: Some(rtptime),
        };
        // Listed audio first, by their full URLs.
        let got = rtp_info_per_track(
            &[
                entry("rtsp://h/cam/trackID=1", 80),
                entry("rtsp://h/cam/trackID=0", 900),
            ],
            &setups,
        );
        assert_eq!(got, [(TrackKind::Video, 900), (TrackKind::Audio, 80)]);
        // URLs the camera rewrote: by order.
        let got = rtp_info_per_track(&[entry("rtsp://10.0.0.1/x", 1), entry("y", 2)], &setups);
        assert_eq!(got, [(TrackKind::Video, 1), (TrackKind::Audio, 2)]);
        // One entry for two tracks: none (half an alignment would mislead).
        assert!(rtp_info_per_track(&[entry("z", 1)], &setups).is_empty());
    }
}
