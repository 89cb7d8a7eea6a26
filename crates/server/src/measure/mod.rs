//! `lockstep measure`: reads beep-flash content from a file or a live stream and reports its
//! audio-video offset. Sources hand over decoded observations with presentation times; the
//! analysis (`lockstep_media::beep_flash`) is the same for all.

mod avc;
pub(crate) mod media_socket;
mod mkv;
mod mp4;
mod output;
mod rtsp;
mod whep;

use std::path::Path;

use anyhow::{bail, Context as _};
use lockstep_media::beep_flash::{analyze, BeepDetector, PictureObservation};
use lockstep_media::PatternReader;

use crate::cli::MeasureArgs;

/// What a source gave: pictures and audio with presentation times (seconds), and for live
/// sources the latency from capture to arrival.
#[derive(Debug)]
pub struct Observations {
    pub pictures: Vec<PictureObservation>,
    pub beeps: BeepDetector,
    /// How presentation times were derived (e.g. "sender reports", "container timestamps").
    pub timing: &'static str,
    /// Capture (stripe wallclock) → arrival, ms, per picture, when live.
    pub video_latency_ms: Vec<f64>,
    /// Capture (the paired flash's stripe wallclock) → arrival of the beep onset, ms, when live.
    pub audio_latency_ms: Vec<f64>,
    /// How far each audio packet's arrival is off its RTP spacing after the previous one, ms
    /// (WebRTC only: the sender's pacing plus the network's jitter).
    pub audio_pacing_ms: Vec<f64>,
}

impl Observations {
    /// What a file gives: container timestamps, no latency.
    fn from_file(reader: PatternReader) -> anyhow::Result<Self> {
        let (pictures, beeps) = reader.into_parts().map_err(anyhow::Error::msg)?;
        Ok(Observations {
            pictures,
            beeps,
            timing: "container timestamps",
            video_latency_ms: Vec::new(),
            audio_latency_ms: Vec::new(),
            audio_pacing_ms: Vec::new(),
        })
    }
}

/// Reads a file on a blocking thread (decoding is CPU work).
async fn read_file(
    path: &Path,
    duration: Option<f64>,
    reader: fn(&Path, Option<f64>) -> anyhow::Result<Observations>,
) -> anyhow::Result<Observations> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || reader(&path, duration))
        .await
        .context("the file reader stopped")?
}

pub async fn run(args: &MeasureArgs) -> anyhow::Result<()> {
    let source = args.source.as_str();
    if let Some(d) = args.duration {
        anyhow::ensure!(
            d.is_finite() && d > 0.0,
            "--duration: {d} must be a positive number of seconds"
        );
    }
    let observations = if source.starts_with("rtsp://") || source.starts_with("rtsps://") {
        rtsp::observe(source, args.duration.unwrap_or(10.0)).await?
    } else if source.starts_with("http://") || source.starts_with("https://") {
        whep::observe(source, args.token.as_deref(), args.duration.unwrap_or(10.0)).await?
    } else if source.starts_with("ws://") || source.starts_with("wss://") {
        media_socket::observe(source, args.token.as_deref(), args.duration.unwrap_or(10.0)).await?
    } else {
        let path = Path::new(source);
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("mkv") | Some("webm") => read_file(path, args.duration, mkv::observe).await?,
            Some("mp4") | Some("m4v") | Some("mov") => {
                read_file(path, args.duration, mp4::observe).await?
            }
            _ => bail!(
                "{source}: not a file type measure reads (.mp4, .mov, .mkv, .webm) nor an rtsp://, http:// (WHEP) or ws:// (media socket) URL"
            ),
        }
    };
    let report = analyze(&observations.pictures, observations.beeps.onsets())
        .with_context(|| format!("{source}: cannot measure"))?;
    if args.json {
        println!("{}", output::json(&report, &observations));
    } else {
        print!("{}", output::text(source, &report, &observations));
    }
    Ok(())
}
