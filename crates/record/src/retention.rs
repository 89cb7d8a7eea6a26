//! Retention: segments go oldest first when they are older than `retain_days`, when the
//! recordings exceed `max_disk`, or when the filesystem's free space falls under a floor (so
//! the disk never fills, whatever else shares it). A segment being written is never deleted.

use std::fs;
use std::path::Path;

use crate::index::{Index, IndexError, SegmentRow};

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
    let path = root.join(&row.path);
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
