//! Where an index row's segment lies on disk, trusting nothing in the row.
//!
//! The index is a file beside the recordings; whoever can write it could name any file in its
//! `path` column (`/etc/passwd`, `../../home/x`), and start-up recovery and retention delete
//! what it names. Only the recorder's own form is accepted — `<camera>/<YYYY-MM-DD>/
//! <HH-MM-SS.ffffff>[-N].mp4`, see [`segment_relative_path`](crate::utc::segment_relative_path)
//! — and only where its folder resolves inside the storage root (a day folder replaced by a link
//! to elsewhere is refused too).

use std::path::{Path, PathBuf};

use crate::index::{Index, IndexError};

/// Why a row's path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("index path {path:?} refused: {reason}")]
pub struct BadSegmentPath {
    pub path: String,
    pub reason: &'static str,
}

/// `root` joined with the row's `relative` path, once both its form and where its folder
/// resolves are checked.
pub fn segment_path(root: &Path, relative: &str) -> Result<PathBuf, BadSegmentPath> {
    let refuse = |reason| BadSegmentPath {
        path: relative.to_owned(),
        reason,
    };
    if !is_recorder_form(relative) {
        return Err(refuse(
            "not the recorder's <camera>/<YYYY-MM-DD>/<HH-MM-SS.ffffff>.mp4",
        ));
    }
    let path = root.join(relative);
    // The folders may be gone (retention removed them): then nothing can be followed out.
    if let (Some(folder), Ok(root)) = (path.parent(), root.canonicalize()) {
        if let Ok(folder) = folder.canonicalize() {
            if !folder.starts_with(&root) {
                return Err(refuse("its folder resolves outside the storage folder"));
            }
        }
    }
    Ok(path)
}

/// The row's file for code that deletes what it names (recovery, retention): `None` once a row
/// naming something not ours has been removed from the index — what it names is not touched.
/// `who` names the caller in the warning.
pub fn owned_segment_path(
    root: &Path,
    index: &Index,
    relative: &str,
    who: &str,
) -> Result<Option<PathBuf>, IndexError> {
    match segment_path(root, relative) {
        Ok(path) => Ok(Some(path)),
        Err(e) => {
            tracing::warn!("{who}: {e}; its row is removed");
            index.delete(relative)?;
            Ok(None)
        }
    }
}

/// The recorder's relative form, nothing else: no `..`, no absolute path, no backslash.
fn is_recorder_form(relative: &str) -> bool {
    let parts: Vec<&str> = relative.split('/').collect();
    let [camera, day, file] = parts[..] else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let camera_ok = (1..=63).contains(&camera.len())
        && camera
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !camera.starts_with('-')
        && !camera.ends_with('-');
    let day_ok = matches!(
        day.split('-').collect::<Vec<_>>()[..],
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 && digits(y) && digits(m) && digits(d)
    );
    let file_ok = file.strip_suffix(".mp4").is_some_and(|stem| {
        // HH-MM-SS.ffffff, then an optional -N when two segments began in the same microsecond.
        let (time, fraction) = stem.split_once('.').unwrap_or((stem, ""));
        let (fraction, n) = fraction.split_once('-').unwrap_or((fraction, "0"));
        let hms = time.split('-').collect::<Vec<_>>();
        hms.len() == 3
            && hms.iter().all(|p| p.len() == 2 && digits(p))
            && fraction.len() == 6
            && digits(fraction)
            && digits(n)
    });
    camera_ok && day_ok && file_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::utc::segment_relative_path;

    #[test]
    fn the_recorders_own_paths_are_accepted() {
        let root = Path::new("/nonexistent-root");
        let path = segment_relative_path("front-door", 1_764_979_200_123_456);
        assert_eq!(path, "front-door/2025-12-06/00-00-00.123456.mp4");
        assert_eq!(segment_path(root, &path).unwrap(), root.join(&path));
        let second = "front-door/2025-12-06/00-00-00.123456-2.mp4";
        assert!(segment_path(root, second).is_ok());
    }

    #[test]
    fn anything_else_is_refused_with_the_path() {
        let root = Path::new("/nonexistent-root");
        for bad in [
            "/etc/passwd",
            "../../etc/passwd",
            "cam/../../x/00-00-00.000000.mp4",
            "cam/2025-12-06/../../../etc/00-00-00.000000.mp4",
            "cam/2025-12-06/00-00-00.000000.mp4/..",
            "cam\\2025-12-06\\00-00-00.000000.mp4",
            "Cam/2025-12-06/00-00-00.000000.mp4",
            "cam/2025-12-6/00-00-00.000000.mp4",
            "cam/2025-12-06/00-00-00.mp4",
            "cam/2025-12-06/00-00-00.000000.txt",
            "cam/2025-12-06/00-00-00.000000-x.mp4",
            "cam/2025-12-06/extra/00-00-00.000000.mp4",
            "",
        ] {
            let e = segment_path(root, bad).unwrap_err();
            assert_eq!(e.path, bad);
            assert!(e.to_string().contains("refused"), "{e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_day_folder_that_links_out_of_the_root_is_refused() {
        let dir = std::env::temp_dir().join(format!("lockstep-segpath-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (root, outside) = (dir.join("root"), dir.join("outside"));
        std::fs::create_dir_all(root.join("cam")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("cam/2025-12-06")).unwrap();
        let e = segment_path(&root, "cam/2025-12-06/00-00-00.000000.mp4").unwrap_err();
        assert!(e.reason.contains("outside"), "{e}");
        std::fs::create_dir_all(root.join("cam/2025-12-07")).unwrap();
        assert!(segment_path(&root, "cam/2025-12-07/00-00-00.000000.mp4").is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
