//! A push producer's own monotonic clock as a timeline basis. A producer stamps every sample
//! and frame with its capture time on its clock; what it says of its clock's *now* (the hello's
//! `clock_us`, then a `clock` message about once a second) are samples of that clock against
//! ours, noisy by the network's jitter. A [`SkewEstimator`] through them — the windowed floor of
//! `arrival − producer now`, smoothed, with a drift line — maps any producer time onto the local
//! clock, so a remote producer whose clock runs 200 ppm off stays put over hours instead of
//! drifting 0.7 s an hour against its fixed playout delay.
//!
//! Media stamps are not clock samples: a TTS engine sends its answer seconds ahead of time.

use std::time::Duration;

use crate::{LocalInstant, SkewEstimator, SkewTuning};

/// Clock samples come about once a second: the floor is the minimum over 10 s of them, and each
/// moves the smoothed floor 1/8 of the way (settled in about a minute, not the two a packet
/// stream's tuning would take at this rate).
const CLOCK_SAMPLE_TUNING: SkewTuning = SkewTuning {
    window_nanos: 20_000_000_000,
    window_packets: 64,
    smoothing: 32.0,
};

/// Maps producer µs onto the local clock; everything goes out a fixed delay after capture.
#[derive(Debug, Clone)]
pub struct ProducerClock {
    skew: SkewEstimator,
    playout_delay_nanos: i64,
    last_sample_us: Option<i64>,
    /// The last sample's transit (arrival − producer time), and the RFC 3550 interarrival
    /// jitter of the samples.
    last_transit_nanos: Option<i64>,
    jitter_nanos: f64,
    samples: u64,
}

impl ProducerClock {
    pub fn new(playout_delay: Duration) -> Self {
        ProducerClock {
            skew: SkewEstimator::with_tuning(CLOCK_SAMPLE_TUNING),
            playout_delay_nanos: i64::try_from(playout_delay.as_nanos()).unwrap_or(i64::MAX),
            last_sample_us: None,
            last_transit_nanos: None,
            jitter_nanos: 0.0,
            samples: 0,
        }
    }

    /// The producer said its clock reads `producer_us`; the message arrived at `arrival`.
    /// Samples that go backwards (another clock, a bug) are ignored.
    pub fn handle_clock(&mut self, arrival: LocalInstant, producer_us: i64) {
        if self.last_sample_us.is_some_and(|last| producer_us <= last) {
            return;
        }
        self.last_sample_us = Some(producer_us);
        self.samples += 1;
        let transit = arrival
            .as_nanos()
            .saturating_sub(producer_us.saturating_mul(1_000));
        if let Some(last) = self.last_transit_nanos {
            let d = transit.saturating_sub(last).unsigned_abs() as f64;
            self.jitter_nanos += (d - self.jitter_nanos) / 16.0;
        }
        self.last_transit_nanos = Some(transit);
        self.skew
            .handle_packet(arrival, producer_us.saturating_mul(1_000));
    }

    /// Whether any sample has come (until then nothing can be placed).
    pub fn is_known(&self) -> bool {
        self.last_sample_us.is_some()
    }

    /// When `producer_us` happened, on the local clock (the network's floor included, as for a
    /// camera's arrival basis).
    pub fn capture_time(&self, producer_us: i64) -> Option<LocalInstant> {
        self.skew
            .expected_arrival(producer_us.saturating_mul(1_000))
    }

    /// When media captured at `producer_us` goes out.
    pub fn output_time(&self, producer_us: i64) -> Option<LocalInstant> {
        Some(
            self.capture_time(producer_us)?
                .add_nanos(self.playout_delay_nanos),
        )
    }

    /// The producer time of what goes out at `out` (for events the producer reads).
    pub fn producer_us(&self, out: LocalInstant) -> Option<i64> {
        let capture = out.add_nanos(-self.playout_delay_nanos);
        // The mapping is a line of slope within 1 ± 0.1 %: two steps from any guess land on it.
        let mut guess_us = self.last_sample_us?;
        for _ in 0..2 {
            let at = self.capture_time(guess_us)?;
            guess_us += capture.nanos_since(at) / 1_000;
        }
        Some(guess_us)
    }

    pub fn playout_delay(&self) -> Duration {
        Duration::from_nanos(self.playout_delay_nanos.max(0) as u64)
    }

    /// How much the clock samples' transit varies (RFC 3550 interarrival jitter).
    pub fn jitter(&self) -> Duration {
        Duration::from_nanos(self.jitter_nanos.round() as u64)
    }

    /// Clock samples taken (the hello's, the producer's `clock` messages, or a first stamp).
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// How fast the producer's clock runs against ours, in ppm, once measured.
    pub fn drift_ppm(&self) -> Option<f64> {
        self.skew.drift_ppm()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_through_the_floor_and_inverts() {
        let mut clock = ProducerClock::new(Duration::from_millis(50));
        assert!(!clock.is_known());
        assert_eq!(clock.output_time(0), None);
        // The producer's clock reads 1 s at our 10 s (+3 ms of network), then once a second.
        for s in 0..10 {
            let jitter_ms = [3, 9, 4, 3, 12, 5, 3, 7, 3, 6][s as usize];
            clock.handle_clock(
                LocalInstant::from_millis(10_000 + s * 1_000 + jitter_ms),
                1_000_000 + s * 1_000_000,
            );
        }
        assert!(clock.is_known());
        let out = clock.output_time(2_000_000).unwrap();
        // The floor (3 ms) is the network; jitter above it is not.
        let expected = LocalInstant::from_millis(11_000 + 3 + 50);
        assert!(out.nanos_since(expected).abs() < 200_000, "{out:?}");
        let back = clock.producer_us(out).unwrap();
        assert!((back - 2_000_000).abs() <= 1, "{back}");
        // A sample that goes backwards is ignored.
        clock.handle_clock(LocalInstant::from_millis(20_100), 5);
        assert_eq!(clock.output_time(2_000_000), Some(out));
    }
}
