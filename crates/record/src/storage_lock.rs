//! One lockstep per storage folder: two recorders sharing an index would take each other's open
//! segments for a crash and cut them. The lock is an OS file lock on `<dir>/lock`, released when
//! the process ends however it ends.

use std::fs::{File, OpenOptions};
use std::path::Path;

use fs4::fs_std::FileExt;

pub const LOCK_FILE: &str = "lock";

/// Held while the process records into the folder.
#[derive(Debug)]
pub struct StorageLock {
    _file: File,
}

impl StorageLock {
    /// Takes the folder's lock; `Ok(None)` when another process holds it.
    pub fn acquire(dir: &Path) -> std::io::Result<Option<StorageLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        Ok(file
            .try_lock_exclusive()?
            .then_some(StorageLock { _file: file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("lockstep-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = StorageLock::acquire(&dir).unwrap();
        assert!(first.is_some());
        assert!(StorageLock::acquire(&dir).unwrap().is_none());
        drop(first);
        assert!(StorageLock::acquire(&dir).unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
