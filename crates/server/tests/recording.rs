//! Recording end to end: `lockstep sim-camera` → `lockstep serve` with recording on → segment
//! files, the index, the API, and exports read by `lockstep measure` and by ffmpeg. Plus what
//! must never happen: a crash losing more than the last second, the disk filling up, a full
//! disk stopping live view, a gap stitched over, or a request reaching outside the storage.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
#[path = "../../record/tests/ffmpeg_check/mod.rs"]
mod ffmpeg_check;
use common::{download, measure, number, tempdir, Camera, Server};
use ffmpeg_check::ffmpeg_check;

fn recording_config(storage: &Path, extra_storage: &str, cameras: &[(&str, &str, &str)]) -> String {
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndir = '{}'\n{extra_storage}\n",
        storage.display()
    );
    for (name, url, options) in cameras {
        toml.push_str(&format!(
            "\n[[camera]]\nname = \"{name}\"\nurl = \"{url}\"\n{options}\n"
        ));
    }
    toml
}

fn wait_recording(server: &Server, name: &str, secs: u64) -> serde_json::Value {
    server.wait_json(&format!("/api/cameras/{name}"), secs, |c| {
        c["recording"]["state"] == "recording"
    })
}

/// Downloads an export to `dir/file`, checking the status and the promised length.
fn export(server: &Server, name: &str, from: &str, to: &str, file: &Path) -> String {
    let (status, headers, body) = download(
        &server.base,
        &format!("/api/recordings/{name}/export.mp4?from={from}&to={to}"),
    );
    assert_eq!(status, 200, "{headers}\n{}", String::from_utf8_lossy(&body));
    let length: usize = header(&headers, "content-length").parse().expect("length");
    assert_eq!(body.len(), length, "the body is as long as announced");
    std::fs::write(file, body).expect("export written");
    headers
}

fn header<'a>(headers: &'a str, name: &str) -> &'a str {
    headers
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {headers}"))
}

fn segment_files(root: &Path, camera: &str) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for day in std::fs::read_dir(root.join(camera))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(day.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            files.push(f.path());
        }
    }
    files.sort();
    files
}

fn now_rfc3339() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"])
        .output()
        .expect("date runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn two_minutes_recorded_play_back_in_sync_with_each_cameras_audio_choice() {
    let camera = Camera::start(&["--audio-clock-ppm", "-300", "--jitter-ms", "40"]);
    let dir = tempdir::Dir::new();
    let storage = dir.path().join("recordings");
    let config = recording_config(
        &storage,
        "segment_secs = 20",
        &[
            ("av", &camera.url, ""),
            ("silent", &camera.url, "record_audio = false"),
            ("off", &camera.url, "record = \"off\""),
        ],
    );
    let server = Server::with_config_in(&dir, &config);
    wait_recording(&server, "av", 30);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(122).saturating_sub(started.elapsed()));

    // The timeline: back-to-back segments, no gaps, the open one flagged.
    let timeline = server.get_json("/api/recordings/av");
    let segments = timeline["segments"].as_array().expect("segments");
    assert!(segments.len() >= 6, "{timeline}");
    assert_eq!(
        timeline["gaps"].as_array().map(Vec::len),
        Some(0),
        "{timeline}"
    );
    assert_eq!(timeline["recording"]["state"], "recording");
    assert!(segments.iter().all(|s| s["audio"] == true));
    let from = segments[0]["start"].as_str().expect("start").to_owned();
    let to = now_rfc3339();

    // Every finished segment is a file ffmpeg decodes completely, with both tracks.
    let files = segment_files(&storage, "av");
    assert_eq!(files.len(), segments.len(), "{files:?}");
    for file in &files[..files.len() - 1] {
        assert_eq!(ffmpeg_check(file), ["h264", "opus"], "{}", file.display());
    }

    // The export of the whole range plays in sync: the offset the live path keeps.
    let file = dir.path().join("av.mp4");
    let headers = export(&server, "av", &from, &to, &file);
    assert_eq!(
        header(&headers, "x-lockstep-start"),
        from,
        "starts at the first keyframe"
    );
    assert_eq!(header(&headers, "x-lockstep-gaps"), "0");
    assert_eq!(ffmpeg_check(&file), ["h264", "opus"]);
    let report = measure(file.to_str().expect("utf-8"), &[]);
    let events = report["events"].as_array().expect("events");
    assert!(events.len() >= 110, "{} events in 2 minutes", events.len());
    // The first seconds are the sync core converging on the camera's clocks (as live).
    let mut settled: Vec<f64> = events
        .iter()
        .filter(|e| number(e, "flash_s") >= 5.0)
        .map(|e| number(e, "offset_ms").abs())
        .collect();
    settled.sort_by(f64::total_cmp);
    let p99 = settled[(settled.len() * 99 / 100).min(settled.len() - 1)];
    assert!(p99 <= 5.0, "|offset| p99 {p99} ms: {settled:?}");
    assert_eq!(number(&report, "dropped_frames"), 0.0, "{report}");

    // record_audio = false: silent video, no audio track at all.
    let silent = server.get_json("/api/recordings/silent");
    assert!(silent["segments"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(silent["segments"]
        .as_array()
        .is_some_and(|s| s.iter().all(|s| s["audio"] == false)));
    let silent_file = dir.path().join("silent.mp4");
    export(&server, "silent", &from, &to, &silent_file);
    assert_eq!(ffmpeg_check(&silent_file), ["h264"]);

    // record = "off": nothing written, and the API says so.
    assert!(!storage.join("off").exists());
    let off = server.get_json("/api/recordings/off");
    assert_eq!(off["recording"]["state"], "off");
    assert_eq!(off["segments"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        server.get_json("/api/cameras/off")["recording"]["state"],
        "off"
    );

    // Metrics count what was written.
    let metrics = server.request("GET", "/metrics", "", "").body;
    let bytes: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lockstep_recorder_bytes_total{camera=\"av\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no recorder bytes in\n{metrics}"));
    assert!(bytes > 100_000.0, "{bytes}");
}

#[test]
fn bad_ranges_and_names_get_clear_errors_and_never_reach_outside_the_storage() {
    let camera = Camera::start(&[]);
    let dir = tempdir::Dir::new();
    let storage = dir.path().join("recordings");
    let server = Server::with_config_in(
        &dir,
        &recording_config(&storage, "", &[("cam", &camera.url, "")]),
    );
    wait_recording(&server, "cam", 30);
    let cases = [
        ("/api/recordings/cam?from=yesterday", 400, "RFC 3339"),
        (
            "/api/recordings/cam?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            400,
            "must be after",
        ),
        (
            "/api/recordings/cam?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            400,
            "at most",
        ),
        ("/api/recordings/cam/export.mp4", 400, "required"),
        (
            "/api/recordings/cam/export.mp4?from=2026-01-01T00:00:00Z&to=2026-01-01T07:00:00Z",
            400,
            "6 hours",
        ),
        (
            "/api/recordings/cam/export.mp4?from=2001-01-01T00:00:00Z&to=2001-01-01T01:00:00Z",
            404,
            "no recording",
        ),
        ("/api/recordings/nope", 404, "no camera"),
        ("/api/recordings/..%2F..%2Fetc%2Fpasswd/export.mp4?from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z", 404, "no camera"),
        ("/api/recordings/cam%2F..%2F..", 404, "no camera"),
    ];
    for (path, status, says) in cases {
        let r = server.request("GET", path, "", "");
        assert_eq!(r.status, status, "{path}: {}", r.body);
        let error: serde_json::Value = serde_json::from_str(&r.body).expect("JSON error");
        let message = error["error"].as_str().expect("error message");
        assert!(message.contains(says), "{path}: {message}");
    }
    // A second server on the same storage would take the first one's open segments for a
    // crash: it refuses to start, and says why.
    let second = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["serve", "--config"])
        .arg(dir.path().join("lockstep.toml"))
        .output()
        .expect("lockstep runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in use by another lockstep"), "{stderr}");
    assert_eq!(
        server.get_json("/api/cameras/cam")["recording"]["state"],
        "recording"
    );
}

#[test]
fn kill_9_loses_at_most_the_last_second_and_restart_recovers_it() {
    let camera = Camera::start(&[]);
    let dir = tempdir::Dir::new();
    let storage = dir.path().join("recordings");
    let config = recording_config(&storage, "", &[("cam", &camera.url, "")]);
    let server = Server::with_config_in(&dir, &config);
    wait_recording(&server, "cam", 30);
    std::thread::sleep(Duration::from_secs(6));
    let killed_at = now_rfc3339();
    server.kill();

    let server = Server::with_config_in(&dir, &config);
    let timeline = server.get_json("/api/recordings/cam");
    let crashed = &timeline["segments"][0];
    assert_eq!(crashed["end_reason"], "crash", "{timeline}");
    assert_eq!(crashed["writing"], false);
    // Everything up to the last complete fragment (1 s) plus the output delay is kept.
    let killed_us = lockstep_time_us(&killed_at);
    let end_us = crashed["end_us"].as_i64().expect("end_us");
    assert!(
        end_us >= killed_us - 1_500_000,
        "recovered up to {} but killed at {killed_at}",
        crashed["end"]
    );
    let file = dir.path().join("crash.mp4");
    let from = crashed["start"].as_str().expect("start");
    let to = crashed["end"].as_str().expect("end");
    export(&server, "cam", from, to, &file);
    assert_eq!(ffmpeg_check(&file), ["h264", "opus"]);
    // The recovered file itself has no partial tail left.
    let files = segment_files(&storage, "cam");
    assert_eq!(ffmpeg_check(&files[0]), ["h264", "opus"]);
    // And recording goes on after the restart, as a new segment after a gap.
    wait_recording(&server, "cam", 30);
    let timeline = server.wait_json("/api/recordings/cam", 20, |t| {
        t["segments"].as_array().is_some_and(|s| s.len() >= 2)
    });
    assert_eq!(timeline["gaps"][0]["reason"], "crash", "{timeline}");
}

/// UTC µs of an RFC 3339 time with microseconds (what `date` printed).
fn lockstep_time_us(text: &str) -> i64 {
    lockstep_record::utc::parse_rfc3339(text).expect("time")
}

#[test]
fn retention_keeps_the_budget_and_deletes_oldest_first() {
    let camera = Camera::start(&[]);
    let dir = tempdir::Dir::new();
    let storage = dir.path().join("recordings");
    let config = recording_config(
        &storage,
        "segment_secs = 2\nmax_disk = \"400KB\"",
        &[("cam", &camera.url, "")],
    );
    let server = Server::with_config_in(&dir, &config);
    wait_recording(&server, "cam", 30);
    let first = server.wait_json("/api/recordings/cam", 20, |t| {
        t["segments"].as_array().is_some_and(|s| s.len() >= 2)
    })["segments"][0]
        .clone();
    // Recording outgrows the budget within seconds; retention runs every 10 s.
    let metrics = || server.request("GET", "/metrics", "", "").body;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = metrics();
        let deleted = m
            .lines()
            .find_map(|l| l.strip_prefix("lockstep_retention_deleted_segments_total "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if deleted >= 3.0 {
            break;
        }
        assert!(Instant::now() < deadline, "retention never deleted:\n{m}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let timeline = server.get_json("/api/recordings/cam");
    let segments = timeline["segments"].as_array().expect("segments");
    let finished: Vec<u64> = segments
        .iter()
        .filter(|s| s["writing"] == false)
        .map(|s| s["bytes"].as_u64().expect("bytes"))
        .collect();
    // Retention runs every 10 s: a segment may have finished since its last pass.
    let since_last_pass = finished.iter().copied().max().unwrap_or(0);
    let kept: u64 = finished.iter().sum();
    assert!(
        kept <= 400_000 + since_last_pass,
        "{kept} bytes kept: {timeline}"
    );
    // The oldest went first; the one being written was never touched.
    assert_ne!(segments[0]["start"], first["start"], "{timeline}");
    assert!(segments.iter().any(|s| s["writing"] == true), "{timeline}");
    let files = segment_files(&storage, "cam");
    assert_eq!(
        files.len(),
        segments.len(),
        "files and index agree: {files:?}"
    );
}

#[test]
fn a_camera_that_drops_leaves_a_gap_not_a_stitch() {
    let camera = Camera::start(&["--drop-after", "6"]);
    let dir = tempdir::Dir::new();
    let storage = dir.path().join("recordings");
    let server = Server::with_config_in(
        &dir,
        &recording_config(&storage, "", &[("cam", &camera.url, "")]),
    );
    let timeline = server.wait_json("/api/recordings/cam", 60, |t| {
        t["segments"].as_array().is_some_and(|s| s.len() >= 2)
            && t["segments"][1]["end_us"].as_i64() > t["segments"][1]["start_us"].as_i64()
    });
    let gaps = timeline["gaps"].as_array().expect("gaps");
    assert_eq!(gaps.len(), 1, "{timeline}");
    let reason = gaps[0]["reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("camera"), "{timeline}");
    // Exported across the gap: one file, the gap counted, both tracks decodable.
    let from = timeline["segments"][0]["start"].as_str().expect("start");
    let to = timeline["segments"][1]["end"].as_str().expect("end");
    let file = dir.path().join("gap.mp4");
    let headers = export(&server, "cam", from, to, &file);
    assert_eq!(header(&headers, "x-lockstep-gaps"), "1");
    assert_eq!(ffmpeg_check(&file), ["h264", "opus"]);
}

/// A filesystem of its own (tmpfs in a private mount namespace), nearly full from the start:
/// the recorder fails, says why, live view goes on, and recording resumes once space is back.
#[test]
fn a_full_disk_is_an_error_state_not_an_outage() {
    let camera = Camera::start(&[]);
    let dir = tempdir::Dir::new();
    let storage = dir.path().join("recordings");
    std::fs::create_dir_all(&storage).expect("mount point");
    let config_path = dir.path().join("lockstep.toml");
    std::fs::write(
        &config_path,
        common::without_auth(&recording_config(
            &storage,
            "",
            &[("cam", &camera.url, ""), ("other", &camera.url, "")],
        )),
    )
    .expect("config");
    // 2 MB filesystem; a filler leaves ~60 kB (the index and a little video), removed after
    // 15 s by a process inside the same namespace.
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs '{dir}' && \
         head -c 1990000 /dev/zero > '{dir}/filler' && \
         (sleep 15; rm -f '{dir}/filler') & \
         sleep 0.3; exec '{bin}' serve --config '{config}'",
        dir = storage.display(),
        bin = env!("CARGO_BIN_EXE_lockstep"),
        config = config_path.display()
    );
    let mut args = vec!["--mount", "--propagation", "private"];
    if !is_root() {
        args.splice(0..0, ["--user", "--map-root-user"]);
    }
    let server = Server::spawn_command(
        Command::new("unshare")
            .args(&args)
            .args(["sh", "-c", &script]),
    );

    let failed = server.wait_json("/api/cameras/cam", 30, |c| {
        c["recording"]["state"] == "error"
    });
    let reason = failed["recording"]["error"].as_str().unwrap_or("");
    assert!(reason.to_lowercase().contains("space"), "{failed}");
    assert!(failed["recording"]["write_errors"].as_u64() >= Some(1));
    // Live view is untouched: both cameras live and their frames keep coming.
    let frames = |name: &str| {
        number(
            &server.get_json(&format!("/api/cameras/{name}"))["sync"],
            "video_frames",
        )
    };
    let before = (frames("cam"), frames("other"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(frames("cam") > before.0 + 30.0 && frames("other") > before.1 + 30.0);
    let metrics = server.request("GET", "/metrics", "", "").body;
    assert!(
        metrics.contains("lockstep_recorder_error{camera=\"cam\"} 1"),
        "{metrics}"
    );
    // Space comes back: the recorder resumes on its own.
    let resumed = server.wait_json("/api/recordings/cam", 60, |t| {
        t["recording"]["state"] == "recording"
            && t["segments"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["bytes"].as_u64().is_some_and(|b| b > 100_000))
            })
    });
    assert_eq!(resumed["recording"]["state"], "recording");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Some cameras announce SPS/PPS only in the SDP: ingest puts them in front of each keyframe,
/// so recording (and any decoder joining at a keyframe) works as with any other camera.
#[test]
fn a_camera_with_parameter_sets_only_in_the_sdp_is_recorded() {
    let camera = Camera::start(&["--no-inband-parameter-sets"]);
    let dir = tempdir::Dir::new();
    let storage = dir.path().join("recordings");
    let server = Server::with_config_in(
        &dir,
        &recording_config(&storage, "segment_secs = 2", &[("cam", &camera.url, "")]),
    );
    let timeline = server.wait_json("/api/recordings/cam", 40, |t| {
        t["segments"]
            .as_array()
            .is_some_and(|s| s.iter().filter(|s| s["writing"] == false).count() >= 2)
    });
    let finished = segment_files(&storage, "cam");
    for file in &finished[..2] {
        assert_eq!(ffmpeg_check(file), ["h264", "opus"], "{}", file.display());
    }
    let from = timeline["segments"][0]["start"].as_str().expect("start");
    let to = timeline["segments"][1]["end"].as_str().expect("end");
    let file = dir.path().join("sdp-only.mp4");
    export(&server, "cam", from, to, &file);
    assert_eq!(ffmpeg_check(&file), ["h264", "opus"]);
}
