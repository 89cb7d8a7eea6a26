//! Talk from a real browser: the instant a syllable enters Chromium's microphone track → the
//! instant the camera's speaker is handed it. Chromium (fake microphone playing a voice
//! stand-in, `web/tests/talk.mjs`) holds the Talk button of the web UI for SECONDS; `lockstep
//! serve` relays it to GStreamer's ONVIF camera (`crates/rtsp/tests/peers/onvif_camera.py`),
//! which records every sample its speaker gets and reports each 20 ms buffer's arrival.
//!
//! Instrument (`crates/server/tests/talk_rig/mouth_to_speaker.rs`): the microphone track as the
//! browser sends it (after its echo cancellation, noise suppression, gain) is tapped in the page,
//! each 10 ms chunk stamped with its own capture timestamp (performance clock, checked within
//! 1–2 ms of `performance.now()` at the read); syllable onsets on a 10 ms loudness grid on both
//! sides, matched near the best lag: ±10 ms per onset. Both sides on this machine's clock.
//! Includes the browser's capture and Opus encoding, WebRTC, lockstep's decode, queue and 20 ms
//! pacing, the RTSP backchannel and GStreamer's depayloading; not the camera's own playout
//! buffer or loudspeaker.
//!
//!   cargo bench -p lockstep --bench talk_browser -- [SECONDS]     (default 30)

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/talk_rig/mouth_to_speaker.rs"]
mod mouth_to_speaker;
#[path = "../../rtsp/tests/peers/speaker_camera.rs"]
mod speaker_camera;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let seconds: u32 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let record = common::tempdir::Dir::new();
    let speaker_pcm = record.path().join("speaker.s16");
    let camera = speaker_camera::SpeakerCamera::onvif_recording("s3cret", &speaker_pcm);
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[camera]]\nname = \"door\"\nurl = \"{}\"\n\
         record = \"off\"\ntalkback = \"onvif\"\n",
        camera.url_with("s3cret")
    );
    let (server, _dir) = common::Server::with_config(&config);
    let result = common::run_node(
        &root.join("web/tests/talk.mjs"),
        "",
        &[
            &format!("{}/", server.base),
            "door",
            &(seconds * 1_000).to_string(),
            record.path().join("tap.json").to_str().expect("UTF-8"),
        ],
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    let speaker = camera.speaker();
    let buffers: Vec<(f64, usize)> = speaker.iter().map(|b| (b.unix_ms, b.samples)).collect();
    let m =
        mouth_to_speaker::measure_files(&record.path().join("tap.json"), &speaker_pcm, &buffers);
    if let Ok(dump) = std::env::var("TALK_DUMP") {
        // For a look with other tools: the tap, the speaker's buffers and samples.
        let _ = std::fs::copy(record.path().join("tap.json"), format!("{dump}.tap.json"));
        let buffers_json = serde_json::to_string(&buffers).unwrap_or_default();
        let _ = std::fs::write(format!("{dump}.buffers.json"), buffers_json);
        let _ = std::fs::copy(&speaker_pcm, format!("{dump}.speaker.s16"));
    }
    let mut latencies = m.latencies_ms.clone();
    latencies.sort_by(f64::total_cmp);
    let mut spectra = m.spectral_correlations.clone();
    spectra.sort_by(f64::total_cmp);
    let mut waveform = m.correlations.clone();
    waveform.sort_by(f64::total_cmp);
    let first = speaker.iter().find(|b| b.peak > 1_000).map(|b| b.unix_ms);
    let pressed = result["pressed_unix_ms"].as_f64().unwrap_or(0.0);
    println!("talk from Chromium, {seconds} s held");
    println!(
        "  press → first sound at the speaker: {:.0} ms",
        first.map_or(f64::NAN, |f| f - pressed)
    );
    if latencies.is_empty() {
        println!("  no onsets matched");
        return;
    }
    println!("  loudness lines up best at a lag of {} ms", m.lag_ms);
    println!(
        "  microphone → speaker over {} onsets: p50 {:.0} ms, p99 {:.0} ms, min {:.0}, max {:.0} (±10 ms)",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[0],
        latencies[latencies.len() - 1]
    );
    println!(
        "  likeness: spectrum p50 {:.3} (p10 {:.3}) over {} frames; waveform p50 {:.3} over {} half seconds; level {:+.1} dB",
        percentile(&spectra, 0.5),
        percentile(&spectra, 0.1),
        spectra.len(),
        percentile(&waveform, 0.5),
        waveform.len(),
        m.level_db
    );
}
