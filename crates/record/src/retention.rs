//! Retention: segments go oldest first when they are older than `retain_days`, when the
//! recordings exceed `max_disk`, or when the filesystem's free space falls under a floor (so
//! the disk never fills, whatever else shares it). A segment being written is never deleted.

use std::fs;
use std::path::Path;

use crate::index::{Index, IndexError, SegmentRow};
use crate::segment_path::owned_segment_path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub retain_days: u32,
    pub max_disk_bytes: u64,
    /// Free space to keep on the filesystem, whatever the budget says.
    pub min_free_bytes: u64,
}

impl RetentionPolicy {
    /// The free-space floor for a filesystem of `total` bytes: 5 % of it, at most 2 GB.
    pub fn floor_for(total: u64) -> u64 {
        (total / 20).min(2_000_000_000)
    }
}

/// What one pass deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub expired: usize,
    pub over_budget: usize,
    pub low_space: usize,
    pub bytes_freed: u64,
}

impl RetentionReport {
    pub fn deleted(&self) -> usize {
        self.expired + self.over_budget + self.low_space
    }
}

/// One pass over the index at `now_us`.
pub fn enforce(
    root: &Path,
    index: &Index,
    policy: &RetentionPolicy,
    now_us: i64,
) -> Result<RetentionReport, IndexError> {
    let mut report = RetentionReport::default();
    let cutoff = now_us - i64::from(policy.retain_days) * 86_400 * 1_000_000;
    for row in index.finished_before(cutoff)? {
        report.bytes_freed += remove(root, index, &row)?;
        report.expired += 1;
    }
    let mut total = index.total_bytes()?;
    while total > policy.max_disk_bytes {
        let batch = index.oldest_finished(64)?;
        if batch.is_empty() {
            break; // only segments being written are left
        }
        for row in batch {
            if total <= policy.max_disk_bytes {
                break;
            }
            let freed = remove(root, index, &row)?;
            total = total.saturating_sub(row.bytes.max(freed));
            report.bytes_freed += freed;
            report.over_budget += 1;
        }
    }
    while free_space(root).is_some_and(|free| free < policy.min_free_bytes) {
        let Some(row) = index.oldest_finished(1)?.pop() else {
            break;
        };
        report.bytes_freed += remove(root, index, &row)?;
        report.low_space += 1;
    }
    Ok(report)
}

/// Free bytes on the filesystem holding `root` (`None` if it cannot be asked).
pub fn free_space(root: &Path) -> Option<u64> {
    fs4::available_space(root).ok()
}

/// Deletes a segment's file, then its row, then its day folder if now empty. Returns the bytes
/// the file held. (A crash between file and row leaves a row without a file: export skips it
/// and the next pass removes it.)
fn remove(root: &Path, index: &Index, row: &SegmentRow) -> Result<u64, IndexError> {
    let Some(path) = owned_segment_path(root, index, &row.path, "retention")? else {
        return Ok(0);
    };
    let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("retention: cannot delete {}: {e}", row.path),
    }
    index.delete(&row.path)?;
    if let Some(day) = path.parent() {
        let _ = fs::remove_dir(day); // fails while other segments are in it
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_US: i64 = 86_400 * 1_000_000;

    /// Five finished one-hour segments a day apart (1 kB files) and one being written.
    fn fixture(name: &str) -> (std::path::PathBuf, Index) {
        let root =
            std::env::temp_dir().join(format!("lockstep-retention-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let index = Index::open(&root).unwrap();
        for day in 0..6i64 {
            let path = seg(day);
            fs::create_dir_all(root.join(&path).parent().unwrap()).unwrap();
            fs::write(root.join(&path), vec![0u8; 1000]).unwrap();
            index.insert("cam", &path, day * DAY_US, true).unwrap();
            if day < 5 {
                index
                    .close(&path, day * DAY_US + 3_600_000_000, 1000, "rollover")
                    .unwrap();
            } else {
                index
                    .extend(&path, day * DAY_US + 60_000_000, 1000)
                    .unwrap();
            }
        }
        (root, index)
    }

    /// Day `day`'s segment, in the recorder's form.
    fn seg(day: i64) -> String {
        crate::utc::segment_relative_path("cam", day * DAY_US)
    }

    fn left(index: &Index) -> Vec<String> {
        let mut paths: Vec<String> = index.paths().unwrap().into_iter().collect();
        paths.sort();
        paths
    }

    #[test]
    fn age_then_budget_oldest_first_never_the_open_segment() {
        let (root, index) = fixture("age-budget");
        let lenient = RetentionPolicy {
            retain_days: 3,
            max_disk_bytes: u64::MAX,
            min_free_bytes: 0,
        };
        // At day 6: segments ended before day 3 go (days 0, 1, 2).
        let report = enforce(&root, &index, &lenient, 6 * DAY_US).unwrap();
        assert_eq!((report.expired, report.bytes_freed), (3, 3000));
        assert_eq!(left(&index), [seg(3), seg(4), seg(5)]);
        assert!(!root.join(seg(0)).exists());
        // A budget of 1.5 kB: the oldest finished one goes, the open one stays even though
        // the total is still over.
        let tight = RetentionPolicy {
            max_disk_bytes: 1500,
            ..lenient
        };
        let report = enforce(&root, &index, &tight, 6 * DAY_US).unwrap();
        assert_eq!(report.over_budget, 2);
        assert_eq!(left(&index), [seg(5)]);
        assert!(root.join(seg(5)).exists());
        // A free-space floor no disk can meet: nothing finished is left to delete, and the
        // segment being written is still not touched.
        let floor = RetentionPolicy {
            min_free_bytes: u64::MAX,
            ..lenient
        };
        let report = enforce(&root, &index, &floor, 6 * DAY_US).unwrap();
        assert_eq!(report.deleted(), 0);
        assert_eq!(left(&index), [seg(5)]);
        // Windows deletes no file that is open: the index first.
        drop(index);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn low_free_space_deletes_oldest_first_whatever_the_budget() {
        let (root, index) = fixture("floor");
        let policy = RetentionPolicy {
            retain_days: 365,
            max_disk_bytes: u64::MAX,
            min_free_bytes: u64::MAX,
        };
        let report = enforce(&root, &index, &policy, 6 * DAY_US).unwrap();
        assert_eq!(report.low_space, 5);
        assert_eq!(left(&index), [seg(5)]);
        // Windows deletes no file that is open: the index first.
        drop(index);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_planted_row_naming_a_file_outside_the_folder_deletes_only_the_row() {
        let (root, index) = fixture("planted");
        let outside = root.with_extension("outside.mp4");
        fs::write(&outside, b"not ours").unwrap();
        let relative = format!("../{}", outside.file_name().unwrap().to_string_lossy());
        for planted in [relative, outside.to_string_lossy().to_string()] {
            index.insert("cam", &planted, 0, true).unwrap();
            index.close(&planted, 1, 1000, "rollover").unwrap();
        }
        let policy = RetentionPolicy {
            retain_days: 1,
            max_disk_bytes: u64::MAX,
            min_free_bytes: 0,
        };
        enforce(&root, &index, &policy, 6 * DAY_US).unwrap();
        assert!(
            outside.exists(),
            "a file outside the storage folder was deleted"
        );
        assert_eq!(left(&index), [seg(5)]);
        drop(index);
        fs::remove_file(&outside).unwrap();
        fs::remove_dir_all(&root).unwrap();
    }
}
