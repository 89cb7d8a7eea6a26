//! The camera's speaker: backchannel audio plays out at 8 kHz in true time, and the microphone
//! hears it back after the echo path (`--echo-delay-ms`, `--echo-gain-db`).
//!
//! As a camera's does, it plays by RTP time through a short jitter buffer: a talkspurt (the
//! first packet, one with the marker bit, or one after a pause) starts `JITTER_BUFFER_SECS`
//! after it arrives, and every later packet plays at its RTP time from there, so the network's
//! jitter does not move the sound. A packet too late for its place restarts the spurt there.

/// Speaker sample rate (the backchannel is G.711).
pub const SPEAKER_RATE_HZ: f64 = 8_000.0;
/// Ring of the last ~16 s of speaker output.
const RING_SAMPLES: u64 = 1 << 17;

/// How long a talkspurt waits before it plays (the camera's jitter buffer).
pub const JITTER_BUFFER_SECS: f64 = 0.1;

#[derive(Debug)]
pub struct Speaker {
    ring: Vec<i16>,
    /// The first slot (8 kHz ticks of true time) not yet written.
    next_free: u64,
    /// Backchannel RTP packets played.
    pub packets: u64,
    /// The current talkspurt: its first packet's RTP time and the slot it plays at.
    spurt: Option<(u32, u64)>,
}

impl Default for Speaker {
    fn default() -> Self {
        Speaker::new()
    }
}

impl Speaker {
    pub fn new() -> Self {
        Speaker {
            ring: vec![0; RING_SAMPLES as usize],
            next_free: 0,
            packets: 0,
            spurt: None,
        }
    }

    /// Plays the packet stamped `rtp_ts` (8 kHz) that arrived at `arrival_secs`: at its place
    /// in the talkspurt, or as a new spurt's start (`marker`, the first, or a late one).
    pub fn play_rtp(&mut self, arrival_secs: f64, rtp_ts: u32, marker: bool, samples: &[i16]) {
        let arrival_slot = (arrival_secs.max(0.0) * SPEAKER_RATE_HZ).ceil() as u64;
        let placed = self
            .spurt
            .filter(|_| !marker)
            .and_then(|(first_ts, first_slot)| {
                let offset = rtp_ts.wrapping_sub(first_ts);
                // Within a minute after the spurt's start, and not already past.
                (offset < 60 * SPEAKER_RATE_HZ as u32)
                    .then(|| first_slot + u64::from(offset))
                    .filter(|&slot| slot >= arrival_slot)
            });
        let slot = placed.unwrap_or_else(|| {
            let slot = arrival_slot + (JITTER_BUFFER_SECS * SPEAKER_RATE_HZ) as u64;
            self.spurt = Some((rtp_ts, slot));
            slot
        });
        self.write(slot, samples);
    }

    /// Writes `samples` from `start` (silence between the last output and it).
    fn write(&mut self, start: u64, samples: &[i16]) {
        self.packets += 1;
        // Silence between the last output and this one.
        let gap_from = self.next_free.max(start.saturating_sub(RING_SAMPLES));
        for slot in gap_from..start {
            self.ring[(slot % RING_SAMPLES) as usize] = 0;
        }
        for (k, &s) in samples.iter().enumerate() {
            self.ring[((start + k as u64) % RING_SAMPLES) as usize] = s;
        }
        self.next_free = self.next_free.max(start + samples.len() as u64);
    }

    /// What the speaker emitted at `secs` of true time (silence when nothing played).
    pub fn sample_at(&self, secs: f64) -> i16 {
        if secs < 0.0 {
            return 0;
        }
        let slot = (secs * SPEAKER_RATE_HZ) as u64;
        if slot >= self.next_free || self.next_free - slot > RING_SAMPLES {
            return 0;
        }
        self.ring[(slot % RING_SAMPLES) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_talkspurt_plays_by_rtp_time_whatever_the_jitter() {
        let mut s = Speaker::new();
        // 20 ms packets arriving 0, +5, -3 ms off their times: each plays at its RTP time,
        // 100 ms after the first arrived.
        s.play_rtp(1.000, 1_000, true, &[1; 160]);
        s.play_rtp(1.025, 1_160, false, &[2; 160]);
        s.play_rtp(1.037, 1_320, false, &[3; 160]);
        assert_eq!(s.sample_at(1.099), 0);
        assert_eq!(s.sample_at(1.1001), 1);
        assert_eq!(s.sample_at(1.1201), 2);
        assert_eq!(s.sample_at(1.1401), 3);
        // One 120 ms late: a new spurt from its arrival.
        s.play_rtp(1.280, 1_480, false, &[4; 160]);
        assert_eq!(s.sample_at(1.1601), 0);
        assert_eq!(s.sample_at(1.3801), 4);
    }

    #[test]
    fn old_output_is_forgotten() {
        let mut s = Speaker::new();
        s.play_rtp(0.0, 0, true, &[5; 8]);
        s.play_rtp(100.0, 800_000, true, &[7; 8]);
        let delay = JITTER_BUFFER_SECS;
        assert_eq!(s.sample_at(delay), 0);
        assert_eq!(s.sample_at(100.0 + delay), 7);
    }
}
