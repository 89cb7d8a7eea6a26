//! How long after its own instant a sink should release media that can only exist some time
//! after that instant. An encoded audio packet needs its whole frame of input, which comes off
//! the network whenever it comes: released the moment it is encoded, packets leave as jittery
//! as the camera's link (p99 21 ms off their spacing on a 40 ms-jitter camera). Released a
//! steady lag after their due instant — the 99th percentile of how late they became ready over
//! 2 s, grown at once, shrunk slowly — they leave as evenly as the pacer can time them, and the
//! lag is no more than the link needs (a clean camera's is a few ms).

use crate::delay_window::DelayWindow;
use crate::follower::DelayFollower;
use crate::LocalInstant;

const WINDOW_NANOS: i64 = 2_000_000_000;
const PERCENTILE: f64 = 0.99;
/// Added to the percentile: the encode itself and the wake-up.
const MARGIN_NANOS: i64 = 1_000_000;
/// The lag shrinks at most this fast (a steadily changing lag is spacing jitter: 10 ms/s is
/// 0.2 ms between two 20 ms packets)...
const DECREASE_NANOS_PER_SEC: i64 = 10_000_000;
/// ...and only when it is this much more than needed.
const DEAD_BAND_NANOS: i64 = 3_000_000;
/// A packet this late is an outage or a stall of the machine, not jitter: it goes at once and
/// does not set the lag (a lag grown to a stall's 200 ms would hold every later packet back for
/// as long as it takes to shrink, and a browser delays the picture to match).
const MAX_LAG_NANOS: i64 = 80_000_000;

/// The release lag of one stream.
#[derive(Debug, Clone)]
pub struct ReleaseLag {
    lateness: DelayWindow,
    lag: DelayFollower,
}

impl Default for ReleaseLag {
    fn default() -> Self {
        ReleaseLag::new()
    }
}

impl ReleaseLag {
    pub fn new() -> Self {
        ReleaseLag {
            lateness: DelayWindow::new(WINDOW_NANOS, PERCENTILE),
            lag: DelayFollower::new(0, DECREASE_NANOS_PER_SEC, DEAD_BAND_NANOS),
        }
    }

    /// Something due at `due` became ready at `ready`: when to release it (never before it is
    /// ready).
    pub fn release_at(&mut self, ready: LocalInstant, due: LocalInstant) -> LocalInstant {
        let late = ready.nanos_since(due).max(0);
        if late <= MAX_LAG_NANOS {
            if let Some(p99) = self.lateness.push(ready, late) {
                self.lag.follow(ready, p99 + MARGIN_NANOS);
            }
        }
        due.add_nanos(self.lag.nanos()).max(ready)
    }

    /// The lag in force.
    pub fn lag_nanos(&self) -> i64 {
        self.lag.nanos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: i64) -> LocalInstant {
        LocalInstant::from_millis(v)
    }

    #[test]
    fn jittery_readiness_is_released_evenly() {
        let mut lag = ReleaseLag::new();
        // Packets due every 20 ms become ready 0–25 ms late, in a repeating pattern.
        let lateness = [3, 25, 0, 12, 7, 19, 1, 22];
        let mut releases = Vec::new();
        for i in 0..400 {
            let due = ms(1_000 + i * 20);
            let ready = due.add_nanos(lateness[i as usize % 8] * 1_000_000);
            releases.push(lag.release_at(ready, due));
        }
        // Once the window has seen the worst, every packet leaves exactly 20 ms after the last.
        for pair in releases[200..].windows(2) {
            assert_eq!(pair[1].nanos_since(pair[0]), 20_000_000);
        }
        assert_eq!(lag.lag_nanos(), 26_000_000);
    }

    #[test]
    fn the_lag_follows_the_link_down_slowly_and_never_holds_back_an_outage() {
        let mut lag = ReleaseLag::new();
        for i in 0..200 {
            let due = ms(i * 20);
            lag.release_at(due.add_nanos(30_000_000), due);
        }
        assert_eq!(lag.lag_nanos(), 31_000_000);
        // The link gets clean: once the window has forgotten the late packets (2 s), the lag
        // comes down at 10 ms/s, not at once.
        for i in 200..400 {
            let due = ms(i * 20);
            lag.release_at(due.add_nanos(2_000_000), due);
        }
        let after_4s = lag.lag_nanos();
        assert!((5_000_000..25_000_000).contains(&after_4s), "{after_4s}");
        // A packet 1 s late (an outage) goes at once and leaves the lag alone.
        let due = ms(10_000);
        assert_eq!(lag.release_at(ms(11_000), due), ms(11_000));
        assert!(lag.lag_nanos() <= after_4s);
    }

    #[test]
    fn a_stall_of_the_machine_does_not_become_a_lasting_lag() {
        let mut lag = ReleaseLag::new();
        for i in 0..200 {
            let due = ms(i * 20);
            lag.release_at(due.add_nanos(2_000_000), due);
        }
        let before = lag.lag_nanos();
        // 300 ms without running: 15 packets become ready together, 300…20 ms late.
        let resumed = ms(200 * 20 + 300);
        for i in 200..215 {
            let due = ms(i * 20);
            assert!(
                lag.release_at(resumed, due) >= resumed,
                "never before it is ready"
            );
        }
        // What was late beyond the outage bound set nothing; the few within it raised the lag
        // to under that bound, and it is back down within seconds (it was 200 ms for 100 s).
        let mut highest = 0;
        for i in 215..800 {
            let due = ms(i * 20);
            lag.release_at(due.add_nanos(2_000_000), due);
            highest = highest.max(lag.lag_nanos());
        }
        assert!(highest <= MAX_LAG_NANOS + MARGIN_NANOS, "{highest}");
        assert!(
            lag.lag_nanos() <= before + 3_000_000,
            "{} vs {before}",
            lag.lag_nanos()
        );
    }
}
