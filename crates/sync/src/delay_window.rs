//! A percentile of delays over a sliding time window (NetEq's target-delay statistic).

use std::collections::VecDeque;

use crate::LocalInstant;

/// The percentile is recomputed at most this often: selection is O(n), packets come every ms.
const RECOMPUTE_INTERVAL_NANOS: i64 = 100_000_000;

#[derive(Debug, Clone)]
pub(crate) struct DelayWindow {
    window_nanos: i64,
    percentile: f64,
    samples: VecDeque<(LocalInstant, i64)>,
    scratch: Vec<i64>,
    cached: Option<i64>,
    computed_at: Option<LocalInstant>,
}

impl DelayWindow {
    pub(crate) fn new(window_nanos: i64, percentile: f64) -> Self {
        DelayWindow {
            window_nanos,
            percentile,
            samples: VecDeque::new(),
            scratch: Vec::new(),
            cached: None,
            computed_at: None,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.samples.clear();
        self.cached = None;
        self.computed_at = None;
    }

    /// Adds a sample and returns the percentile, refreshed when it is due.
    pub(crate) fn push(&mut self, now: LocalInstant, delay_nanos: i64) -> Option<i64> {
        self.samples.push_back((now, delay_nanos));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.nanos_since(*at) > self.window_nanos)
        {
            self.samples.pop_front();
        }
        let due = self
            .computed_at
            .is_none_or(|at| now.nanos_since(at) >= RECOMPUTE_INTERVAL_NANOS);
        if due {
            self.computed_at = Some(now);
            self.scratch.clear();
            self.scratch.extend(self.samples.iter().map(|(_, d)| *d));
            let rank = ((self.scratch.len() - 1) as f64 * self.percentile).round() as usize;
            let (_, value, _) = self.scratch.select_nth_unstable(rank);
            self.cached = Some(*value);
        }
        self.cached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_over_the_window_only() {
        let mut w = DelayWindow::new(1_000_000_000, 0.95);
        for i in 0..100 {
            w.push(LocalInstant::from_millis(i * 10), i);
        }
        // All 101 samples are in the window: the 95th percentile of 0..=100.
        assert_eq!(w.push(LocalInstant::from_millis(1_000), 100), Some(95));
        // Two seconds later only the newest samples remain.
        assert_eq!(w.push(LocalInstant::from_millis(3_000), 7), Some(7));
    }
}
