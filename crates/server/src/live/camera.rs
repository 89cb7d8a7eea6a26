//! One camera's task: RTSP ingest through the sync core, reconnect with backoff, and publish
//! what comes out (H.264 passthrough, audio transcoded to 48 kHz Opus) to the camera's feed.
//! Its state is published on a watch channel that the API reads; nothing else shares it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep_media::{LiveAudioEncoder, LiveFrame, LiveMedia, SourceFeed, LIVE_RATE_HZ};
use lockstep_rtsp::ingest::{
    self, IngestError, IngestOptions, IngestOutput, LocalClock, SyncStats,
};
use lockstep_sync::{LatencyProfile, LocalInstant};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::backoff::Backoff;

/// A session that stayed live this long resets the reconnect backoff.
const STABLE_SESSION: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraState {
    /// A push source with no producer connected.
    Waiting,
    Connecting,
    Live,
    Reconnecting,
    Error,
}

/// What the API shows of a camera.
#[derive(Debug, Clone)]
pub struct CameraStatus {
    pub state: CameraState,
    /// Why the camera is not live (no credentials in it).
    pub error: Option<String>,
    pub video_codec: Option<&'static str>,
    pub audio_codec: Option<String>,
    pub sessions: u64,
    pub sync: Option<SyncStats>,
}

#[derive(Debug, Clone)]
pub struct CameraSettings {
    pub name: String,
    /// `"camera"` (RTSP) or `"push"` (a producer pushes to it).
    pub kind: &'static str,
    /// The URL with credentials, for the RTSP client only.
    pub url: String,
    /// The URL as shown (credentials redacted).
    pub shown_url: String,
    /// Live audio to viewers.
    pub audio: bool,
    /// Audio into recordings.
    pub record_audio: bool,
    pub profile: LatencyProfile,
    pub sync_offset_ms: i64,
}

/// A camera as the rest of the server sees it.
#[derive(Debug, Clone)]
pub struct CameraHandle {
    pub settings: Arc<CameraSettings>,
    pub feed: Arc<SourceFeed>,
    pub status: watch::Receiver<CameraStatus>,
}

/// Starts the camera's task.
pub fn spawn_camera(settings: CameraSettings, clock: LocalClock) -> CameraHandle {
    let settings = Arc::new(settings);
    let feed = Arc::new(SourceFeed::new());
    let (status_tx, status) = watch::channel(CameraStatus {
        state: CameraState::Connecting,
        error: None,
        video_codec: None,
        audio_codec: None,
        sessions: 0,
        sync: None,
    });
    tokio::spawn(run_camera(settings.clone(), feed.clone(), status_tx, clock));
    CameraHandle {
        settings,
        feed,
        status,
    }
}

async fn run_camera(
    settings: Arc<CameraSettings>,
    feed: Arc<SourceFeed>,
    status: watch::Sender<CameraStatus>,
    clock: LocalClock,
) {
    let seed = settings
        .name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
        ^ clock.now().as_nanos() as u64;
    let mut backoff = Backoff::new(seed);
    let options = IngestOptions {
        profile: settings.profile,
        audio_trim_nanos: settings.sync_offset_ms * 1_000_000,
    };
    loop {
        let started = Instant::now();
        let (tx, rx) = mpsc::channel(256);
        let ingest = ingest::run(&settings.url, options, clock, tx);
        let publish = publish(rx, &settings, &feed, &status, clock);
        let (result, ()) = tokio::join!(ingest, publish);
        feed.clear_cache();
        let (state, reason) = match result {
            // The receiver only goes away at shutdown.
            Ok(()) => return,
            Err(e @ IngestError::Setup { .. }) => (CameraState::Error, e.to_string()),
            Err(e) => (CameraState::Reconnecting, e.to_string()),
        };
        tracing::warn!(camera = %settings.name, "{reason}");
        if started.elapsed() >= STABLE_SESSION {
            backoff.reset();
        }
        status.send_modify(|s| {
            s.state = state;
            s.error = Some(reason);
            s.sync = None;
        });
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Turns one session's ingest output into feed frames until the session ends.
async fn publish(
    mut rx: mpsc::Receiver<IngestOutput>,
    settings: &CameraSettings,
    feed: &SourceFeed,
    status: &watch::Sender<CameraStatus>,
    clock: LocalClock,
) {
    let mut audio = AudioPath::new(settings.audio || settings.record_audio);
    let mut live = false;
    loop {
        // Audio is encoded as soon as it is decoded, ahead of its output time by the playout
        // delay; it is published when due. (A WebRTC sender report is extrapolated from the last
        // frame written, which must not lie in the future: str0m reports RTP time 0 then, and a
        // browser's lip sync goes seconds off.)
        let due = audio.held.front().map(|f| f.wallclock);
        let output = tokio::select! {
            output = rx.recv() => match output {
                Some(output) => Some(output),
                None => break,
            },
            () = sleep_until(due) => None,
        };
        let now = Instant::now();
        while audio.held.front().is_some_and(|f| f.wallclock <= now) {
            if let Some(frame) = audio.held.pop_front() {
                feed.publish(frame);
            }
        }
        let Some(output) = output else { continue };
        match output {
            IngestOutput::Video {
                out,
                keyframe,
                annex_b,
            } => {
                if !live {
                    live = true;
                    status.send_modify(|s| {
                        s.state = CameraState::Live;
                        s.error = None;
                        s.sessions += 1;
                    });
                }
                feed.publish(LiveFrame {
                    media: LiveMedia::H264 { keyframe },
                    wallclock: clock.instant(out),
                    pts: ticks(out, 90_000),
                    data: Arc::from(annex_b),
                });
            }
            IngestOutput::Audio {
                out,
                out_pts,
                rate_hz,
                pcm,
                ratio,
            } => {
                let input = AudioInput::Decoded {
                    rate_hz,
                    pcm: &pcm,
                    ratio,
                };
                audio.push(feed, clock, out, out_pts, input);
            }
            IngestOutput::Conceal {
                out,
                out_pts,
                samples,
            } => audio.push(feed, clock, out, out_pts, AudioInput::Concealed { samples }),
            IngestOutput::Stats(stats) => status.send_modify(|s| {
                s.video_codec = Some(stats.video_codec);
                s.audio_codec = stats.audio_codec.clone();
                s.sync = Some(stats);
            }),
        }
    }
}

/// Sleeps until `at`, or forever (a `select!` arm with nothing due).
pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// `at` in ticks of `rate` since the process origin: one outgoing media clock per track that
/// keeps counting up across camera sessions.
pub(super) fn ticks(at: LocalInstant, rate: u32) -> i64 {
    (i128::from(at.as_nanos()) * i128::from(rate) / 1_000_000_000) as i64
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

/// Audio for listeners: transcoded only while someone is subscribed.
struct AudioPath {
    enabled: bool,
    encoder: Option<LiveAudioEncoder>,
    /// This session's retimer epoch in 48 kHz ticks since the process origin.
    epoch: Option<i64>,
    packets: Vec<lockstep_media::OpusPacket>,
    /// Encoded frames waiting for their output time.
    held: std::collections::VecDeque<LiveFrame>,
}

impl AudioPath {
    fn new(enabled: bool) -> Self {
        AudioPath {
            enabled,
            encoder: None,
            epoch: None,
            packets: Vec::new(),
            held: std::collections::VecDeque::new(),
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

    /// Decoded or concealed audio at output position `out_pts` (output instant `out`).
    fn push(
        &mut self,
        feed: &SourceFeed,
        clock: LocalClock,
        out: LocalInstant,
        out_pts: i64,
        input: AudioInput<'_>,
    ) {
        let epoch = *self
            .epoch
            .get_or_insert_with(|| ticks(out, LIVE_RATE_HZ) - out_pts);
        let mut packets = std::mem::take(&mut self.packets);
        if let Some(encoder) = self.encoder(feed) {
            let encoded = match input {
                AudioInput::Decoded {
                    rate_hz,
                    pcm,
                    ratio,
                } => encoder.push_audio(out_pts, rate_hz, pcm, ratio, &mut packets),
                AudioInput::Concealed { samples } => {
                    encoder.push_silence(out_pts, samples, &mut packets)
                }
            };
            if let Err(e) = encoded {
                tracing::warn!("audio encode: {e}");
            }
        }
        self.hold_opus(clock, epoch, &mut packets);
        self.packets = packets;
    }

    /// Stamps encoded packets on the output timeline and queues them until due.
    fn hold_opus(
        &mut self,
        clock: LocalClock,
        epoch: i64,
        packets: &mut Vec<lockstep_media::OpusPacket>,
    ) {
        for packet in packets.drain(..) {
            let pts = epoch + packet.pts;
            let at = LocalInstant::from_nanos(
                (i128::from(pts) * 1_000_000_000 / i128::from(LIVE_RATE_HZ)) as i64,
            );
            self.held.push_back(LiveFrame {
                media: LiveMedia::Opus,
                wallclock: clock.instant(at),
                pts,
                data: Arc::from(packet.data),
            });
        }
    }
}
