//! `GET /metrics`: Prometheus text exposition, written by hand (a dozen gauges need no crate).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::camera::CameraState;
use super::recorder::RecorderState;
use super::state::AppState;

pub async fn handler(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&state),
    )
}

/// One metric family: its help line, type and one sample per camera.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, f64)>,
}

pub fn render(state: &AppState) -> String {
    let mut families = vec![
        family("lockstep_camera_up", "1 if the camera is live", "gauge"),
        family(
            "lockstep_av_offset_ms",
            "Residual audio-video offset at the output (positive: audio late)",
            "gauge",
        ),
        family(
            "lockstep_audio_drift_ppm",
            "Audio clock error against the capture timeline",
            "gauge",
        ),
        family(
            "lockstep_video_drift_ppm",
            "Video clock error against the capture timeline",
            "gauge",
        ),
        family(
            "lockstep_jitter_ms",
            "RTP interarrival jitter (RFC 3550), larger track",
            "gauge",
        ),
        family(
            "lockstep_loss_ratio",
            "Lost packets over expected packets",
            "gauge",
        ),
        family(
            "lockstep_latency_ms",
            "Capture to output (playout delay)",
            "gauge",
        ),
        family(
            "lockstep_video_frames_total",
            "Video frames output",
            "counter",
        ),
        family(
            "lockstep_dropped_frames_total",
            "Video frames dropped (late or waiting for a keyframe)",
            "counter",
        ),
        family(
            "lockstep_concealed_audio_ms_total",
            "Audio concealed because input was missing",
            "counter",
        ),
        family(
            "lockstep_sync_corrections_total",
            "Watchdog corrections of the audio-video offset",
            "counter",
        ),
        family(
            "lockstep_camera_sessions_total",
            "RTSP sessions that went live",
            "counter",
        ),
        family("lockstep_viewers", "WHEP viewers", "gauge"),
        family(
            "lockstep_viewer_frames_skipped_total",
            "Frames not sent to viewers that fell behind (current viewers)",
            "counter",
        ),
        family(
            "lockstep_recorder_recording",
            "1 while the camera's recorder writes a segment",
            "gauge",
        ),
        family(
            "lockstep_recorder_error",
            "1 while the camera's recorder is in error (disk full, write error), retrying",
            "gauge",
        ),
        family(
            "lockstep_recorder_bytes_total",
            "Bytes of recording written",
            "counter",
        ),
        family(
            "lockstep_recorder_segments_total",
            "Segments started",
            "counter",
        ),
        family(
            "lockstep_recorder_write_errors_total",
            "Failed writes of recordings",
            "counter",
        ),
        family(
            "lockstep_recorder_overruns_total",
            "Segments cut short because the recorder fell behind",
            "counter",
        ),
    ];
    for camera in &state.cameras.all() {
        let name = &camera.settings.name;
        let status = camera.status.borrow().clone();
        let up = f64::from(u8::from(status.state == CameraState::Live));
        let mut values: Vec<Option<f64>> = vec![Some(up)];
        match &status.sync {
            Some(s) => values.extend([
                s.offset_ms,
                s.audio_drift_ppm,
                s.video_drift_ppm,
                Some(s.jitter_ms),
                Some(s.loss_ratio),
                Some(s.latency_ms),
                Some(s.video_frames as f64),
                Some(s.dropped_frames as f64),
                Some(s.concealed_ms),
                Some(s.corrections as f64),
            ]),
            None => values.extend([None; 10]),
        }
        values.push(Some(status.sessions as f64));
        let viewers = state.whep.viewer_totals(name);
        values.push(Some(viewers.viewers as f64));
        values.push(Some(viewers.frames_skipped as f64));
        let recorder = state.recordings().and_then(|r| r.recorder_status(name));
        match recorder {
            Some(r) => values.extend([
                Some(f64::from(u8::from(r.state == RecorderState::Recording))),
                Some(f64::from(u8::from(r.state == RecorderState::Error))),
                Some(r.bytes as f64),
                Some(r.segments as f64),
                Some(r.write_errors as f64),
                Some(r.overruns as f64),
            ]),
            None => values.extend([None; 6]),
        }
        for (family, value) in families.iter_mut().zip(values) {
            if let Some(v) = value {
                family.samples.push((name.clone(), v));
            }
        }
    }
    let mut out = String::new();
    for f in &families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (camera, v) in &f.samples {
            // Camera names are [a-z0-9-]: nothing to escape in a label.
            let _ = writeln!(out, "{}{{camera=\"{camera}\"}} {v}", f.name);
        }
    }
    let _ = writeln!(
        out,
        "# HELP lockstep_websocket_connections Open WebSocket connections (producers, \
         signalling)\n# TYPE lockstep_websocket_connections gauge\n\
         lockstep_websocket_connections {}",
        state.ws_limits.open()
    );
    let _ = writeln!(
        out,
        "# HELP lockstep_signalling_detached Signalling sessions waiting to be resumed\n\
         # TYPE lockstep_signalling_detached gauge\nlockstep_signalling_detached {}",
        state.signalling.detached()
    );
    if let Some(recordings) = state.recordings() {
        let r = &recordings.retention;
        for (name, help, kind, value) in [
            (
                "lockstep_storage_used_bytes",
                "Bytes of recordings on disk (index)",
                "gauge",
                r.used_bytes.load(Ordering::Relaxed),
            ),
            (
                "lockstep_storage_free_bytes",
                "Free bytes on the recordings' filesystem",
                "gauge",
                r.free_bytes.load(Ordering::Relaxed),
            ),
            (
                "lockstep_retention_deleted_segments_total",
                "Segments deleted by retention (age, budget, free space)",
                "counter",
                r.deleted_segments.load(Ordering::Relaxed),
            ),
            (
                "lockstep_retention_freed_bytes_total",
                "Bytes freed by retention",
                "counter",
                r.freed_bytes.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    }
    out
}

fn family(name: &'static str, help: &'static str, kind: &'static str) -> Family {
    Family {
        name,
        help,
        kind,
        samples: Vec::new(),
    }
}
