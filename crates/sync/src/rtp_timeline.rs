//! Unwrapping RTP's 16-bit sequence numbers and 32-bit timestamps onto 64-bit timelines, and
//! deciding when a stream has restarted (new SSRC, or a jump no real stream makes) so that every
//! estimator downstream starts clean instead of fitting garbage.

/// RFC 3550 A.1: a sequence jump this large is not loss but a restarted stream.
pub const MAX_DROPOUT_PACKETS: i64 = 3_000;
/// RFC 3550 A.1: packets this far behind the highest are stray or from a restarted stream.
pub const MAX_MISORDER_PACKETS: i64 = 100;
/// A timestamp moving forward more than this between packets is a clock reset, not a pause.
pub const MAX_FORWARD_JUMP_SECS: i64 = 10;
/// Timestamps may step back a little (B-frames, audio/video interleaving); further is a reset.
pub const MAX_BACKWARD_JUMP_SECS: i64 = 2;

/// Unwraps 16-bit sequence numbers to the 64-bit value nearest the highest seen so far.
#[derive(Debug, Clone, Default)]
pub struct SequenceUnwrapper {
    highest: Option<i64>,
}

impl SequenceUnwrapper {
    /// The extended value nearest to the highest seen; does not record it.
    pub fn peek(&self, seq: u16) -> i64 {
        match self.highest {
            None => i64::from(seq),
            Some(highest) => highest + i64::from((seq as i16).wrapping_sub(highest as u16 as i16)),
        }
    }

    /// The extended value, recorded as the highest when it is.
    pub fn unwrap(&mut self, seq: u16) -> i64 {
        let ext = self.peek(seq);
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        ext
    }

    pub fn highest(&self) -> Option<i64> {
        self.highest
    }
}

/// Unwraps 32-bit RTP timestamps to the 64-bit value nearest the previous packet's, then adds a
/// rebase offset so a restarted stream continues where the old one ended.
#[derive(Debug, Clone, Default)]
pub struct TimestampUnwrapper {
    last_raw_ext: Option<i64>,
    offset: i64,
}

impl TimestampUnwrapper {
    fn raw_ext(&self, ts: u32) -> i64 {
        match self.last_raw_ext {
            None => i64::from(ts),
            Some(last) => last + i64::from((ts as i32).wrapping_sub(last as u32 as i32)),
        }
    }

    /// The extended value for `ts` without recording it (for sender reports).
    pub fn peek(&self, ts: u32) -> i64 {
        self.raw_ext(ts) + self.offset
    }

    pub fn unwrap(&mut self, ts: u32) -> i64 {
        let raw = self.raw_ext(ts);
        self.last_raw_ext = Some(raw);
        raw + self.offset
    }

    /// Starts a new stream whose first timestamp `ts` maps to `continue_at`.
    fn rebase(&mut self, ts: u32, continue_at: i64) {
        self.last_raw_ext = Some(i64::from(ts));
        self.offset = continue_at - i64::from(ts);
    }
}

/// Why a track's timeline started over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// The first packet of the track.
    FirstPacket,
    /// The SSRC changed (a camera reboot or encoder restart).
    SsrcChanged,
    /// The sequence number jumped beyond [`MAX_DROPOUT_PACKETS`] and the next packet confirmed it.
    SequenceJump,
    /// The timestamp jumped beyond [`MAX_FORWARD_JUMP_SECS`] forward or
    /// [`MAX_BACKWARD_JUMP_SECS`] backward.
    TimestampJump,
}

/// A packet placed on the track's 64-bit timelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnwrappedPacket {
    pub seq_ext: i64,
    pub ts_ext: i64,
    /// Set on the first packet of a new stream: everything estimated from the old one is void.
    pub resync: Option<ResyncReason>,
}

/// What to do with a packet the timeline cannot place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineRejection {
    /// A lone packet far from the stream: held on probation until the next confirms a restart.
    Probation,
}

/// One track's RTP timeline: SSRC, sequence and timestamp unwrapping, and restart detection.
#[derive(Debug, Clone)]
pub struct TrackTimeline {
    clock_rate_hz: u32,
    ssrc: Option<u32>,
    seq: SequenceUnwrapper,
    ts: TimestampUnwrapper,
    /// Offset added to unwrapped sequence numbers so that restarts continue upward.
    seq_offset: i64,
    /// RFC 3550's `bad_seq`: after a big jump, the sequence number that would confirm a restart.
    probation_seq: Option<u16>,
    highest_ts_ext: Option<i64>,
}

impl TrackTimeline {
    pub fn new(clock_rate_hz: u32) -> Self {
        TrackTimeline {
            clock_rate_hz,
            ssrc: None,
            seq: SequenceUnwrapper::default(),
            ts: TimestampUnwrapper::default(),
            seq_offset: 0,
            probation_seq: None,
            highest_ts_ext: None,
        }
    }

    pub fn clock_rate_hz(&self) -> u32 {
        self.clock_rate_hz
    }

    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Places a packet, or holds it on probation when it looks like a stray.
    pub fn handle_packet(
        &mut self,
        ssrc: u32,
        seq: u16,
        ts: u32,
    ) -> Result<UnwrappedPacket, TimelineRejection> {
        let rate = i64::from(self.clock_rate_hz);
        let Some(current_ssrc) = self.ssrc else {
            return Ok(self.restart(ssrc, seq, ts, ResyncReason::FirstPacket));
        };
        if ssrc != current_ssrc {
            return Ok(self.restart(ssrc, seq, ts, ResyncReason::SsrcChanged));
        }
        let highest = self.seq.highest().unwrap_or(0);
        let seq_ext = self.seq.peek(seq);
        let seq_delta = seq_ext - highest;
        if !(-MAX_MISORDER_PACKETS..=MAX_DROPOUT_PACKETS).contains(&seq_delta) {
            if self.probation_seq == Some(seq) {
                return Ok(self.restart(ssrc, seq, ts, ResyncReason::SequenceJump));
            }
            self.probation_seq = Some(seq.wrapping_add(1));
            return Err(TimelineRejection::Probation);
        }
        self.probation_seq = None;
        let ts_ext = self.ts.peek(ts);
        if let Some(last) = self.highest_ts_ext {
            let jump = ts_ext - last;
            if !(-MAX_BACKWARD_JUMP_SECS * rate..=MAX_FORWARD_JUMP_SECS * rate).contains(&jump) {
                return Ok(self.restart(ssrc, seq, ts, ResyncReason::TimestampJump));
            }
        }
        let seq_ext = self.seq.unwrap(seq) + self.seq_offset;
        let ts_ext = self.ts.unwrap(ts);
        self.highest_ts_ext = Some(self.highest_ts_ext.map_or(ts_ext, |h| h.max(ts_ext)));
        Ok(UnwrappedPacket {
            seq_ext,
            ts_ext,
            resync: None,
        })
    }

    /// The extended timestamp of a sender report's RTP time, if it belongs to the current stream.
    pub fn unwrap_report_timestamp(&self, ssrc: u32, ts: u32) -> Option<i64> {
        (self.ssrc == Some(ssrc)).then(|| self.ts.peek(ts))
    }

    /// The extended timestamp for an RTP-Info `rtptime` (stream start announced by PLAY).
    pub fn unwrap_rtp_info_timestamp(&self, ts: u32) -> i64 {
        self.ts.peek(ts)
    }

    fn restart(&mut self, ssrc: u32, seq: u16, ts: u32, reason: ResyncReason) -> UnwrappedPacket {
        // The first stream keeps its own numbers (easier to find in a capture); a restarted one
        // continues one past the old stream so the track's sequence never goes back.
        let continue_seq = self.seq.highest().map(|h| h + self.seq_offset + 1);
        // One tick past the old stream keeps media times increasing; the value is otherwise
        // meaningless because every clock of the track restarts with it.
        let continue_ts = self.highest_ts_ext.map_or(i64::from(ts), |h| h + 1);
        self.ssrc = Some(ssrc);
        self.seq = SequenceUnwrapper::default();
        let raw_seq = self.seq.unwrap(seq);
        self.seq_offset = continue_seq.map_or(0, |c| c - raw_seq);
        self.ts.rebase(ts, continue_ts);
        self.highest_ts_ext = Some(continue_ts);
        self.probation_seq = None;
        UnwrappedPacket {
            seq_ext: raw_seq + self.seq_offset,
            ts_ext: continue_ts,
            resync: Some(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_wraps_forward_and_backward() {
        let mut u = SequenceUnwrapper::default();
        assert_eq!(u.unwrap(65_534), 65_534);
        assert_eq!(u.unwrap(65_535), 65_535);
        assert_eq!(u.unwrap(0), 65_536);
        assert_eq!(u.unwrap(1), 65_537);
        // A reordered packet from before the wrap stays before it.
        assert_eq!(u.unwrap(65_533), 65_533);
        assert_eq!(u.highest(), Some(65_537));
    }

    #[test]
    fn timestamp_wraps_and_steps_back() {
        let mut u = TimestampUnwrapper::default();
        assert_eq!(u.unwrap(u32::MAX - 1_000), i64::from(u32::MAX) - 1_000);
        assert_eq!(u.unwrap(2_000), i64::from(u32::MAX) + 1 + 2_000);
        // B-frame style backward step across the wrap.
        assert_eq!(u.unwrap(u32::MAX - 500), i64::from(u32::MAX) - 500);
    }

    fn timeline() -> TrackTimeline {
        TrackTimeline::new(90_000)
    }

    #[test]
    fn first_packet_starts_the_timeline() {
        let mut t = timeline();
        let p = t.handle_packet(7, 100, 1_000).unwrap();
        assert_eq!(p.resync, Some(ResyncReason::FirstPacket));
        let p = t.handle_packet(7, 101, 4_000).unwrap();
        assert_eq!((p.seq_ext, p.ts_ext, p.resync), (101, 4_000, None));
    }

    #[test]
    fn ssrc_change_restarts_and_continues_upward() {
        let mut t = timeline();
        t.handle_packet(7, 100, 1_000).unwrap();
        t.handle_packet(7, 101, 4_000).unwrap();
        let p = t.handle_packet(8, 5, 123_456_789).unwrap();
        assert_eq!(p.resync, Some(ResyncReason::SsrcChanged));
        assert_eq!((p.seq_ext, p.ts_ext), (102, 4_001));
        let p = t.handle_packet(8, 6, 123_456_789 + 3_000).unwrap();
        assert_eq!((p.seq_ext, p.ts_ext, p.resync), (103, 7_001, None));
        // Reports of the old SSRC no longer map.
        assert_eq!(t.unwrap_report_timestamp(7, 1_000), None);
        assert_eq!(t.unwrap_report_timestamp(8, 123_456_789), Some(4_001));
    }

    #[test]
    fn stray_packet_is_held_until_confirmed() {
        let mut t = timeline();
        t.handle_packet(7, 100, 0).unwrap();
        assert_eq!(
            t.handle_packet(7, 20_000, 3_000),
            Err(TimelineRejection::Probation)
        );
        // The stream goes on: the stray is forgotten.
        assert_eq!(t.handle_packet(7, 101, 3_000).unwrap().seq_ext, 101);
        assert_eq!(
            t.handle_packet(7, 30_000, 6_000),
            Err(TimelineRejection::Probation)
        );
        let p = t.handle_packet(7, 30_001, 9_000).unwrap();
        assert_eq!(p.resync, Some(ResyncReason::SequenceJump));
        assert_eq!(p.seq_ext, 102);
    }

    #[test]
    fn timestamp_jump_restarts() {
        let mut t = timeline();
        t.handle_packet(7, 1, 0).unwrap();
        let p = t.handle_packet(7, 2, 90_000 * 60).unwrap();
        assert_eq!(p.resync, Some(ResyncReason::TimestampJump));
        // A backward step of one frame is ordinary.
        let p = t.handle_packet(7, 3, 90_000 * 60 - 3_000).unwrap();
        assert_eq!(p.resync, None);
    }
}
