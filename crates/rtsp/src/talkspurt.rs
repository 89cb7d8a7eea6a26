//! When a camera's speaker plays speech sent to it in real time. Packets sent back to back
//! play one after the other from the first one's arrival; after a pause (nothing sent for
//! longer than [`TALKSPURT_GAP`]) the next packet starts a new talkspurt and plays from when it
//! is sent. Both the ONVIF backchannel (where the pause moves the RTP time, RFC 3551 §4.1) and
//! ISAPI's raw stream (where the speaker simply ran dry) follow this timeline; the echo
//! canceller's reference is stamped on it, steady where the send instants jitter.

use std::time::{Duration, Instant};

/// A packet this much later than the previous one's end starts a new talkspurt.
pub const TALKSPURT_GAP: Duration = Duration::from_millis(60);

/// Where a packet sits on the speaker's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// When the speaker plays its first sample.
    pub start: Instant,
    /// `Some` when it starts a talkspurt: the pause since the previous packet's end (zero for
    /// the first packet).
    pub pause: Option<Duration>,
}

/// The speaker's timeline so far.
#[derive(Debug, Default)]
pub struct TalkspurtClock {
    /// When the previous packet's audio ends.
    previous_end: Option<Instant>,
}

impl TalkspurtClock {
    /// Places a packet of `samples` at `rate_hz`, sent at `now`.
    pub fn place(&mut self, now: Instant, samples: u32, rate_hz: u32) -> Placed {
        let (start, pause) = match self.previous_end {
            Some(end) if now > end + TALKSPURT_GAP => (now, Some(now - end)),
            Some(end) => (end, None),
            None => (now, Some(Duration::ZERO)),
        };
        let length =
            Duration::from_micros(u64::from(samples) * 1_000_000 / u64::from(rate_hz.max(1)));
        self.previous_end = Some(start + length);
        Placed { start, pause }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_in_a_row_play_end_to_end_and_a_pause_starts_a_talkspurt() {
        let t0 = Instant::now();
        let mut clock = TalkspurtClock::default();
        let first = clock.place(t0, 160, 8_000);
        assert_eq!(
            first,
            Placed {
                start: t0,
                pause: Some(Duration::ZERO)
            }
        );
        // Sent 5 ms late (jitter): it still plays right after the first.
        let second = clock.place(t0 + Duration::from_millis(25), 160, 8_000);
        assert_eq!(second.start, t0 + Duration::from_millis(20));
        assert_eq!(second.pause, None);
        // 100 ms after the second's end: a new talkspurt from when it is sent.
        let third = clock.place(t0 + Duration::from_millis(140), 160, 8_000);
        assert_eq!(third.start, t0 + Duration::from_millis(140));
        assert_eq!(third.pause, Some(Duration::from_millis(100)));
    }
}
