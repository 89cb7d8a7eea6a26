//! The measurement as a person reads it, and as JSON for scripts.

use std::fmt::Write as _;

use lockstep_media::beep_flash::SyncReport;
use serde_json::json;

use super::Observations;

/// (p50, p99, max) of a list of ms values, if any.
fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pick = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    Some((pick(0.5), pick(0.99), sorted[sorted.len() - 1]))
}

pub fn text(source: &str, r: &SyncReport, o: &Observations) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "source:   {source}");
    let _ = writeln!(s, "timing:   {}", o.timing);
    let _ = writeln!(
        s,
        "content:  {} pictures, {} flashes, {} beeps, {} paired",
        r.pictures,
        r.flashes,
        r.beeps,
        r.events.len()
    );
    let _ = writeln!(
        s,
        "\nevent  flash (s)   beep (s)   offset (ms, + = audio late)"
    );
    for (i, e) in r.events.iter().enumerate() {
        let _ = writeln!(
            s,
            "{:>5}  {:>9.3}  {:>9.3}  {:>+8.2}",
            i + 1,
            e.flash_secs,
            e.beep_secs,
            e.offset_ms
        );
    }
    let _ = writeln!(
        s,
        "\noffset:   mean {:+.2} ms, p50 {:+.2} ms, p99 |offset| {:.2} ms, max {:+.2} ms",
        r.mean_ms, r.p50_ms, r.p99_abs_ms, r.max_ms
    );
    let _ = writeln!(s, "drift:    {:+.2} ms/min", r.drift_ms_per_min);
    let _ = writeln!(
        s,
        "frames:   {} dropped, {} repeated (from the stripe)",
        r.dropped_frames, r.repeated_frames
    );
    for (name, values) in [
        ("video", &o.video_latency_ms),
        ("audio", &o.audio_latency_ms),
    ] {
        if let Some((p50, p99, max)) = spread(values) {
            let _ = writeln!(
                s,
                "latency:  {name} capture → arrival p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
            );
        }
    }
    if let Some((p50, p99, max)) = spread(&o.audio_pacing_ms) {
        let _ = writeln!(
            s,
            "pacing:   audio packets arrive off their RTP spacing by p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
        );
    }
    s
}

pub fn json(r: &SyncReport, o: &Observations) -> String {
    let latency = |values: &[f64]| {
        spread(values).map(|(p50, p99, max)| json!({"p50_ms": p50, "p99_ms": p99, "max_ms": max}))
    };
    json!({
        "timing": o.timing,
        "pictures": r.pictures,
        "flashes": r.flashes,
        "beeps": r.beeps,
        "events": r.events.iter().map(|e| json!({
            "flash_s": e.flash_secs, "beep_s": e.beep_secs, "offset_ms": e.offset_ms
        })).collect::<Vec<_>>(),
        "mean_ms": r.mean_ms,
        "p50_ms": r.p50_ms,
        "p99_abs_ms": r.p99_abs_ms,
        "max_ms": r.max_ms,
        "drift_ms_per_min": r.drift_ms_per_min,
        "dropped_frames": r.dropped_frames,
        "repeated_frames": r.repeated_frames,
        "video_latency": latency(&o.video_latency_ms),
        "audio_latency": latency(&o.audio_latency_ms),
        "audio_pacing": latency(&o.audio_pacing_ms),
    })
    .to_string()
}
