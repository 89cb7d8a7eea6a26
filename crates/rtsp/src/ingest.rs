//! One RTSP camera into the sync core. retina keeps the RTSP session (auth, keepalives, transport);
//! its raw RTP and RTCP go through [`SourceSync`] (jitter buffer, sender-report clocks, one capture
//! timeline); released packets are depacketized (H.264 access units — with the SDP's parameter sets
//! in front of keyframes that come without them — and G.711/L16 samples) and leave
//! through the [`OutputStage`] stamped on the output timeline, audio as the master clock.

use std::time::{Duration, Instant};

use futures::StreamExt;
use lockstep_media::g711::G711Law;
use lockstep_media::h264::{with_parameter_sets, H264Depacketizer};
use lockstep_media::AudioDecoder;
use lockstep_sync::{
    LatencyProfile, LocalInstant, NtpTime, OutputStage, SourceOutput, SourceSync, StageOutput,
    TrackKind, VideoMode,
};
use retina::client::{
    Credentials, InitialTimestampPolicy, PacketItem, PlayOptions, SessionOptions, SetupOptions,
};
use retina::codec::{ParametersRef, VideoParametersCodec};
use tokio::sync::mpsc;

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

/// What leaves one camera, stamped on the output timeline.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestOutput {
    /// An H.264 access unit (Annex B) to send now.
    Video {
        out: LocalInstant,
        keyframe: bool,
        annex_b: Vec<u8>,
    },
    /// Decoded audio whose first sample plays at `out`, output position `out_pts` (48 kHz
    /// ticks: `out` = epoch + `out_pts`/48 kHz, one epoch per camera session); `ratio` is the
    /// retimer's output samples per input sample for the 48 kHz resampler.
    Audio {
        out: LocalInstant,
        out_pts: i64,
        rate_hz: u32,
        pcm: Vec<i16>,
        ratio: f64,
    },
    /// No audio came in time: `samples` (48 kHz) of concealment at `out` (position `out_pts`).
    Conceal {
        out: LocalInstant,
        out_pts: i64,
        samples: u32,
    },
    /// The source's sync state, about once a second.
    Stats(SyncStats),
}

/// What the sync core knows about one camera, for the API and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncStats {
    /// Residual audio-video offset at the output (positive: audio late).
    pub offset_ms: Option<f64>,
    pub audio_drift_ppm: Option<f64>,
    pub video_drift_ppm: Option<f64>,
    /// The larger of the tracks' RFC 3550 interarrival jitter.
    pub jitter_ms: f64,
    /// Lost packets over all packets expected, both tracks.
    pub loss_ratio: f64,
    /// Capture to output: the playout delay.
    pub latency_ms: f64,
    pub clock_source: &'static str,
    pub video_frames: u64,
    pub dropped_frames: u64,
    pub concealed_ms: f64,
    pub corrections: u64,
    pub video_codec: &'static str,
    pub audio_codec: Option<String>,
}

/// How often [`IngestOutput::Stats`] is sent.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    pub profile: LatencyProfile,
    /// `sync_offset_ms` in nanoseconds.
    pub audio_trim_nanos: i64,
}

/// Why a camera stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{url}: {reason}")]
    Setup { url: String, reason: String },
    #[error("{url}: stream error: {reason}")]
    Stream { url: String, reason: String },
    #[error("{url}: the camera ended the stream")]
    Ended { url: String },
}

/// The decoder for an RTP audio encoding (SDP name, lowercase), if we decode it.
pub fn rtp_audio_decoder(encoding_name: &str) -> Option<AudioDecoder> {
    match encoding_name {
        "pcma" => Some(AudioDecoder::G711(G711Law::ALaw)),
        "pcmu" => Some(AudioDecoder::G711(G711Law::MuLaw)),
        "l16" => Some(AudioDecoder::Pcm16 { big_endian: true }),
        _ => None,
    }
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

/// A packet handed to the sync core: payload and RTP marker.
type Payload = (Vec<u8>, bool);

/// Runs one camera until the stream ends, fails, or the receiver goes away (`Ok`).
pub async fn run(
    url: &str,
    options: IngestOptions,
    clock: LocalClock,
    tx: mpsc::Sender<IngestOutput>,
) -> Result<(), IngestError> {
    let (url, creds) = split_credentials(url).map_err(|reason| IngestError::Setup {
        url: "(camera url)".into(),
        reason,
    })?;
    let shown = url.to_string();
    let setup_error = |reason: String| IngestError::Setup {
        url: shown.clone(),
        reason,
    };
    let mut session = retina::client::Session::describe(
        url.clone(),
        SessionOptions::default()
            .creds(creds)
            .user_agent("lockstep".into()),
    )
    .await
    .map_err(|e| setup_error(e.to_string()))?;
    let streams = session.streams();
    let video = streams
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name() == "h264")
        .ok_or_else(|| setup_error("no H.264 video track".into()))?;
    let mut audio = streams.iter().enumerate().find_map(|(i, s)| {
        let decoder = (s.media() == "audio").then(|| rtp_audio_decoder(s.encoding_name()))??;
        Some((i, decoder, s.clock_rate_hz()))
    });
    let audio_codec = audio
        .as_ref()
        .map(|(i, _, _)| streams[*i].encoding_name().to_owned());
    // The SDP's parameter sets, for cameras that send them only there (not before each IDR).
    let sdp_parameter_sets = match streams[video].parameters() {
        Some(ParametersRef::Video(v)) => match v.codec_params() {
            VideoParametersCodec::H264 { sps, pps } => Some((sps.to_vec(), pps.to_vec())),
            _ => None,
        },
        _ => None,
    };
    session
        .setup(video, SetupOptions::default())
        .await
        .map_err(|e| setup_error(e.to_string()))?;
    if let Some((index, _, _)) = &audio {
        session
            .setup(*index, SetupOptions::default())
            .await
            .map_err(|e| setup_error(e.to_string()))?;
    }
    let playing = session
        .play(PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Permissive))
        .await
        .map_err(|e| setup_error(e.to_string()))?;
    let mut playing = Box::pin(playing);

    let mut sync = SourceSync::<Payload>::new(options.profile);
    sync.set_audio_trim_nanos(options.audio_trim_nanos);
    let video_track = sync.add_track(TrackKind::Video, 90_000);
    let audio_track = audio
        .as_ref()
        .map(|(_, _, rate)| sync.add_track(TrackKind::Audio, *rate));
    let mut stage =
        OutputStage::<Vec<u8>>::new(VideoMode::Passthrough, options.profile.max_delay());
    let mut depacketizer = H264Depacketizer::default();
    let mut wakeup: Option<LocalInstant> = None;
    let mut next_stats = clock.now();
    loop {
        let sleep_until = wakeup.map(|w| tokio::time::Instant::from_std(clock.instant(w)));
        let item = tokio::select! {
            item = playing.next() => Some(item),
            () = sleep_or_pending(sleep_until) => None,
        };
        let now = clock.now();
        match item {
            Some(None) => return Err(IngestError::Ended { url: shown }),
            Some(Some(Err(e))) => {
                return Err(IngestError::Stream {
                    url: shown,
                    reason: e.to_string(),
                })
            }
            Some(Some(Ok(PacketItem::Rtp(packet)))) => {
                let track = if packet.stream_id() == video {
                    Some(video_track)
                } else if audio
                    .as_ref()
                    .is_some_and(|(i, _, _)| *i == packet.stream_id())
                {
                    audio_track
                } else {
                    None
                };
                if let Some(track) = track {
                    let ts32 = packet.timestamp().timestamp() as u32;
                    let _ = sync.handle_rtp(
                        now,
                        track,
                        packet.ssrc(),
                        packet.sequence_number(),
                        ts32,
                        (packet.payload().to_vec(), packet.mark()),
                    );
                }
            }
            Some(Some(Ok(PacketItem::Rtcp(rtcp)))) => {
                let track = if rtcp.stream_id() == video {
                    Some(video_track)
                } else {
                    audio_track
                };
                let report = rtcp
                    .pkts()
                    .next()
                    .and_then(|p| p.as_sender_report().ok().flatten());
                if let (Some(track), Some(sr)) = (track, report) {
                    let ntp = NtpTime::from_bits(sr.ntp_timestamp().0);
                    let _ =
                        sync.handle_sender_report(now, track, sr.ssrc(), sr.rtp_timestamp(), ntp);
                }
            }
            // PacketItem is non-exhaustive: whatever else retina may report is not media.
            Some(Some(Ok(_))) | None => {}
        }
        let sync_wakeup = loop {
            match sync.poll_output(now) {
                SourceOutput::Packet(p) if Some(p.track) == audio_track => {
                    let Some((_, decoder, rate)) = &mut audio else {
                        continue;
                    };
                    let rate = *rate;
                    let mut pcm = Vec::with_capacity(p.payload.0.len());
                    // A bad payload is lost audio: the retimer conceals it.
                    if decoder
                        .decode_first_channel(&p.payload.0, 1, &mut pcm)
                        .is_err()
                    {
                        continue;
                    }
                    let target = sync.output_time(p.capture);
                    let plan = stage.handle_audio(target, pcm.len() as u32, rate);
                    let kept = pcm.split_off((plan.skip_input_samples as usize).min(pcm.len()));
                    if plan.output_samples == 0 || kept.is_empty() {
                        continue;
                    }
                    let out = stage.retimer().out_time(plan.out_pts).unwrap_or(target);
                    let output = IngestOutput::Audio {
                        out,
                        out_pts: plan.out_pts,
                        rate_hz: rate,
                        pcm: kept,
                        ratio: plan.ratio,
                    };
                    if tx.send(output).await.is_err() {
                        return Ok(());
                    }
                }
                SourceOutput::Packet(p) => {
                    if let Some(unit) = depacketizer.push(&p.payload.0, p.payload.1) {
                        let annex_b = match &sdp_parameter_sets {
                            Some((sps, pps)) if unit.keyframe => {
                                with_parameter_sets(unit.annex_b, sps, pps)
                            }
                            _ => unit.annex_b,
                        };
                        stage.handle_video(sync.output_time(p.capture), unit.keyframe, annex_b);
                    }
                }
                SourceOutput::Lost { track, .. } if track == video_track => {
                    depacketizer.handle_loss();
                }
                SourceOutput::Resync { track, .. } if track == video_track => {
                    depacketizer = H264Depacketizer::default();
                }
                SourceOutput::Lost { .. } | SourceOutput::Resync { .. } => {}
                SourceOutput::Drained { next_wakeup } => break next_wakeup,
            }
        };
        let stage_wakeup = loop {
            let output = match stage.poll_output(now) {
                StageOutput::Video {
                    out,
                    keyframe,
                    payload,
                } => IngestOutput::Video {
                    out,
                    keyframe,
                    annex_b: payload,
                },
                StageOutput::Conceal { out_pts, samples } => IngestOutput::Conceal {
                    out: stage.retimer().out_time(out_pts).unwrap_or(now),
                    out_pts,
                    samples,
                },
                // The next audio's stamp shows the jump; there is nothing to send for it.
                StageOutput::Gap { .. } => continue,
                StageOutput::Drained { next_wakeup } => break next_wakeup,
            };
            if tx.send(output).await.is_err() {
                return Ok(());
            }
        };
        if now >= next_stats {
            next_stats = now.add_nanos(STATS_INTERVAL.as_nanos() as i64);
            let stats = sync_stats(&sync, &stage, video_track, audio_track, &audio_codec);
            if tx.send(IngestOutput::Stats(stats)).await.is_err() {
                return Ok(());
            }
        }
        wakeup = [sync_wakeup, stage_wakeup, Some(next_stats)]
            .into_iter()
            .flatten()
            .min();
    }
}

fn sync_stats(
    sync: &SourceSync<Payload>,
    stage: &OutputStage<Vec<u8>>,
    video_track: usize,
    audio_track: Option<usize>,
    audio_codec: &Option<String>,
) -> SyncStats {
    let tracks: Vec<usize> = std::iter::once(video_track).chain(audio_track).collect();
    let (mut lost, mut received) = (0u64, 0u64);
    for &t in &tracks {
        let s = sync.track_stats(t);
        lost += s.lost;
        received += s.received.saturating_sub(s.duplicates);
    }
    let jitter = tracks
        .iter()
        .map(|&t| sync.track_jitter(t))
        .max()
        .unwrap_or_default();
    let video = stage.scheduler().stats();
    let retimer = stage.retimer().stats();
    SyncStats {
        offset_ms: stage.offset_nanos().map(|n| n as f64 / 1e6),
        audio_drift_ppm: audio_track.and_then(|t| sync.track_drift_ppm(t)),
        video_drift_ppm: sync.track_drift_ppm(video_track),
        jitter_ms: jitter.as_secs_f64() * 1e3,
        loss_ratio: if lost + received == 0 {
            0.0
        } else {
            lost as f64 / (lost + received) as f64
        },
        latency_ms: sync.playout_delay().as_secs_f64() * 1e3,
        clock_source: sync.clock_source().as_str(),
        video_frames: video.frames,
        dropped_frames: video.dropped_late + video.dropped_awaiting_keyframe,
        concealed_ms: retimer.concealed_samples as f64 / 48.0,
        corrections: stage.watchdog_stats().corrections,
        video_codec: "h264",
        audio_codec: audio_codec.clone(),
    }
}

async fn sleep_or_pending(until: Option<tokio::time::Instant>) {
    match until {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
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
