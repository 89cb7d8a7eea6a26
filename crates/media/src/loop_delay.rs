//! How long a camera's speaker takes to reach its microphone: the delay at which the
//! microphone's onsets follow the speaker's, found by cross-correlating their onset envelopes
//! (the rise of the 10 ms log-loudness, both on one clock) over 0–2 s. Onsets, not loudness:
//! the camera's own steady sounds (a beep, noise) dominate a loudness envelope and hide the
//! echo's shape; syllable onsets stay sharp (measured on the simulator's 150 and 650 ms loops
//! with its beeps: loudness never correlated above 0.5, onsets 0.53–0.76 at the right lag).
//! AEC3's own delay estimator covers about 0–500 ms; a camera that buffers its backchannel
//! longer gets the reference lined up by this first.

/// Envelope frames kept (5 s of 10 ms: 3 s of capture against the render up to 2 s before).
const KEPT: usize = 500;
/// Lags searched (0–2 s of 10 ms).
const MAX_LAG: usize = 200;
/// A correlation this strong names the delay.
const CONFIDENT: f64 = 0.4;

#[derive(Debug)]
pub struct LoopDelay {
    /// Loudness per 10 ms frame, by frame number (time / 10 ms), in rings.
    render: Vec<f32>,
    capture: Vec<f32>,
    /// The newest capture frame recorded.
    newest: Option<i64>,
}

impl Default for LoopDelay {
    fn default() -> Self {
        LoopDelay {
            render: vec![0.0; KEPT],
            capture: vec![0.0; KEPT],
            newest: None,
        }
    }
}

impl LoopDelay {
    /// The speaker's loudness in frame `frame` (reference time / 10 ms).
    pub fn render(&mut self, frame: i64, loudness: f32) {
        self.render[slot(frame)] = loudness;
    }

    /// The microphone's loudness in frame `frame` (capture time / 10 ms).
    pub fn capture(&mut self, frame: i64, loudness: f32) {
        // Frames skipped (a gap) are silence, not what the ring held 4 s ago.
        if let Some(newest) = self.newest {
            for missing in (newest + 1).max(frame - KEPT as i64 + 1)..frame {
                self.capture[slot(missing)] = 0.0;
            }
        }
        self.capture[slot(frame)] = loudness;
        self.newest = Some(self.newest.map_or(frame, |n| n.max(frame)));
    }

    /// The delay (in 10 ms frames) at which the microphone follows the speaker best over the
    /// last 3 s of capture, when it does so clearly.
    pub fn estimate(&self) -> Option<usize> {
        let newest = self.newest?;
        let window = KEPT - MAX_LAG - 1;
        let first = newest - window as i64 + 1;
        let captured: Vec<f64> = (first..=newest).map(|f| onset(&self.capture, f)).collect();
        // The render's onsets once, from the oldest lag's start: each lag is a slice of them.
        let oldest = first - (MAX_LAG as i64 - 1);
        let rendered: Vec<f64> = (oldest..=newest).map(|f| onset(&self.render, f)).collect();
        let (mut best, mut best_lag) = (CONFIDENT, None);
        for lag in 0..MAX_LAG {
            let start = MAX_LAG - 1 - lag;
            if let Some(r) = correlation(&captured, &rendered[start..start + window]) {
                if r > best {
                    best = r;
                    best_lag = Some(lag);
                }
            }
        }
        best_lag
    }
}

/// How much louder frame `f` is than the one before (log scale; falls count as nothing).
fn onset(loudness: &[f32], f: i64) -> f64 {
    let level = |f: i64| (f64::from(loudness[slot(f)]) + ONSET_FLOOR).ln();
    (level(f) - level(f - 1)).max(0.0)
}

/// Added to loudness before the log, so that silence and the codec's noise make no onsets.
const ONSET_FLOOR: f64 = 30.0;

fn slot(frame: i64) -> usize {
    frame.rem_euclid(KEPT as i64) as usize
}

/// Pearson correlation; `None` when either side is flat.
fn correlation(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        ab += dx * dy;
        aa += dx * dx;
        bb += dy * dy;
    }
    (aa > 1e-12 && bb > 1e-12).then(|| ab / (aa * bb).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Syllables of random length and loudness: no period for the correlation to alias on.
    fn envelope(frames: usize, seed: &mut u64) -> Vec<f32> {
        let mut out = Vec::with_capacity(frames);
        while out.len() < frames {
            *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let length = 5 + (*seed >> 60) as usize;
            let loud = if (*seed >> 40) & 1 == 1 {
                ((*seed >> 41) & 0xff) as f32
            } else {
                0.0
            };
            out.extend(std::iter::repeat_n(loud, length));
        }
        out.truncate(frames);
        out
    }

    #[test]
    fn finds_an_echo_650_ms_late_with_the_camera_talking_too() {
        let mut delay = LoopDelay::default();
        let mut seed = 3;
        let spoken = envelope(600, &mut seed);
        let near = envelope(600, &mut seed);
        for f in 0..600 {
            delay.render(f as i64, spoken[f]);
            let echo = if f >= 65 { spoken[f - 65] * 0.5 } else { 0.0 };
            delay.capture(f as i64, echo + near[f] * 0.3);
        }
        assert_eq!(delay.estimate(), Some(65));
    }

    #[test]
    fn no_echo_no_estimate() {
        let mut delay = LoopDelay::default();
        let mut seed = 5;
        let spoken = envelope(600, &mut seed);
        let near = envelope(600, &mut seed);
        for f in 0..600 {
            delay.render(f as i64, spoken[f]);
            delay.capture(f as i64, near[f]);
        }
        assert_eq!(delay.estimate(), None);
    }
}
