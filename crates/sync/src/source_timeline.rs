//! One capture timeline for all tracks of a source.
//!
//! Every track's media time is mapped to the local instant at which it was captured (plus the
//! network's floor delay, which is common to the tracks and so harmless to sync). The basis, best
//! first:
//!
//! - **rtcp**: sender reports map RTP time to the sender's wallclock (drift-exact per track); one
//!   [`SkewEstimator`] maps that wallclock to ours.
//! - **rtp-info**: PLAY's `RTP-Info` says which timestamp of each track is the same instant; each
//!   track's drift comes from its arrivals.
//! - **arrival**: each track's jitter-free arrival envelope. Drift is still removed, but a delay
//!   the sender adds to one track only (packetization, encoder) cannot be seen.
//!
//! When the basis changes, the jump between old and new mapping is not applied at once: it is
//! slewed away at most [`MAX_SLEW_NANOS_PER_SEC`] so outputs never leap — unless it is larger
//! than [`MAX_SLEWED_JUMP_NANOS`]: then the old basis was wrong (a sender that stalled before
//! its first report), and slewing it would hold every packet late for seconds.

use std::fmt;

use crate::skew::SkewEstimator;
use crate::{LocalInstant, MediaTime, NtpTime, SenderReportClock, SenderReportRejection};

/// How fast a basis change may move a track's capture times: 80 ms per second.
pub const MAX_SLEW_NANOS_PER_SEC: i64 = 80_000_000;
/// A basis change moving capture times further than this is applied at once (one step in the
/// output) instead of slewed: at 80 ms/s a 1 s jump took 12.5 s, every audio packet of it
/// concealed as late (seen with a GStreamer camera that stalled 1 s before its first report).
pub const MAX_SLEWED_JUMP_NANOS: i64 = 200_000_000;

/// Smoothing of the learned arrival bias, per packet.
const ARRIVAL_BIAS_SMOOTHING: f64 = 256.0;

/// What a source's capture timeline is derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSource {
    Rtcp,
    RtpInfo,
    Arrival,
    /// A push producer's own capture times, its clock mapped by what it says of its now
    /// ([`ProducerClock`](crate::ProducerClock)).
    Producer,
}

impl ClockSource {
    /// The name used in the HTTP API (`clock_source`).
    pub fn as_str(self) -> &'static str {
        match self {
            ClockSource::Rtcp => "rtcp",
            ClockSource::RtpInfo => "rtp-info",
            ClockSource::Arrival => "arrival",
            ClockSource::Producer => "producer",
        }
    }
}

impl fmt::Display for ClockSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
struct TrackClock {
    clock_rate_hz: u32,
    reports: SenderReportClock,
    arrival: SkewEstimator,
    rtp_info_ts: Option<i64>,
    last_ts: Option<i64>,
    /// Added to the basis mapping; decays to zero after a basis change.
    slew_nanos: i64,
    /// How much later this track's arrival envelope runs than its report-derived capture time
    /// (its sender-side delay), learned while reports were there. It keeps the arrival basis
    /// right when a restart voids the reports, until new ones come.
    arrival_bias_nanos: Option<f64>,
    /// Added to the reports' NTP time: when a sender's reports step (its wallclock was set,
    /// an NTP correction), the new fit is joined to the old one where they meet, so the track's
    /// capture times go on continuously and every track of the source takes the same step
    /// out, whenever its own reports show it.
    ntp_bridge_nanos: i64,
}

impl TrackClock {
    fn media_nanos(&self, ts_ext: i64) -> i64 {
        MediaTime::new(ts_ext, self.clock_rate_hz).to_nanos()
    }

    /// The sender's wallclock for `ts_ext`, bridged across steps of its reports.
    fn sender_ntp_nanos(&self, ts_ext: i64) -> Option<i64> {
        Some(self.reports.rtp_to_ntp_nanos(ts_ext)? + self.ntp_bridge_nanos)
    }
}

/// Maps every track of one source onto one capture timeline.
#[derive(Debug, Clone, Default)]
pub struct SourceTimeline {
    tracks: Vec<TrackClock>,
    /// The sender's NTP wallclock against ours, fed by every packet of a track with reports.
    wallclock: SkewEstimator,
    basis: Option<ClockSource>,
    last_slew_at: Option<LocalInstant>,
}

impl SourceTimeline {
    pub fn new() -> Self {
        SourceTimeline::default()
    }

    /// Adds a track and returns its index.
    pub fn add_track(&mut self, clock_rate_hz: u32) -> usize {
        self.tracks.push(TrackClock {
            clock_rate_hz,
            reports: SenderReportClock::new(clock_rate_hz),
            arrival: SkewEstimator::new(),
            rtp_info_ts: None,
            last_ts: None,
            slew_nanos: 0,
            arrival_bias_nanos: None,
            ntp_bridge_nanos: 0,
        });
        self.tracks.len() - 1
    }

    /// The basis in use (arrival until anything better is known).
    pub fn clock_source(&self) -> ClockSource {
        self.basis.unwrap_or(ClockSource::Arrival)
    }

    /// A packet of `track` with media time `ts_ext` arrived at `now`.
    pub fn handle_packet(&mut self, now: LocalInstant, track: usize, ts_ext: i64) {
        let t = &mut self.tracks[track];
        let media_nanos = t.media_nanos(ts_ext);
        t.arrival.handle_packet(now, media_nanos);
        t.last_ts = Some(t.last_ts.map_or(ts_ext, |last| last.max(ts_ext)));
        if let Some(ntp_nanos) = t.sender_ntp_nanos(ts_ext) {
            self.wallclock.handle_packet(now, ntp_nanos);
        }
        self.update_basis(now);
        if self.basis == Some(ClockSource::Rtcp) {
            self.learn_arrival_bias(track, ts_ext);
        }
    }

    fn learn_arrival_bias(&mut self, track: usize, ts_ext: i64) {
        let envelope = self.arrival_envelope(track, ts_ext);
        let rtcp = self.raw_capture(ClockSource::Rtcp, track, ts_ext);
        let (Some(envelope), Some(rtcp)) = (envelope, rtcp) else {
            return;
        };
        let sample = envelope.nanos_since(rtcp) as f64;
        let t = &mut self.tracks[track];
        t.arrival_bias_nanos = Some(match t.arrival_bias_nanos {
            None => sample,
            Some(bias) => bias + (sample - bias) / ARRIVAL_BIAS_SMOOTHING,
        });
    }

    /// A sender report for `track`, its RTP time already unwrapped.
    pub fn handle_sender_report(
        &mut self,
        now: LocalInstant,
        track: usize,
        ts_ext: i64,
        ntp: NtpTime,
    ) -> Result<(), SenderReportRejection> {
        let t = &mut self.tracks[track];
        let (before, restarts) = (t.sender_ntp_nanos(ts_ext), t.reports.restarts());
        let result = t.reports.handle_sender_report(ts_ext, ntp);
        if t.reports.restarts() != restarts {
            if let (Some(before), Some(after)) = (before, t.sender_ntp_nanos(ts_ext)) {
                t.ntp_bridge_nanos += before - after;
            }
        }
        self.update_basis(now);
        result
    }

    /// PLAY's `RTP-Info` `rtptime` for `track`, unwrapped.
    pub fn handle_rtp_info(&mut self, now: LocalInstant, track: usize, ts_ext: i64) {
        self.tracks[track].rtp_info_ts = Some(ts_ext);
        self.update_basis(now);
    }

    /// The track's stream restarted: forget its clocks. The sender's wallclock stays valid, and
    /// so does what was learned about the track's sender-side delay.
    pub fn handle_resync(&mut self, now: LocalInstant, track: usize) {
        let t = &mut self.tracks[track];
        t.reports.reset();
        t.arrival.reset();
        t.rtp_info_ts = None;
        t.last_ts = None;
        t.slew_nanos = 0;
        self.update_basis(now);
    }

    fn best_basis(&self) -> ClockSource {
        let active = || self.tracks.iter().filter(|t| t.last_ts.is_some());
        if active().count() == 0 {
            return ClockSource::Arrival;
        }
        let wallclock_known = self.wallclock.expected_arrival(0).is_some();
        if wallclock_known && active().all(|t| t.reports.is_ready()) {
            ClockSource::Rtcp
        } else if active().all(|t| t.rtp_info_ts.is_some()) {
            ClockSource::RtpInfo
        } else {
            ClockSource::Arrival
        }
    }

    fn update_basis(&mut self, now: LocalInstant) {
        let elapsed = self.last_slew_at.map_or(0, |at| now.nanos_since(at).max(0));
        self.last_slew_at = Some(now);
        let max_step = (i128::from(elapsed) * i128::from(MAX_SLEW_NANOS_PER_SEC) / 1_000_000_000)
            .min(i128::from(i64::MAX)) as i64;
        for t in &mut self.tracks {
            t.slew_nanos -= t.slew_nanos.clamp(-max_step, max_step);
        }

        let new = self.best_basis();
        let old = self.clock_source();
        if self.basis == Some(new) {
            return;
        }
        for i in 0..self.tracks.len() {
            let Some(ts) = self.tracks[i].last_ts else {
                continue;
            };
            if let (Some(before), Some(after)) =
                (self.raw_capture(old, i, ts), self.raw_capture(new, i, ts))
            {
                let slew = &mut self.tracks[i].slew_nanos;
                *slew = slew.saturating_add(before.nanos_since(after));
            }
        }
        // Every track steps, or none: a step for one and a slew for another would part them.
        if self
            .tracks
            .iter()
            .any(|t| t.slew_nanos.abs() > MAX_SLEWED_JUMP_NANOS)
        {
            for t in &mut self.tracks {
                t.slew_nanos = 0;
            }
        }
        self.basis = Some(new);
    }

    fn raw_capture(&self, basis: ClockSource, track: usize, ts_ext: i64) -> Option<LocalInstant> {
        let t = &self.tracks[track];
        match basis {
            ClockSource::Rtcp => {
                let ntp_nanos = t.sender_ntp_nanos(ts_ext)?;
                self.wallclock.expected_arrival(ntp_nanos)
            }
            ClockSource::RtpInfo => {
                let own = t.arrival.expected_arrival(t.media_nanos(ts_ext))?;
                let own_anchor = t.arrival.expected_arrival(t.media_nanos(t.rtp_info_ts?))?;
                Some(own.add_nanos(self.rtp_info_anchor()?.nanos_since(own_anchor)))
            }
            // RTP sources never take this basis; their own arrivals are the fallback.
            ClockSource::Arrival | ClockSource::Producer => {
                let bias = t.arrival_bias_nanos.unwrap_or(0.0).round() as i64;
                Some(self.arrival_envelope(track, ts_ext)?.add_nanos(-bias))
            }
        }
    }

    fn arrival_envelope(&self, track: usize, ts_ext: i64) -> Option<LocalInstant> {
        let t = &self.tracks[track];
        t.arrival.expected_arrival(t.media_nanos(ts_ext))
    }

    /// The local instant of the RTP-Info instant: the earliest of the tracks' envelope estimates
    /// (the track with the least sender-side delay).
    fn rtp_info_anchor(&self) -> Option<LocalInstant> {
        self.tracks
            .iter()
            .filter_map(|t| t.arrival.expected_arrival(t.media_nanos(t.rtp_info_ts?)))
            .min()
    }

    /// The capture instant of media time `ts_ext` of `track`, on the shared local timeline.
    pub fn capture_time(&self, track: usize, ts_ext: i64) -> Option<LocalInstant> {
        let basis = self.clock_source();
        let raw = self
            .raw_capture(basis, track, ts_ext)
            .or_else(|| self.raw_capture(ClockSource::Arrival, track, ts_ext))?;
        Some(raw.add_nanos(self.tracks[track].slew_nanos))
    }

    /// How far the track's media clock runs from nominal against true time, in ppm: from sender
    /// reports when there are some, else from arrivals (then it includes our own clock's error).
    pub fn track_drift_ppm(&self, track: usize) -> Option<f64> {
        let t = &self.tracks[track];
        t.reports
            .clock_error_ppm()
            .or_else(|| t.arrival.drift_ppm())
    }

    /// The slew still to be applied to a track, for diagnostics.
    pub fn pending_slew_nanos(&self, track: usize) -> i64 {
        self.tracks[track].slew_nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NTP_BASE_NANOS: i64 = 3_900_000_000 * 1_000_000_000;

    /// A sender report at `ms` on both tracks (8 kHz audio, 90 kHz video), wallclock `ntp`.
    fn report_both(
        timeline: &mut SourceTimeline,
        now: LocalInstant,
        (audio, video): (usize, usize),
        ms: i64,
        ntp: NtpTime,
    ) {
        timeline
            .handle_sender_report(now, audio, ms * 8, ntp)
            .unwrap();
        timeline
            .handle_sender_report(now, video, ms * 90, ntp)
            .unwrap();
    }

    /// Audio (8 kHz, packets every 20 ms, sent 20 ms after capture) and video (90 kHz, 30 fps,
    /// sent 5 ms after capture) from one sender, on a link with a 10 ms floor and no jitter.
    fn run(timeline: &mut SourceTimeline, secs: i64, with_reports: bool) -> (i64, i64) {
        let (audio, video) = (0, 1);
        let mut last = (0, 0);
        for ms in 0..secs * 1_000 {
            let capture_nanos = ms * 1_000_000;
            let now = LocalInstant::from_nanos(capture_nanos);
            if ms % 20 == 0 {
                let ts = ms * 8;
                timeline.handle_packet(now.add_nanos(30_000_000), audio, ts);
                last.0 = ts;
            }
            if ms % 100 == 0 {
                let ts = ms * 90;
                timeline.handle_packet(now.add_nanos(15_000_000), video, ts);
                last.1 = ts;
            }
            if with_reports && ms % 1_000 == 0 {
                let ntp = NtpTime::from_nanos_since_1900(NTP_BASE_NANOS + capture_nanos);
                report_both(timeline, now, (audio, video), ms, ntp);
            }
        }
        last
    }

    #[test]
    fn arrival_basis_shows_the_sender_delay_difference() {
        let mut timeline = SourceTimeline::new();
        timeline.add_track(8_000);
        timeline.add_track(90_000);
        run(&mut timeline, 5, false);
        assert_eq!(timeline.clock_source(), ClockSource::Arrival);
        let a = timeline.capture_time(0, 8 * 4_000).unwrap();
        let v = timeline.capture_time(1, 90 * 4_000).unwrap();
        // Same capture instant, but audio left the sender 15 ms later than video.
        assert!(
            (a.nanos_since(v) - 15_000_000).abs() < 1_000_000,
            "{a:?} {v:?}"
        );
    }

    #[test]
    fn sender_reports_align_tracks_after_the_slew() {
        let mut timeline = SourceTimeline::new();
        timeline.add_track(8_000);
        timeline.add_track(90_000);
        run(&mut timeline, 5, true);
        assert_eq!(timeline.clock_source(), ClockSource::Rtcp);
        let a = timeline.capture_time(0, 8 * 4_000).unwrap();
        let v = timeline.capture_time(1, 90 * 4_000).unwrap();
        assert!(a.nanos_since(v).abs() < 1_000_000, "{a:?} {v:?}");
    }

    #[test]
    fn a_jump_too_large_to_slew_is_stepped_on_every_track() {
        // A sender sends 1 s, stalls 1 s, then goes on where it stopped (every packet 1 s later
        // than before) and only then sends its first reports: the arrival basis was anchored
        // before the stall and is 1 s off. Slewed, that took 12.5 s.
        let mut timeline = SourceTimeline::new();
        let (audio, video) = (timeline.add_track(8_000), timeline.add_track(90_000));
        for ms in 0..4_000i64 {
            let stalled_nanos = if ms < 1_000 { 0 } else { 1_000_000_000 };
            let now = LocalInstant::from_nanos(ms * 1_000_000 + stalled_nanos);
            if ms % 20 == 0 {
                timeline.handle_packet(now.add_nanos(30_000_000), audio, ms * 8);
            }
            if ms % 100 == 0 {
                timeline.handle_packet(now.add_nanos(15_000_000), video, ms * 90);
            }
            if ms >= 1_000 && ms % 500 == 0 {
                let ntp = NtpTime::from_nanos_since_1900(NTP_BASE_NANOS + ms * 1_000_000);
                report_both(&mut timeline, now, (audio, video), ms, ntp);
            }
        }
        assert_eq!(timeline.clock_source(), ClockSource::Rtcp);
        assert_eq!(timeline.pending_slew_nanos(audio), 0);
        assert_eq!(timeline.pending_slew_nanos(video), 0);
        // On the new basis at once: the last video packet was captured 15 ms before it arrived
        // (its sender and network delay).
        let v = timeline.capture_time(video, 3_900 * 90).unwrap();
        let arrived = LocalInstant::from_nanos(3_900_000_000 + 1_000_000_000 + 15_000_000);
        assert!(
            arrived.nanos_since(v).abs() < 50_000_000,
            "capture {v:?} vs arrival {arrived:?}"
        );
        let a = timeline.capture_time(audio, 3_900 * 8).unwrap();
        assert!(a.nanos_since(v).abs() < 1_000_000, "{a:?} {v:?}");
    }

    #[test]
    fn basis_change_is_slewed() {
        let mut timeline = SourceTimeline::new();
        timeline.add_track(8_000);
        timeline.add_track(90_000);
        run(&mut timeline, 3, false);
        // RTP-Info arrives late: audio moves to video's anchor, but not at once.
        timeline.handle_rtp_info(LocalInstant::from_millis(3_000), 0, 0);
        timeline.handle_rtp_info(LocalInstant::from_millis(3_000), 1, 0);
        assert_eq!(timeline.clock_source(), ClockSource::RtpInfo);
        let pending = timeline.pending_slew_nanos(0);
        assert!((pending - 15_000_000).abs() < 1_000_000, "{pending}");
        // 100 ms later at most 8 ms of it has been applied.
        timeline.handle_packet(LocalInstant::from_millis(3_100), 1, 90 * 3_100);
        let pending = timeline.pending_slew_nanos(0);
        assert!((pending - 7_000_000).abs() < 1_000_000, "{pending}");
    }
}
