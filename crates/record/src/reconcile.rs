//! Start-up recovery: after a crash (or `kill -9`, or a power cut) the index and the files are
//! made to agree again. A segment left `writing` keeps every complete fragment and loses its
//! partial tail; a file the index never heard of is adopted when it holds fragments; what holds
//! none is removed. The files are the truth: they are flushed before the index is told.

use std::fs::{self, OpenOptions};
use std::path::Path;

use lockstep_media::mp4_reader::Mp4Index;

use crate::file_source::FileSource;
use crate::index::{Index, IndexError, SegmentRow};
use crate::mp4_boxes::{AUDIO_TRACK, VIDEO_TRACK};
use crate::segment_path::owned_segment_path;
use crate::utc::{parse_rfc3339, samples_end_us};

/// What start-up found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Segments a crash left open, now closed at their last complete fragment.
    pub recovered: usize,
    /// Bytes of partial fragments cut off those files.
    pub truncated_bytes: u64,
    /// Files found without an index row, now indexed.
    pub adopted: usize,
    /// Files or rows with nothing playable, removed.
    pub removed: usize,
}

/// The playable extent of a segment file: complete length and video end (segment-relative µs).
struct Extent {
    complete_len: u64,
    video_end_us: i64,
    has_audio: bool,
}

fn extent(path: &Path) -> Option<Extent> {
    let source = FileSource::open(path, None).ok()?;
    let index = Mp4Index::read(&source).ok()?;
    if !index.fragmented || index.fragments == 0 {
        return None;
    }
    let video = index.tracks.iter().find(|t| t.track_id == VIDEO_TRACK)?;
    Some(Extent {
        complete_len: index.complete_len as u64,
        video_end_us: samples_end_us(&video.samples, video.timescale),
        has_audio: index.tracks.iter().any(|t| t.track_id == AUDIO_TRACK),
    })
}

/// Cuts `path` back to `len` bytes when it is longer; returns the bytes cut.
fn truncate(path: &Path, len: u64) -> std::io::Result<u64> {
    let file = OpenOptions::new().write(true).open(path)?;
    let on_disk = file.metadata()?.len();
    if on_disk > len {
        file.set_len(len)?;
        file.sync_all()?;
    }
    Ok(on_disk.saturating_sub(len))
}

/// Runs the recovery over `root` (the storage directory).
pub fn reconcile(root: &Path, index: &Index) -> Result<Reconciled, IndexError> {
    let mut report = Reconciled::default();
    for row in index.writing()? {
        let Some(path) = owned_segment_path(root, index, &row.path, "recovery")? else {
            report.removed += 1;
            continue;
        };
        match extent(&path) {
            Some(extent) => {
                match truncate(&path, extent.complete_len) {
                    Ok(cut) => report.truncated_bytes += cut,
                    Err(e) => tracing::warn!("recovering {}: {e}", row.path),
                }
                index.close(
                    &row.path,
                    row.start_us + extent.video_end_us,
                    extent.complete_len,
                    "crash",
                )?;
                report.recovered += 1;
            }
            None => {
                let _ = fs::remove_file(&path);
                index.delete(&row.path)?;
                report.removed += 1;
            }
        }
    }
    adopt_orphans(root, index, &mut report)?;
    Ok(report)
}

/// Files a crash could have left unindexed lie in each camera's newest day folders (a recorder
/// only writes today's): those are scanned, not the whole history.
fn adopt_orphans(root: &Path, index: &Index, report: &mut Reconciled) -> Result<(), IndexError> {
    let known = index.paths()?;
    let Ok(cameras) = fs::read_dir(root) else {
        return Ok(());
    };
    for camera in cameras.flatten().filter(|e| e.path().is_dir()) {
        let camera_name = camera.file_name().to_string_lossy().to_string();
        let mut days: Vec<String> = fs::read_dir(camera.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        days.sort();
        for day in days.iter().rev().take(2) {
            let Ok(files) = fs::read_dir(camera.path().join(day)) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name().to_string_lossy().to_string();
                let Some(stem) = name.strip_suffix(".mp4") else {
                    continue;
                };
                let relative = format!("{camera_name}/{day}/{name}");
                if known.contains(&relative) {
                    continue;
                }
                let time = stem.split('-').take(3).collect::<Vec<_>>().join(":");
                let start_us = parse_rfc3339(&format!("{day}T{time}Z"));
                match (start_us, extent(&file.path())) {
                    (Ok(start_us), Some(extent)) => {
                        let _ = truncate(&file.path(), extent.complete_len);
                        index.adopt(&SegmentRow {
                            camera: camera_name.clone(),
                            path: relative.clone(),
                            start_us,
                            end_us: start_us + extent.video_end_us,
                            bytes: extent.complete_len,
                            has_audio: extent.has_audio,
                            writing: false,
                            end_reason: Some("crash".into()),
                        })?;
                        report.adopted += 1;
                        tracing::info!("adopted unindexed segment {relative}");
                    }
                    (_, None) => {
                        tracing::warn!("removing {relative}: no complete fragment in it");
                        let _ = fs::remove_file(file.path());
                        report.removed += 1;
                    }
                    (Err(e), Some(_)) => {
                        tracing::warn!("leaving {relative} alone: its name is not a time ({e})");
                    }
                }
            }
        }
    }
    Ok(())
}
