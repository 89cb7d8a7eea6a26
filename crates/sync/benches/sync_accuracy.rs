//! Sync accuracy of the whole pipeline in virtual time: how far every output lands from the truth
//! under drifting clocks, jitter, loss and reordering. Prints a Markdown table for
//! `bench/RESULTS.md`.
//!
//! `cargo bench -p lockstep-sync --bench sync_accuracy`

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::time::{Duration, Instant};

use lockstep_sync::LatencyProfile;
use sim::{median, CameraConfig, Kind, NetworkConfig, SimConfig};

struct Scenario {
    name: &'static str,
    cfg: SimConfig,
}

fn scenarios() -> Vec<Scenario> {
    let hard = NetworkConfig {
        jitter: Duration::from_millis(40),
        loss: 0.01,
        reorder: 0.02,
        ..NetworkConfig::default()
    };
    let drifting = CameraConfig {
        audio_clock_ppm: -300.0,
        video_clock_ppm: 50.0,
        ..CameraConfig::default()
    };
    let hour = Duration::from_secs(3_600);
    let cfg = |seed, camera: CameraConfig, network: NetworkConfig, profile| SimConfig {
        seed,
        duration: hour,
        camera,
        network,
        profile,
        audio_trim: Duration::ZERO,
    };
    vec![
        Scenario {
            name: "clean camera, clean LAN",
            cfg: cfg(
                11,
                CameraConfig::default(),
                NetworkConfig::default(),
                LatencyProfile::Low,
            ),
        },
        Scenario {
            name: "−300/+50 ppm, 40 ms jitter, 1 % loss, 2 % reorder, SR 5 s",
            cfg: cfg(12, drifting.clone(), hard.clone(), LatencyProfile::Low),
        },
        Scenario {
            name: "same, no sender reports",
            cfg: cfg(
                13,
                CameraConfig {
                    report_interval: None,
                    ..drifting.clone()
                },
                hard.clone(),
                LatencyProfile::Low,
            ),
        },
        Scenario {
            name: "same, SR 5 s, bursts of 8 lost, 5 % duplicates, balanced",
            cfg: cfg(
                14,
                drifting.clone(),
                NetworkConfig {
                    loss: 0.02,
                    burst_loss: 0.3,
                    burst_len: 8,
                    duplicate: 0.05,
                    ..hard.clone()
                },
                LatencyProfile::Balanced,
            ),
        },
        Scenario {
            name: "same, SR 5 s, reboot at 30 min",
            cfg: cfg(
                15,
                CameraConfig {
                    reboot_at: Some(Duration::from_secs(1_800)),
                    ..drifting
                },
                hard,
                LatencyProfile::Low,
            ),
        },
    ]
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

// The bench times itself with the real clock; the code it measures never reads one.
#[allow(clippy::disallowed_methods)]
fn main() {
    println!(
        "| scenario (1 h virtual) | outputs | error vs truth p50 / p99 / max (ms) | A−V offset \
         mean (ms) | playout delay (ms) | concealed audio | frames dropped | wall time (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for s in scenarios() {
        let started = Instant::now();
        let r = sim::run(&s.cfg);
        let wall = started.elapsed().as_secs_f64();
        let mut video: Vec<i64> = r
            .of(Kind::Video, 10.0)
            .iter()
            .map(|o| o.delay_nanos())
            .collect();
        let common = median(&mut video);
        let mut errors: Vec<i64> = r
            .after(10.0)
            .map(|o| (o.delay_nanos() - common).abs())
            .collect();
        errors.sort_unstable();
        let mean = |k| {
            let v = r.of(k, 10.0);
            v.iter().map(|o| o.delay_nanos() as f64).sum::<f64>() / v.len() as f64
        };
        let offset = mean(Kind::Audio) - mean(Kind::Video);
        let audio_secs = r.audio_chunks_sent as f64 * 0.02;
        println!(
            "| {} | {} | {:.2} / {:.2} / {:.2} | {:+.2} | {:.1} | {:.2} % | {} | {:.2} |",
            s.name,
            r.outputs.len(),
            percentile(&errors, 0.5) as f64 / 1e6,
            percentile(&errors, 0.99) as f64 / 1e6,
            percentile(&errors, 1.0) as f64 / 1e6,
            offset / 1e6,
            r.final_playout_delay.as_secs_f64() * 1e3,
            r.concealed_samples as f64 / 48_000.0 / audio_secs * 100.0,
            r.frames_dropped,
            wall,
        );
    }
}
