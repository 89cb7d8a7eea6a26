//! The three kinds of time, each its own type so they are never mixed:
//!
//! - [`LocalInstant`]: the server's monotonic clock (when a packet arrived, when a frame goes out).
//! - [`MediaTime`]: a track's RTP clock, as 64-bit unwrapped ticks and the clock rate.
//! - [`NtpTime`]: a sender's wallclock in RTCP's 32.32 fixed-point format.
//!
//! All stored values are integers; conversions round exactly through `i128`, so nothing drifts by
//! accumulating floating-point error.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Rounds `value * num / den` to the nearest integer (half away from zero), exactly.
pub(crate) fn mul_div_round(value: i64, num: i64, den: i64) -> i64 {
    debug_assert!(den > 0);
    let product = i128::from(value) * i128::from(num);
    let den = i128::from(den);
    let half = den / 2;
    let rounded = if product >= 0 {
        (product + half) / den
    } else {
        (product - half) / den
    };
    i64::try_from(rounded).unwrap_or(if rounded > 0 { i64::MAX } else { i64::MIN })
}

/// A point on the local monotonic clock, in nanoseconds since an arbitrary origin chosen by the
/// caller (the binary maps `std::time::Instant` onto it; tests use virtual time).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LocalInstant {
    nanos: i64,
}

impl LocalInstant {
    /// The origin of the local clock.
    pub const ZERO: LocalInstant = LocalInstant { nanos: 0 };

    pub const fn from_nanos(nanos: i64) -> Self {
        LocalInstant { nanos }
    }

    pub const fn from_micros(micros: i64) -> Self {
        LocalInstant {
            nanos: micros.saturating_mul(1_000),
        }
    }

    pub const fn from_millis(millis: i64) -> Self {
        LocalInstant {
            nanos: millis.saturating_mul(1_000_000),
        }
    }

    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    /// Seconds since the origin, for estimators that work in floating point on relative values.
    pub fn as_secs_f64(self) -> f64 {
        self.nanos as f64 / NANOS_PER_SEC as f64
    }

    /// Signed distance `self - earlier` in nanoseconds.
    pub const fn nanos_since(self, earlier: LocalInstant) -> i64 {
        self.nanos.saturating_sub(earlier.nanos)
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: LocalInstant) -> Duration {
        Duration::from_nanos(u64::try_from(self.nanos_since(earlier)).unwrap_or(0))
    }

    /// Shifts by a signed number of nanoseconds.
    pub const fn add_nanos(self, nanos: i64) -> Self {
        LocalInstant {
            nanos: self.nanos.saturating_add(nanos),
        }
    }
}

/// A duration in nanoseconds, saturating (durations here are delays, never centuries).
pub(crate) fn duration_nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

impl Add<Duration> for LocalInstant {
    type Output = LocalInstant;
    fn add(self, rhs: Duration) -> LocalInstant {
        self.add_nanos(duration_nanos(rhs))
    }
}

impl Sub<Duration> for LocalInstant {
    type Output = LocalInstant;
    fn sub(self, rhs: Duration) -> LocalInstant {
        self.add_nanos(-duration_nanos(rhs))
    }
}

impl fmt::Debug for LocalInstant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalInstant({:.6}s)", self.as_secs_f64())
    }
}

/// A position on a track's media clock: unwrapped 64-bit ticks at `clock_rate_hz`
/// (90 000 for video, the sample rate for audio, 48 000 for Opus).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct MediaTime {
    ticks: i64,
    clock_rate_hz: u32,
}

impl MediaTime {
    /// # Panics
    /// If `clock_rate_hz` is zero: a track without a clock rate is a caller bug (validate SDP first).
    pub fn new(ticks: i64, clock_rate_hz: u32) -> Self {
        assert!(clock_rate_hz > 0, "media clock rate must be positive");
        MediaTime {
            ticks,
            clock_rate_hz,
        }
    }

    pub const fn ticks(self) -> i64 {
        self.ticks
    }

    pub const fn clock_rate_hz(self) -> u32 {
        self.clock_rate_hz
    }

    /// The time since tick zero at the nominal rate, rounded to the nearest nanosecond.
    pub fn to_nanos(self) -> i64 {
        mul_div_round(self.ticks, NANOS_PER_SEC, i64::from(self.clock_rate_hz))
    }

    /// Nanoseconds at the nominal rate converted to ticks (rounded to the nearest tick).
    pub fn from_nanos(nanos: i64, clock_rate_hz: u32) -> Self {
        MediaTime::new(
            mul_div_round(nanos, i64::from(clock_rate_hz), NANOS_PER_SEC),
            clock_rate_hz,
        )
    }

    /// The same instant on another clock rate (e.g. 8 kHz G.711 → 48 kHz Opus), rounded.
    pub fn rescale(self, clock_rate_hz: u32) -> Self {
        MediaTime::new(
            mul_div_round(
                self.ticks,
                i64::from(clock_rate_hz),
                i64::from(self.clock_rate_hz),
            ),
            clock_rate_hz,
        )
    }

    pub fn add_ticks(self, ticks: i64) -> Self {
        MediaTime::new(self.ticks.saturating_add(ticks), self.clock_rate_hz)
    }
}

/// Seconds between the NTP era origin (1900-01-01) and the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET_SECS: i64 = 2_208_988_800;

/// A sender's wallclock as carried in RTCP sender reports: seconds since 1900 in the high 32 bits,
/// the binary fraction in the low 32 bits.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NtpTime(u64);

impl NtpTime {
    pub const fn from_bits(bits: u64) -> Self {
        NtpTime(bits)
    }

    pub const fn from_parts(secs: u32, fraction: u32) -> Self {
        NtpTime(((secs as u64) << 32) | fraction as u64)
    }

    pub const fn as_bits(self) -> u64 {
        self.0
    }

    /// Nanoseconds since the NTP era origin, rounded to the nearest nanosecond.
    pub fn as_nanos_since_1900(self) -> i64 {
        let secs = (self.0 >> 32) as i64;
        let fraction = (self.0 & 0xffff_ffff) as i64;
        secs * NANOS_PER_SEC + mul_div_round(fraction, NANOS_PER_SEC, 1 << 32)
    }

    /// The NTP timestamp for `nanos` since 1900 (clamped to the 32.32 range).
    pub fn from_nanos_since_1900(nanos: i64) -> Self {
        let nanos = nanos.max(0);
        let secs = nanos / NANOS_PER_SEC;
        let rem = nanos % NANOS_PER_SEC;
        let fraction = mul_div_round(rem, 1 << 32, NANOS_PER_SEC).min(0xffff_ffff);
        NtpTime(((secs.min(u32::MAX as i64) as u64) << 32) | fraction as u64)
    }

    /// Nanoseconds since the Unix epoch.
    pub fn as_unix_nanos(self) -> i64 {
        self.as_nanos_since_1900() - NTP_UNIX_OFFSET_SECS * NANOS_PER_SEC
    }

    pub fn from_unix_nanos(nanos: i64) -> Self {
        NtpTime::from_nanos_since_1900(nanos + NTP_UNIX_OFFSET_SECS * NANOS_PER_SEC)
    }

    /// A wallclock instant (one before 1970 reads as 1970).
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        let nanos = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        NtpTime::from_unix_nanos(nanos)
    }
}

impl fmt::Debug for NtpTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NtpTime({}.{:09})",
            self.as_nanos_since_1900() / NANOS_PER_SEC,
            self.as_nanos_since_1900() % NANOS_PER_SEC
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wallclock_instant_converts_to_ntp() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        let ntp = NtpTime::from_system_time(t);
        assert!((ntp.as_unix_nanos() - 1_500_000_000).abs() <= 1);
        assert_eq!(
            NtpTime::from_system_time(std::time::UNIX_EPOCH - std::time::Duration::from_secs(5)),
            NtpTime::from_unix_nanos(0)
        );
    }

    #[test]
    fn mul_div_rounds_to_nearest_both_signs() {
        assert_eq!(mul_div_round(1, 1, 3), 0);
        assert_eq!(mul_div_round(2, 1, 3), 1);
        assert_eq!(mul_div_round(-2, 1, 3), -1);
        assert_eq!(mul_div_round(3, 1, 2), 2);
        assert_eq!(mul_div_round(-3, 1, 2), -2);
    }

    #[test]
    fn media_time_converts_exactly() {
        let one_frame = MediaTime::new(3_000, 90_000);
        assert_eq!(one_frame.to_nanos(), 33_333_333);
        let twenty_ms = MediaTime::new(160, 8_000);
        assert_eq!(twenty_ms.rescale(48_000).ticks(), 960);
        assert_eq!(MediaTime::from_nanos(20_000_000, 48_000).ticks(), 960);
        // An hour of 90 kHz ticks converts without drift.
        let hour = MediaTime::new(90_000 * 3_600, 90_000);
        assert_eq!(hour.to_nanos(), 3_600 * NANOS_PER_SEC);
    }

    #[test]
    fn media_time_rescale_is_exact_over_long_spans() {
        // A day of 8 kHz samples is exactly six times as many 48 kHz samples.
        let day = MediaTime::new(8_000 * 86_400, 8_000);
        assert_eq!(day.rescale(48_000).ticks(), 48_000 * 86_400);
    }

    #[test]
    fn ntp_round_trips_through_nanos() {
        let ntp = NtpTime::from_parts(3_900_000_000, 0x8000_0000);
        assert_eq!(
            ntp.as_nanos_since_1900(),
            3_900_000_000 * NANOS_PER_SEC + 500_000_000
        );
        assert_eq!(
            NtpTime::from_nanos_since_1900(ntp.as_nanos_since_1900()),
            ntp
        );
        let unix = 1_700_000_000 * NANOS_PER_SEC + 123_456_789;
        let back = NtpTime::from_unix_nanos(unix).as_unix_nanos();
        assert!((back - unix).abs() <= 1, "{back} vs {unix}");
    }

    #[test]
    fn local_instant_arithmetic() {
        let t = LocalInstant::from_millis(1_000);
        assert_eq!((t + Duration::from_millis(5)).as_nanos(), 1_005_000_000);
        assert_eq!((t - Duration::from_millis(5)).nanos_since(t), -5_000_000);
        assert_eq!(
            LocalInstant::ZERO.saturating_duration_since(t),
            Duration::ZERO
        );
    }
}
