//! The speech waiting for the camera's speaker, in 20 ms frames at the speaker's rate. The
//! talker's packets arrive with network jitter and on the talker's clock; the speaker is fed one
//! frame per 20 ms of ours. A short backlog absorbs the jitter. A longer one (the backchannel
//! was still opening, the talker's clock runs fast) is worked off by dropping *quiet* frames —
//! the pauses between words — so latency comes back down without cutting speech; only a backlog
//! past `MAX_BACKLOG_FRAMES` drops speech, oldest first.

use std::collections::VecDeque;

/// Frames kept before quiet ones are dropped: 40 ms, two frames of jitter.
const TARGET_FRAMES: usize = 2;

/// Past this backlog (400 ms) the oldest frames go whatever they hold.
const MAX_BACKLOG_FRAMES: usize = 20;

/// A frame whose peak stays under this (−40 dBFS) is a pause.
const QUIET_PEAK: i16 = 328;

#[derive(Debug)]
pub struct SpeechQueue {
    frame_samples: usize,
    /// Samples not yet a whole frame.
    partial: Vec<i16>,
    frames: VecDeque<Vec<i16>>,
    /// Frames dropped to bring latency down (quiet ones, then any past the maximum).
    pub dropped_quiet: u64,
    pub dropped_speech: u64,
}

impl SpeechQueue {
    /// Frames of 20 ms at `rate_hz`.
    pub fn new(rate_hz: u32) -> Self {
        SpeechQueue {
            frame_samples: rate_hz as usize / 50,
            partial: Vec::new(),
            frames: VecDeque::new(),
            dropped_quiet: 0,
            dropped_speech: 0,
        }
    }

    /// Samples in 20 ms.
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Speech as decoded (any length).
    pub fn push(&mut self, samples: &[i16]) {
        self.partial.extend_from_slice(samples);
        while self.partial.len() >= self.frame_samples {
            let rest = self.partial.split_off(self.frame_samples);
            self.frames
                .push_back(std::mem::replace(&mut self.partial, rest));
        }
        self.work_off_backlog();
    }

    /// The next frame for the speaker, if one is waiting.
    pub fn pop(&mut self) -> Option<Vec<i16>> {
        self.frames.pop_front()
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Forgets what waits (the talker let go, the backchannel closed).
    pub fn clear(&mut self) {
        self.partial.clear();
        self.frames.clear();
    }

    fn work_off_backlog(&mut self) {
        // Pauses first, oldest first, down to the target.
        let mut k = 0;
        while self.frames.len() > TARGET_FRAMES && k < self.frames.len() {
            if is_quiet(&self.frames[k]) {
                self.frames.remove(k);
                self.dropped_quiet += 1;
            } else {
                k += 1;
            }
        }
        while self.frames.len() > MAX_BACKLOG_FRAMES {
            self.frames.pop_front();
            self.dropped_speech += 1;
        }
    }
}

fn is_quiet(frame: &[i16]) -> bool {
    frame
        .iter()
        .all(|s| s.unsigned_abs() < QUIET_PEAK.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(value: i16) -> Vec<i16> {
        vec![value; 160]
    }

    #[test]
    fn odd_sized_input_comes_out_in_20_ms_frames() {
        let mut q = SpeechQueue::new(8_000);
        q.push(&[1_000; 100]);
        assert!(q.pop().is_none());
        q.push(&[1_000; 100]);
        assert_eq!(q.pop().map(|f| f.len()), Some(160));
        assert!(q.pop().is_none());
        q.push(&[1_000; 120]);
        assert_eq!(q.pop().map(|f| f.len()), Some(160));
    }

    #[test]
    fn a_backlog_drops_pauses_and_keeps_every_word() {
        let mut q = SpeechQueue::new(8_000);
        // 300 ms waited while the backchannel opened: words and pauses.
        let spoken = [
            0, 0, 5_000, 5_001, 0, 5_002, 0, 0, 5_003, 5_004, 0, 0, 0, 5_005, 0,
        ];
        for &v in &spoken {
            q.push(&frame(v));
        }
        let mut out = Vec::new();
        while let Some(f) = q.pop() {
            out.push(f[0]);
        }
        // Every word, in order; the pauses before the last two frames dropped.
        let words: Vec<i16> = out.iter().copied().filter(|&v| v != 0).collect();
        assert_eq!(words, [5_000, 5_001, 5_002, 5_003, 5_004, 5_005]);
        assert!(out.len() <= 8, "{out:?}");
        assert_eq!(q.dropped_speech, 0);
        assert!(q.dropped_quiet >= 7);
    }

    #[test]
    fn two_frames_of_jitter_are_kept_even_when_quiet() {
        let mut q = SpeechQueue::new(8_000);
        q.push(&frame(0));
        q.push(&frame(0));
        assert_eq!(q.len(), 2);
        assert_eq!(q.dropped_quiet, 0);
    }

    #[test]
    fn continuous_speech_past_the_maximum_drops_the_oldest() {
        let mut q = SpeechQueue::new(8_000);
        for v in 1..=25 {
            q.push(&frame(1_000 + v));
        }
        assert_eq!(q.len(), MAX_BACKLOG_FRAMES);
        assert_eq!(q.dropped_speech, 5);
        assert_eq!(q.pop().map(|f| f[0]), Some(1_006));
    }
}
