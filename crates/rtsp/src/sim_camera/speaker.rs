//! The camera's speaker: backchannel audio plays out at 8 kHz in true time, and the microphone
//! hears it back after the echo path (`--echo-delay-ms`, `--echo-gain-db`).

/// Speaker sample rate (the backchannel is G.711).
pub const SPEAKER_RATE_HZ: f64 = 8_000.0;
/// Ring of the last ~16 s of speaker output.
const RING_SAMPLES: u64 = 1 << 17;

#[derive(Debug)]
pub struct Speaker {
    ring: Vec<i16>,
    /// The first slot (8 kHz ticks of true time) not yet written.
    next_free: u64,
    /// Backchannel RTP packets played.
    pub packets: u64,
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
        }
    }

    /// Plays `samples` that arrived at `arrival_secs`: from then, or after what is still playing.
    pub fn play(&mut self, arrival_secs: f64, samples: &[i16]) {
        self.packets += 1;
        let arrival_slot = (arrival_secs.max(0.0) * SPEAKER_RATE_HZ).ceil() as u64;
        let start = arrival_slot.max(self.next_free);
        // Silence between the last output and this one.
        let gap_from = self.next_free.max(start.saturating_sub(RING_SAMPLES));
        for slot in gap_from..start {
            self.ring[(slot % RING_SAMPLES) as usize] = 0;
        }
        for (k, &s) in samples.iter().enumerate() {
            self.ring[((start + k as u64) % RING_SAMPLES) as usize] = s;
        }
        self.next_free = start + samples.len() as u64;
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
    fn plays_in_true_time_and_queues_overlaps() {
        let mut s = Speaker::new();
        s.play(1.0, &[100; 160]);
        assert_eq!(s.sample_at(0.999), 0);
        assert_eq!(s.sample_at(1.0), 100);
        assert_eq!(s.sample_at(1.0199), 100);
        assert_eq!(s.sample_at(1.0201), 0);
        // Arrives while the first still plays: queued behind it.
        s.play(1.01, &[200; 160]);
        assert_eq!(s.sample_at(1.025), 200);
        assert_eq!(s.sample_at(1.041), 0);
    }

    #[test]
    fn old_output_is_forgotten() {
        let mut s = Speaker::new();
        s.play(0.0, &[5; 8]);
        s.play(100.0, &[7; 8]);
        assert_eq!(s.sample_at(0.0), 0);
        assert_eq!(s.sample_at(100.0), 7);
    }
}
