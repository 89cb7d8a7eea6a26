//! The service's log: a file that is never allowed to fill the disk. When it passes its size it
//! becomes `NAME.1` (the older ones move up to `NAME.KEEP`, the oldest goes) and a new one
//! begins; a failed rotation keeps writing to the current file rather than losing the log.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    written: u64,
    max_bytes: u64,
    keep: u32,
}

impl LogFile {
    /// Appends to `path` (creating its folder), rotating past `max_bytes`, keeping `keep` old.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<LogFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            written,
            max_bytes,
            keep,
        })
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let _ = std::fs::remove_file(self.numbered(self.keep));
        for n in (1..self.keep).rev() {
            let from = self.numbered(n);
            if from.exists() {
                std::fs::rename(&from, self.numbered(n + 1))?;
            }
        }
        // Rust opens files shareable for deletion on Windows too: the open file may be renamed.
        std::fs::rename(&self.path, self.numbered(1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            if let Err(e) = self.rotate() {
                // Keep logging where we can; say once why the file grows.
                let _ = writeln!(self.file, "cannot rotate the log: {e}");
                self.written = 0;
            }
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_log_rotates_and_keeps_only_so_many() {
        let dir = std::env::temp_dir().join(format!("lockstep-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("logs").join("lockstep.log");
        let mut log = LogFile::open(&path, 100, 2).unwrap();
        for i in 0..20 {
            writeln!(log, "line {i:02} of the log, some forty bytes").unwrap();
        }
        log.flush().unwrap();
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.len() <= 100, "{current}");
        assert!(current.ends_with("line 19 of the log, some forty bytes\n"));
        let older = std::fs::read_to_string(dir.join("logs/lockstep.log.1")).unwrap();
        assert!(older.contains("line 1"), "{older}");
        assert!(dir.join("logs/lockstep.log.2").exists());
        assert!(
            !dir.join("logs/lockstep.log.3").exists(),
            "only two old logs kept"
        );
        // Reopened, it appends and knows its size.
        drop(log);
        let mut log = LogFile::open(&path, 100, 2).unwrap();
        writeln!(log, "after a restart").unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("after a restart"));
        drop(log);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
