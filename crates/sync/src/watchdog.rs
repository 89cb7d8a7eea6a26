//! The watchdog measures what actually leaves: how far audio and video land from their targets,
//! and so the residual audio-video offset at the output. Audio is the master; when the offset
//! leaves ±[`WATCHDOG_THRESHOLD_NANOS`], video is shifted to follow the audio as it is really
//! played, and the correction is counted.

/// The offset the watchdog tolerates before it corrects.
pub const WATCHDOG_THRESHOLD_NANOS: i64 = 5_000_000;
/// Smoothing of the per-chunk and per-frame errors (1/8: a few frames, not a single outlier).
const ERROR_SMOOTHING: f64 = 8.0;

/// Counters and state for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WatchdogStats {
    pub corrections: u64,
    /// Largest residual offset seen, in ns (signed: positive = audio late).
    pub worst_offset_nanos: i64,
    pub audio_samples: u64,
    pub video_samples: u64,
}

/// Measures the residual audio-video offset of one source's output and corrects video.
#[derive(Debug, Clone, Default)]
pub struct Watchdog {
    audio_error_nanos: Option<f64>,
    video_error_nanos: Option<f64>,
    video_shift_nanos: i64,
    stats: WatchdogStats,
}

impl Watchdog {
    pub fn new() -> Self {
        Watchdog::default()
    }

    /// An audio chunk landed `error_nanos` from its target (positive: late).
    pub fn handle_audio_error(&mut self, error_nanos: i64) {
        self.stats.audio_samples += 1;
        self.audio_error_nanos = Some(smooth(self.audio_error_nanos, error_nanos));
        self.check();
    }

    /// A video frame went out `error_nanos` from its unshifted target (positive: late).
    pub fn handle_video_error(&mut self, error_nanos: i64) {
        self.stats.video_samples += 1;
        self.video_error_nanos = Some(smooth(self.video_error_nanos, error_nanos));
        self.check();
    }

    fn check(&mut self) {
        let Some(offset) = self.offset_nanos() else {
            return;
        };
        if offset.abs() > self.stats.worst_offset_nanos.abs() {
            self.stats.worst_offset_nanos = offset;
        }
        if offset.abs() > WATCHDOG_THRESHOLD_NANOS {
            // Video follows audio: shift it by what audio is off, and measure afresh.
            self.video_shift_nanos = self.audio_error_nanos.unwrap_or(0.0).round() as i64;
            self.video_error_nanos = None;
            self.stats.corrections += 1;
        }
    }

    /// Residual offset at the output, audio minus video (positive: audio late), once both
    /// tracks have been measured.
    pub fn offset_nanos(&self) -> Option<i64> {
        Some((self.audio_error_nanos? - self.video_error_nanos?).round() as i64)
    }

    /// Add to every video frame's target.
    pub fn video_shift_nanos(&self) -> i64 {
        self.video_shift_nanos
    }

    pub fn stats(&self) -> WatchdogStats {
        self.stats
    }
}

fn smooth(previous: Option<f64>, sample: i64) -> f64 {
    match previous {
        None => sample as f64,
        Some(p) => p + (sample as f64 - p) / ERROR_SMOOTHING,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_while_within_threshold() {
        let mut w = Watchdog::new();
        for _ in 0..100 {
            w.handle_audio_error(2_000_000);
            w.handle_video_error(0);
        }
        assert_eq!(w.offset_nanos(), Some(2_000_000));
        assert_eq!(w.stats().corrections, 0);
        assert_eq!(w.video_shift_nanos(), 0);
    }

    #[test]
    fn video_follows_late_audio() {
        let mut w = Watchdog::new();
        w.handle_video_error(0);
        for _ in 0..10 {
            w.handle_audio_error(12_000_000);
        }
        assert_eq!(w.stats().corrections, 1);
        assert_eq!(w.video_shift_nanos(), 12_000_000);
        // Video now lands where audio does: no further correction.
        for _ in 0..10 {
            w.handle_video_error(w.video_shift_nanos());
            w.handle_audio_error(12_000_000);
        }
        assert_eq!(w.stats().corrections, 1);
        assert_eq!(w.offset_nanos(), Some(0));
    }
}
