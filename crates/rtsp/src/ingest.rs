//! A camera's front end: lockstep's own RTSP client ([`crate::client`]) keeps the session
//! (auth, keepalives, TCP-interleaved transport) and hands over raw RTP and RTCP, which become
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
use crate::client::{ClientError, RtpInfo, RtspClient};
use crate::rtp::{parse_rtp, parse_sender_report};
use crate::sdp::{resolve_control, Sdp, SdpMedia};

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

/// One playing RTSP session: its packets as source inputs.
pub struct CameraSession {
    client: RtspClient,
    /// The RTP channel of the video track and of the audio track (RTCP on the next one).
    video_channel: u8,
    audio_channel: Option<u8>,
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
    /// OPTIONS, DESCRIBE, SETUP of the video track and the first audio track we decode, PLAY.
    pub async fn connect(url: &str) -> Result<(CameraSession, CameraTracks), IngestError> {
        CameraSession::connect_as(url, "lockstep").await
    }

    /// The same, naming the client (`lockstep-measure` for the instrument).
    pub async fn connect_as(
        url: &str,
        user_agent: &'static str,
    ) -> Result<(CameraSession, CameraTracks), IngestError> {
        let (url, creds) = split_credentials(url).map_err(|reason| IngestError::Setup {
            url: "(camera url)".into(),
            reason,
        })?;
        let shown = url.to_string();
        let unreachable = |e: ClientError| IngestError::Unreachable {
            url: shown.clone(),
            reason: e.to_string(),
        };
        let setup_error = |reason: String| IngestError::Setup {
            url: shown.clone(),
            reason,
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
        let video_section = &sdp.media[video.index];
        let video_url = video_section.setup_url(&base);
        let video_channel = client
            .setup_interleaved(&video_url, 0)
            .await
            .map_err(unreachable)?
            .rtp;
        let mut setups = vec![(TrackKind::Video, video_url, video_section)];
        let audio_channel = match &audio {
            Some((index, _)) => {
                let section = &sdp.media[*index];
                let audio_url = section.setup_url(&base);
                let channel = client
                    .setup_interleaved(&audio_url, video_channel.wrapping_add(2))
                    .await
                    .map_err(unreachable)?
                    .rtp;
                setups.push((TrackKind::Audio, audio_url, section));
                Some(channel)
            }
            None => None,
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
            video_channel,
            audio_channel,
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

    /// The track and whether it is RTCP, for an interleaved channel.
    fn channel_of(&self, channel: u8) -> Option<(TrackKind, bool)> {
        let of =
            |rtp: u8| (channel == rtp || channel == rtp.wrapping_add(1)).then_some(channel != rtp);
        if let Some(rtcp) = of(self.video_channel) {
            return Some((TrackKind::Video, rtcp));
        }
        let rtcp = of(self.audio_channel?)?;
        Some((TrackKind::Audio, rtcp))
    }

    /// The next media packet or sender report, when it arrived; `Err` when the session ends.
    pub async fn next_input(
        &mut self,
        clock: &LocalClock,
    ) -> Result<(LocalInstant, SourceInput<MediaPayload>), IngestError> {
        loop {
            let (channel, data) = self.client.next_frame().await.map_err(|e| match e {
                ClientError::Closed => IngestError::Ended {
                    url: self.shown.clone(),
                },
                other => IngestError::Stream {
                    url: self.shown.clone(),
                    reason: other.to_string(),
                },
            })?;
            let now = clock.now();
            let Some((kind, rtcp)) = self.channel_of(channel) else {
                continue;
            };
            if rtcp {
                if let Some(sr) = parse_sender_report(&data) {
                    let input = SourceInput::SenderReport {
                        kind,
                        ssrc: sr.ssrc,
                        rtp_ts: sr.rtp_timestamp,
                        ntp: sr.ntp,
                    };
                    return Ok((now, input));
                }
                continue;
            }
            // A malformed packet is dropped (the sequence gap shows as loss), never the session.
            let Ok(header) = parse_rtp(&data) else {
                continue;
            };
            // Geovision cameras interleave payload type 50 packets that carry nothing.
            if header.payload_type == 50 {
                continue;
            }
            // The payload keeps the frame's allocation (no second copy).
            let mut data = data;
            data.truncate(header.payload_end);
            data.drain(..header.payload_offset);
            let input = SourceInput::Rtp {
                kind,
                ssrc: header.ssrc,
                seq: header.seq,
                ts: header.timestamp,
                payload: MediaPayload::Rtp {
                    data,
                    marker: header.marker,
                },
            };
            return Ok((now, input));
        }
    }
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
    config: SourceConfig,
    clock: LocalClock,
    until: Instant,
    mut sink: impl FnMut(SourceEvent<Pcm, Vec<u8>>),
) -> Result<(), IngestError> {
    let (mut session, tracks) = CameraSession::connect(url).await?;
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
