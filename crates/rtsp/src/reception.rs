//! What a receiver tells a camera in its RTCP receiver reports (RFC 3550 §6.4.1, appendix A.3
//! and A.8): the highest sequence number seen, packets lost in total and since the last
//! report, interarrival jitter, and the last sender report. Counted per track as packets
//! arrive over UDP, before any reordering: this is the network as the camera's packets met it.

use std::time::Instant;

use crate::rtp::ReportBlock;

/// A sequence jump this large (forward) is a restarted source, not loss.
const MAX_DROPOUT: u16 = 3_000;

/// Reception of one source (the track's SSRC; a new SSRC starts over).
#[derive(Debug, Clone)]
pub struct ReceptionStats {
    clock_rate_hz: u32,
    /// Where arrival times are measured from (the first packet's), in RTP clock units.
    origin: Option<Instant>,
    source: Option<Source>,
    /// The middle 32 bits of the last sender report's NTP time and when it arrived.
    last_sr: Option<(u32, Instant)>,
}

#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    /// The first sequence number, extended.
    base_seq: u64,
    /// The highest sequence number, extended by the wraps seen.
    max_seq: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// RFC 3550's `transit` of the previous packet, in RTP units.
    last_transit: u32,
    /// Interarrival jitter in RTP units (the estimator's state, ×1).
    jitter: f64,
}

impl ReceptionStats {
    pub fn new(clock_rate_hz: u32) -> Self {
        ReceptionStats {
            clock_rate_hz: clock_rate_hz.max(1),
            origin: None,
            source: None,
            last_sr: None,
        }
    }

    /// An RTP packet arrived.
    pub fn on_rtp(&mut self, ssrc: u32, seq: u16, rtp_ts: u32, arrived: Instant) {
        let origin = *self.origin.get_or_insert(arrived);
        let arrival_units = (arrived.saturating_duration_since(origin).as_secs_f64()
            * f64::from(self.clock_rate_hz)) as u64 as u32;
        let transit = arrival_units.wrapping_sub(rtp_ts);
        let source = match &mut self.source {
            Some(s) if s.ssrc == ssrc => s,
            _ => {
                self.source = Some(Source {
                    ssrc,
                    base_seq: u64::from(seq),
                    max_seq: u64::from(seq),
                    received: 1,
                    expected_prior: 0,
                    received_prior: 0,
                    last_transit: transit,
                    jitter: 0.0,
                });
                return;
            }
        };
        source.received += 1;
        let ahead = seq.wrapping_sub(source.max_seq as u16);
        if ahead != 0 && ahead < MAX_DROPOUT {
            // In order, maybe after a gap; a wrap below the previous highest adds a cycle.
            source.max_seq += u64::from(ahead);
        }
        // Late, duplicated or reordered packets count as received but move nothing else.
        let d = transit.wrapping_sub(source.last_transit) as i32;
        source.last_transit = transit;
        source.jitter += (f64::from(d.unsigned_abs()) - source.jitter) / 16.0;
    }

    /// A sender report arrived with this NTP time (64-bit).
    pub fn on_sender_report(&mut self, ntp_bits: u64, arrived: Instant) {
        self.last_sr = Some(((ntp_bits >> 16) as u32, arrived));
    }

    /// The block for the next receiver report (none before the first packet); starts the
    /// next interval.
    pub fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        let source = self.source.as_mut()?;
        let expected = source.max_seq - source.base_seq + 1;
        let lost = expected as i64 - source.received as i64;
        let expected_interval = expected - source.expected_prior;
        let received_interval = source.received - source.received_prior;
        source.expected_prior = expected;
        source.received_prior = source.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((middle, at)) => (
                middle,
                (now.saturating_duration_since(at).as_secs_f64() * 65_536.0) as u32,
            ),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc: source.ssrc,
            fraction_lost,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7f_ffff) as i32,
            extended_highest_seq: source.max_seq as u32,
            jitter: source.jitter as u32,
            last_sr,
            delay_since_last_sr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn loss_wraps_and_reordering_are_counted_as_rfc_3550_says() {
        let t0 = Instant::now();
        let mut stats = ReceptionStats::new(8_000);
        assert_eq!(stats.report_block(t0), None);
        // 65_530 … 65_535, 0 … 9 with 3 missing and 5 arriving after 6: 16 sent, 15 received.
        for seq in (65_530u16..=65_535).chain([0, 1, 2, 4, 6, 5, 7, 8, 9]) {
            stats.on_rtp(7, seq, u32::from(seq) * 160, t0);
        }
        let block = stats.report_block(t0).unwrap();
        assert_eq!(block.ssrc, 7);
        assert_eq!(block.extended_highest_seq, 0x0001_0009);
        assert_eq!(block.cumulative_lost, 1);
        assert_eq!(block.fraction_lost, (256 / 16) as u8);
        // The next interval: nothing lost, a duplicate makes the total negative by one.
        for seq in [10u16, 11, 11] {
            stats.on_rtp(7, seq, u32::from(seq) * 160, t0);
        }
        let block = stats.report_block(t0).unwrap();
        assert_eq!((block.fraction_lost, block.cumulative_lost), (0, 0));
        // A new SSRC starts over.
        stats.on_rtp(8, 500, 0, t0);
        let block = stats.report_block(t0).unwrap();
        assert_eq!((block.ssrc, block.extended_highest_seq), (8, 500));
    }

    #[test]
    fn jitter_and_last_sender_report() {
        let t0 = Instant::now();
        let mut stats = ReceptionStats::new(8_000);
        // 20 ms packets arriving alternately on time and 10 ms late: |D| = 80 units each.
        for i in 0..400u32 {
            let late = if i % 2 == 1 { 10 } else { 0 };
            let arrived = t0 + Duration::from_millis(u64::from(20 * i + late));
            stats.on_rtp(1, i as u16, 160 * i, arrived);
        }
        stats.on_sender_report(0x1234_5678_9abc_def0, t0);
        let block = stats.report_block(t0 + Duration::from_millis(500)).unwrap();
        assert!((75..=81).contains(&block.jitter), "{block:?}");
        assert_eq!(block.last_sr, 0x5678_9abc);
        assert_eq!(block.delay_since_last_sr, 32_768);
    }
}
