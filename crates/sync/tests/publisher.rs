//! A WebRTC (WHIP) publisher through the production `Source` in virtual time: depacketized
//! frames (one Opus packet or one access unit each) with the publisher's sender reports, whose
//! wallclock drifts and then steps. Both tracks hang on the same reports, so lips stay on the
//! voice through the step; the sender-report clock re-fits at every report.

mod sim;

use std::time::Duration;

use lockstep_sync::LatencyProfile;
use sim::{CameraConfig, Kind, NetworkConfig, SimConfig, SimResult};

/// A browser publishing: Opus at 48 kHz in 20 ms frames, 30 fps, a report a second per track,
/// its audio clock 150 ppm fast against its video clock.
fn publisher(step: Option<(Duration, i64)>) -> CameraConfig {
    CameraConfig {
        audio_rate_hz: 48_000,
        audio_packet_samples: 960,
        audio_clock_ppm: 150.0,
        video_clock_ppm: 0.0,
        report_interval: Some(Duration::from_secs(1)),
        frame_inputs: true,
        wallclock_step: step,
        ..CameraConfig::default()
    }
}

fn run(camera: CameraConfig, secs: u64) -> SimResult {
    sim::run(&SimConfig {
        seed: 11,
        duration: Duration::from_secs(secs),
        camera,
        network: NetworkConfig {
            base_delay: Duration::from_millis(20),
            jitter: Duration::from_millis(15),
            ..NetworkConfig::default()
        },
        profile: LatencyProfile::Low,
        audio_trim: Duration::ZERO,
    })
}

/// The largest |offset| of a run, printed for `bench/RESULTS.md` (`-- --nocapture`).
fn print_worst(name: &str, offsets: &[(u64, f64)], drift_ppm: Option<f64>) {
    let worst = offsets.iter().map(|(_, ms)| ms.abs()).fold(0.0, f64::max);
    println!(
        "{name}: worst second {worst:.3} ms over {} s; audio drift {drift_ppm:?} ppm",
        offsets.len()
    );
}

/// For each second from `from_secs`: mean audio delay minus mean video delay (ms).
fn offsets_per_second(result: &SimResult, from_secs: u64, to_secs: u64) -> Vec<(u64, f64)> {
    (from_secs..to_secs)
        .filter_map(|s| {
            let in_second = |kind| -> Vec<i64> {
                result
                    .of(kind, s as f64)
                    .iter()
                    .filter(|o| o.truth_nanos < (s + 1) as i64 * 1_000_000_000)
                    .map(|o| o.delay_nanos())
                    .collect()
            };
            let (audio, video) = (in_second(Kind::Audio), in_second(Kind::Video));
            if audio.is_empty() || video.is_empty() {
                return None;
            }
            let mean = |v: &[i64]| v.iter().sum::<i64>() as f64 / v.len() as f64;
            Some((s, (mean(&audio) - mean(&video)) / 1e6))
        })
        .collect()
}

#[test]
fn a_publisher_stays_in_sync_and_its_drift_is_measured() {
    let result = run(publisher(None), 120);
    assert_eq!(result.clock_source, "rtcp");
    let offsets = offsets_per_second(&result, 5, 119);
    print_worst("publisher", &offsets, result.audio_drift_ppm);
    assert!(offsets.len() > 100, "{} seconds measured", offsets.len());
    for (s, ms) in &offsets {
        assert!(
            ms.abs() <= 2.0,
            "second {s}: audio {ms:+.2} ms against video"
        );
    }
    let drift = result.audio_drift_ppm.expect("audio drift measured");
    assert!((drift - 150.0).abs() < 20.0, "audio drift {drift} ppm");
}

#[test]
fn a_publisher_whose_wallclock_steps_keeps_lips_on_the_voice() {
    // At 60 s the publisher's clock jumps 400 ms ahead (an NTP correction).
    let result = run(publisher(Some((Duration::from_secs(60), 400_000_000))), 150);
    let offsets = offsets_per_second(&result, 5, 149);
    print_worst(
        "publisher with a clock step",
        &offsets,
        result.audio_drift_ppm,
    );
    assert!(offsets.len() > 130, "{} seconds measured", offsets.len());
    for (s, ms) in &offsets {
        assert!(
            ms.abs() <= 2.0,
            "second {s}: audio {ms:+.2} ms against video"
        );
    }
    // Audio never stalls and video keeps coming: a step is not an outage.
    let frames_after = result.of(Kind::Video, 61.0).len();
    assert!(
        frames_after > 85 * 30 * 9 / 10,
        "{frames_after} frames after the step"
    );
    let audio_after = result.of(Kind::Audio, 61.0).len();
    assert!(
        audio_after > 85 * 50 * 9 / 10,
        "{audio_after} audio packets after the step"
    );
}
