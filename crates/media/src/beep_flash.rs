//! Reads the beep-flash pattern back: finds every flash (a picture that turns bright) and every
//! beep onset (1 kHz tone after silence), pairs them, and reports the audio-video offset.
//! Pure: the caller decodes and gives each picture and audio chunk its presentation time.

use crate::pattern::{mean_luma_below_stripe, read_stripe, StripeData, BEEP_AMPLITUDE, BEEP_HZ};

/// Loudness (fraction of full scale) above which a sample belongs to a beep: 40 % of the beep,
/// well above the pre-echo a transform codec (AAC) smears before an onset.
const BEEP_THRESHOLD: f64 = 0.2;
/// Silence needed before a new onset counts (the beep lasts 100 ms, beeps are 1 s apart).
const QUIET_BEFORE_ONSET_SECS: f64 = 0.3;
/// A flash and a beep further apart than this are not the same event.
const MAX_PAIR_DISTANCE_SECS: f64 = 0.45;

/// Finds beep onsets in a stream of mono samples.
#[derive(Debug, Clone)]
pub struct BeepDetector {
    rate_hz: f64,
    quiet_secs: f64,
    onsets: Vec<f64>,
}

impl BeepDetector {
    pub fn new(rate_hz: u32) -> Self {
        BeepDetector {
            rate_hz: f64::from(rate_hz),
            // Start as if after silence, so a beep at the very start counts.
            quiet_secs: QUIET_BEFORE_ONSET_SECS,
            onsets: Vec::new(),
        }
    }

    /// Samples in [-1, 1]; the first is presented at `first_secs`.
    pub fn push(&mut self, first_secs: f64, samples: &[f32]) {
        let step = 1.0 / self.rate_hz;
        for (k, &x) in samples.iter().enumerate() {
            let x = f64::from(x);
            if x.abs() < BEEP_THRESHOLD {
                self.quiet_secs += step;
                continue;
            }
            if self.quiet_secs >= QUIET_BEFORE_ONSET_SECS {
                let t = first_secs + k as f64 * step;
                self.onsets.push(t - sub_sample_lead(x));
            }
            self.quiet_secs = 0.0;
        }
    }

    /// Onsets found so far, in seconds.
    pub fn onsets(&self) -> &[f64] {
        &self.onsets
    }
}

/// The tone starts at phase 0 and rises: a first loud sample of value `x` came `asin(x/A)/ω`
/// after the onset. Refines the onset to well under a sample.
fn sub_sample_lead(x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    (x / BEEP_AMPLITUDE).clamp(0.0, 1.0).asin() / (2.0 * std::f64::consts::PI * BEEP_HZ)
}

/// What one decoded picture showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PictureObservation {
    pub presented_secs: f64,
    pub flash: bool,
    pub stripe: Option<StripeData>,
}

/// Looks at a decoded luma plane.
pub fn observe_picture(
    presented_secs: f64,
    y: &[u8],
    stride: usize,
    width: usize,
    height: usize,
) -> PictureObservation {
    PictureObservation {
        presented_secs,
        flash: mean_luma_below_stripe(y, stride, width, height) > 128.0,
        stripe: read_stripe(y, stride, width, height),
    }
}

/// One paired flash and beep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncEvent {
    pub flash_secs: f64,
    pub beep_secs: f64,
    /// Audio minus video, ms: positive = audio late.
    pub offset_ms: f64,
}

/// The measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReport {
    pub events: Vec<SyncEvent>,
    pub mean_ms: f64,
    pub p50_ms: f64,
    /// 99th percentile of |offset|.
    pub p99_abs_ms: f64,
    /// The offset of largest magnitude (signed).
    pub max_ms: f64,
    /// Slope of offset over time (least squares), ms per minute.
    pub drift_ms_per_min: f64,
    pub pictures: u64,
    pub flashes: usize,
    pub beeps: usize,
    /// From the stripe: indices skipped, and indices seen twice in a row.
    pub dropped_frames: u64,
    pub repeated_frames: u64,
}

/// Why there is nothing to report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    #[error(
        "no flashes found in {pictures} pictures: is this beep-flash content from `lockstep sim-camera`?"
    )]
    NoFlashes { pictures: u64 },
    #[error("no beeps found in the audio: is this beep-flash content, and does it have sound?")]
    NoBeeps,
    #[error("{flashes} flashes and {beeps} beeps, but none within 450 ms of each other")]
    NothingPaired { flashes: usize, beeps: usize },
}

/// Rising edges of the flash: the first bright picture after a dark one.
pub fn flash_times(pictures: &[PictureObservation]) -> Vec<f64> {
    let mut out = Vec::new();
    let mut previous = false;
    for p in pictures {
        if p.flash && !previous {
            out.push(p.presented_secs);
        }
        previous = p.flash;
    }
    out
}

/// Counts stripe indices skipped and repeated (pictures in presentation order).
fn frame_continuity(pictures: &[PictureObservation]) -> (u64, u64) {
    let (mut dropped, mut repeated) = (0u64, 0u64);
    let mut last: Option<u32> = None;
    for index in pictures
        .iter()
        .filter_map(|p| p.stripe.map(|s| s.frame_index))
    {
        if let Some(last) = last {
            match index.wrapping_sub(last) {
                0 => repeated += 1,
                // Forward jumps (including a replay loop wrapping to 0 is a big wrap: ignore it).
                d if d < 1_000 => dropped += u64::from(d - 1),
                _ => {}
            }
        }
        last = Some(index);
    }
    (dropped, repeated)
}

/// Pairs each flash with the nearest beep and summarizes.
pub fn analyze(
    pictures: &[PictureObservation],
    beep_onsets: &[f64],
) -> Result<SyncReport, AnalysisError> {
    let flashes = flash_times(pictures);
    if flashes.is_empty() {
        return Err(AnalysisError::NoFlashes {
            pictures: pictures.len() as u64,
        });
    }
    if beep_onsets.is_empty() {
        return Err(AnalysisError::NoBeeps);
    }
    let events: Vec<SyncEvent> = flashes
        .iter()
        .filter_map(|&flash| {
            let beep = beep_onsets
                .iter()
                .copied()
                .min_by(|a, b| (a - flash).abs().total_cmp(&(b - flash).abs()))?;
            ((beep - flash).abs() <= MAX_PAIR_DISTANCE_SECS).then_some(SyncEvent {
                flash_secs: flash,
                beep_secs: beep,
                offset_ms: (beep - flash) * 1e3,
            })
        })
        .collect();
    if events.is_empty() {
        return Err(AnalysisError::NothingPaired {
            flashes: flashes.len(),
            beeps: beep_onsets.len(),
        });
    }
    let offsets: Vec<f64> = events.iter().map(|e| e.offset_ms).collect();
    let n = offsets.len() as f64;
    let mean_ms = offsets.iter().sum::<f64>() / n;
    let mut sorted = offsets.clone();
    sorted.sort_by(f64::total_cmp);
    let mut abs: Vec<f64> = offsets.iter().map(|o| o.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let pick = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let max_ms = offsets
        .iter()
        .copied()
        .max_by(|a, b| a.abs().total_cmp(&b.abs()))
        .unwrap_or(0.0);
    let (dropped_frames, repeated_frames) = frame_continuity(pictures);
    Ok(SyncReport {
        drift_ms_per_min: drift_per_minute(&events),
        events,
        mean_ms,
        p50_ms: pick(&sorted, 0.5),
        p99_abs_ms: pick(&abs, 0.99),
        max_ms,
        pictures: pictures.len() as u64,
        flashes: flashes.len(),
        beeps: beep_onsets.len(),
        dropped_frames,
        repeated_frames,
    })
}

fn drift_per_minute(events: &[SyncEvent]) -> f64 {
    if events.len() < 2 {
        return 0.0;
    }
    let n = events.len() as f64;
    let mean_t = events.iter().map(|e| e.flash_secs).sum::<f64>() / n;
    let mean_o = events.iter().map(|e| e.offset_ms).sum::<f64>() / n;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for e in events {
        sxx += (e.flash_secs - mean_t).powi(2);
        sxy += (e.flash_secs - mean_t) * (e.offset_ms - mean_o);
    }
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx * 60.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::beep_value;

    /// Ten seconds of the pattern's audio at `rate`, shifted by `offset_secs`.
    fn audio(rate: u32, offset_secs: f64) -> Vec<f32> {
        (0..rate * 10)
            .map(|n| beep_value(f64::from(n) / f64::from(rate) - offset_secs) as f32)
            .collect()
    }

    fn pictures(fps: u32, drift_ppm: f64) -> Vec<PictureObservation> {
        (0..fps * 10)
            .map(|i| PictureObservation {
                presented_secs: f64::from(i) / f64::from(fps) * (1.0 + drift_ppm * 1e-6),
                flash: i % fps == 0,
                stripe: Some(StripeData {
                    frame_index: i,
                    capture_unix_micros: None,
                }),
            })
            .collect()
    }

    #[test]
    fn onsets_are_found_to_a_fraction_of_a_sample() {
        for rate in [8_000, 16_000, 48_000] {
            let mut d = BeepDetector::new(rate);
            let samples = audio(rate, 0.0123);
            // In uneven chunks, as a decoder would deliver.
            let mut at = 0;
            for chunk in samples.chunks(333) {
                d.push(at as f64 / f64::from(rate), chunk);
                at += chunk.len();
            }
            assert_eq!(d.onsets().len(), 10, "{rate} Hz");
            for (k, onset) in d.onsets().iter().enumerate() {
                let error = onset - (k as f64 + 0.0123);
                assert!(error.abs() < 20e-6, "{rate} Hz onset {k}: {error}");
            }
        }
    }

    #[test]
    fn measures_a_known_offset_and_drift() {
        let mut d = BeepDetector::new(8_000);
        d.push(0.0, &audio(8_000, 0.040));
        let report = analyze(&pictures(30, 0.0), d.onsets()).unwrap();
        assert_eq!(report.events.len(), 10);
        assert!((report.mean_ms - 40.0).abs() < 0.1, "{}", report.mean_ms);
        assert!(report.drift_ms_per_min.abs() < 0.1);
        assert_eq!((report.dropped_frames, report.repeated_frames), (0, 0));
        // Video whose clock runs 1000 ppm slow: flashes later and later, audio relatively early.
        let report = analyze(&pictures(30, 1_000.0), d.onsets()).unwrap();
        assert!(
            (report.drift_ms_per_min + 60.0).abs() < 0.5,
            "{}",
            report.drift_ms_per_min
        );
    }

    #[test]
    fn counts_dropped_and_repeated_frames() {
        let mut p = pictures(30, 0.0);
        p.remove(40);
        p.remove(40);
        let dup = p[100];
        p.insert(101, dup);
        let mut d = BeepDetector::new(8_000);
        d.push(0.0, &audio(8_000, 0.0));
        let report = analyze(&p, d.onsets()).unwrap();
        assert_eq!((report.dropped_frames, report.repeated_frames), (2, 1));
    }

    #[test]
    fn content_without_the_pattern_is_a_clear_error() {
        let dark: Vec<PictureObservation> = pictures(30, 0.0)
            .into_iter()
            .map(|p| PictureObservation { flash: false, ..p })
            .collect();
        assert!(matches!(
            analyze(&dark, &[1.0]),
            Err(AnalysisError::NoFlashes { pictures: 300 })
        ));
        assert_eq!(
            analyze(&pictures(30, 0.0), &[]),
            Err(AnalysisError::NoBeeps)
        );
        assert!(matches!(
            analyze(&pictures(30, 0.0), &[0.5]),
            Err(AnalysisError::NothingPaired { .. })
        ));
    }
}
