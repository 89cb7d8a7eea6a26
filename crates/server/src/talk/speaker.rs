//! A camera's speaker, as talk drives it: one task per camera that can talk. Speech arrives as
//! the talker's Opus packets; it is decoded at the speaker's rate (libopus decodes to 8 kHz
//! itself: no resampler in the path), queued (`SpeechQueue`), and sent as one 20 ms G.711
//! packet per 20 ms of our clock to the camera's speaker: its ONVIF backchannel or its ISAPI
//! two-way audio ([`SpeakerPath`]).
//!
//! The backchannel is opened by a press (or the first speech) and closed `talk_hold_secs` after
//! the last speech — never held open — so a press soon after a release finds it open, and a
//! doorbell's button and the camera's other apps are free again seconds after the talker stops. Speech that
//! arrives while it opens waits in the queue; the queue then works the wait off by dropping
//! pauses, not words.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lockstep_media::speaker_encoding::SpeakerEncoder;
use lockstep_media::EchoReference;
use lockstep_opus::OpusDecoder;
use lockstep_rtsp::auth::Credentials;
use lockstep_rtsp::backchannel::BackchannelCodec;
use lockstep_rtsp::ingest::LocalClock;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::speaker_path::{SpeakerError, SpeakerPath, Vendor};
use super::speech_queue::SpeechQueue;
use super::TalkStatus;

/// The speaker's rate: G.711's.
pub const SPEAKER_RATE_HZ: u32 = 8_000;

/// One packet per this much audio.
const FRAME: Duration = Duration::from_millis(20);

/// A talker whose speech stopped coming less than this ago is still talking: a frame that is
/// late then is covered with silence, so the camera hears a steady stream.
const STILL_TALKING: Duration = Duration::from_millis(200);

/// After a backchannel failed to open, speech waits this long before the next try (and is
/// dropped meanwhile): a camera that refuses is not asked 50 times a second.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Packets of speech waiting for the task (a second); beyond, the newest are dropped.
const SPEECH_QUEUE: usize = 50;

/// What the speaker task is told.
#[derive(Debug)]
pub enum ToSpeaker {
    /// Someone took the floor: open the backchannel now, not at their first packet.
    Press,
    Speech(Speech),
}

/// One Opus packet of the floor holder's speech.
#[derive(Debug)]
pub struct Speech {
    /// The talk session it came from (the decoder starts afresh when the talker changes).
    pub talker: Arc<str>,
    pub opus: Arc<[u8]>,
}

/// Where the speaker is.
#[derive(Debug, Clone)]
pub struct SpeakerTarget {
    /// The camera's stream URL (credentials apart).
    pub url: url::Url,
    pub vendor: Vendor,
    pub credentials: Option<Credentials>,
    /// How long the backchannel stays open after the last speech.
    pub hold: Duration,
    /// Where what the speaker is sent goes, stamped on the clock with the instant its RTP time
    /// stands for: the echo canceller's reference.
    pub played: Option<(Arc<EchoReference>, LocalClock)>,
}

/// Starts the camera's speaker task; presses and speech go in through the returned sender.
pub fn spawn(target: SpeakerTarget, status: Arc<Mutex<TalkStatus>>) -> mpsc::Sender<ToSpeaker> {
    let (speech, incoming) = mpsc::channel(SPEECH_QUEUE);
    tokio::spawn(run(target, status, incoming));
    speech
}

async fn run(
    target: SpeakerTarget,
    status: Arc<Mutex<TalkStatus>>,
    mut incoming: mpsc::Receiver<ToSpeaker>,
) {
    let mut speaker = Speaker {
        target,
        status,
        queue: SpeechQueue::new(SPEAKER_RATE_HZ),
        decoder: None,
        backchannel: None,
        encoder: None,
        opening: None,
        opening_since: Instant::now(),
        open_since: Instant::now(),
        retry_at: None,
        last_speech: None,
        next_frame: Instant::now(),
    };
    loop {
        let ticking = speaker.backchannel.is_some();
        tokio::select! {
            told = incoming.recv() => match told {
                Some(ToSpeaker::Press) => speaker.press(),
                Some(ToSpeaker::Speech(speech)) => speaker.hear(&speech),
                None => break,
            },
            opened = wait_opening(&mut speaker.opening) => speaker.opened(opened),
            () = tokio::time::sleep_until(speaker.next_frame), if ticking => speaker.tick(),
        }
    }
    speaker.close();
}

/// The open attempt's outcome; pending forever when none runs.
async fn wait_opening(opening: &mut Option<JoinHandle<Opened>>) -> Opened {
    let Some(handle) = opening.as_mut() else {
        return std::future::pending().await;
    };
    let result = handle.await;
    *opening = None;
    result.unwrap_or_else(|e| {
        Err(SpeakerError::Failed(format!(
            "the opening task failed: {e}"
        )))
    })
}

type Opened = Result<Box<dyn SpeakerPath>, SpeakerError>;

struct Speaker {
    target: SpeakerTarget,
    status: Arc<Mutex<TalkStatus>>,
    queue: SpeechQueue,
    /// The current talker's decoder.
    decoder: Option<(Arc<str>, OpusDecoder)>,
    backchannel: Option<Box<dyn SpeakerPath>>,
    /// The open path's encoder (G.726's state lives as long as the session).
    encoder: Option<SpeakerEncoder>,
    opening: Option<JoinHandle<Opened>>,
    /// When the current (or last) opening began, and when the path was ready.
    opening_since: Instant,
    open_since: Instant,
    retry_at: Option<Instant>,
    last_speech: Option<Instant>,
    /// When the next packet is due (while open).
    next_frame: Instant,
}

impl Speaker {
    /// Speech: queued, and the backchannel kept open (or opened) as a press does.
    fn hear(&mut self, speech: &Speech) {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let pcm = match self.decode(speech) {
            Ok(pcm) => pcm,
            Err(e) => {
                tracing::debug!("talk: {e}");
                return;
            }
        };
        self.queue.push(&pcm);
        self.press();
    }

    /// A press: the backchannel opens while the talker's first packets are on their way, and
    /// the hold runs from now (a press with no speech closes it a hold later).
    fn press(&mut self) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|at| now < at) {
            return;
        }
        self.last_speech = Some(now);
        self.open();
    }

    fn open(&mut self) {
        if self.backchannel.is_none() && self.opening.is_none() {
            self.retry_at = None;
            let target = self.target.clone();
            self.opening_since = Instant::now();
            self.opening = Some(tokio::spawn(async move {
                target.vendor.open(&target.url, target.credentials).await
            }));
        }
    }

    fn decode(&mut self, speech: &Speech) -> Result<Vec<i16>, String> {
        let fresh = !matches!(&self.decoder, Some((talker, _)) if *talker == speech.talker);
        if fresh {
            let decoder = OpusDecoder::new(SPEAKER_RATE_HZ, 1)
                .map_err(|e| format!("cannot make an Opus decoder: {e}"))?;
            self.decoder = Some((speech.talker.clone(), decoder));
        }
        let Some((_, decoder)) = self.decoder.as_mut() else {
            return Err("no decoder".into());
        };
        decoder
            .decode(Some(&speech.opus))
            .map_err(|e| format!("a talker's Opus packet does not decode: {e}"))
    }

    fn opened(&mut self, opened: Opened) {
        match opened {
            Ok(backchannel) => {
                self.open_since = Instant::now();
                let opening_ms = (self.open_since - self.opening_since).as_millis() as u64;
                let codec = backchannel.codec().clone();
                tracing::info!("talk: backchannel open ({})", codec_name(&codec));
                self.update(|s| {
                    s.available = Some(true);
                    s.codec = Some(codec_name(&codec));
                    s.reason = None;
                    s.open = true;
                    s.opens += 1;
                    s.last_open_ms = Some(opening_ms);
                });
                self.encoder = Some(codec.encoding.encoder());
                self.backchannel = Some(backchannel);
                self.next_frame = Instant::now();
            }
            Err(e) => {
                tracing::warn!("talk: the backchannel did not open: {e}");
                self.queue.clear();
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
                // A camera that answered "no backchannel" (or one in a codec we do not write)
                // cannot talk; any other failure may pass.
                let definitive = e.is_definitive();
                self.update(|s| {
                    if definitive {
                        s.available = Some(false);
                    }
                    s.reason = Some(e.to_string());
                });
            }
        }
    }

    /// One frame to the speaker: speech, silence over a late packet, or nothing once the
    /// talker stopped — and the backchannel closed once the hold is over.
    fn tick(&mut self) {
        let now = Instant::now();
        let frame_samples = self.queue.frame_samples();
        let frame = match self.queue.pop() {
            Some(frame) => Some(frame),
            None if self.last_speech.is_some_and(|t| now - t < STILL_TALKING) => {
                Some(vec![0; frame_samples])
            }
            None => None,
        };
        // A tick that came late (the runtime was busy) is not made up: the clock restarts.
        self.next_frame = (self.next_frame + FRAME).max(now);
        if let Some(frame) = frame {
            let (Some(backchannel), Some(encoder)) =
                (self.backchannel.as_mut(), self.encoder.as_mut())
            else {
                return;
            };
            let mut payload = Vec::with_capacity(frame.len());
            encoder.encode(&frame, &mut payload);
            let Ok(plays_from) = backchannel.send(&payload, frame.len() as u32) else {
                self.lost();
                return;
            };
            // The reference on the RTP timeline the camera plays by (not the jittery send
            // instant: the canceller lines the echo up sample by sample).
            if let Some((reference, clock)) = &self.target.played {
                reference.push(clock.local(plays_from).as_nanos(), &frame);
            }
            let (quiet, speech) = (self.queue.dropped_quiet, self.queue.dropped_speech);
            self.update(|s| {
                s.frames_sent += 1;
                s.dropped_quiet_frames = quiet;
                s.dropped_speech_frames = speech;
            });
        }
        let held = self.last_speech.is_some_and(|t| now - t < self.target.hold);
        if !held && self.queue.is_empty() {
            self.close();
        }
    }

    /// The camera ended the session mid-talk: counted and said, and reopened at once — the
    /// talker is mid-sentence — unless the session was younger than the retry wait (a camera
    /// that drops every session is not asked again and again).
    fn lost(&mut self) {
        if let Some(backchannel) = self.backchannel.take() {
            self.count_open_time();
            self.update(|s| {
                s.open = false;
                s.drops += 1;
                s.reason = Some("the camera ended the backchannel mid-talk".into());
            });
            tokio::spawn(async move {
                if let Err(e) = backchannel.close().await {
                    tracing::warn!("talk: the backchannel ended: {e}");
                }
            });
        }
        if self.open_since.elapsed() >= RETRY_AFTER {
            // What is queued waits for the new session (the queue works a backlog off).
            self.open();
        } else {
            self.queue.clear();
            self.retry_at = Some(Instant::now() + RETRY_AFTER);
        }
    }

    /// TEARDOWN, in the background (it may take the camera a moment).
    fn close(&mut self) {
        if let Some(backchannel) = self.backchannel.take() {
            tracing::info!("talk: closing the backchannel");
            self.count_open_time();
            self.update(|s| s.open = false);
            tokio::spawn(async move {
                if let Err(e) = backchannel.close().await {
                    tracing::debug!("talk: closing the backchannel: {e}");
                }
            });
        }
        if let Some(opening) = self.opening.take() {
            opening.abort();
        }
        self.queue.clear();
        self.decoder = None;
    }

    fn count_open_time(&self) {
        let held = self.open_since.elapsed().as_secs_f64();
        self.update(|s| s.open_secs += held);
    }

    fn update(&self, change: impl FnOnce(&mut TalkStatus)) {
        change(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// `pcmu/8000`.
pub fn codec_name(codec: &BackchannelCodec) -> String {
    format!("{}/{}", codec.encoding.name(), codec.clock_rate_hz)
}
