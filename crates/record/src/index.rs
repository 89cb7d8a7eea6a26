//! The recording index: an SQLite database beside the segments (`schema.sql`). Each thread
//! opens its own connection (WAL: readers never wait for the writer); versions migrate in
//! order at open.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::segment_writer::SegmentEvent;

/// Schema versions in order; index `i` takes a database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[include_str!("schema.sql")];

pub const INDEX_FILE: &str = "index.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("recording index: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("recording index is version {found}, newer than this lockstep ({known}): refusing to touch it")]
    TooNew { found: usize, known: usize },
}

/// One segment as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    pub camera: String,
    pub path: String,
    pub start_us: i64,
    pub end_us: i64,
    pub bytes: u64,
    pub has_audio: bool,
    pub writing: bool,
    pub end_reason: Option<String>,
}

impl SegmentRow {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<SegmentRow> {
        Ok(SegmentRow {
            camera: row.get(0)?,
            path: row.get(1)?,
            start_us: row.get(2)?,
            end_us: row.get(3)?,
            bytes: row.get::<_, i64>(4)?.max(0) as u64,
            has_audio: row.get(5)?,
            writing: row.get(6)?,
            end_reason: row.get(7)?,
        })
    }
}

const COLUMNS: &str = "camera, path, start_us, end_us, bytes, has_audio, writing, end_reason";

#[derive(Debug)]
pub struct Index {
    conn: Connection,
}

impl Index {
    /// Opens (creating and migrating) the index in `dir`.
    pub fn open(dir: &Path) -> Result<Index, IndexError> {
        let mut conn = Connection::open(dir.join(INDEX_FILE))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // WAL + NORMAL: a power cut may lose the last transactions, never corrupt; the files
        // are the truth and start-up reconciles the index with them.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        migrate(&mut conn)?;
        Ok(Index { conn })
    }

    /// A new segment (a crash before this leaves a file without fragments: start-up removes it).
    pub fn insert(
        &self,
        camera: &str,
        path: &str,
        start_us: i64,
        has_audio: bool,
    ) -> Result<(), IndexError> {
        self.conn
            .prepare_cached(
                "INSERT INTO segments (camera, path, start_us, end_us, bytes, has_audio, writing)
                 VALUES (?1, ?2, ?3, ?3, 0, ?4, 1)",
            )?
            .execute(params![camera, path, start_us, has_audio])?;
        Ok(())
    }

    /// Records what a segment writer did.
    pub fn apply(&self, camera: &str, event: &SegmentEvent) -> Result<(), IndexError> {
        match event {
            SegmentEvent::Opened {
                path,
                start_us,
                has_audio,
            } => self.insert(camera, path, *start_us, *has_audio),
            SegmentEvent::Extended {
                path,
                end_us,
                bytes,
            } => self.extend(path, *end_us, *bytes),
            SegmentEvent::Closed {
                path,
                end_us,
                bytes,
                reason,
            } => self.close(path, *end_us, *bytes, reason),
        }
    }

    /// A segment recovered from a file the index did not know.
    pub fn adopt(&self, row: &SegmentRow) -> Result<(), IndexError> {
        self.conn.execute(
            "INSERT INTO segments (camera, path, start_us, end_us, bytes, has_audio, writing, end_reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
            params![
                row.camera,
                row.path,
                row.start_us,
                row.end_us,
                row.bytes as i64,
                row.has_audio,
                row.end_reason
            ],
        )?;
        Ok(())
    }

    /// A fragment reached the disk.
    pub fn extend(&self, path: &str, end_us: i64, bytes: u64) -> Result<(), IndexError> {
        self.conn
            .prepare_cached(
                "UPDATE segments SET end_us = max(end_us, ?2), bytes = ?3 WHERE path = ?1",
            )?
            .execute(params![path, end_us, bytes as i64])?;
        Ok(())
    }

    pub fn close(
        &self,
        path: &str,
        end_us: i64,
        bytes: u64,
        reason: &str,
    ) -> Result<(), IndexError> {
        self.conn
            .prepare_cached(
                "UPDATE segments SET end_us = max(end_us, ?2), bytes = ?3, writing = 0,
                 end_reason = ?4 WHERE path = ?1",
            )?
            .execute(params![path, end_us, bytes as i64, reason])?;
        Ok(())
    }

    pub fn delete(&self, path: &str) -> Result<(), IndexError> {
        self.conn
            .prepare_cached("DELETE FROM segments WHERE path = ?1")?
            .execute(params![path])?;
        Ok(())
    }

    /// A camera's segments overlapping `[from_us, to_us)`, oldest first.
    pub fn segments(
        &self,
        camera: &str,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<SegmentRow>, IndexError> {
        // A segment is at most a few minutes long: bounding start_us from below lets the
        // (camera, start_us) index do the work instead of scanning the camera's history.
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM segments
             WHERE camera = ?1 AND start_us < ?3 AND start_us >= ?2 - ?4 AND end_us > ?2
             ORDER BY start_us"
        ))?;
        let rows = stmt
            .query_map(
                params![camera, from_us, to_us, MAX_SEGMENT_US],
                SegmentRow::from_row,
            )?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Segments a previous run left open (it crashed).
    pub fn writing(&self) -> Result<Vec<SegmentRow>, IndexError> {
        self.select("WHERE writing = 1 ORDER BY start_us", params![])
    }

    /// Every path the index knows.
    pub fn paths(&self) -> Result<std::collections::HashSet<String>, IndexError> {
        let mut stmt = self.conn.prepare("SELECT path FROM segments")?;
        let paths = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(paths)
    }

    /// The oldest finished segments, for retention.
    pub fn oldest_finished(&self, limit: usize) -> Result<Vec<SegmentRow>, IndexError> {
        self.select(
            "WHERE writing = 0 ORDER BY start_us LIMIT ?1",
            params![limit as i64],
        )
    }

    /// Finished segments that ended before `before_us`.
    pub fn finished_before(&self, before_us: i64) -> Result<Vec<SegmentRow>, IndexError> {
        self.select(
            "WHERE writing = 0 AND end_us < ?1 ORDER BY start_us",
            params![before_us],
        )
    }

    /// Bytes of all segments.
    pub fn total_bytes(&self) -> Result<u64, IndexError> {
        let total: Option<i64> = self
            .conn
            .query_row("SELECT sum(bytes) FROM segments", [], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(total.unwrap_or(0).max(0) as u64)
    }

    /// Runs several writes as one transaction (tests and the benchmark fill the index fast).
    pub fn batch<T>(
        &mut self,
        f: impl FnOnce(&Index) -> Result<T, IndexError>,
    ) -> Result<T, IndexError> {
        self.conn.execute_batch("BEGIN")?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn select(
        &self,
        clause: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<SegmentRow>, IndexError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM segments {clause}"))?;
        let rows = stmt
            .query_map(params, SegmentRow::from_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

/// The longest a segment may be: a rollover happens at the first keyframe after a minute, so a
/// camera with a 10-minute GOP still ends within this.
pub const MAX_SEGMENT_US: i64 = 15 * 60 * 1_000_000;

fn migrate(conn: &mut Connection) -> Result<(), IndexError> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        return Err(IndexError::TooNew {
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("lockstep-index-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn segments_overlapping_a_range_in_order() {
        let dir = tempdir("range");
        let index = Index::open(&dir).unwrap();
        for (i, start) in [0i64, 60, 120, 300].iter().enumerate() {
            let path = format!("cam/d/{i}.mp4");
            index.insert("cam", &path, start * 1_000_000, true).unwrap();
            index
                .close(&path, (start + 60) * 1_000_000, 1000, "rollover")
                .unwrap();
        }
        index.insert("other", "other/d/0.mp4", 0, false).unwrap();
        let rows = index.segments("cam", 90_000_000, 310_000_000).unwrap();
        let starts: Vec<i64> = rows.iter().map(|r| r.start_us / 1_000_000).collect();
        assert_eq!(starts, vec![60, 120, 300]);
        assert_eq!(index.total_bytes().unwrap(), 4000);
        assert_eq!(index.writing().unwrap().len(), 1);
        // Reopening keeps the version and the rows; a newer database is refused.
        drop(index);
        let index = Index::open(&dir).unwrap();
        assert_eq!(index.paths().unwrap().len(), 5);
        index
            .conn
            .pragma_update(None, "user_version", MIGRATIONS.len() + 1)
            .unwrap();
        drop(index);
        let err = Index::open(&dir).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
