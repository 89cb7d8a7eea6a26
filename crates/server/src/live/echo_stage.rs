//! A camera's microphone while someone talks through its speaker: the speaker's echo cancelled
//! (`echo = "aec"`), or the microphone muted while it plays (`"half-duplex"`), before the audio
//! is encoded for viewers and recordings. Only around talk: a minute after the speaker last
//! played, the canceller is dropped and the microphone passes untouched.

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
}

#[derive(Debug)]
pub struct EchoStage {
    path: Option<EchoPath>,
    /// The canceller and the microphone rate it was made for.
    canceller: Option<(u32, EchoCanceller)>,
}

impl EchoStage {
    pub fn new(path: Option<EchoPath>) -> Self {
        EchoStage {
            path,
            canceller: None,
        }
    }

    /// `pcm` at `rate_hz`, its first sample captured at `captured_ns` (the clock the talk path
    /// stamps the reference with), as viewers should hear it.
    pub fn apply(&mut self, captured_ns: i64, rate_hz: u32, pcm: &mut [i16]) {
        let Some(path) = &self.path else {
            return;
        };
        let last_played = path.reference.last_end_ns();
        if last_played.is_none_or(|end| end < captured_ns - ACTIVE_AFTER_TALK_NS) {
            self.canceller = None;
            return;
        }
        let mute = |pcm: &mut [i16]| {
            if last_played.is_some_and(|end| end >= captured_ns - HALF_DUPLEX_TAIL_NS) {
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
                    let canceller = EchoCanceller::new(rate_hz, path.reference.rate_hz());
                    self.canceller = Some((rate_hz, canceller));
                }
                match self.canceller.as_mut() {
                    Some((_, canceller)) if canceller.fits(pcm.len()) => {
                        canceller.process(captured_ns, pcm, &path.reference);
                    }
                    // A chunk the canceller cannot take whole (AAC's 1024 samples): muted
                    // while the speaker plays rather than passed with its echo.
                    _ => mute(pcm),
                }
            }
        }
    }
}
