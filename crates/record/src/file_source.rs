//! A file read at offsets without loading it (the MP4 index is built from box headers).

use std::fs::File;
use std::path::Path;

use lockstep_media::mp4_reader::{ByteSource, Mp4Error};

#[derive(Debug)]
pub struct FileSource {
    file: File,
    /// Bytes of the file that count (a segment being written: up to its last fragment).
    len: usize,
}

impl FileSource {
    /// Opens `path`, reading at most `limit` bytes of it.
    pub fn open(path: &Path, limit: Option<u64>) -> std::io::Result<FileSource> {
        let file = File::open(path)?;
        let on_disk = file.metadata()?.len();
        let len = limit.map_or(on_disk, |l| l.min(on_disk));
        Ok(FileSource {
            file,
            len: usize::try_from(len).unwrap_or(usize::MAX),
        })
    }

    /// Fills `buf` from `offset`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
        }
        #[cfg(windows)]
        {
            let mut done = 0;
            while done < buf.len() {
                let n = std::os::windows::fs::FileExt::seek_read(
                    &self.file,
                    &mut buf[done..],
                    offset + done as u64,
                )?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                done += n;
            }
            Ok(())
        }
    }
}

impl ByteSource for FileSource {
    fn len(&self) -> usize {
        self.len
    }

    fn read_at(&self, offset: usize, len: usize) -> Result<Vec<u8>, Mp4Error> {
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(Mp4Error::Io(format!(
                "{len} bytes at {offset} beyond the end"
            )));
        }
        let mut buf = vec![0; len];
        self.read_exact_at(&mut buf, offset as u64)
            .map_err(|e| Mp4Error::Io(e.to_string()))?;
        Ok(buf)
    }
}
