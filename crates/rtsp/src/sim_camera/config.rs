//! What the simulated camera does, validated before anything starts.

use std::net::SocketAddr;
use std::time::Duration;

use crate::auth::Credentials;

/// The camera's microphone codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    Pcma,
    Pcmu,
    /// 16-bit linear PCM at 16 kHz.
    L16,
    Opus,
    None,
}

impl AudioCodec {
    /// The microphone's sample rate.
    pub fn sample_rate_hz(self) -> u32 {
        match self {
            AudioCodec::Pcma | AudioCodec::Pcmu => 8_000,
            AudioCodec::L16 => 16_000,
            AudioCodec::Opus => 48_000,
            AudioCodec::None => 0,
        }
    }
}

/// Network impairments applied per client (UDP: all; TCP: delay only, order kept).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairments {
    pub jitter: Duration,
    pub loss: f64,
    pub reorder: f64,
    pub duplicate: f64,
}

impl Impairments {
    pub fn is_none(&self) -> bool {
        self.jitter.is_zero() && self.loss == 0.0 && self.reorder == 0.0 && self.duplicate == 0.0
    }
}

#[derive(Debug, Clone)]
pub struct SimCameraConfig {
    pub listen: SocketAddr,
    pub credentials: Option<Credentials>,
    pub audio: AudioCodec,
    pub fps: u32,
    pub width: usize,
    pub height: usize,
    /// Encode one GOP once and loop it (the stripe then carries only the index).
    pub replay: bool,
    pub audio_clock_ppm: f64,
    pub video_clock_ppm: f64,
    /// A delay on the audio path that timestamps don't show (positive: audio late).
    pub audio_offset: Duration,
    pub impairments: Impairments,
    pub sender_reports: bool,
    pub report_interval: Duration,
    pub reboot_after: Option<Duration>,
    pub drop_after: Option<Duration>,
    pub backchannel: bool,
    /// SPS/PPS before each IDR (false: only in the SDP's `sprop-parameter-sets`).
    pub inband_parameter_sets: bool,
    pub echo_delay: Duration,
    pub echo_gain_db: f64,
    /// A voice at the camera instead of the beep (the near end of a two-way talk).
    pub near_voice: bool,
    pub video_bitrate_bps: u32,
    /// Frames between keyframes (cameras: 1–4 s).
    pub gop_frames: u32,
    /// Seeds the impairment and identity randomness.
    pub seed: u64,
    /// Announced in `Session`; a silent client (not playing over UDP) is dropped after it.
    pub session_timeout: Duration,
}

impl Default for SimCameraConfig {
    fn default() -> Self {
        SimCameraConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8554)),
            credentials: None,
            audio: AudioCodec::Pcma,
            fps: 30,
            width: 640,
            height: 360,
            replay: false,
            audio_clock_ppm: 0.0,
            video_clock_ppm: 0.0,
            audio_offset: Duration::ZERO,
            impairments: Impairments::default(),
            sender_reports: true,
            report_interval: Duration::from_secs(5),
            reboot_after: None,
            drop_after: None,
            backchannel: true,
            inband_parameter_sets: true,
            echo_delay: Duration::ZERO,
            echo_gain_db: -120.0,
            near_voice: false,
            video_bitrate_bps: 1_500_000,
            gop_frames: 60,
            seed: 0x5eed,
            session_timeout: Duration::from_secs(60),
        }
    }
}

/// A configuration the camera cannot run, with the option at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sim-camera: {option}: {reason}")]
pub struct ConfigError {
    pub option: &'static str,
    pub reason: String,
}

fn bad(option: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        option,
        reason: reason.into(),
    }
}

/// Parses `WIDTHxHEIGHT`.
pub fn parse_size(s: &str) -> Result<(usize, usize), ConfigError> {
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(|| {
        bad(
            "--size",
            format!("{s:?} is not WIDTHxHEIGHT (e.g. 640x360)"),
        )
    })?;
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| bad("--size", format!("{v:?} in {s:?} is not a number")))
    };
    Ok((parse(w)?, parse(h)?))
}

impl SimCameraConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=120).contains(&self.fps) {
            return Err(bad("--fps", format!("{} is outside 1..=120", self.fps)));
        }
        if self.width % 2 != 0 || self.height % 2 != 0 {
            return Err(bad(
                "--size",
                format!("{}x{} must be even", self.width, self.height),
            ));
        }
        if !(96..=3840).contains(&self.width) || !(96..=2160).contains(&self.height) {
            return Err(bad(
                "--size",
                format!("{}x{} is outside 96x96..3840x2160", self.width, self.height),
            ));
        }
        for (option, ppm) in [
            ("--audio-clock-ppm", self.audio_clock_ppm),
            ("--video-clock-ppm", self.video_clock_ppm),
        ] {
            if !ppm.is_finite() || ppm.abs() > 10_000.0 {
                return Err(bad(option, format!("{ppm} is outside ±10000 ppm")));
            }
        }
        let i = self.impairments;
        for (option, p) in [
            ("--loss", i.loss),
            ("--reorder", i.reorder),
            ("--duplicate", i.duplicate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(bad(option, format!("{p} is not a probability in 0..=1")));
            }
        }
        if i.jitter > Duration::from_secs(10) {
            return Err(bad("--jitter-ms", "more than 10 s"));
        }
        if self.audio_offset > Duration::from_secs(10) {
            return Err(bad("--audio-offset-ms", "more than 10 s"));
        }
        if !self.echo_gain_db.is_finite() || self.echo_gain_db > 20.0 {
            return Err(bad(
                "--echo-gain-db",
                format!("{} is above +20 dB", self.echo_gain_db),
            ));
        }
        if self.echo_delay > Duration::from_secs(5) {
            return Err(bad("--echo-delay-ms", "more than 5 s"));
        }
        if self.report_interval.is_zero() {
            return Err(bad("report interval", "must be positive"));
        }
        if self.gop_frames == 0 {
            return Err(bad("GOP", "must be at least one frame"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_odd_ones_are_refused() {
        assert_eq!(parse_size("1920x1080"), Ok((1920, 1080)));
        assert!(parse_size("1920").is_err());
        assert!(parse_size("axb").unwrap_err().to_string().contains("\"a\""));
        let cfg = SimCameraConfig {
            width: 641,
            ..SimCameraConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().option, "--size");
    }

    #[test]
    fn probabilities_and_rates_are_checked() {
        let mut cfg = SimCameraConfig::default();
        assert!(cfg.validate().is_ok());
        cfg.impairments.loss = 1.5;
        assert_eq!(cfg.validate().unwrap_err().option, "--loss");
        cfg.impairments.loss = 0.0;
        cfg.audio_clock_ppm = f64::NAN;
        assert_eq!(cfg.validate().unwrap_err().option, "--audio-clock-ppm");
    }
}
