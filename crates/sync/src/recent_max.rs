//! The highest of a value over the last few seconds, kept as one maximum per second: what a
//! delay may come down to. A percentile over 2 s wobbles from one window to the next; a delay
//! that followed it down would go up again at once, and every step up is a jump of the output.

use std::collections::VecDeque;

use crate::LocalInstant;

const NANOS_PER_SEC: i64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub(crate) struct RecentMax {
    window_secs: i64,
    /// (second since the clock's origin, highest value seen in it), oldest first.
    seconds: VecDeque<(i64, i64)>,
}

impl RecentMax {
    pub(crate) fn new(window_secs: i64) -> Self {
        RecentMax {
            window_secs: window_secs.max(1),
            seconds: VecDeque::new(),
        }
    }

    /// Adds a value seen at `now`; returns the highest over the window.
    pub(crate) fn push(&mut self, now: LocalInstant, value: i64) -> i64 {
        let second = now.as_nanos().div_euclid(NANOS_PER_SEC);
        match self.seconds.back_mut() {
            Some((s, highest)) if *s == second => *highest = (*highest).max(value),
            _ => self.seconds.push_back((second, value)),
        }
        while self
            .seconds
            .front()
            .is_some_and(|(s, _)| *s <= second - self.window_secs)
        {
            self.seconds.pop_front();
        }
        self.seconds.iter().map(|(_, v)| *v).max().unwrap_or(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_of_the_window_and_only_of_it() {
        let mut m = RecentMax::new(10);
        let at = |ms| LocalInstant::from_millis(ms);
        assert_eq!(m.push(at(0), 5), 5);
        assert_eq!(m.push(at(500), 30), 30);
        assert_eq!(m.push(at(4_000), 7), 30);
        assert_eq!(m.push(at(9_999), 6), 30);
        // The second that held 30 has left the window; 7 is the highest since.
        assert_eq!(m.push(at(10_000), 6), 7);
        assert_eq!(m.push(at(30_000), 2), 2);
    }
}
