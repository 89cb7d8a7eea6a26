//! The ingest half of one source: RTP packets and sender reports in, packets out in order with
//! their capture time on the source's shared timeline, plus the playout delay that puts every
//! track on one output timeline (`output = capture + playout delay`).
//!
//! Depacketizing and decoding happen outside (they are codec work, not timing); the results go
//! on to [`AudioRetimer`](crate::AudioRetimer) and [`VideoScheduler`](crate::VideoScheduler).

use std::collections::VecDeque;
use std::time::Duration;

use crate::delay_window::DelayWindow;
use crate::follower::DelayFollower;
use crate::recent_max::RecentMax;
use crate::time::duration_nanos as nanos;
use crate::{
    ClockSource, Insertion, JitterBuffer, JitterOutput, JitterStats, LatencyProfile, LocalInstant,
    NtpTime, ResyncReason, SenderReportRejection, SourceTimeline, TimelineRejection, TrackTimeline,
};

/// Window and percentile of how late packets are against their capture time.
const LATENESS_WINDOW_NANOS: i64 = 2_000_000_000;
const LATENESS_PERCENTILE: f64 = 0.95;
/// Added to the measured lateness for depacketizing and decoding.
pub const PROCESSING_MARGIN_NANOS: i64 = 5_000_000;
/// Beyond the profile's jitter allowance, what a sender may add to one track (audio packet
/// duration, encoder delay) before its packets are simply late.
pub const SENDER_DELAY_ALLOWANCE_NANOS: i64 = 100_000_000;
/// The playout delay shrinks at most this fast (it grows at once: late is worse than slow)...
pub const PLAYOUT_DELAY_DECREASE_NANOS_PER_SEC: i64 = 2_000_000;
/// ...only to the most it needed over this long...
pub const PLAYOUT_DELAY_HOLD_SECS: i64 = 10;
/// ...and only when it is this much more than that. (A dead band of 10 ms without the hold kept
/// a clean camera 10 ms late for good after one busy moment.)
pub const PLAYOUT_DELAY_DEAD_BAND_NANOS: i64 = 2_000_000;

/// What kind of media a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Audio,
    Video,
}

/// A packet leaving the source in sequence order, with its place on the shared timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedPacket<T> {
    pub track: usize,
    pub seq_ext: i64,
    pub ts_ext: i64,
    pub arrival: LocalInstant,
    /// When it was captured, on the source's shared local timeline.
    pub capture: LocalInstant,
    pub payload: T,
}

/// Outputs of [`SourceSync::poll_output`], polled until `Drained`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceOutput<T> {
    Packet(SyncedPacket<T>),
    Lost {
        track: usize,
        first_seq_ext: i64,
        count: i64,
    },
    /// The track's stream restarted (new SSRC or timestamp jump): reset decoders.
    Resync {
        track: usize,
        reason: ResyncReason,
    },
    Drained {
        next_wakeup: Option<LocalInstant>,
    },
}

/// Why a sender report was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportError {
    /// For an SSRC that is not (or not yet) the track's: kept, and used if packets of that SSRC
    /// follow.
    UnknownSsrc,
    Rejected(SenderReportRejection),
}

#[derive(Debug, Clone)]
struct SyncTrack<T> {
    kind: TrackKind,
    timeline: TrackTimeline,
    jitter: JitterBuffer<T>,
    lateness: DelayWindow,
    needed_delay_nanos: i64,
    /// The newest report for an SSRC the track has not seen yet: after a restart the first
    /// report often overtakes the first packet.
    early_report: Option<(u32, u32, NtpTime)>,
}

/// One source's ingest: timeline unwrap, jitter buffer, clocks, playout delay.
#[derive(Debug, Clone)]
pub struct SourceSync<T> {
    profile: LatencyProfile,
    tracks: Vec<SyncTrack<T>>,
    clocks: SourceTimeline,
    events: VecDeque<SourceOutput<T>>,
    playout_delay: DelayFollower,
    /// The delay needed over the last [`PLAYOUT_DELAY_HOLD_SECS`]: what it may come down to.
    needed_recently: RecentMax,
    audio_trim_nanos: i64,
}

impl<T> SourceSync<T> {
    pub fn new(profile: LatencyProfile) -> Self {
        SourceSync {
            profile,
            tracks: Vec::new(),
            clocks: SourceTimeline::new(),
            events: VecDeque::new(),
            playout_delay: DelayFollower::new(
                nanos(profile.min_delay()) + PROCESSING_MARGIN_NANOS,
                PLAYOUT_DELAY_DECREASE_NANOS_PER_SEC,
                PLAYOUT_DELAY_DEAD_BAND_NANOS,
            ),
            needed_recently: RecentMax::new(PLAYOUT_DELAY_HOLD_SECS),
            audio_trim_nanos: 0,
        }
    }

    /// The manual trim (`sync_offset_ms`): the camera's audio lags its own timestamps by this
    /// much (what `lockstep measure` reports as a positive offset), so audio is placed this much
    /// earlier on the capture timeline. Negative values move audio later.
    pub fn set_audio_trim_nanos(&mut self, trim_nanos: i64) {
        self.audio_trim_nanos = trim_nanos;
    }

    /// Adds a track and returns its index.
    pub fn add_track(&mut self, kind: TrackKind, clock_rate_hz: u32) -> usize {
        self.clocks.add_track(clock_rate_hz);
        self.tracks.push(SyncTrack {
            kind,
            timeline: TrackTimeline::new(clock_rate_hz),
            jitter: JitterBuffer::new(clock_rate_hz, self.profile),
            lateness: DelayWindow::new(LATENESS_WINDOW_NANOS, LATENESS_PERCENTILE),
            needed_delay_nanos: 0,
            early_report: None,
        });
        self.tracks.len() - 1
    }

    pub fn track_kind(&self, track: usize) -> TrackKind {
        self.tracks[track].kind
    }

    /// An RTP packet arrived at `now`.
    pub fn handle_rtp(
        &mut self,
        now: LocalInstant,
        track: usize,
        ssrc: u32,
        seq: u16,
        ts: u32,
        payload: T,
    ) -> Result<Insertion, TimelineRejection> {
        let t = &mut self.tracks[track];
        let unwrapped = t.timeline.handle_packet(ssrc, seq, ts)?;
        if let Some(reason) = unwrapped.resync {
            if reason != ResyncReason::FirstPacket {
                t.jitter.handle_discontinuity();
                t.lateness.clear();
                self.clocks.handle_resync(now, track);
            }
            self.events
                .push_back(SourceOutput::Resync { track, reason });
            if let Some((report_ssrc, rtp_ts, ntp)) = self.tracks[track].early_report.take() {
                if report_ssrc == ssrc {
                    let _ = self.handle_sender_report(now, track, ssrc, rtp_ts, ntp);
                }
            }
        }
        self.clocks.handle_packet(now, track, unwrapped.ts_ext);
        Ok(self.tracks[track].jitter.handle_packet(
            now,
            unwrapped.seq_ext,
            unwrapped.ts_ext,
            payload,
        ))
    }

    /// An RTCP sender report for `track` arrived at `now`.
    pub fn handle_sender_report(
        &mut self,
        now: LocalInstant,
        track: usize,
        ssrc: u32,
        rtp_ts: u32,
        ntp: NtpTime,
    ) -> Result<(), ReportError> {
        let Some(ts_ext) = self.tracks[track]
            .timeline
            .unwrap_report_timestamp(ssrc, rtp_ts)
        else {
            self.tracks[track].early_report = Some((ssrc, rtp_ts, ntp));
            return Err(ReportError::UnknownSsrc);
        };
        self.clocks
            .handle_sender_report(now, track, ts_ext, ntp)
            .map_err(ReportError::Rejected)
    }

    /// PLAY's `RTP-Info: rtptime` for `track`.
    pub fn handle_rtp_info(&mut self, now: LocalInstant, track: usize, rtptime: u32) {
        let ts_ext = self.tracks[track]
            .timeline
            .unwrap_rtp_info_timestamp(rtptime);
        self.clocks.handle_rtp_info(now, track, ts_ext);
    }

    pub fn poll_output(&mut self, now: LocalInstant) -> SourceOutput<T> {
        if let Some(event) = self.events.pop_front() {
            return event;
        }
        let mut next_wakeup: Option<LocalInstant> = None;
        for track in 0..self.tracks.len() {
            match self.tracks[track].jitter.poll_output(now) {
                JitterOutput::Packet(p) => {
                    let mut capture = self
                        .clocks
                        .capture_time(track, p.ts_ext)
                        .unwrap_or(p.arrival);
                    if self.tracks[track].kind == TrackKind::Audio {
                        capture = capture.add_nanos(-self.audio_trim_nanos);
                    }
                    self.observe_lateness(now, track, p.arrival.nanos_since(capture));
                    return SourceOutput::Packet(SyncedPacket {
                        track,
                        seq_ext: p.seq_ext,
                        ts_ext: p.ts_ext,
                        arrival: p.arrival,
                        capture,
                        payload: p.payload,
                    });
                }
                JitterOutput::Lost {
                    first_seq_ext,
                    count,
                } => {
                    return SourceOutput::Lost {
                        track,
                        first_seq_ext,
                        count,
                    }
                }
                JitterOutput::Drained {
                    next_wakeup: Some(at),
                } => next_wakeup = Some(next_wakeup.map_or(at, |n| n.min(at))),
                JitterOutput::Drained { next_wakeup: None } => {}
            }
        }
        SourceOutput::Drained { next_wakeup }
    }

    /// Keeps the playout delay just above what packets need: the 95th percentile of each track's
    /// lateness against capture time, the worst track, plus a processing margin, within the
    /// profile. It grows at once and shrinks slowly to the most needed over the last 10 s, so
    /// outputs don't wobble with the percentile.
    fn observe_lateness(&mut self, now: LocalInstant, track: usize, lateness_nanos: i64) {
        let t = &mut self.tracks[track];
        if let Some(p95) = t.lateness.push(now, lateness_nanos) {
            t.needed_delay_nanos = p95;
        }
        let floor = nanos(self.profile.min_delay());
        let cap = nanos(self.profile.max_delay()) + SENDER_DELAY_ALLOWANCE_NANOS;
        let needed = (self
            .tracks
            .iter()
            .map(|t| t.needed_delay_nanos)
            .max()
            .unwrap_or(0)
            + PROCESSING_MARGIN_NANOS)
            .clamp(floor, cap);
        let held = self.needed_recently.push(now, needed);
        self.playout_delay.follow(now, held);
    }

    /// How long after capture every track of this source is output.
    pub fn playout_delay(&self) -> Duration {
        Duration::from_nanos(self.playout_delay.nanos().max(0) as u64)
    }

    /// The output instant of something captured at `capture`.
    pub fn output_time(&self, capture: LocalInstant) -> LocalInstant {
        capture.add_nanos(self.playout_delay.nanos())
    }

    pub fn clock_source(&self) -> ClockSource {
        self.clocks.clock_source()
    }

    /// The track's media clock error in ppm (see [`SourceTimeline::track_drift_ppm`]).
    pub fn track_drift_ppm(&self, track: usize) -> Option<f64> {
        self.clocks.track_drift_ppm(track)
    }

    pub fn track_jitter(&self, track: usize) -> Duration {
        self.tracks[track].jitter.jitter()
    }

    pub fn track_stats(&self, track: usize) -> JitterStats {
        self.tracks[track].jitter.stats()
    }

    /// Packets held in the track's jitter buffer, and its cap.
    pub fn track_buffered(&self, track: usize) -> (usize, usize) {
        let j = &self.tracks[track].jitter;
        (j.len(), j.max_packets())
    }

    pub fn profile(&self) -> LatencyProfile {
        self.profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 ms packets of an 8 kHz track, each `late_ms(i)` after its place on the arrival
    /// envelope; returns the playout delay (ms) after each second.
    fn playout_delays(secs: i64, late_ms: impl Fn(i64) -> i64) -> Vec<f64> {
        let mut sync = SourceSync::<()>::new(LatencyProfile::Low);
        let track = sync.add_track(TrackKind::Audio, 8_000);
        let mut delays = Vec::new();
        for i in 0..secs * 50 {
            let now = LocalInstant::from_millis(1_000 + i * 20 + late_ms(i));
            let _ = sync.handle_rtp(now, track, 7, i as u16, (i * 160) as u32, ());
            while !matches!(sync.poll_output(now), SourceOutput::Drained { .. }) {}
            if i % 50 == 49 {
                delays.push(sync.playout_delay().as_secs_f64() * 1e3);
            }
        }
        delays
    }

    #[test]
    fn a_busy_moment_does_not_keep_the_delay_up_for_good() {
        // 2 s of packets 8 ms later than usual (a busy machine, a Wi-Fi hiccup), then clean.
        let delays = playout_delays(40, |i| if (500..600).contains(&i) { 8 } else { 0 });
        let before = delays[8];
        let during = delays[11];
        assert!(during >= before + 7.0, "{before} → {during}");
        // Held while it might come back (10 s), then down at 2 ms/s to within the dead band
        // (2 ms) of what is needed. A 10 ms dead band alone kept it 8 ms up for good.
        assert!(delays[18] >= during - 0.5, "{delays:?}");
        assert!(delays[35] <= before + 2.5, "{delays:?}");
    }
}
