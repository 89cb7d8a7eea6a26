//! The sender's own statement of when each RTP tick was captured: RTCP sender reports pair an RTP
//! timestamp with the sender's NTP wallclock. A least-squares line `ntp = k·rtp + b` through the
//! last 20 reports (libwebrtc's RtpToNtpEstimator) maps every packet to its capture wallclock and
//! tells how far the sender's media clock runs from nominal.

use std::collections::VecDeque;
use std::fmt;

use crate::line_fit::LineFit;
use crate::NtpTime;

/// Reports kept for the fit.
pub const SENDER_REPORTS_KEPT: usize = 20;
/// Consecutive rejected reports after which the fit starts over (the sender restarted).
pub const SENDER_REPORT_REJECTS_BEFORE_RESET: u32 = 3;
/// A report implying a media clock further than this from nominal (between it and the previous
/// report) is implausible. Real devices stay within 1000 ppm; 2 % leaves room for rounding of
/// reports a few hundred ms apart.
pub const SENDER_REPORT_MAX_RATE_ERROR: f64 = 0.02;

/// Why a sender report was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderReportRejection {
    /// Same RTP time as a kept report, or earlier.
    RtpWentBackwards,
    /// Same NTP time as a kept report, or earlier.
    NtpWentBackwards,
    /// The RTP and NTP advance since the previous report disagree about the clock rate.
    ImplausibleRate,
}

impl fmt::Display for SenderReportRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SenderReportRejection::RtpWentBackwards => "RTP time did not advance",
            SenderReportRejection::NtpWentBackwards => "NTP time did not advance",
            SenderReportRejection::ImplausibleRate => "implied clock rate is implausible",
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Report {
    rtp_ext: i64,
    ntp_nanos: i64,
}

/// `ntp_nanos = anchor_ntp + secs_per_tick·(rtp − anchor_rtp)·1e9`, anchored at the newest report
/// so extrapolation error stays small.
#[derive(Debug, Clone, Copy)]
struct Fit {
    anchor_rtp: i64,
    anchor_ntp_nanos: f64,
    nanos_per_tick: f64,
}

/// Maps a track's extended RTP timestamps to the sender's NTP wallclock.
#[derive(Debug, Clone)]
pub struct SenderReportClock {
    nominal_rate_hz: u32,
    reports: VecDeque<Report>,
    consecutive_rejects: u32,
    fit: Option<Fit>,
    /// The rate measured before the last reset: a restarted sender's clock runs as fast as it did,
    /// so its first lone report is extrapolated with that rate, not the nominal one.
    prior_nanos_per_tick: Option<f64>,
    /// Fits started over because reports contradicted the old one (not counting [`reset`]).
    ///
    /// [`reset`]: SenderReportClock::reset
    restarts: u64,
}

impl SenderReportClock {
    pub fn new(nominal_rate_hz: u32) -> Self {
        SenderReportClock {
            nominal_rate_hz,
            reports: VecDeque::with_capacity(SENDER_REPORTS_KEPT),
            consecutive_rejects: 0,
            fit: None,
            prior_nanos_per_tick: None,
            restarts: 0,
        }
    }

    /// Forgets the reports (the sender restarted), keeping the measured rate as a prior.
    pub fn reset(&mut self) {
        if self.reports.len() >= 2 {
            self.prior_nanos_per_tick = self.fit.map(|f| f.nanos_per_tick);
        }
        self.reports.clear();
        self.consecutive_rejects = 0;
        self.fit = None;
    }

    /// Takes one sender report. A rejected report changes nothing, except that the third in a row
    /// resets the fit and the report starts the new one.
    pub fn handle_sender_report(
        &mut self,
        rtp_ext: i64,
        ntp: NtpTime,
    ) -> Result<(), SenderReportRejection> {
        let report = Report {
            rtp_ext,
            ntp_nanos: ntp.as_nanos_since_1900(),
        };
        if let Err(rejection) = self.check(report) {
            self.consecutive_rejects += 1;
            if self.consecutive_rejects >= SENDER_REPORT_REJECTS_BEFORE_RESET {
                self.reset();
                self.push(report);
                self.restarts += 1;
            }
            return Err(rejection);
        }
        self.consecutive_rejects = 0;
        self.push(report);
        Ok(())
    }

    /// How often the fit started over on contradicting reports (a sender whose wallclock or
    /// RTP clock stepped).
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    fn check(&self, report: Report) -> Result<(), SenderReportRejection> {
        let Some(last) = self.reports.back() else {
            return Ok(());
        };
        if report.rtp_ext <= last.rtp_ext {
            return Err(SenderReportRejection::RtpWentBackwards);
        }
        if report.ntp_nanos <= last.ntp_nanos {
            return Err(SenderReportRejection::NtpWentBackwards);
        }
        let rtp_secs = (report.rtp_ext - last.rtp_ext) as f64 / f64::from(self.nominal_rate_hz);
        let ntp_secs = (report.ntp_nanos - last.ntp_nanos) as f64 * 1e-9;
        if (rtp_secs / ntp_secs - 1.0).abs() > SENDER_REPORT_MAX_RATE_ERROR {
            return Err(SenderReportRejection::ImplausibleRate);
        }
        Ok(())
    }

    fn push(&mut self, report: Report) {
        if self.reports.len() == SENDER_REPORTS_KEPT {
            self.reports.pop_front();
        }
        self.reports.push_back(report);
        self.fit = Some(self.fit_reports());
    }

    fn fit_reports(&self) -> Fit {
        let nominal_nanos_per_tick = 1e9 / f64::from(self.nominal_rate_hz);
        let newest = self.reports[self.reports.len() - 1];
        // Relative to the newest report so the f64 values stay small and exact enough.
        let points = self.reports.iter().map(|r| {
            (
                (r.rtp_ext - newest.rtp_ext) as f64,
                (r.ntp_nanos - newest.ntp_nanos) as f64,
            )
        });
        let fit = LineFit::through(points).unwrap_or(LineFit {
            mean_x: 0.0,
            mean_y: 0.0,
            slope: None,
        });
        let nanos_per_tick = match fit.slope {
            Some(slope) if self.reports.len() >= 2 => slope,
            _ => self.prior_nanos_per_tick.unwrap_or(nominal_nanos_per_tick),
        };
        Fit {
            anchor_rtp: newest.rtp_ext,
            anchor_ntp_nanos: newest.ntp_nanos as f64 + fit.intercept(nanos_per_tick),
            nanos_per_tick,
        }
    }

    /// Whether at least one report has been accepted.
    pub fn is_ready(&self) -> bool {
        self.fit.is_some()
    }

    pub fn reports_kept(&self) -> usize {
        self.reports.len()
    }

    /// The sender's wallclock (nanoseconds since 1900) when the tick `rtp_ext` was captured.
    pub fn rtp_to_ntp_nanos(&self, rtp_ext: i64) -> Option<i64> {
        let fit = self.fit?;
        let ticks = rtp_ext.saturating_sub(fit.anchor_rtp) as f64;
        Some((fit.anchor_ntp_nanos + ticks * fit.nanos_per_tick).round() as i64)
    }

    /// The sender's media clock rate measured against its wallclock, once two reports exist.
    pub fn estimated_rate_hz(&self) -> Option<f64> {
        (self.reports.len() >= 2).then(|| 1e9 / self.fit.map_or(0.0, |f| f.nanos_per_tick))
    }

    /// How far the media clock runs from nominal, in ppm (negative: fewer ticks per second).
    pub fn clock_error_ppm(&self) -> Option<f64> {
        self.estimated_rate_hz()
            .map(|rate| (rate / f64::from(self.nominal_rate_hz) - 1.0) * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE_NTP_NANOS: i64 = 3_900_000_000 * 1_000_000_000;

    /// A report every 5 s from a sender whose 8 kHz clock runs at `ppm`.
    fn report(i: i64, ppm: f64) -> (i64, NtpTime) {
        let true_nanos = i * 5_000_000_000;
        let rtp = (true_nanos as f64 * 8_000.0 * (1.0 + ppm * 1e-6) / 1e9).round() as i64;
        (
            1_000 + rtp,
            NtpTime::from_nanos_since_1900(BASE_NTP_NANOS + true_nanos),
        )
    }

    #[test]
    fn fits_a_slow_clock_and_maps_ticks_to_wallclock() {
        let mut clock = SenderReportClock::new(8_000);
        for i in 0..30 {
            let (rtp, ntp) = report(i, -300.0);
            clock.handle_sender_report(rtp, ntp).unwrap();
        }
        assert_eq!(clock.reports_kept(), SENDER_REPORTS_KEPT);
        let ppm = clock.clock_error_ppm().unwrap();
        assert!((ppm + 300.0).abs() < 0.5, "{ppm}");
        // Ten seconds past the last report, the mapping is still within a tick.
        let (rtp, ntp) = report(31, -300.0);
        let mapped = clock.rtp_to_ntp_nanos(rtp).unwrap();
        assert!((mapped - ntp.as_nanos_since_1900()).abs() < 125_000);
    }

    #[test]
    fn one_report_uses_the_nominal_rate() {
        let mut clock = SenderReportClock::new(90_000);
        clock
            .handle_sender_report(0, NtpTime::from_nanos_since_1900(BASE_NTP_NANOS))
            .unwrap();
        assert_eq!(
            clock.rtp_to_ntp_nanos(90_000),
            Some(BASE_NTP_NANOS + 1_000_000_000)
        );
        assert_eq!(clock.clock_error_ppm(), None);
    }

    #[test]
    fn a_reset_keeps_the_measured_rate_for_the_next_lone_report() {
        let mut clock = SenderReportClock::new(8_000);
        for i in 0..5 {
            let (rtp, ntp) = report(i, -300.0);
            clock.handle_sender_report(rtp, ntp).unwrap();
        }
        clock.reset();
        clock
            .handle_sender_report(0, NtpTime::from_nanos_since_1900(BASE_NTP_NANOS))
            .unwrap();
        // 8000 ticks of a −300 ppm clock last 1.0003 s.
        let mapped = clock.rtp_to_ntp_nanos(8_000).unwrap() - BASE_NTP_NANOS;
        assert!((mapped - 1_000_300_090).abs() < 1_000, "{mapped}");
    }

    #[test]
    fn rejects_backward_and_implausible_reports() {
        let mut clock = SenderReportClock::new(8_000);
        let (rtp, ntp) = report(1, 0.0);
        clock.handle_sender_report(rtp, ntp).unwrap();
        assert_eq!(
            clock.handle_sender_report(rtp - 1, NtpTime::from_bits(ntp.as_bits() + (1 << 32))),
            Err(SenderReportRejection::RtpWentBackwards)
        );
        assert_eq!(
            clock.handle_sender_report(rtp + 8_000, ntp),
            Err(SenderReportRejection::NtpWentBackwards)
        );
        // Twice as many ticks as seconds.
        assert_eq!(
            clock.handle_sender_report(rtp + 16_000, NtpTime::from_bits(ntp.as_bits() + (1 << 32))),
            Err(SenderReportRejection::ImplausibleRate)
        );
        assert_eq!(clock.reports_kept(), 1);
    }

    #[test]
    fn three_rejects_in_a_row_start_over() {
        let mut clock = SenderReportClock::new(8_000);
        for i in 0..5 {
            let (rtp, ntp) = report(i, 0.0);
            clock.handle_sender_report(rtp, ntp).unwrap();
        }
        // The sender restarted: its RTP clock is now far behind.
        for i in 0..3 {
            let ntp = NtpTime::from_nanos_since_1900(BASE_NTP_NANOS + (30 + i) * 1_000_000_000);
            assert!(clock.handle_sender_report(i * 8_000, ntp).is_err());
        }
        assert_eq!(clock.reports_kept(), 1);
        let ntp = NtpTime::from_nanos_since_1900(BASE_NTP_NANOS + 33 * 1_000_000_000);
        clock.handle_sender_report(3 * 8_000, ntp).unwrap();
        assert_eq!(
            clock.rtp_to_ntp_nanos(2 * 8_000),
            Some(BASE_NTP_NANOS + 32 * 1_000_000_000)
        );
    }
}
