//! A camera's microphone while someone talks through its speaker: the speaker's echo cancelled
//! (`echo = "aec"`), or the microphone muted while it plays (`"half-duplex"`), before the audio
//! is encoded for viewers and recordings. Only around talk: a minute after the speaker last
//! played, the canceller is dropped and the microphone passes untouched.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use lockstep_media::{EchoCanceller, EchoReference};

use crate::config::EchoMode;

/// The canceller is kept this long after the speaker last played (a conversation's pauses keep
/// what it learnt of the room), then dropped.
const ACTIVE_AFTER_TALK_NS: i64 = 60_000_000_000;

/// Half-duplex mutes this long after the speaker last played: the echo's way back (network,
/// the camera's buffers, the room) is rarely longer.
const HALF_DUPLEX_TAIL_NS: i64 = 1_000_000_000;

/// What a camera's talk path shares with its audio sessions.
#[derive(Debug, Clone)]
pub struct EchoPath {
    pub mode: EchoMode,
    pub reference: Arc<EchoReference>,
    /// The speaker → microphone delay the canceller measured (ms; −1 until it has).
    pub loop_ms: Arc<AtomicI64>,
    /// How much echo AEC3 says it takes out (tenths of a dB; −1 until it says).
    pub erle_tenths_db: Arc<AtomicI64>,
    /// Microphone samples heard while the speaker played (and a second after), and those of
    /// them that still carried sound after the echo stage (over −40 dBFS per 10 ms): the
    /// camera's side talking over the owner — or echo left.
    pub samples_while_speaking: Arc<AtomicU64>,
    pub samples_double_talk: Arc<AtomicU64>,
}

impl EchoPath {
    pub fn new(mode: EchoMode, reference: Arc<EchoReference>) -> Self {
        EchoPath {
            mode,
            reference,
            loop_ms: Arc::new(AtomicI64::new(-1)),
            erle_tenths_db: Arc::new(AtomicI64::new(-1)),
            samples_while_speaking: Arc::new(AtomicU64::new(0)),
            samples_double_talk: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The share of the microphone, while the speaker played, that still carried sound after
    /// the echo stage; `None` before the speaker played.
    pub fn double_talk_share(&self) -> Option<f64> {
        let all = self.samples_while_speaking.load(Ordering::Relaxed);
        let double = self.samples_double_talk.load(Ordering::Relaxed);
        (all > 0).then(|| double as f64 / all as f64)
    }

    /// What AEC3 says it takes out, in dB.
    pub fn erle_db(&self) -> Option<f64> {
        let tenths = self.erle_tenths_db.load(Ordering::Relaxed);
        (tenths >= 0).then(|| tenths as f64 / 10.0)
    }

    /// The measured loop, if any.
    pub fn loop_ms(&self) -> Option<i64> {
        Some(self.loop_ms.load(Ordering::Relaxed)).filter(|&ms| ms >= 0)
    }
}

/// The microphone's timeline is re-anchored when its sample count strays this far from the
/// synchronized timeline (a gap, a clock step).
const REANCHOR_NS: i64 = 40_000_000;

#[derive(Debug)]
pub struct EchoStage {
    path: Option<EchoPath>,
    /// The canceller and the microphone rate it was made for.
    canceller: Option<(u32, EchoCanceller)>,
    /// The microphone's own timeline: the capture instant of the next sample, counted from an
    /// anchor at the microphone's rate. The synchronized timeline moves a little with the
    /// playout delay (it adapts to jitter); an echo canceller wants the samples' own steady
    /// spacing, so it gets the count, re-anchored only on a real gap.
    next_sample_ns: Option<i64>,
}

impl EchoStage {
    pub fn new(path: Option<EchoPath>) -> Self {
        EchoStage {
            path,
            canceller: None,
            next_sample_ns: None,
        }
    }

    /// `pcm` at `rate_hz`, its first sample captured at `captured_ns` (the clock the talk path
    /// stamps the reference with), as viewers should hear it.
    pub fn apply(&mut self, captured_ns: i64, rate_hz: u32, pcm: &mut [i16]) {
        let Some(path) = &self.path else {
            return;
        };
        let captured_ns = match self.next_sample_ns {
            Some(counted) if (counted - captured_ns).abs() <= REANCHOR_NS => counted,
            _ => captured_ns,
        };
        self.next_sample_ns =
            Some(captured_ns + pcm.len() as i64 * 1_000_000_000 / i64::from(rate_hz.max(1)));
        let last_played = path.reference.last_end_ns();
        if last_played.is_none_or(|end| end < captured_ns - ACTIVE_AFTER_TALK_NS) {
            self.canceller = None;
            return;
        }
        let speaking = last_played.is_some_and(|end| end >= captured_ns - HALF_DUPLEX_TAIL_NS);
        let mute = |pcm: &mut [i16]| {
            if speaking {
                pcm.fill(0);
            }
        };
        match path.mode {
            EchoMode::Off => {}
            EchoMode::HalfDuplex => mute(pcm),
            EchoMode::Aec => {
                if self
                    .canceller
                    .as_ref()
                    .is_none_or(|(rate, _)| *rate != rate_hz)
                {
                    // The loop measured in an earlier talk: lined up from the first frame.
                    let canceller = EchoCanceller::new(rate_hz, path.reference.rate_hz())
                        .remembering(path.loop_ms().map(|ms| ms * 1_000_000));
                    self.canceller = Some((rate_hz, canceller));
                }
                match self.canceller.as_mut() {
                    Some((_, canceller)) if canceller.fits(pcm.len()) => {
                        canceller.process(captured_ns, pcm, &path.reference);
                        if let Some(loop_ns) = canceller.loop_ns() {
                            path.loop_ms.store(loop_ns / 1_000_000, Ordering::Relaxed);
                        }
                        if let Some(erle_db) = canceller.erle_db() {
                            path.erle_tenths_db
                                .store((erle_db.max(0.0) * 10.0) as i64, Ordering::Relaxed);
                        }
                    }
                    // A chunk the canceller cannot take whole (AAC's 1024 samples): muted
                    // while the speaker plays rather than passed with its echo.
                    _ => mute(pcm),
                }
            }
        }
        if speaking {
            count_double_talk(path, rate_hz, pcm);
        }
    }
}

/// Sound over this (−40 dBFS RMS per 10 ms) after the echo stage counts as the camera's side.
const DOUBLE_TALK_RMS: f64 = 328.0;

fn count_double_talk(path: &EchoPath, rate_hz: u32, pcm: &[i16]) {
    let frame = (rate_hz / 100).max(1) as usize;
    let loud: usize = pcm
        .chunks(frame)
        .filter(|f| {
            let power = f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / f.len() as f64;
            power.sqrt() > DOUBLE_TALK_RMS
        })
        .map(<[i16]>::len)
        .sum();
    path.samples_while_speaking
        .fetch_add(pcm.len() as u64, Ordering::Relaxed);
    path.samples_double_talk
        .fetch_add(loud as u64, Ordering::Relaxed);
}
