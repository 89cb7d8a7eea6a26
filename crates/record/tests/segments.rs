//! The recorder's files, end to end on real bytes: segments written from a synchronized
//! stream, indexed, read back, exported, and recovered after a simulated crash.

// The helpers are part of the tests: a panic in them is a failed assertion.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::PathBuf;

use lockstep_media::mp4_reader::{Mp4File, Mp4Index, TrackCodec};
use lockstep_media::pattern::{I420Frame, StripeData};
use lockstep_media::{Codec, H264Encoder};
use lockstep_opus::{Application, OpusEncoder};
mod ffmpeg_check;
use ffmpeg_check::ffmpeg_check;
use lockstep_record::file_source::FileSource;
use lockstep_record::mp4_boxes::{AUDIO_TRACK, VIDEO_TRACK};
use lockstep_record::{plan_export, reconcile, FrameKind, Index, RecordFrame, SegmentWriter};

/// Output-timeline origin of the test stream (any value: the process-origin ticks of a server).
const BASE_90K: i64 = 9_000_000;
const START_US: i64 = 1_795_000_000_000_000;

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lockstep-rec-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// `secs` of 30 fps video (keyframe every second) and 20 ms Opus packets, in output order.
fn stream(secs: u32) -> Vec<(FrameKind, i64, Vec<u8>)> {
    stream_with_audio_lead(secs, 0)
}

/// The same, with each audio packet arriving `lead_ms` before video of the same time (audio is
/// published when due, video when the scheduler releases it: the feed interleaves them so).
fn stream_with_audio_lead(secs: u32, lead_ms: i64) -> Vec<(FrameKind, i64, Vec<u8>)> {
    let mut encoder = H264Encoder::new(30, 500_000, 30).unwrap();
    let mut opus = OpusEncoder::new(48_000, 1, Application::Audio).unwrap();
    let mut frame = I420Frame::new(320, 180);
    let mut out = Vec::new();
    let frames = secs * 30;
    let packets = secs * 50;
    let (mut v, mut a) = (0u32, 0u32);
    while v < frames || a < packets {
        let video_pts = BASE_90K + i64::from(v) * 3000;
        let audio_pts = BASE_90K * 48 / 90 + i64::from(a) * 960;
        if v < frames && (a >= packets || video_pts * 48 <= (audio_pts - lead_ms * 48) * 90) {
            frame.draw(
                v % 30 == 0,
                StripeData {
                    frame_index: v,
                    capture_unix_micros: None,
                },
            );
            let encoded = encoder.encode(&frame).unwrap();
            let mut annex_b = Vec::new();
            for nal in &encoded.nals {
                annex_b.extend_from_slice(&[0, 0, 0, 1]);
                annex_b.extend_from_slice(nal);
            }
            out.push((
                FrameKind::Video {
                    codec: Codec::H264,
                    keyframe: encoded.keyframe,
                },
                video_pts,
                annex_b,
            ));
            v += 1;
        } else {
            let pcm = vec![(a % 100) as i16 * 50; 960];
            out.push((FrameKind::Audio, audio_pts, opus.encode(&pcm).unwrap()));
            a += 1;
        }
    }
    out
}

fn utc(kind: FrameKind, pts: i64) -> i64 {
    match kind {
        FrameKind::Video { .. } => START_US + (pts - BASE_90K) * 100 / 9,
        FrameKind::Audio => START_US + (pts - BASE_90K * 48 / 90) * 1_000 / 48,
    }
}

fn record(writer: &mut SegmentWriter, index: &Index, frames: &[(FrameKind, i64, Vec<u8>)]) {
    let mut events = Vec::new();
    for (kind, pts, data) in frames {
        let frame = RecordFrame {
            kind: *kind,
            pts: *pts,
            utc_us: utc(*kind, *pts),
            data,
        };
        writer.push(&frame, &mut events).unwrap();
        for event in events.drain(..) {
            index.apply("cam", &event).unwrap();
        }
    }
}

/// Stops recording as the server does at shutdown; returns every segment of the camera.
fn stop(writer: &mut SegmentWriter, index: &Index) -> Vec<lockstep_record::SegmentRow> {
    let mut events = Vec::new();
    writer.close("stopped", &mut events).unwrap();
    for event in &events {
        index.apply("cam", event).unwrap();
    }
    index.segments("cam", 0, i64::MAX / 2).unwrap()
}

#[test]
fn segments_roll_over_at_keyframes_and_export_keeps_every_frame_in_place() {
    let root = tempdir("roundtrip");
    let index = Index::open(&root).unwrap();
    let mut writer = SegmentWriter::new(&root, "cam", true).with_segment_ticks(2 * 90_000);
    let frames = stream_with_audio_lead(7, 30);
    record(&mut writer, &index, &frames);
    let rows = stop(&mut writer, &index);
    // 7 s in 2 s segments: 4 segments, back to back (each ends where the next starts).
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for pair in rows.windows(2) {
        assert_eq!(pair[0].end_reason.as_deref(), Some("rollover"));
        assert!((pair[0].end_us - pair[1].start_us).abs() <= 1, "{pair:#?}");
    }
    assert_eq!(rows[0].start_us, START_US);
    assert_eq!(rows[3].end_us, START_US + 7_000_000);
    let mut video_frames = 0;
    for row in &rows {
        assert!(!row.writing);
        let bytes = fs::read(root.join(&row.path)).unwrap();
        assert_eq!(bytes.len() as u64, row.bytes);
        assert_eq!(ffmpeg_check(&root.join(&row.path)), ["h264", "opus"]);
        let file = Mp4Index::read(bytes.as_slice()).unwrap();
        assert!(file.fragmented);
        assert!(
            file.fragments >= 1 && file.fragments <= 3,
            "{}",
            file.fragments
        );
        let video = file
            .tracks
            .iter()
            .find(|t| t.track_id == VIDEO_TRACK)
            .unwrap();
        assert!(matches!(video.codec, TrackCodec::H264 { .. }));
        assert!(video.samples[0].sync, "a segment starts at a keyframe");
        for (i, s) in video.samples.iter().enumerate() {
            assert_eq!(s.pts, i as i64 * 3000);
            assert_eq!(s.duration, 3000);
        }
        video_frames += video.samples.len();
        let audio = file
            .tracks
            .iter()
            .find(|t| t.track_id == AUDIO_TRACK)
            .unwrap();
        // Audio starts with the picture, with 80 ms of decoder pre-roll before it (skipped by
        // the edit list) when the stream had audio before this segment.
        let preroll = if row.start_us == START_US { 0 } else { -3840 };
        assert_eq!(audio.samples[0].pts, preroll, "{}", row.path);
        for pair in audio.samples.windows(2) {
            assert_eq!(pair[1].pts - pair[0].pts, 960);
        }
    }
    assert_eq!(video_frames, 210);

    // Export 1.5 s .. 5.2 s: starts at the keyframe at 1 s, ends before 5.2 s.
    let plan = plan_export(
        &root,
        &index,
        "cam",
        START_US + 1_500_000,
        START_US + 5_200_000,
    )
    .unwrap();
    assert_eq!(plan.start_us, START_US + 1_000_000);
    assert_eq!(plan.gaps, 0);
    let mut out = Vec::new();
    plan.write_to(&mut out).unwrap();
    assert_eq!(out.len() as u64, plan.len);
    fs::write(root.join("export.mp4"), &out).unwrap();
    assert_eq!(ffmpeg_check(&root.join("export.mp4")), ["h264", "opus"]);
    let file = Mp4File::parse(out).unwrap();
    let video = file.tracks.iter().find(|t| t.handler == "vide").unwrap();
    let audio = file.tracks.iter().find(|t| t.handler == "soun").unwrap();
    // Frames 30 ..= 155 (5.2 s is frame 156's time, excluded).
    assert_eq!(video.samples.len(), 126);
    assert!(video.samples[0].sync);
    for (i, s) in video.samples.iter().enumerate() {
        assert_eq!(s.pts, i as i64 * 3000, "frame {i}");
        // The bytes are the recorded frame's (length-prefixed, a slice NAL first).
        let data = file.sample_data(s);
        let nal_len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        assert!(nal_len + 4 <= data.len());
    }
    // Audio packets sit at their recorded times: packet k of the export is packet 46 + k, the
    // first four (80 ms) before the picture as decoder pre-roll the edit list skips.
    assert_eq!(audio.samples.len(), 214);
    for (k, s) in audio.samples.iter().enumerate() {
        assert_eq!(s.pts, (k as i64 - 4) * 960, "packet {k}");
    }
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn silent_recordings_have_no_audio_track() {
    let root = tempdir("silent");
    let index = Index::open(&root).unwrap();
    let mut writer = SegmentWriter::new(&root, "cam", false);
    record(&mut writer, &index, &stream(2));
    let rows = stop(&mut writer, &index);
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].has_audio);
    let bytes = fs::read(root.join(&rows[0].path)).unwrap();
    let file = Mp4Index::read(bytes.as_slice()).unwrap();
    assert_eq!(file.tracks.len(), 1);
    let plan = plan_export(&root, &index, "cam", START_US, START_US + 2_000_000).unwrap();
    let mut out = Vec::new();
    plan.write_to(&mut out).unwrap();
    let exported = Mp4File::parse(out).unwrap();
    assert_eq!(exported.tracks.len(), 1);
    assert_eq!(exported.tracks[0].handler, "vide");
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_gap_between_segments_holds_the_picture_and_fills_silence() {
    let root = tempdir("gap");
    let index = Index::open(&root).unwrap();
    let mut writer = SegmentWriter::new(&root, "cam", true);
    let frames = stream(6);
    // Drop 2.0 s .. 4.5 s (a camera reboot); the next keyframe after the hole is at 5 s.
    let kept: Vec<_> = frames
        .into_iter()
        .filter(|(kind, pts, _)| {
            let t = utc(*kind, *pts) - START_US;
            !(2_000_000..4_500_000).contains(&t)
        })
        .collect();
    record(&mut writer, &index, &kept);
    let rows = stop(&mut writer, &index);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[0].end_reason.as_deref(), Some("gap"));
    assert_eq!(rows[0].end_us, START_US + 2_000_000);
    assert_eq!(rows[1].start_us, START_US + 5_000_000);

    let plan = plan_export(&root, &index, "cam", START_US, START_US + 6_000_000).unwrap();
    assert_eq!(plan.gaps, 1);
    let mut out = Vec::new();
    plan.write_to(&mut out).unwrap();
    fs::write(root.join("export.mp4"), &out).unwrap();
    assert_eq!(ffmpeg_check(&root.join("export.mp4")), ["h264", "opus"]);
    let file = Mp4File::parse(out).unwrap();
    let video = file.tracks.iter().find(|t| t.handler == "vide").unwrap();
    let audio = file.tracks.iter().find(|t| t.handler == "soun").unwrap();
    // 60 frames before, 30 after; the last frame before the gap lasts until 5 s.
    assert_eq!(video.samples.len(), 90);
    assert_eq!(video.samples[59].duration, 3 * 90_000 + 3000);
    assert_eq!(video.samples[60].pts, 5 * 90_000);
    // Audio keeps real time: every 20 ms filled, the packet at 5 s exactly there.
    for pair in audio.samples.windows(2) {
        assert_eq!(pair[1].pts - pair[0].pts, 960);
    }
    assert_eq!(audio.samples.len(), 300);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_crash_mid_fragment_keeps_every_complete_fragment() {
    let root = tempdir("crash");
    let index = Index::open(&root).unwrap();
    let mut writer = SegmentWriter::new(&root, "cam", true);
    record(&mut writer, &index, &stream(4));
    // The process dies: no close. A half-written fragment is left at the end of the file.
    drop(writer);
    let row = index.writing().unwrap().pop().unwrap();
    let path = root.join(&row.path);
    let complete = fs::metadata(&path).unwrap().len();
    assert_eq!(
        complete, row.bytes,
        "the index knows every flushed fragment"
    );
    let mut tail = vec![0, 0, 0x40, 0, b'm', b'o', b'o', b'f'];
    tail.extend_from_slice(&[7; 100]);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&tail);
    fs::write(&path, &bytes).unwrap();
    // And the index lost its last update (WAL not yet synced): it thinks the file is shorter.
    index.extend(&row.path, row.start_us, 0).unwrap();
    // An orphan from a crash between file creation and index insert: init only, removed.
    let orphan = root
        .join("cam")
        .join("2026-11-22")
        .join("00-00-00.000000.mp4");
    fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    fs::write(&orphan, &bytes[..600]).unwrap();

    let report = reconcile(&root, &index).unwrap();
    assert_eq!(report.recovered, 1);
    assert_eq!(report.truncated_bytes, tail.len() as u64);
    assert_eq!(report.removed, 1);
    assert!(!orphan.exists());
    let rows = index.segments("cam", 0, i64::MAX / 2).unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].writing);
    assert_eq!(rows[0].end_reason.as_deref(), Some("crash"));
    assert_eq!(rows[0].bytes, complete);
    // Fragments are cut once a second: 3 whole seconds were on disk, the 4th was pending.
    assert_eq!(rows[0].end_us, START_US + 3_000_000);
    let source = FileSource::open(&path, None).unwrap();
    let file = Mp4Index::read(&source).unwrap();
    assert_eq!(file.complete_len as u64, complete);
    assert_eq!(file.tracks[0].samples.len(), 90);
    // Windows deletes no file that is open.
    drop((source, index));
    fs::remove_dir_all(&root).unwrap();
}

/// A planted index (rows naming files outside the storage folder, absolute or through `..`)
/// loses its rows at recovery; the files they name are not touched.
#[test]
fn recovery_never_touches_a_file_a_planted_row_names_outside_the_folder() {
    let root = tempdir("planted");
    let outside = root.with_extension("victim");
    fs::write(&outside, b"not a recording").unwrap();
    let index = Index::open(&root).unwrap();
    let relative = format!("../{}", outside.file_name().unwrap().to_string_lossy());
    for planted in [relative, outside.to_string_lossy().to_string()] {
        index.insert("cam", &planted, START_US, true).unwrap();
    }
    let report = reconcile(&root, &index).unwrap();
    assert_eq!(report.removed, 2);
    assert_eq!(fs::read(&outside).unwrap(), b"not a recording");
    assert!(index.writing().unwrap().is_empty());
    drop(index);
    fs::remove_file(&outside).unwrap();
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn parameter_sets_sent_once_still_start_every_segment() {
    let root = tempdir("sps-once");
    let index = Index::open(&root).unwrap();
    let mut writer = SegmentWriter::new(&root, "cam", true).with_segment_ticks(2 * 90_000);
    let mut seen_first = false;
    let frames: Vec<_> = stream(5)
        .into_iter()
        .map(|(kind, pts, data)| {
            if !matches!(kind, FrameKind::Video { keyframe: true, .. }) {
                return (kind, pts, data);
            }
            if !seen_first {
                seen_first = true;
                return (kind, pts, data);
            }
            // Later keyframes come without SPS/PPS (NAL types 7 and 8).
            let nals = lockstep_media::h264::split_annex_b(&data);
            let mut stripped = Vec::new();
            for nal in nals.iter().filter(|n| !matches!(n[0] & 0x1f, 7 | 8)) {
                stripped.extend_from_slice(&[0, 0, 0, 1]);
                stripped.extend_from_slice(nal);
            }
            (kind, pts, stripped)
        })
        .collect();
    record(&mut writer, &index, &frames);
    let rows = stop(&mut writer, &index);
    assert_eq!(rows.len(), 3, "{rows:#?}");
    for row in &rows {
        ffmpeg_check(&root.join(&row.path));
    }
    fs::remove_dir_all(&root).unwrap();
}

/// A camera's Opus frames follow its packets: 2.5 to 20 ms. A fragment that ends on a short
/// packet must give it its own length, not 20 ms, or the next fragment's audio overlaps it.
#[test]
fn short_opus_packets_keep_the_audio_track_contiguous_across_fragments() {
    let root = tempdir("short-opus");
    let index = Index::open(&root).unwrap();
    let mut writer = SegmentWriter::new(&root, "cam", true);
    let mut opus = OpusEncoder::new(48_000, 1, Application::RestrictedLowDelay).unwrap();
    // Every 20 ms packet becomes eight of 2.5 ms: each fragment then ends on a short one.
    let frames: Vec<_> = stream(3)
        .into_iter()
        .flat_map(|(kind, pts, data)| match kind {
            FrameKind::Audio => (0..8)
                .map(|k| {
                    (
                        kind,
                        pts + k * 120,
                        opus.encode(&[k as i16 * 40; 120]).unwrap(),
                    )
                })
                .collect::<Vec<_>>(),
            _ => vec![(kind, pts, data)],
        })
        .collect();
    record(&mut writer, &index, &frames);
    let rows = stop(&mut writer, &index);
    let bytes = fs::read(root.join(&rows[0].path)).unwrap();
    let file = Mp4Index::read(bytes.as_slice()).unwrap();
    assert!(file.fragments >= 3, "{} fragments", file.fragments);
    let audio = file.tracks.iter().find(|t| t.handler == "soun").unwrap();
    assert!(audio.samples.len() > 8 * 100, "{}", audio.samples.len());
    for pair in audio.samples.windows(2) {
        assert_eq!(pair[0].duration, 120, "a 2.5 ms packet at {}", pair[0].pts);
        assert_eq!(pair[0].pts + 120, pair[1].pts);
    }
    assert_eq!(audio.samples.last().unwrap().duration, 120);
    fs::remove_dir_all(&root).unwrap();
}
