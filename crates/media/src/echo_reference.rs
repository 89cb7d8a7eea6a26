//! What a camera's speaker was sent, with when: the echo canceller's reference. The talk path
//! writes each 20 ms frame as it sends it (just before G.711 encoding); the camera's audio
//! sessions (main stream, substream) read any span of it by time. A few seconds are kept.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

/// Seconds of reference kept (the longest echo path lined up, with room).
const KEEP_NS: i64 = 4_000_000_000;

#[derive(Debug)]
struct Frame {
    start_ns: i64,
    samples: Vec<i16>,
}

#[derive(Debug)]
pub struct EchoReference {
    rate_hz: u32,
    frames: Mutex<VecDeque<Frame>>,
}

impl EchoReference {
    pub fn new(rate_hz: u32) -> Self {
        EchoReference {
            rate_hz,
            frames: Mutex::new(VecDeque::new()),
        }
    }

    pub fn rate_hz(&self) -> u32 {
        self.rate_hz
    }

    /// `samples` sent to the speaker, the first at `start_ns` (the caller's clock).
    pub fn push(&self, start_ns: i64, samples: &[i16]) {
        let mut frames = self.lock();
        frames.push_back(Frame {
            start_ns,
            samples: samples.to_vec(),
        });
        while frames
            .front()
            .is_some_and(|f| f.start_ns < start_ns - KEEP_NS)
        {
            frames.pop_front();
        }
    }

    /// When the last frame sent ends, if any was.
    pub fn last_end_ns(&self) -> Option<i64> {
        self.lock()
            .back()
            .map(|f| f.start_ns + self.duration_ns(f.samples.len()))
    }

    /// What the speaker was sent from `from_ns` on, one sample per `out` slot; silence where
    /// nothing was (before, between and after talkspurts).
    pub fn fill(&self, from_ns: i64, out: &mut [i16]) {
        out.fill(0);
        let frames = self.lock();
        let span_end = from_ns + self.duration_ns(out.len());
        // Frames are in time order: the first that may overlap, then forward.
        let first =
            frames.partition_point(|f| f.start_ns + self.duration_ns(f.samples.len()) <= from_ns);
        for frame in frames.iter().skip(first) {
            if frame.start_ns >= span_end {
                break;
            }
            for (k, slot) in out.iter_mut().enumerate() {
                let t = from_ns + self.duration_ns(k);
                let offset = (t - frame.start_ns) * i64::from(self.rate_hz) / 1_000_000_000;
                if let Some(&s) = usize::try_from(offset)
                    .ok()
                    .and_then(|o| frame.samples.get(o))
                {
                    *slot = s;
                }
            }
        }
    }

    fn duration_ns(&self, samples: usize) -> i64 {
        samples as i64 * 1_000_000_000 / i64::from(self.rate_hz.max(1))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Frame>> {
        self.frames.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn a_span_reads_what_was_sent_then_and_silence_around_it() {
        let r = EchoReference::new(8_000);
        r.push(1_000 * MS, &(0..160).collect::<Vec<i16>>());
        r.push(1_020 * MS, &(160..320).collect::<Vec<i16>>());
        // 10 ms straddling the two frames.
        let mut out = vec![0; 80];
        r.fill(1_015 * MS, &mut out);
        assert_eq!(out[0], 120);
        assert_eq!(out[79], 199);
        // Before the talkspurt, half of it, and after.
        r.fill(995 * MS, &mut out);
        assert_eq!(&out[..40], &[0; 40][..]);
        assert_eq!(out[40], 0);
        assert_eq!(out[41], 1);
        r.fill(1_035 * MS, &mut out);
        assert_eq!(out[39], 319);
        assert_eq!(&out[40..], &[0; 40][..]);
        assert_eq!(r.last_end_ns(), Some(1_040 * MS));
    }

    #[test]
    fn old_frames_are_let_go() {
        let r = EchoReference::new(8_000);
        r.push(0, &[1; 160]);
        r.push(5_000 * MS, &[2; 160]);
        let mut out = vec![0; 80];
        r.fill(0, &mut out);
        assert_eq!(out, vec![0; 80]);
    }
}
