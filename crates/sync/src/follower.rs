//! A delay that follows what is needed: up at once (late is worse than slow), down slowly and
//! only past a dead band, so whatever it times does not wobble with the statistic behind it.
//! The playout delay and the release lag both move this way.

use crate::LocalInstant;

#[derive(Debug, Clone)]
pub(crate) struct DelayFollower {
    nanos: i64,
    decrease_nanos_per_sec: i64,
    dead_band_nanos: i64,
    last_update: Option<LocalInstant>,
}

impl DelayFollower {
    pub(crate) fn new(
        initial_nanos: i64,
        decrease_nanos_per_sec: i64,
        dead_band_nanos: i64,
    ) -> Self {
        DelayFollower {
            nanos: initial_nanos,
            decrease_nanos_per_sec,
            dead_band_nanos,
            last_update: None,
        }
    }

    /// `needed` is what the statistic asks for now.
    pub(crate) fn follow(&mut self, now: LocalInstant, needed_nanos: i64) {
        let elapsed = self.last_update.map_or(0, |at| now.nanos_since(at).max(0));
        self.last_update = Some(now);
        if needed_nanos > self.nanos {
            self.nanos = needed_nanos;
        } else if needed_nanos + self.dead_band_nanos < self.nanos {
            let step = (i128::from(elapsed) * i128::from(self.decrease_nanos_per_sec)
                / 1_000_000_000) as i64;
            self.nanos = (self.nanos - step).max(needed_nanos);
        }
    }

    pub(crate) fn nanos(&self) -> i64 {
        self.nanos
    }
}
