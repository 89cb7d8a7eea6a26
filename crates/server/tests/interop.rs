//! `lockstep sim-camera` and `lockstep measure` against tools we did not write: ffprobe and
//! ffmpeg read and record the camera, GStreamer plays it, and `measure` agrees with offsets we
//! put into recordings ourselves. Needs ffmpeg and GStreamer (`.ci/run` installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{measure, number, Camera};

fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("{name} must be installed (apt-get install ffmpeg gstreamer1.0-tools): {e}")
    })
}

/// Runs ffmpeg quietly; its errors fail the test.
fn ffmpeg(args: &[&str]) {
    let out = tool("ffmpeg", &[&["-v", "error"][..], args].concat());
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockstep-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn probe_codecs(url: &str, transport: &str) -> String {
    let out = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-show_entries",
            "stream=codec_name,sample_rate,width",
            "-of",
            "compact",
            url,
        ],
    );
    assert!(
        out.status.success(),
        "ffprobe over {transport}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ffprobe_reads_both_tracks_over_tcp_and_udp() {
    for (audio, codec, rate) in [
        ("pcma", "pcm_alaw", "8000"),
        ("pcmu", "pcm_mulaw", "8000"),
        ("l16", "pcm_s16be", "16000"),
        ("opus", "opus", "48000"),
    ] {
        let camera = Camera::start(&["--audio", audio]);
        for transport in ["tcp", "udp"] {
            let streams = probe_codecs(&camera.url, transport);
            assert!(
                streams.contains("codec_name=h264|width=320"),
                "{audio}/{transport}: {streams}"
            );
            assert!(
                streams.contains(&format!("codec_name={codec}|sample_rate={rate}")),
                "{audio}/{transport}: {streams}"
            );
        }
    }
}

#[test]
fn gstreamer_rtspsrc_plays_video_and_audio() {
    let camera = Camera::start(&["--audio", "pcma"]);
    for protocols in ["tcp", "udp"] {
        let location = format!("location={}", camera.url);
        let proto = format!("protocols={protocols}");
        let out = tool(
            "timeout",
            &[
                "30",
                "gst-launch-1.0",
                "-e",
                "rtspsrc",
                &location,
                &proto,
                "name=s",
                "s.",
                "!",
                "queue",
                "!",
                "rtph264depay",
                "!",
                "h264parse",
                "!",
                "avdec_h264",
                "!",
                "fakesink",
                "num-buffers=45",
                "s.",
                "!",
                "queue",
                "!",
                "rtppcmadepay",
                "!",
                "alawdec",
                "!",
                "fakesink",
                "num-buffers=50",
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("Got EOS"),
            "GStreamer over {protocols}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Records `secs` of the camera with `ffmpeg -c copy` into Matroska.
fn record(url: &str, secs: u32, path: &Path) {
    ffmpeg(&[
        "-rtsp_transport",
        "tcp",
        "-i",
        url,
        "-t",
        &secs.to_string(),
        "-c",
        "copy",
        "-y",
        path.to_str().expect("utf-8 path"),
    ]);
}

/// `lockstep measure --json` on a source.
#[test]
fn measure_agrees_with_offsets_put_in_by_ffmpeg() {
    let camera = Camera::start(&[]);
    let recording = scratch("clean.mkv");
    record(&camera.url, 8, &recording);
    drop(camera);
    for shift_ms in [0i32, 40, -40, 120, -120] {
        let offset = format!("{:.3}", f64::from(shift_ms) / 1e3);
        let input = recording.to_str().expect("utf-8");
        // Matroska and MOV (`alaw` sample entries) with the camera's G.711 copied; MP4 and
        // Matroska with the audio transcoded to AAC (the encoder's priming is undone by the MP4
        // edit list and Matroska's CodecDelay, which measure must honour).
        for (container, audio_codec) in [
            ("mkv", "copy"),
            ("mov", "copy"),
            ("mp4", "aac"),
            ("mkv", "aac"),
        ] {
            let shifted = scratch(&format!("shift{shift_ms}-{audio_codec}.{container}"));
            shift_audio(input, &offset, audio_codec, &shifted);
            let report = measure(shifted.to_str().expect("utf-8"), &[]);
            let mean = number(&report, "mean_ms");
            assert!(
                (mean - f64::from(shift_ms)).abs() <= 1.0,
                "{container}: shifted {shift_ms} ms, measured {mean} ms"
            );
            assert!(report["events"].as_array().is_some_and(|e| e.len() >= 5));
            assert_eq!(number(&report, "dropped_frames"), 0.0);
        }
    }
}

/// `input` again as `output` with its audio `offset_secs` later (ffmpeg `-itsoffset`), the video
/// copied and the audio as `audio_codec` (`copy` or an encoder).
fn shift_audio(input: &str, offset_secs: &str, audio_codec: &str, output: &Path) {
    ffmpeg(&[
        "-i",
        input,
        "-itsoffset",
        offset_secs,
        "-i",
        input,
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c:v",
        "copy",
        "-c:a",
        audio_codec,
        "-y",
        output.to_str().expect("utf-8"),
    ]);
}

/// What people record from an H.265 camera with ffmpeg, in Matroska (G.711 copied) and MP4
/// (AAC), with B-frames (x265's default): measure reads both and finds the offset ffmpeg put in.
/// The transcode itself moves the video onto ffmpeg's 30 fps grid (7 ms here), so the offset is
/// taken against the H.265 file before the shift.
#[test]
fn measure_reads_h265_recordings() {
    let camera = Camera::start(&[]);
    let recording = scratch("h265-source.mkv");
    record(&camera.url, 8, &recording);
    drop(camera);
    let h265 = scratch("h265.mkv");
    ffmpeg(&[
        "-i",
        recording.to_str().expect("utf-8"),
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "log-level=error",
        "-c:a",
        "copy",
        "-y",
        h265.to_str().expect("utf-8"),
    ]);
    let input = h265.to_str().expect("utf-8");
    let before = number(&measure(input, &[]), "mean_ms");
    for (container, audio_codec) in [("mkv", "copy"), ("mp4", "aac")] {
        let shifted = scratch(&format!("h265-shift40.{container}"));
        shift_audio(input, "0.040", audio_codec, &shifted);
        let report = measure(shifted.to_str().expect("utf-8"), &[]);
        let mean = number(&report, "mean_ms");
        assert!(
            (mean - before - 40.0).abs() <= 1.0,
            "{container}: {before} ms before the shift, {mean} ms after"
        );
        assert!(
            report["events"].as_array().is_some_and(|e| e.len() >= 5),
            "{report}"
        );
    }
}

#[test]
fn opus_audio_records_and_measures_in_sync() {
    let camera = Camera::start(&["--audio", "opus"]);
    let recording = scratch("opus.mkv");
    record(&camera.url, 8, &recording);
    let as_mp4 = scratch("opus.mp4");
    ffmpeg(&[
        "-i",
        recording.to_str().expect("utf-8"),
        "-c",
        "copy",
        "-y",
        as_mp4.to_str().expect("utf-8"),
    ]);
    for file in [&recording, &as_mp4] {
        let report = measure(file.to_str().expect("utf-8"), &[]);
        let mean = number(&report, "mean_ms");
        assert!(
            mean.abs() <= 2.0,
            "{}: Opus measured {mean} ms",
            file.display()
        );
    }
}

#[test]
fn a_hidden_audio_delay_of_100_ms_measures_100_ms() {
    let camera = Camera::start(&["--audio-offset-ms", "100"]);
    let recording = scratch("offset100.mkv");
    record(&camera.url, 8, &recording);
    let report = measure(recording.to_str().expect("utf-8"), &[]);
    let mean = number(&report, "mean_ms");
    assert!((mean - 100.0).abs() <= 2.0, "measured {mean} ms");
}

/// A camera whose audio clock runs 300 ppm slow, for two minutes. With sender reports, ffmpeg's
/// recording (it re-anchors every track at each report) and our own report-timed reading show no
/// drift; without reports, the recording keeps RTP time at the nominal rate, as a report-blind
/// relay does, and drifts by about −18 ms per minute.
#[test]
fn reports_remove_the_drift_a_report_blind_recording_keeps() {
    let with_reports = Camera::start(&["--audio-clock-ppm", "-300"]);
    let blind = Camera::start(&["--audio-clock-ppm", "-300", "--sender-reports", "off"]);
    let url = with_reports.url.clone();
    let live = std::thread::spawn(move || measure(&url, &["--duration", "120"]));
    let blind_url = blind.url.clone();
    let blind_recording = scratch("drift-blind.mkv");
    let blind_path = blind_recording.clone();
    let blind_thread = std::thread::spawn(move || record(&blind_url, 120, &blind_path));
    let recording = scratch("drift-reports.mkv");
    record(&with_reports.url, 120, &recording);
    blind_thread.join().expect("report-blind recording");
    let live = live.join().expect("live measurement");

    let drift = |path: &Path| {
        number(
            &measure(path.to_str().expect("utf-8"), &[]),
            "drift_ms_per_min",
        )
    };
    let recorded_with_reports = drift(&recording);
    let recorded_blind = drift(&blind_recording);
    let live_drift = number(&live, "drift_ms_per_min");
    assert!(
        (recorded_blind + 18.0).abs() <= 2.0,
        "report-blind recording drifts {recorded_blind} ms/min"
    );
    assert!(
        recorded_with_reports.abs() <= 1.5,
        "ffmpeg with reports drifts {recorded_with_reports} ms/min"
    );
    assert!(
        live_drift.abs() <= 1.0,
        "report-timed drift {live_drift} ms/min"
    );
    assert_eq!(live["timing"], "sender reports");
    // Live latency is reported, and small on loopback.
    assert!(number(&live["video_latency"], "p50_ms") < 100.0);
}

#[test]
fn measure_says_clearly_what_it_cannot_read() {
    let not_pattern = scratch("noise.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=8000",
        "-t",
        "3",
        "-c:v",
        "libx264",
        "-profile:v",
        "baseline",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "pcm_alaw",
        "-y",
        not_pattern.to_str().expect("utf-8"),
    ]);
    for (source, needle) in [
        (not_pattern.to_str().expect("utf-8"), "beep-flash"),
        ("/nonexistent/clip.mkv", "cannot open"),
        ("clip.avi", "not a file type"),
        ("/nonexistent/clip.mp4", "cannot open"),
        ("http://127.0.0.1:9/api/whep/cam", "WHEP"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .args(["measure", source])
            .output()
            .expect("lockstep runs");
        assert_eq!(out.status.code(), Some(1), "{source}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{source}: {stderr}");
    }
}
