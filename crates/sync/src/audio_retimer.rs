//! Audio is the master clock: decoded audio leaves as one continuous 48 kHz stream that never
//! stalls, and each input sample comes out at its capture time plus the playout delay.
//!
//! Per decoded chunk the retimer compares where the chunk's first sample will land on the output
//! (`out_time`) with where it should (`target`). Small errors go into a delay-locked loop that
//! trims the resampler's ratio (a second-order loop of bandwidth [`DLL_BANDWIDTH_HZ`], inside
//! PipeWire's 0.016–0.128 Hz), which absorbs clock drift without audible steps. Errors beyond
//! [`STEP_THRESHOLD_NANOS`] are stepped: a gap (lost packet, late start) is filled with
//! concealment, an overlap is skipped. When no input comes in time, [`AudioRetimer::poll_output`]
//! conceals so the output clock goes on.

use crate::time::mul_div_round;
use crate::LocalInstant;

/// The output sample rate: what browsers and Opus use.
pub const OUTPUT_RATE_HZ: u32 = 48_000;
/// Loop bandwidth: settles in a few seconds, ignores per-chunk noise.
pub const DLL_BANDWIDTH_HZ: f64 = 0.05;
/// For the first [`DLL_START_SECS`] of audio the loop runs at PipeWire's widest bandwidth, so a
/// starting source (its playout delay still growing, its sender's rate known only from the
/// second report) is pulled in within seconds, not tens of seconds.
pub const DLL_START_BANDWIDTH_HZ: f64 = 0.128;
pub const DLL_START_SECS: f64 = 10.0;
const DLL_DAMPING: f64 = std::f64::consts::FRAC_1_SQRT_2;
/// The most the loop changes the rate: 0.5 %, far beyond any real clock error, and inaudible.
pub const MAX_RATE_CORRECTION: f64 = 0.005;
/// Errors beyond this are stepped (conceal or skip) rather than resampled away.
pub const STEP_THRESHOLD_NANOS: i64 = 8_000_000;
/// Concealment is emitted in blocks of this many output samples (20 ms).
pub const CONCEAL_BLOCK_SAMPLES: u32 = 960;
/// The most missed output that is filled with concealment. Beyond (a stall, a suspended host),
/// the output skips ahead: filling an hour of silence in a burst helps no one.
pub const MAX_CONCEAL_NANOS: i64 = 1_000_000_000;

/// What to do with one decoded chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioPlan {
    /// Output samples of concealment (silence or PLC) to emit before the chunk.
    pub conceal_samples: u32,
    /// Output samples skipped without concealment before that (a gap longer than
    /// [`MAX_CONCEAL_NANOS`]): the output timestamps jump.
    pub gap_samples: u64,
    /// Input samples to discard from the start of the chunk (the output is past them).
    pub skip_input_samples: u32,
    /// Output samples per input sample for the resampler, drift correction included.
    pub ratio: f64,
    /// Output samples the rest of the chunk becomes.
    pub output_samples: u32,
    /// Output position (48 kHz ticks) of the chunk's first output sample, after concealment.
    pub out_pts: i64,
    /// Where the chunk lands against its target after stepping, before the loop corrects it
    /// (positive: late). For the watchdog.
    pub error_nanos: i64,
}

/// Output produced while waiting for input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetimerOutput {
    /// Emit `samples` of concealment at output position `out_pts`.
    Conceal { out_pts: i64, samples: u32 },
    /// Input stopped for longer than [`MAX_CONCEAL_NANOS`]: the output skips `samples` from
    /// `out_pts` (its timestamps jump; nothing is emitted for them).
    Gap { out_pts: i64, samples: u64 },
    /// Nothing to do until `next_wakeup` (or the next chunk, if `None`).
    Drained { next_wakeup: Option<LocalInstant> },
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetimerStats {
    pub chunks: u64,
    pub concealed_samples: u64,
    pub skipped_input_samples: u64,
    pub steps: u64,
    pub gaps: u64,
}

/// Keeps one audio track locked to its capture timeline.
#[derive(Debug, Clone)]
pub struct AudioRetimer {
    /// Output instant of output sample 0.
    epoch: Option<LocalInstant>,
    /// Output samples produced (or concealed) so far.
    out_pos: i64,
    /// Fraction of an output sample carried between chunks (bounded in [0, 1)).
    out_frac: f64,
    integral: f64,
    /// Audio seconds the loop has run (it starts wide, then narrows).
    loop_secs: f64,
    correction: f64,
    stats: RetimerStats,
}

impl Default for AudioRetimer {
    fn default() -> Self {
        AudioRetimer::new()
    }
}

impl AudioRetimer {
    pub fn new() -> Self {
        AudioRetimer {
            epoch: None,
            out_pos: 0,
            out_frac: 0.0,
            integral: 0.0,
            loop_secs: 0.0,
            correction: 0.0,
            stats: RetimerStats::default(),
        }
    }

    /// The output instant of output position `out_pts`.
    pub fn out_time(&self, out_pts: i64) -> Option<LocalInstant> {
        let epoch = self.epoch?;
        Some(epoch.add_nanos(mul_div_round(
            out_pts,
            1_000_000_000,
            i64::from(OUTPUT_RATE_HZ),
        )))
    }

    /// Plans a decoded chunk of `samples` at `rate_hz` whose first sample should be output at
    /// `target`.
    pub fn handle_chunk(&mut self, target: LocalInstant, samples: u32, rate_hz: u32) -> AudioPlan {
        self.stats.chunks += 1;
        let epoch = *self.epoch.get_or_insert(target);
        let out_now = self.out_time(self.out_pos).unwrap_or(epoch);
        let mut error_nanos = out_now.nanos_since(target);
        let mut conceal_samples = 0;
        let mut gap_samples = 0;
        let mut skip_input_samples = 0;
        if error_nanos < -STEP_THRESHOLD_NANOS {
            let missing = -error_nanos;
            if missing > MAX_CONCEAL_NANOS {
                gap_samples = out_samples(missing - MAX_CONCEAL_NANOS);
                self.out_pos += gap_samples as i64;
                self.stats.gaps += 1;
            }
            conceal_samples = nanos_to_samples(missing.min(MAX_CONCEAL_NANOS), OUTPUT_RATE_HZ);
            self.out_pos += i64::from(conceal_samples);
            error_nanos += samples_to_nanos(conceal_samples, OUTPUT_RATE_HZ)
                + mul_div_round(gap_samples as i64, 1_000_000_000, i64::from(OUTPUT_RATE_HZ));
        } else if error_nanos > STEP_THRESHOLD_NANOS {
            skip_input_samples = nanos_to_samples(error_nanos, rate_hz).min(samples);
            error_nanos -= samples_to_nanos(skip_input_samples, rate_hz);
        }
        if conceal_samples > 0 || skip_input_samples > 0 {
            self.stats.steps += 1;
            self.stats.concealed_samples += u64::from(conceal_samples);
            self.stats.skipped_input_samples += u64::from(skip_input_samples);
        }

        let kept = samples - skip_input_samples;
        let chunk_secs = f64::from(kept) / f64::from(rate_hz);
        self.update_loop(error_nanos as f64 * 1e-9, chunk_secs);
        let ratio = f64::from(OUTPUT_RATE_HZ) / f64::from(rate_hz) * (1.0 + self.correction);
        let exact = self.out_frac + f64::from(kept) * ratio;
        let output_samples = exact.floor();
        self.out_frac = exact - output_samples;
        let out_pts = self.out_pos;
        self.out_pos += output_samples as i64;
        AudioPlan {
            conceal_samples,
            gap_samples,
            skip_input_samples,
            ratio,
            output_samples: output_samples as u32,
            out_pts,
            error_nanos,
        }
    }

    /// A second-order PI loop: error in seconds (positive: output late) → rate correction
    /// (negative: fewer output samples per input sample, so the output catches up).
    fn update_loop(&mut self, error_secs: f64, dt_secs: f64) {
        let starting = self.loop_secs < DLL_START_SECS;
        self.loop_secs += dt_secs;
        let bandwidth = if starting {
            DLL_START_BANDWIDTH_HZ
        } else {
            DLL_BANDWIDTH_HZ
        };
        let omega = 2.0 * std::f64::consts::PI * bandwidth;
        let kp = 2.0 * DLL_DAMPING * omega;
        let ki = omega * omega;

        let integral = self.integral + error_secs * dt_secs;
        let correction = -(kp * error_secs + ki * integral);
        let clamped = correction.clamp(-MAX_RATE_CORRECTION, MAX_RATE_CORRECTION);
        // Anti-windup: the integral only grows while the output is not saturated.
        if clamped == correction {
            self.integral = integral;
        }
        self.correction = clamped;
        if starting && self.loop_secs >= DLL_START_SECS {
            // Narrowing: the integral is rescaled so the correction it holds does not jump.
            let narrow = 2.0 * std::f64::consts::PI * DLL_BANDWIDTH_HZ;
            self.integral *= ki / (narrow * narrow);
        }
    }

    /// Keeps the output clock running when input is missing: once `now` reaches the output time
    /// of the next sample, conceal a block.
    pub fn poll_output(&mut self, now: LocalInstant) -> RetimerOutput {
        let Some(due) = self.out_time(self.out_pos) else {
            return RetimerOutput::Drained { next_wakeup: None };
        };
        if now < due {
            return RetimerOutput::Drained {
                next_wakeup: Some(due),
            };
        }
        let out_pts = self.out_pos;
        let behind = now.nanos_since(due);
        if behind > MAX_CONCEAL_NANOS {
            let samples = out_samples(behind);
            self.out_pos += samples as i64;
            self.stats.gaps += 1;
            return RetimerOutput::Gap { out_pts, samples };
        }
        self.out_pos += i64::from(CONCEAL_BLOCK_SAMPLES);
        self.stats.concealed_samples += u64::from(CONCEAL_BLOCK_SAMPLES);
        RetimerOutput::Conceal {
            out_pts,
            samples: CONCEAL_BLOCK_SAMPLES,
        }
    }

    /// The loop's current rate correction in ppm (positive: input is stretched).
    pub fn correction_ppm(&self) -> f64 {
        self.correction * 1e6
    }

    /// Output samples produced so far.
    pub fn out_pos(&self) -> i64 {
        self.out_pos
    }

    pub fn stats(&self) -> RetimerStats {
        self.stats
    }
}

/// Output samples (48 kHz) in `nanos`, for spans too long for `u32`.
fn out_samples(nanos: i64) -> u64 {
    u64::try_from(mul_div_round(
        nanos.max(0),
        i64::from(OUTPUT_RATE_HZ),
        1_000_000_000,
    ))
    .unwrap_or(0)
}

fn nanos_to_samples(nanos: i64, rate_hz: u32) -> u32 {
    u32::try_from(mul_div_round(
        nanos.max(0),
        i64::from(rate_hz),
        1_000_000_000,
    ))
    .unwrap_or(u32::MAX)
}

fn samples_to_nanos(samples: u32, rate_hz: u32) -> i64 {
    mul_div_round(i64::from(samples), 1_000_000_000, i64::from(rate_hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds 20 ms chunks of an 8 kHz source whose clock runs at `ppm`, and returns the error of
    /// each chunk's first sample after the loop's correction took effect.
    fn run(retimer: &mut AudioRetimer, ppm: f64, chunks: i64) -> Vec<i64> {
        let true_chunk_nanos = 20_000_000.0 / (1.0 + ppm * 1e-6);
        (0..chunks)
            .map(|i| {
                let target = LocalInstant::from_nanos((i as f64 * true_chunk_nanos) as i64);
                let plan = retimer.handle_chunk(target, 160, 8_000);
                let landed = retimer.out_time(plan.out_pts).unwrap();
                landed.nanos_since(target)
            })
            .collect()
    }

    #[test]
    fn locks_onto_a_slow_clock() {
        let mut r = AudioRetimer::new();
        let errors = run(&mut r, -300.0, 50 * 120);
        let settled = &errors[50 * 30..];
        let worst = settled.iter().map(|e| e.abs()).max().unwrap();
        assert!(worst < 100_000, "worst settled error {worst} ns");
        // A slow source clock means each input sample lasts longer: the loop stretches.
        assert!(
            (r.correction_ppm() - 300.0).abs() < 10.0,
            "{}",
            r.correction_ppm()
        );
        assert_eq!(r.stats().steps, 0);
    }

    #[test]
    fn conceals_a_lost_chunk_exactly() {
        let mut r = AudioRetimer::new();
        run(&mut r, 0.0, 10);
        // Chunk 10 is lost; chunk 11 comes.
        let plan = r.handle_chunk(LocalInstant::from_millis(220), 160, 8_000);
        assert_eq!(plan.conceal_samples, 960);
        assert_eq!(plan.out_pts, 11 * 960);
        assert!(plan.error_nanos.abs() < 100_000);
    }

    #[test]
    fn a_long_stall_skips_ahead_instead_of_concealing_it_all() {
        let mut r = AudioRetimer::new();
        run(&mut r, 0.0, 10);
        // Nobody polled for an hour: one gap, then blocks again.
        let hour = LocalInstant::from_millis(3_600_000);
        let RetimerOutput::Gap { out_pts, samples } = r.poll_output(hour) else {
            panic!("expected a gap");
        };
        assert_eq!(out_pts, 9_600);
        assert!(samples >= 48 * 3_599_000, "{samples}");
        assert!(matches!(
            r.poll_output(hour),
            RetimerOutput::Conceal { .. } | RetimerOutput::Drained { .. }
        ));
        // Input resuming far ahead without any poll: a bounded concealment and a gap.
        let mut r = AudioRetimer::new();
        run(&mut r, 0.0, 10);
        let plan = r.handle_chunk(hour, 160, 8_000);
        assert!(plan.conceal_samples <= 48_000);
        assert!(plan.gap_samples > 0);
        assert!(plan.error_nanos.abs() < 1_000_000, "{}", plan.error_nanos);
    }

    #[test]
    fn clock_goes_on_without_input_and_late_input_is_skipped() {
        let mut r = AudioRetimer::new();
        run(&mut r, 0.0, 10);
        // Nothing arrives: at 200 ms the output is due and gets concealment.
        assert_eq!(
            r.poll_output(LocalInstant::from_millis(199)),
            RetimerOutput::Drained {
                next_wakeup: Some(LocalInstant::from_millis(200))
            }
        );
        assert_eq!(
            r.poll_output(LocalInstant::from_millis(200)),
            RetimerOutput::Conceal {
                out_pts: 9_600,
                samples: 960
            }
        );
        // Chunk 10 arrives after its slot was concealed: it is skipped entirely.
        let plan = r.handle_chunk(LocalInstant::from_millis(200), 160, 8_000);
        assert_eq!((plan.skip_input_samples, plan.output_samples), (160, 0));
        // Chunk 11 lands where it belongs.
        let plan = r.handle_chunk(LocalInstant::from_millis(220), 160, 8_000);
        assert_eq!(plan.out_pts, 11 * 960);
    }
}
