//! Cameras lockstep did not write: GStreamer's gst-rtsp-server (`tests/peers/gst_camera.py`)
//! re-encodes the beep-flash simulator into the audio real cameras send — AAC as
//! `mpeg4-generic` (RFC 3640) and as `MP4A-LATM` (RFC 6416), Opus — with its own packetizers,
//! clocks and sender reports. Each is served by `lockstep serve` and watched over WHEP.

use std::net::TcpListener;
use std::process::{Child, Command};

mod common;
use common::{download, measure, number, spawn_first_line, tempdir, Camera, Server};

#[path = "../../record/tests/ffmpeg_check/mod.rs"]
mod ffmpeg_check;
use ffmpeg_check::ffmpeg_check;

/// A GStreamer camera process, killed on drop.
struct GstCamera {
    child: Child,
    url: String,
}

impl GstCamera {
    fn start(source: &Camera, audio: &str) -> GstCamera {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/gst_camera.py");
        // Debian's python3 has the GStreamer bindings (python3-gi), whatever python is first
        // on PATH.
        let (child, line) = spawn_first_line(Command::new("/usr/bin/python3").args([
            script,
            &source.url,
            "--port",
            &port.to_string(),
            "--audio",
            audio,
        ]));
        let url = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| {
                panic!(
                    "gst_camera.py did not start ({line:?}): .ci/run installs python3-gi, \
                     gir1.2-gst-rtsp-server-1.0 and the GStreamer plugins"
                )
            })
            .to_owned();
        GstCamera { child, url }
    }
}

impl Drop for GstCamera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Offsets of the events after the first `skip_s` seconds (GStreamer's relay moves its own
/// lip sync once, at its first sender reports).
fn settled_offsets(report: &serde_json::Value, skip_s: f64) -> Vec<f64> {
    let events = report["events"].as_array().expect("events");
    let first = events.first().map_or(0.0, |e| number(e, "flash_s"));
    events
        .iter()
        .filter(|e| number(e, "flash_s") >= first + skip_s)
        .map(|e| number(e, "offset_ms"))
        .collect()
}

fn worst(offsets: &[f64]) -> f64 {
    offsets.iter().fold(0.0f64, |w, o| w.max(o.abs()))
}

/// One camera through lockstep: live with the right codecs, in sync at a WebRTC viewer.
fn plays_in_sync(audio: &str, codec: &str) {
    let source = Camera::start(&[]);
    let camera = GstCamera::start(&source, audio);
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[camera]]\nname = \"cam\"\nurl = \"{}\"\n\
         record = \"off\"\n",
        camera.url
    );
    let (server, _dir) = Server::with_config(&config);
    let cam = server.wait_json("/api/cameras/cam", 30, |c| {
        c["state"] == "live" && !c["sync"].is_null()
    });
    assert_eq!(cam["codecs"]["audio"], codec, "{cam}");
    assert_eq!(cam["codecs"]["video"], "h264", "{cam}");

    let report = measure(
        &format!("{}/api/whep/cam", server.base),
        &["--duration", "20"],
    );
    let offsets = settled_offsets(&report, 4.0);
    assert!(offsets.len() >= 12, "{audio}: {report}");
    assert!(
        worst(&offsets) <= 5.0,
        "{audio}: worst offset {} ms at the viewer: {offsets:?}",
        worst(&offsets)
    );
    let sync = server.get_json("/api/cameras/cam")["sync"].clone();
    assert!(
        number(&sync, "concealed_ms") < 500.0,
        "{audio}: the audio plays, not concealment: {sync}"
    );
}

/// The camera itself, read by `lockstep measure` (the same depacketizers): the AAC encoder's
/// priming frame (64 ms at 16 kHz) is not heard as a late beep.
#[test]
fn an_aac_camera_measures_in_sync_without_its_priming_delay() {
    let source = Camera::start(&[]);
    let camera = GstCamera::start(&source, "aac-generic");
    let report = measure(&camera.url, &["--duration", "12"]);
    let offsets = settled_offsets(&report, 4.0);
    assert!(offsets.len() >= 6, "{report}");
    assert!(worst(&offsets) <= 5.0, "{offsets:?}");
}

#[test]
fn aac_rfc3640_camera_plays_in_sync() {
    plays_in_sync("aac-generic", "aac");
}

#[test]
fn aac_latm_camera_plays_in_sync() {
    plays_in_sync("aac-latm", "aac");
}

#[test]
fn opus_camera_plays_in_sync() {
    plays_in_sync("opus", "opus");
}

/// An AAC camera recorded: ffmpeg reads the segments and the export, and the export plays in
/// sync (its audio is the live path's, re-timed, as Opus).
#[test]
fn an_aac_camera_is_recorded_and_exported_in_sync() {
    let source = Camera::start(&[]);
    let camera = GstCamera::start(&source, "aac-generic");
    let dir = tempdir::Dir::new();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndir = '{}'\nsegment_secs = 2\n\n\
         [[camera]]\nname = \"cam\"\nurl = \"{}\"\n",
        dir.path().join("recordings").display(),
        camera.url
    );
    let server = Server::with_config_in(&dir, &config);
    // GStreamer's relay moves its lip sync once in its first seconds: judge what follows.
    let timeline = server.wait_json("/api/recordings/cam", 60, |t| {
        t["segments"]
            .as_array()
            .is_some_and(|s| s.iter().filter(|s| s["writing"] == false).count() >= 6)
    });
    let segments = timeline["segments"].as_array().expect("segments");
    let from = segments[2]["start"].as_str().expect("start");
    let to = segments[5]["end"].as_str().expect("end");
    let (status, headers, body) = download(
        &server.base,
        &format!("/api/recordings/cam/export.mp4?from={from}&to={to}"),
    );
    assert_eq!(status, 200, "{headers}");
    let file = dir.path().join("aac-export.mp4");
    std::fs::write(&file, body).expect("export written");
    assert_eq!(ffmpeg_check(&file), ["h264", "opus"]);
    let report = measure(file.to_str().expect("utf-8"), &[]);
    let offsets = settled_offsets(&report, 0.0);
    assert!(offsets.len() >= 5, "{report}");
    assert!(worst(&offsets) <= 5.0, "recorded AAC camera: {offsets:?}");
}
