//! Reconnect delays: exponential from 1 s to 30 s with full jitter (AWS's "full jitter": a
//! uniform draw below the exponential cap), so cameras behind one dead switch do not all come
//! back in the same instant.

use std::time::Duration;

pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// `seed` only spreads sources apart; any value works.
    pub fn new(seed: u64) -> Self {
        Backoff {
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The cap of the next draw: base · 2^attempt, at most [`BACKOFF_CAP`].
    pub fn ceiling(&self) -> Duration {
        BACKOFF_BASE
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(BACKOFF_CAP)
    }

    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        // xorshift64*: plenty for spreading retries.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let unit =
            (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(unit)
    }

    /// A session that stayed up resets the backoff.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_below_it() {
        let mut b = Backoff::new(42);
        let ceilings: Vec<u64> = (0..8)
            .map(|_| {
                let c = b.ceiling();
                let d = b.next_delay();
                assert!(d <= c, "{d:?} > {c:?}");
                c.as_secs()
            })
            .collect();
        assert_eq!(ceilings, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        let draws: Vec<Duration> = (0..50).map(|_| b.next_delay()).collect();
        let spread =
            draws.iter().max().unwrap().as_secs_f64() - draws.iter().min().unwrap().as_secs_f64();
        assert!(spread > 10.0, "full jitter spreads the draws: {spread}");
        b.reset();
        assert_eq!(b.ceiling(), BACKOFF_BASE);
    }
}
