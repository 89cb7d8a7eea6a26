//! How a sender's clock runs against ours, seen only through packet arrivals.
//!
//! The transit `arrival − send` of each packet is network delay plus jitter plus a slow ramp when
//! the two clocks run at different rates. The fastest packets show the floor of that: we take the
//! minimum over a sliding window (2 s or 512 packets) and smooth it as GStreamer's rtpjitterbuffer
//! does (`skew = (min + 124·skew) / 125`). A least-squares line through that smoothed floor,
//! sampled once a second over the last two minutes, gives the drift in ppm and the *arrival
//! envelope*: when a packet sent at a given time would arrive with no jitter at all.

use std::collections::VecDeque;

use crate::line_fit::LineFit;
use crate::LocalInstant;

/// Sliding window of the transit minimum.
pub const SKEW_WINDOW_NANOS: i64 = 2_000_000_000;
pub const SKEW_WINDOW_PACKETS: u64 = 512;
/// GStreamer's smoothing weight: each packet moves the estimate 1/125 of the way.
pub const SKEW_SMOOTHING: f64 = 125.0;
/// The floor is sampled this often (sender time) for the drift line...
pub const SKEW_SAMPLE_INTERVAL_NANOS: i64 = 1_000_000_000;
/// ...over this many samples.
pub const SKEW_FIT_SAMPLES: usize = 120;
/// Below this many samples the line has no slope yet.
const MIN_FIT_SAMPLES: usize = 4;
/// A window minimum this far off the line is a step, not drift: a sender that stalled and went
/// on behind (or skipped ahead), a route that changed. The floor moves there at once and the
/// line keeps its slope; fitted through, a 1 s step read as −240,000 ppm and held every frame
/// late for 10 s. Jitter cannot do it: the fastest packet of a whole window is off by this much.
pub const SKEW_STEP_NANOS: i64 = 100_000_000;

#[derive(Debug, Clone, Copy)]
struct WindowEntry {
    index: u64,
    arrival_nanos: i64,
    transit_nanos: i64,
}

/// A fitted line `transit = intercept + slope · send` in seconds, relative to the origin.
#[derive(Debug, Clone, Copy)]
struct TransitLine {
    intercept_secs: f64,
    slope: f64,
}

/// How a [`SkewEstimator`] weighs its input: the packet defaults above suit RTP (50–100
/// packets a second); sparse clock samples (one a second) want a wider window and a shorter
/// smoothing, or the estimate takes minutes to settle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkewTuning {
    pub window_nanos: i64,
    pub window_packets: u64,
    /// Each packet moves the smoothed floor 1/smoothing of the way to the window minimum.
    pub smoothing: f64,
}

impl Default for SkewTuning {
    fn default() -> Self {
        SkewTuning {
            window_nanos: SKEW_WINDOW_NANOS,
            window_packets: SKEW_WINDOW_PACKETS,
            smoothing: SKEW_SMOOTHING,
        }
    }
}

/// Estimates a sender clock's rate and offset against the local clock from arrivals alone.
#[derive(Debug, Clone, Default)]
pub struct SkewEstimator {
    tuning: SkewTuning,
    /// (send, arrival) of the first packet: every stored value is relative to it.
    origin: Option<(i64, LocalInstant)>,
    packets: u64,
    /// Monotonic deque: transits increase from front to back, so the front is the window minimum.
    window: VecDeque<WindowEntry>,
    smoothed_transit_nanos: f64,
    /// (send seconds, smoothed transit seconds) samples for the line.
    samples: VecDeque<(f64, f64)>,
    last_sample_send_nanos: Option<i64>,
    line: Option<TransitLine>,
    steps: u64,
}

impl SkewEstimator {
    pub fn new() -> Self {
        SkewEstimator::default()
    }

    /// Forgets everything (the sender restarted).
    pub fn with_tuning(tuning: SkewTuning) -> Self {
        SkewEstimator {
            tuning,
            ..SkewEstimator::default()
        }
    }

    pub fn reset(&mut self) {
        *self = SkewEstimator::with_tuning(self.tuning);
    }

    /// Records that a packet stamped `send_nanos` on the sender's clock arrived at `arrival`.
    pub fn handle_packet(&mut self, arrival: LocalInstant, send_nanos: i64) {
        let (origin_send, origin_arrival) = *self.origin.get_or_insert((send_nanos, arrival));
        // Saturating: send times come from the network (RTP, sender reports) and may be absurd.
        let send_rel = send_nanos.saturating_sub(origin_send);
        let arrival_rel = arrival.nanos_since(origin_arrival);
        let transit = arrival_rel.saturating_sub(send_rel);
        let index = self.packets;
        self.packets += 1;

        while self
            .window
            .back()
            .is_some_and(|e| e.transit_nanos >= transit)
        {
            self.window.pop_back();
        }
        self.window.push_back(WindowEntry {
            index,
            arrival_nanos: arrival_rel,
            transit_nanos: transit,
        });
        while self.window.front().is_some_and(|e| {
            arrival_rel - e.arrival_nanos > self.tuning.window_nanos
                || index - e.index >= self.tuning.window_packets
        }) {
            self.window.pop_front();
        }
        let window_min = self.window.front().map_or(transit, |e| e.transit_nanos) as f64;
        // As GStreamer: while the first window fills, the estimate is the minimum itself (smoothing
        // from the first packet's jitter would bias the line for minutes); afterwards it is smoothed.
        let filling = arrival_rel < self.tuning.window_nanos && index < self.tuning.window_packets;
        if filling {
            self.smoothed_transit_nanos = window_min;
            return;
        }
        let expected = match self.line {
            Some(line) => (line.intercept_secs + line.slope * send_rel as f64 * 1e-9) * 1e9,
            None => self.smoothed_transit_nanos,
        };
        let step = window_min - expected;
        if step.abs() > SKEW_STEP_NANOS as f64 {
            self.take_step(step);
        }
        self.smoothed_transit_nanos = (window_min
            + (self.tuning.smoothing - 1.0) * self.smoothed_transit_nanos)
            / self.tuning.smoothing;

        let due = self
            .last_sample_send_nanos
            .is_none_or(|last| send_rel - last >= SKEW_SAMPLE_INTERVAL_NANOS);
        if due {
            self.last_sample_send_nanos = Some(send_rel);
            self.samples
                .push_back((send_rel as f64 * 1e-9, self.smoothed_transit_nanos * 1e-9));
            if self.samples.len() > SKEW_FIT_SAMPLES {
                self.samples.pop_front();
            }
            self.line = fit_line(&self.samples);
        }
    }

    /// The floor moved by `step_nanos` at once: the line is moved with it, its slope kept.
    fn take_step(&mut self, step_nanos: f64) {
        self.steps += 1;
        self.smoothed_transit_nanos += step_nanos;
        for sample in &mut self.samples {
            sample.1 += step_nanos * 1e-9;
        }
        if let Some(line) = &mut self.line {
            line.intercept_secs += step_nanos * 1e-9;
        }
    }

    /// Steps taken so far (see [`SKEW_STEP_NANOS`]).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The sender clock's rate error against ours in parts per million (negative: it runs slow).
    pub fn drift_ppm(&self) -> Option<f64> {
        let line = self.line?;
        Some((1.0 / (1.0 + line.slope) - 1.0) * 1e6)
    }

    /// The smoothed jitter-free transit (GStreamer's "skew"), relative to the first packet's.
    pub fn smoothed_transit_nanos(&self) -> Option<f64> {
        self.origin.map(|_| self.smoothed_transit_nanos)
    }

    /// When a packet sent at `send_nanos` would arrive with no jitter: the arrival envelope.
    pub fn expected_arrival(&self, send_nanos: i64) -> Option<LocalInstant> {
        let (origin_send, origin_arrival) = self.origin?;
        let send_rel = send_nanos.saturating_sub(origin_send);
        let transit_nanos = match self.line {
            Some(line) => (line.intercept_secs + line.slope * send_rel as f64 * 1e-9) * 1e9,
            None => self.smoothed_transit_nanos,
        };
        Some(origin_arrival.add_nanos(send_rel.saturating_add(transit_nanos.round() as i64)))
    }

    /// How much later than the envelope a packet arrived (≥ 0 for all but estimation noise).
    pub fn relative_delay_nanos(&self, arrival: LocalInstant, send_nanos: i64) -> Option<i64> {
        self.expected_arrival(send_nanos)
            .map(|expected| arrival.nanos_since(expected))
    }
}

/// Least-squares line through `(x, y)` samples, or a flat line at the latest value when there are
/// too few to give a slope.
fn fit_line(samples: &VecDeque<(f64, f64)>) -> Option<TransitLine> {
    let &(_, last_y) = samples.back()?;
    let flat = TransitLine {
        intercept_secs: last_y,
        slope: 0.0,
    };
    if samples.len() < MIN_FIT_SAMPLES {
        return Some(flat);
    }
    let fit = LineFit::through(samples.iter().copied())?;
    Some(fit.slope.map_or(flat, |slope| TransitLine {
        intercept_secs: fit.intercept(slope),
        slope,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets every 20 ms from a sender whose clock runs at `ppm`, with a deterministic
    /// jitter pattern of up to 30 ms on top of a 10 ms network floor.
    fn feed(est: &mut SkewEstimator, ppm: f64, secs: i64) {
        for i in 0..secs * 50 {
            let true_nanos = i * 20_000_000;
            let send_nanos = (true_nanos as f64 * (1.0 + ppm * 1e-6)) as i64;
            let jitter = (i * 7_919 % 31) * 1_000_000;
            est.handle_packet(
                LocalInstant::from_nanos(true_nanos + 10_000_000 + jitter),
                send_nanos,
            );
        }
    }

    #[test]
    fn measures_a_slow_clock() {
        let mut est = SkewEstimator::new();
        feed(&mut est, -300.0, 120);
        let ppm = est.drift_ppm().unwrap();
        assert!((ppm + 300.0).abs() < 5.0, "estimated {ppm} ppm");
    }

    #[test]
    fn measures_a_fast_clock() {
        let mut est = SkewEstimator::new();
        feed(&mut est, 500.0, 120);
        let ppm = est.drift_ppm().unwrap();
        assert!((ppm - 500.0).abs() < 5.0, "estimated {ppm} ppm");
    }

    #[test]
    fn a_sender_that_stalls_and_goes_on_behind_is_a_step_not_drift() {
        // 20 s at −300 ppm, then the sender stalls 1 s and goes on from where it stopped: every
        // later packet arrives 1 s later than before. Within a window (2 s) the envelope is on
        // the new floor and the drift is still the sender's.
        let mut est = SkewEstimator::new();
        let ppm = -300.0;
        let send = |i: i64| (i as f64 * 20e6 * (1.0 + ppm * 1e-6)) as i64;
        let jitter = |i: i64| (i * 7_919 % 31) * 1_000_000;
        for i in 0..1000 {
            est.handle_packet(
                LocalInstant::from_nanos(i * 20_000_000 + jitter(i)),
                send(i),
            );
        }
        for i in 1000..1200 {
            let arrival = 1_000_000_000 + i * 20_000_000 + jitter(i);
            est.handle_packet(LocalInstant::from_nanos(arrival), send(i));
        }
        assert_eq!(est.steps(), 1);
        let expected = est.expected_arrival(send(1200)).unwrap();
        let floor = LocalInstant::from_nanos(1_000_000_000 + 1200 * 20_000_000);
        assert!(
            expected.nanos_since(floor).abs() < 5_000_000,
            "envelope {} ms off the new floor",
            expected.nanos_since(floor) as f64 / 1e6
        );
        let drift = est.drift_ppm().unwrap();
        assert!((drift - ppm).abs() < 100.0, "drift read {drift} ppm");
    }

    #[test]
    fn envelope_follows_the_floor_not_the_jitter() {
        let mut est = SkewEstimator::new();
        feed(&mut est, 0.0, 30);
        // The first packet had jitter 0: its arrival is the floor, and the envelope stays there.
        let expected = est.expected_arrival(29 * 1_000_000_000).unwrap();
        let floor = LocalInstant::from_nanos(29 * 1_000_000_000 + 10_000_000);
        assert!(
            expected.nanos_since(floor).abs() < 1_000_000,
            "{expected:?} vs {floor:?}"
        );
    }
}
