//! Latency profiles: how much delay a source may add to ride out network jitter.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The bounds of the adaptive target delay. `low` suits talk and live view on a LAN, `balanced`
/// Wi-Fi cameras, `smooth` remote sites over the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatencyProfile {
    #[default]
    Low,
    Balanced,
    Smooth,
}

impl LatencyProfile {
    /// The least delay the jitter buffer targets.
    pub fn min_delay(self) -> Duration {
        Duration::from_millis(match self {
            LatencyProfile::Low => 0,
            LatencyProfile::Balanced => 40,
            LatencyProfile::Smooth => 100,
        })
    }

    /// The most delay the jitter buffer targets, and the hard cap on any wait: a packet later than
    /// this is lost, a frame later than this is dropped.
    pub fn max_delay(self) -> Duration {
        Duration::from_millis(match self {
            LatencyProfile::Low => 80,
            LatencyProfile::Balanced => 200,
            LatencyProfile::Smooth => 1_000,
        })
    }

    /// Capture to output for a producer that stamps its own media (a push source): a fixed
    /// delay, what the producer's jitter may use up. Cameras adapt theirs within
    /// [`min_delay`](Self::min_delay)..[`max_delay`](Self::max_delay) instead.
    pub fn fixed_playout_delay(self) -> Duration {
        Duration::from_millis(match self {
            LatencyProfile::Low => 50,
            LatencyProfile::Balanced => 120,
            LatencyProfile::Smooth => 400,
        })
    }

    /// Whether a WebRTC viewer may be told to play at once (the `playout-delay` extension,
    /// min 0): only where the source already keeps latency low.
    pub fn zero_playout_hint(self) -> bool {
        self == LatencyProfile::Low
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LatencyProfile::Low => "low",
            LatencyProfile::Balanced => "balanced",
            LatencyProfile::Smooth => "smooth",
        }
    }
}

impl fmt::Display for LatencyProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of `low`, `balanced`, `smooth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLatencyProfile(pub String);

impl fmt::Display for UnknownLatencyProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown latency profile {:?}: expected \"low\", \"balanced\" or \"smooth\"",
            self.0
        )
    }
}

impl std::error::Error for UnknownLatencyProfile {}

impl FromStr for LatencyProfile {
    type Err = UnknownLatencyProfile;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(LatencyProfile::Low),
            "balanced" => Ok(LatencyProfile::Balanced),
            "smooth" => Ok(LatencyProfile::Smooth),
            other => Err(UnknownLatencyProfile(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_profiles() {
        for p in [
            LatencyProfile::Low,
            LatencyProfile::Balanced,
            LatencyProfile::Smooth,
        ] {
            assert_eq!(p.as_str().parse::<LatencyProfile>(), Ok(p));
            assert!(p.min_delay() < p.max_delay());
        }
        let err = "fast".parse::<LatencyProfile>().unwrap_err();
        assert!(err.to_string().contains("\"fast\""));
    }
}
