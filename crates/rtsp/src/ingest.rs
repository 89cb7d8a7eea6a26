//! A camera's front end: retina keeps the RTSP session (auth, keepalives, transport) and hands
//! over raw RTP and RTCP, which become [`SourceInput`]s of the camera's
//! [`Source`](lockstep_sync::Source) — the one pipeline every source kind goes through. Nothing
//! here times or decodes anything; [`CameraTracks`] says what the codecs are.

use std::time::{Duration, Instant};

use futures::StreamExt;
use lockstep_media::{
    h265, AudioTrackDecoder, Codec, MediaPayload, MediaSource, Pcm, RtpAudioTrack, VideoTrack,
};
use lockstep_sync::{LocalInstant, NtpTime, SourceConfig, SourceEvent, SourceInput, TrackKind};
use retina::client::{
    Credentials, InitialTimestampPolicy, PacketItem, PlayOptions, Playing, Session, SessionOptions,
    SetupOptions, Stream,
};
use retina::codec::{ParametersRef, VideoParametersCodec};

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

/// The first audio track of a DESCRIBE that lockstep decodes, with its stream index; or why
/// none is (the first audio track's reason), if the camera has audio.
pub fn find_audio_track(
    streams: &[Stream],
    sdp: &[u8],
) -> (Option<(usize, RtpAudioTrack)>, Option<String>) {
    let sdp = String::from_utf8_lossy(sdp);
    let mut refused = None;
    for (i, stream) in streams.iter().enumerate() {
        if stream.media() != "audio" {
            continue;
        }
        let fmtp = sdp_fmtp(&sdp, streams, i).unwrap_or_default();
        let channels = stream.channels().map_or(1, |c| c.get().min(2) as u8);
        let name = stream.encoding_name();
        match AudioTrackDecoder::for_rtp(name, stream.clock_rate_hz(), channels, &fmtp) {
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
pub fn find_video_track(streams: &[Stream], sdp: &[u8]) -> Result<VideoFormat, String> {
    let first = |name: &str| {
        streams
            .iter()
            .position(|s| s.media() == "video" && s.encoding_name() == name)
    };
    if let Some(index) = first("h264") {
        let parameter_sets = match streams[index].parameters() {
            Some(ParametersRef::Video(v)) => match v.codec_params() {
                VideoParametersCodec::H264 { sps, pps } => vec![sps.to_vec(), pps.to_vec()],
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        return Ok(VideoFormat {
            index,
            codec: Codec::H264,
            parameter_sets,
        });
    }
    if let Some(index) = first("h265") {
        let sdp = String::from_utf8_lossy(sdp);
        let fmtp = sdp_fmtp(&sdp, streams, index).unwrap_or_default();
        let refused = |reason: String| format!("the H.265 track cannot be read: {reason}");
        h265::check_decoding_order(&fmtp).map_err(refused)?;
        let parameter_sets = h265::sdp_parameter_sets(&fmtp).map_err(refused)?;
        return Ok(VideoFormat {
            index,
            codec: Codec::H265,
            parameter_sets,
        });
    }
    Err(match streams.iter().find(|s| s.media() == "video") {
        Some(s) => format!(
            "this stream's video is {}, which lockstep does not read: use an H.264 or H.265 \
             stream of the camera",
            s.encoding_name()
        ),
        None => "the camera's stream has no video track".into(),
    })
}

/// The `a=fmtp` parameters of stream `index`: its media section is the one with the same media
/// and payload type, counted in order (retina skips sections it cannot parse).
pub fn sdp_fmtp(sdp: &str, streams: &[Stream], index: usize) -> Option<String> {
    let stream = streams.get(index)?;
    let key = |s: &Stream| (s.media().to_owned(), s.rtp_payload_type());
    let nth = streams[..index]
        .iter()
        .filter(|s| key(s) == key(stream))
        .count();
    let prefix = format!("a=fmtp:{} ", stream.rtp_payload_type());
    let mut seen = 0;
    let mut in_section = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut fields = m.split_whitespace();
            let media = fields.next();
            let pt = fields.nth(2).and_then(|p| p.parse::<u8>().ok());
            in_section = media == Some(stream.media()) && pt == Some(stream.rtp_payload_type());
            if in_section {
                seen += 1;
            }
        } else if in_section && seen == nth + 1 {
            if let Some(params) = line.strip_prefix(&prefix) {
                return Some(params.to_owned());
            }
        }
    }
    None
}

/// `rtsp://user:pass@host/…` → the URL without credentials, and the credentials.
pub fn split_credentials(url: &str) -> Result<(url::Url, Option<Credentials>), String> {
    let mut url = url::Url::parse(url).map_err(|e| format!("not a valid URL ({e})"))?;
    let creds = (!url.username().is_empty()).then(|| Credentials {
        username: url.username().to_owned(),
        password: url.password().unwrap_or_default().to_owned(),
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, creds))
}

/// One playing RTSP session: its packets as source inputs.
pub struct CameraSession {
    playing: std::pin::Pin<Box<Session<Playing>>>,
    video: usize,
    audio: Option<usize>,
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
    /// DESCRIBE, SETUP of the video track and the first audio track we decode, PLAY.
    pub async fn connect(url: &str) -> Result<(CameraSession, CameraTracks), IngestError> {
        let (url, creds) = split_credentials(url).map_err(|reason| IngestError::Setup {
            url: "(camera url)".into(),
            reason,
        })?;
        let shown = url.to_string();
        let unreachable = |e: retina::Error| IngestError::Unreachable {
            url: shown.clone(),
            reason: e.to_string(),
        };
        let session = Session::describe(
            url.clone(),
            SessionOptions::default()
                .creds(creds)
                .user_agent("lockstep".into()),
        )
        .await
        .map_err(unreachable)?;
        let streams = session.streams();
        let video =
            find_video_track(streams, session.sdp()).map_err(|reason| IngestError::Setup {
                url: shown.clone(),
                reason,
            })?;
        let (audio, audio_refused) = find_audio_track(streams, session.sdp());
        if let Some(reason) = &audio_refused {
            tracing::warn!("{shown}: {reason}; the video plays without it");
        }
        let mut session = session;
        session
            .setup(video.index, SetupOptions::default())
            .await
            .map_err(unreachable)?;
        if let Some((index, ..)) = &audio {
            session
                .setup(*index, SetupOptions::default())
                .await
                .map_err(unreachable)?;
        }
        let playing: Session<Playing> = session
            .play(PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Permissive))
            .await
            .map_err(unreachable)?;
        let session = CameraSession {
            playing: Box::pin(playing),
            video: video.index,
            audio: audio.as_ref().map(|(i, ..)| *i),
            shown,
        };
        let tracks = CameraTracks {
            video,
            audio: audio.map(|(_, track)| track),
            audio_refused,
        };
        Ok((session, tracks))
    }

    fn kind_of(&self, stream_id: usize) -> Option<TrackKind> {
        if stream_id == self.video {
            Some(TrackKind::Video)
        } else if self.audio == Some(stream_id) {
            Some(TrackKind::Audio)
        } else {
            None
        }
    }

    /// The next media packet or sender report, when it arrived; `Err` when the session ends.
    pub async fn next_input(
        &mut self,
        clock: &LocalClock,
    ) -> Result<(LocalInstant, SourceInput<MediaPayload>), IngestError> {
        loop {
            let item = match self.playing.next().await {
                None => {
                    return Err(IngestError::Ended {
                        url: self.shown.clone(),
                    })
                }
                Some(Err(e)) => {
                    return Err(IngestError::Stream {
                        url: self.shown.clone(),
                        reason: e.to_string(),
                    })
                }
                Some(Ok(item)) => item,
            };
            let now = clock.now();
            match item {
                PacketItem::Rtp(packet) => {
                    let Some(kind) = self.kind_of(packet.stream_id()) else {
                        continue;
                    };
                    let input = SourceInput::Rtp {
                        kind,
                        ssrc: packet.ssrc(),
                        seq: packet.sequence_number(),
                        ts: packet.timestamp().timestamp() as u32,
                        payload: MediaPayload::Rtp {
                            data: packet.payload().to_vec(),
                            marker: packet.mark(),
                        },
                    };
                    return Ok((now, input));
                }
                PacketItem::Rtcp(rtcp) => {
                    let Some(kind) = self.kind_of(rtcp.stream_id()) else {
                        continue;
                    };
                    let report = rtcp
                        .pkts()
                        .next()
                        .and_then(|p| p.as_sender_report().ok().flatten());
                    if let Some(sr) = report {
                        let input = SourceInput::SenderReport {
                            kind,
                            ssrc: sr.ssrc(),
                            rtp_ts: sr.rtp_timestamp(),
                            ntp: NtpTime::from_bits(sr.ntp_timestamp().0),
                        };
                        return Ok((now, input));
                    }
                }
                // PacketItem is non-exhaustive: whatever else retina may report is not media.
                _ => {}
            }
        }
    }
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
    fn credentials_leave_the_url() {
        let (url, creds) = split_credentials("rtsp://admin:s3cret@127.0.0.1:8554/cam").unwrap();
        assert_eq!(url.as_str(), "rtsp://127.0.0.1:8554/cam");
        let creds = creds.unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("admin", "s3cret")
        );
        assert!(split_credentials("rtsp://h/cam").unwrap().1.is_none());
        // The error does not echo the input (it may hold a password).
        let err = split_credentials("rtsp://admin:s3cret@[bad").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
