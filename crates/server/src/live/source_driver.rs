//! The one IO driver every source kind runs: wait for the front end's next input or the
//! source's next wake-up, feed the [`Source`], drain it, encode audio (only while someone
//! listens), stamp everything on the outgoing clocks and hand it to the source's [`Pacer`],
//! which publishes each frame when due; the sync state goes to the source's status once a
//! second. Front ends only turn their protocol into [`SourceInput`]s: a camera's RTSP session
//! ([`CameraSession`]), a WHIP publisher's frames.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lockstep_media::{
    Codec, LiveAudioEncoder, LiveFrame, LiveMedia, MediaPayload, MediaSource, OpusPacket,
    SourceFeed, VideoTrack, LIVE_RATE_HZ,
};
use lockstep_rtsp::ingest::{CameraSession, IngestError, LocalClock};
use lockstep_sync::{LocalInstant, ReleaseLag, SourceEvent, SourceInput, VIDEO_RATE_HZ};
use tokio::sync::watch;

use super::camera::{CameraState, CameraStatus};
use super::echo_stage::{EchoPath, EchoStage};
use super::pacer::Pacer;

/// How often the sync state is published.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// A protocol front end: the next input and when it arrived. `Ok(None)` ends the session
/// normally (the publisher left, the receiver went away).
pub trait FrontEnd {
    type Error;
    fn next_input(
        &mut self,
        clock: &LocalClock,
    ) -> impl Future<Output = Result<Option<(LocalInstant, SourceInput<MediaPayload>)>, Self::Error>>
           + Send;
}

impl FrontEnd for CameraSession {
    type Error = IngestError;
    async fn next_input(
        &mut self,
        clock: &LocalClock,
    ) -> Result<Option<(LocalInstant, SourceInput<MediaPayload>)>, IngestError> {
        CameraSession::next_input(self, clock).await.map(Some)
    }
}

/// Where a source's output goes: its feed (through its pacer) and its status.
#[derive(Debug, Clone)]
pub struct SourceSinks {
    pub feed: Arc<SourceFeed>,
    pub pacer: Arc<Pacer>,
    pub status: watch::Sender<CameraStatus>,
    pub clock: LocalClock,
    /// Audio is transcoded for listeners (live audio or recorded audio is on).
    pub audio: bool,
    /// A camera that talks: its speaker's echo is taken out of its microphone.
    pub echo: Option<EchoPath>,
}

/// Runs one session of a source until its front end ends or fails.
pub async fn drive<F: FrontEnd>(
    front: &mut F,
    source: MediaSource,
    sinks: &SourceSinks,
) -> Result<(), F::Error> {
    let mut driver = SourceDriver::new(source, sinks);
    let clock = sinks.clock;
    let mut wakeup: Option<LocalInstant> = None;
    let result = loop {
        let sleep = sleep_until(wakeup.map(|w| clock.instant(w)));
        let input = tokio::select! {
            input = front.next_input(&clock) => match input {
                Ok(Some(input)) => Some(input),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            },
            () = sleep => None,
        };
        if let Some((arrived, input)) = input {
            driver.source.handle_input(arrived, input);
        }
        wakeup = driver.drain(clock.now());
    };
    // What is still held goes out at its time: never early (a sender report extrapolated from
    // a frame in the future breaks a browser's lip sync).
    result
}

/// Sleeps until `at`, or forever (a `select!` arm with nothing due).
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// One session's state between the source and its sinks.
struct SourceDriver<'a> {
    source: MediaSource,
    sinks: &'a SourceSinks,
    audio: AudioPath,
    echo: EchoStage,
    /// H.264 or H.265, as the source's video track reads it.
    video_codec: Codec,
    live: bool,
    next_stats: LocalInstant,
}

impl<'a> SourceDriver<'a> {
    fn new(source: MediaSource, sinks: &'a SourceSinks) -> Self {
        let video_codec = source
            .video_assembler()
            .map_or(Codec::H264, VideoTrack::codec);
        // Viewers negotiate the codec before the first frame comes.
        sinks.feed.set_video_codec(video_codec);
        SourceDriver {
            source,
            sinks,
            video_codec,
            audio: AudioPath::new(sinks.audio),
            echo: EchoStage::new(sinks.echo.clone()),
            live: false,
            next_stats: sinks.clock.now(),
        }
    }

    /// Drains the source; returns when to come back.
    fn drain(&mut self, now: LocalInstant) -> Option<LocalInstant> {
        let clock = self.sinks.clock;
        let next_wakeup = loop {
            match self.source.poll_output(now) {
                SourceEvent::Video {
                    out,
                    keyframe,
                    frame,
                } => {
                    self.went_live();
                    self.sinks.pacer.schedule(LiveFrame {
                        media: LiveMedia::Video {
                            codec: self.video_codec,
                            keyframe,
                        },
                        due: clock.instant(out),
                        pts: ticks(out, VIDEO_RATE_HZ),
                        data: Arc::from(frame),
                    });
                }
                SourceEvent::Audio {
                    out,
                    out_pts_48k,
                    rate_hz,
                    mut chunk,
                    ratio,
                } => {
                    self.went_live();
                    let delay_ns = self.source.playout_delay().as_nanos() as i64;
                    self.echo
                        .apply(out.as_nanos() - delay_ns, rate_hz, &mut chunk.0);
                    let input = AudioInput::Decoded {
                        rate_hz,
                        pcm: &chunk.0,
                        ratio,
                    };
                    self.audio.push(self.sinks, out, out_pts_48k, input);
                }
                SourceEvent::Conceal {
                    out,
                    out_pts_48k,
                    samples_48k,
                } => {
                    let input = AudioInput::Concealed {
                        samples: samples_48k,
                    };
                    self.audio.push(self.sinks, out, out_pts_48k, input);
                }
                SourceEvent::Drained { next_wakeup } => break next_wakeup,
            }
        };
        if now >= self.next_stats {
            self.next_stats = now.add_nanos(STATS_INTERVAL.as_nanos() as i64);
            let stats = self.source.stats();
            self.sinks.status.send_modify(|s| s.sync = Some(stats));
        }
        [next_wakeup, Some(self.next_stats)]
            .into_iter()
            .flatten()
            .min()
    }

    fn went_live(&mut self) {
        if !self.live {
            self.live = true;
            self.sinks.status.send_modify(|s| {
                s.state = CameraState::Live;
                s.error = None;
                s.sessions += 1;
            });
        }
    }
}

/// `at` in ticks of `rate` since the process origin: one outgoing media clock per track that
/// keeps counting up across sessions.
pub fn ticks(at: LocalInstant, rate: u32) -> i64 {
    (i128::from(at.as_nanos()) * i128::from(rate) / 1_000_000_000) as i64
}

/// The local instant of `pts` ticks of `rate` since the process origin.
pub fn from_ticks(pts: i64, rate: u32) -> LocalInstant {
    LocalInstant::from_nanos((i128::from(pts) * 1_000_000_000 / i128::from(rate)) as i64)
}

enum AudioInput<'a> {
    Decoded {
        rate_hz: u32,
        pcm: &'a [i16],
        ratio: f64,
    },
    /// `samples` at 48 kHz.
    Concealed { samples: u32 },
}

/// Audio for listeners: transcoded to Opus only while someone is subscribed.
struct AudioPath {
    enabled: bool,
    encoder: Option<LiveAudioEncoder>,
    /// This session's retimer epoch in 48 kHz ticks since the process origin.
    epoch: Option<i64>,
    packets: Vec<OpusPacket>,
    /// How long after its due instant an Opus packet is released. A packet can be encoded only
    /// once its whole frame of input has come, whenever the network brought it; released a
    /// steady lag after its due instant, packets leave evenly spaced (the pacer's precision)
    /// and their stamps (the sender reports' wallclock) do not move.
    release: ReleaseLag,
}

impl AudioPath {
    fn new(enabled: bool) -> Self {
        AudioPath {
            enabled,
            encoder: None,
            epoch: None,
            packets: Vec::new(),
            release: ReleaseLag::new(),
        }
    }

    /// The encoder, if audio is on and someone listens; dropped when no one does.
    fn encoder(&mut self, feed: &SourceFeed) -> Option<&mut LiveAudioEncoder> {
        if !self.enabled || feed.audio_subscribers() == 0 {
            self.encoder = None;
            return None;
        }
        if self.encoder.is_none() {
            match LiveAudioEncoder::new() {
                Ok(encoder) => self.encoder = Some(encoder),
                Err(e) => {
                    tracing::error!("audio encoder: {e}");
                    self.enabled = false;
                }
            }
        }
        self.encoder.as_mut()
    }

    /// Decoded or concealed audio at output position `out_pts_48k` (output instant `out`),
    /// encoded and scheduled for its output instant.
    fn push(
        &mut self,
        sinks: &SourceSinks,
        out: LocalInstant,
        out_pts_48k: i64,
        input: AudioInput<'_>,
    ) {
        let epoch = *self
            .epoch
            .get_or_insert_with(|| ticks(out, LIVE_RATE_HZ) - out_pts_48k);
        let mut packets = std::mem::take(&mut self.packets);
        if let Some(encoder) = self.encoder(&sinks.feed) {
            let encoded = match input {
                AudioInput::Decoded {
                    rate_hz,
                    pcm,
                    ratio,
                } => encoder.push_audio(out_pts_48k, rate_hz, pcm, ratio, &mut packets),
                AudioInput::Concealed { samples } => {
                    encoder.push_silence(out_pts_48k, samples, &mut packets)
                }
            };
            if let Err(e) = encoded {
                tracing::warn!("audio encode: {e}");
            }
        }
        let now = sinks.clock.now();
        for packet in packets.drain(..) {
            let pts = epoch + packet.pts;
            let due = from_ticks(pts, LIVE_RATE_HZ);
            let release = self.release.release_at(now, due);
            sinks.pacer.schedule_at(
                LiveFrame {
                    media: LiveMedia::Opus,
                    due: sinks.clock.instant(due),
                    pts,
                    data: Arc::from(packet.data),
                },
                sinks.clock.instant(release),
            );
        }
        self.packets = packets;
    }
}
