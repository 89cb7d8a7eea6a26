//! What recording costs: CPU per recorded camera (video only, video + audio) at a camera-like
//! bitrate, write amplification (bytes on disk per media byte, index included), export speed,
//! and timeline queries over 30 days × 100 cameras of index rows.
//!
//!   cargo bench -p lockstep-record --bench record_cost [-- SECONDS_OF_MEDIA]
//!
//! Prints a markdown table (copied into bench/RESULTS.md). CPU is this thread's user + system
//! time (Linux `/proc/thread-self/stat`), with every fragment flushed to disk as in production.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lockstep_media::Codec;
use lockstep_record::{plan_export, FrameKind, Index, RecordFrame, SegmentWriter};

/// OpenH264's 320x240 parameter sets (the writer needs parseable ones; sizes below are 1080p's).
const SPS: [u8; 13] = [103, 66, 192, 20, 140, 104, 20, 31, 32, 30, 17, 8, 212];
const PPS: [u8; 4] = [104, 206, 60, 128];
/// 4 Mbit/s at 30 fps with a 2 s GOP: 120 kB keyframes, ~13 kB other frames.
const KEYFRAME_BYTES: usize = 120_000;
const FRAME_BYTES: usize = 13_000;
/// Opus 32 kbit/s: 80 bytes per 20 ms.
const OPUS_BYTES: usize = 80;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is 14th, stime 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Bytes this process has sent to storage (`/proc/self/io` `write_bytes`: file data and
/// the index's WAL and checkpoints as they reach the block layer).
fn storage_write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        total += if path.is_dir() {
            dir_bytes(&path)
        } else {
            entry.metadata().map_or(0, |m| m.len())
        };
    }
    total
}

fn annex_b(keyframe: bool, size: usize, seed: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 32);
    if keyframe {
        for nal in [&SPS[..], &PPS[..]] {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
    }
    out.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }]);
    // Incompressible-looking payload without start codes.
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push((x as u8) | 1);
    }
    out
}

struct Recorded {
    cpu_s: f64,
    wall_s: f64,
    media_bytes: u64,
    disk_bytes: u64,
    written_bytes: u64,
}

fn record(root: &Path, camera: &str, secs: u32, audio: bool) -> Recorded {
    let index = Index::open(root).expect("index");
    let mut writer = SegmentWriter::new(root, camera, audio);
    let keyframe = annex_b(true, KEYFRAME_BYTES, 1);
    let frames: Vec<Vec<u8>> = (0..8).map(|i| annex_b(false, FRAME_BYTES, i + 2)).collect();
    let packet = vec![0x78u8; OPUS_BYTES];
    let start_us = 1_795_000_000_000_000i64;
    let mut events = Vec::new();
    let mut media_bytes = 0u64;
    let (cpu0, wall0, written0) = (cpu_seconds(), Instant::now(), storage_write_bytes());
    let (mut v, mut a) = (0i64, 0i64);
    let (frames_total, packets_total) = (i64::from(secs) * 30, i64::from(secs) * 50);
    while v < frames_total || a < packets_total {
        let video_first = v < frames_total && (a >= packets_total || v * 3000 * 48 <= a * 960 * 90);
        let (kind, pts, data) = if video_first {
            let key = v % 60 == 0;
            let data = if key {
                &keyframe
            } else {
                &frames[(v % 8) as usize]
            };
            v += 1;
            (
                FrameKind::Video {
                    codec: Codec::H264,
                    keyframe: key,
                },
                (v - 1) * 3000,
                data,
            )
        } else {
            a += 1;
            (FrameKind::Audio, (a - 1) * 960, &packet)
        };
        if audio || video_first {
            media_bytes += data.len() as u64;
        }
        let utc_us = start_us
            + match kind {
                FrameKind::Video { .. } => pts * 100 / 9,
                FrameKind::Audio => pts * 1000 / 48,
            };
        let frame = RecordFrame {
            kind,
            pts,
            utc_us,
            data,
        };
        writer.push(&frame, &mut events).expect("write");
        for event in events.drain(..) {
            index.apply(camera, &event).expect("index");
        }
    }
    writer.close("stopped", &mut events).expect("close");
    for event in events.drain(..) {
        index.apply(camera, &event).expect("index");
    }
    let cpu_s = cpu_seconds() - cpu0;
    let wall_s = wall0.elapsed().as_secs_f64();
    drop(index); // checkpoints the WAL into the database
    Recorded {
        cpu_s,
        wall_s,
        media_bytes,
        disk_bytes: dir_bytes(&root.join(camera)),
        written_bytes: storage_write_bytes() - written0,
    }
}

fn tempdir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("record-bench-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}

fn main() {
    let secs: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(120);
    println!("Recording cost, {secs} s of 4 Mbit/s 30 fps video (+ Opus 32 kbit/s), fragments flushed (fdatasync) every second\n");
    println!("| case | CPU per camera (% of one core) | wall per media second | file bytes / media bytes | bytes sent to storage / media bytes |");
    println!("|---|---|---|---|---|");
    let root = tempdir("write");
    let mut recorded_root = None;
    for (label, audio) in [("video only", false), ("video + audio", true)] {
        let camera = if audio { "with-audio" } else { "video-only" };
        let r = record(&root, camera, secs, audio);
        println!(
            "| {label} | {:.2} % | {:.2} ms | {:.4} | {:.3} |",
            100.0 * r.cpu_s / f64::from(secs),
            1000.0 * r.wall_s / f64::from(secs),
            r.disk_bytes as f64 / r.media_bytes as f64,
            r.written_bytes as f64 / r.media_bytes as f64
        );
        if audio {
            recorded_root = Some(root.clone());
        }
    }
    let index_bytes = dir_bytes(&root)
        - dir_bytes(&root.join("with-audio"))
        - dir_bytes(&root.join("video-only"));
    println!("\nIndex for both cameras: {index_bytes} bytes (SQLite + WAL).");

    // Export speed: the whole recording of the camera with audio, to nowhere.
    if let Some(root) = recorded_root {
        let index = Index::open(&root).expect("index");
        let start_us = 1_795_000_000_000_000i64;
        let t0 = Instant::now();
        let plan = plan_export(
            &root,
            &index,
            "with-audio",
            start_us,
            start_us + i64::from(secs) * 1_000_000,
        )
        .expect("plan");
        let planned = t0.elapsed().as_secs_f64();
        plan.write_to(&mut std::io::sink()).expect("export");
        let total = t0.elapsed().as_secs_f64();
        println!(
            "\nExport of {secs} s ({:.1} MB): plan {:.1} ms, total {:.1} ms = {:.0} MB/s (page cache warm).",
            plan.len as f64 / 1e6,
            planned * 1000.0,
            total * 1000.0,
            plan.len as f64 / 1e6 / total
        );
    }

    // Timeline queries over 30 days × 100 cameras of one-minute segments (4.32 M rows).
    let root = tempdir("index");
    let mut index = Index::open(&root).expect("index");
    let (cameras, days) = (100usize, 30i64);
    let base_us = 1_792_000_000_000_000i64;
    let t0 = Instant::now();
    for day in 0..days {
        index
            .batch(|index| {
                for minute in 0..1440 {
                    let start = base_us + (day * 1440 + minute) * 60_000_000;
                    for camera in 0..cameras {
                        let path = format!("cam-{camera}/{day}/{minute}.mp4");
                        index.insert(&format!("cam-{camera}"), &path, start, true)?;
                        index.close(&path, start + 60_000_000, 30_000_000, "rollover")?;
                    }
                }
                Ok(())
            })
            .expect("rows");
    }
    let filled = t0.elapsed().as_secs_f64();
    let mut seed = 7u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (label, window_us) in [("1 hour", 3_600_000_000i64), ("24 hours", 86_400_000_000)] {
        let mut times = Vec::new();
        for _ in 0..200 {
            let camera = format!("cam-{}", next() % cameras as u64);
            let from = base_us + (next() % ((days * 86_400_000_000 - window_us) as u64)) as i64;
            let t = Instant::now();
            let rows = index
                .segments(&camera, from, from + window_us)
                .expect("query");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(rows.len() as i64 >= window_us / 60_000_000);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "\nTimeline query, {label} of one camera among {} rows: p50 {:.2} ms, p99 {:.2} ms",
            cameras as i64 * days * 1440,
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
    }
    println!(
        "(index filled in {filled:.0} s; {} MB on disk)",
        dir_bytes(&root) / 1_000_000
    );
}
