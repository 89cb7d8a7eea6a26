//! `lockstep sim-camera`: flags → camera configuration → run until Ctrl-C.

use std::time::Duration;

use anyhow::Context as _;
use lockstep_rtsp::auth::Credentials;
use lockstep_rtsp::sim_camera::{parse_size, AudioCodec, Impairments, SimCamera, SimCameraConfig};

use crate::cli::{OnOff, SimAudio, SimCameraArgs};

fn millis(option: &str, ms: f64) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        ms.is_finite() && ms >= 0.0,
        "{option}: {ms} must be a non-negative number of milliseconds"
    );
    Ok(Duration::from_secs_f64(ms / 1_000.0))
}

fn seconds(option: &str, secs: Option<f64>) -> anyhow::Result<Option<Duration>> {
    secs.map(|s| {
        anyhow::ensure!(
            s.is_finite() && s > 0.0,
            "{option}: {s} must be a positive number of seconds"
        );
        Ok(Duration::from_secs_f64(s))
    })
    .transpose()
}

/// The camera configuration the flags describe.
pub fn config(args: &SimCameraArgs) -> anyhow::Result<SimCameraConfig> {
    let (width, height) = parse_size(&args.size)?;
    let credentials = match (&args.user, &args.password) {
        (Some(user), Some(password)) => Some(Credentials {
            user: user.clone(),
            password: password.clone(),
        }),
        (None, None) => None,
        _ => anyhow::bail!("--user and --password go together"),
    };
    let audio = match args.audio {
        SimAudio::Pcma => AudioCodec::Pcma,
        SimAudio::Pcmu => AudioCodec::Pcmu,
        SimAudio::Opus => AudioCodec::Opus,
        SimAudio::L16 => AudioCodec::L16,
        SimAudio::None => AudioCodec::None,
    };
    anyhow::ensure!(
        args.audio_offset_ms >= 0.0,
        "--audio-offset-ms: {} must not be negative (a microphone cannot hear the future)",
        args.audio_offset_ms
    );
    let cfg = SimCameraConfig {
        listen: args.listen,
        credentials,
        audio,
        fps: args.fps,
        width,
        height,
        replay: args.replay,
        audio_clock_ppm: args.audio_clock_ppm,
        video_clock_ppm: args.video_clock_ppm,
        audio_offset: millis("--audio-offset-ms", args.audio_offset_ms)?,
        impairments: Impairments {
            jitter: millis("--jitter-ms", args.jitter_ms)?,
            loss: args.loss,
            reorder: args.reorder,
            duplicate: args.duplicate,
        },
        sender_reports: matches!(args.sender_reports, OnOff::On),
        reboot_after: seconds("--reboot-after", args.reboot_after)?,
        drop_after: seconds("--drop-after", args.drop_after)?,
        backchannel: !args.no_backchannel,
        inband_parameter_sets: !args.no_inband_parameter_sets,
        echo_delay: millis("--echo-delay-ms", args.echo_delay_ms)?,
        echo_gain_db: args.echo_gain_db,
        near_voice: args.near_voice,
        ..SimCameraConfig::default()
    };
    cfg.validate()?;
    Ok(cfg)
}

pub async fn run(args: &SimCameraArgs) -> anyhow::Result<()> {
    let cfg = config(args)?;
    let camera = SimCamera::start(cfg).await?;
    println!("sim-camera: serving {}", camera.url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    camera.shutdown();
    Ok(())
}
