//! An independent reader for the files we write: ffmpeg decodes every packet without a
//! complaint, and ffprobe lists the streams. Shared by the record crate's tests and the
//! server's (`#[path]`-included there).

use std::path::Path;
use std::process::Command;

/// Asserts ffmpeg decodes the whole file cleanly; returns the codec of each stream.
pub fn ffmpeg_check(path: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        // Keep the file's own times: the null output would re-time frames to a guessed
        // constant rate and complain about two frames closer than one period.
        .args(["-fps_mode", "passthrough", "-enc_time_base", "-1"])
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed (.ci/run installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{}: {stderr}",
        path.display()
    );
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&probe.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
