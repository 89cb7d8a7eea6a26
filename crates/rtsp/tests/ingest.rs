//! A real RTSP session into the sync core: the camera simulator with a slow audio clock behind a
//! jittery link, read by retina, synchronized, and checked on the output timeline by decoding the
//! pictures and the sound that come out.

use std::time::Duration;

use lockstep_media::PatternReader;
use lockstep_rtsp::ingest::{self, IngestOptions, IngestOutput, LocalClock};
use lockstep_rtsp::sim_camera::{Impairments, SimCamera, SimCameraConfig};
use lockstep_sync::LatencyProfile;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drifting_jittery_camera_comes_out_in_sync() {
    let camera = SimCamera::start(SimCameraConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        width: 320,
        height: 240,
        gop_frames: 30,
        video_bitrate_bps: 600_000,
        audio_clock_ppm: -300.0,
        video_clock_ppm: 50.0,
        impairments: Impairments {
            jitter: Duration::from_millis(40),
            ..Impairments::default()
        },
        ..SimCameraConfig::default()
    })
    .await
    .expect("camera starts");
    let clock = LocalClock::new();
    let (tx, mut rx) = mpsc::channel(4_096);
    let options = IngestOptions {
        profile: LatencyProfile::Low,
        audio_trim_nanos: 0,
    };
    let url = camera.url();
    let task = tokio::spawn(async move { ingest::run(&url, options, clock, tx).await });
    let mut outputs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(14);
    while let Ok(Some(output)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        outputs.push(output);
    }
    drop(rx);
    task.abort();
    camera.shutdown();

    let secs = |t: lockstep_sync::LocalInstant| t.as_nanos() as f64 * 1e-9;
    let mut reader = PatternReader::new(8_000).expect("decoder");
    let mut last_video_out = None;
    for output in &outputs {
        match output {
            IngestOutput::Video { out, annex_b, .. } => {
                assert!(last_video_out < Some(*out), "video stamps increase");
                last_video_out = Some(*out);
                reader.video(secs(*out), annex_b);
            }
            IngestOutput::Audio { out, pcm, .. } => reader.audio_i16(secs(*out), pcm),
            IngestOutput::Conceal { .. } | IngestOutput::Stats(_) => {}
        }
    }
    let report = reader.report().expect("beeps and flashes come out");
    // After the first seconds (keyframe, first windows of the estimators), every event is in
    // sync within the product's ±5 ms, through 40 ms of jitter and a 300 ppm slow audio clock.
    let settled: Vec<f64> = report
        .events
        .iter()
        .filter(|e| e.flash_secs > 4.0)
        .map(|e| e.offset_ms)
        .collect();
    assert!(
        settled.len() >= 7,
        "{} events after 4 s: {report:?}",
        settled.len()
    );
    for offset in &settled {
        assert!(offset.abs() <= 5.0, "offset {offset} ms in {settled:?}");
    }
    println!("offsets after convergence (ms): {settled:?}");
}
