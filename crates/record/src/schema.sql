-- The recording index, version 1 (PRAGMA user_version = 1).
--
-- One row per segment file. Times are UTC microseconds since the Unix epoch (column suffix
-- `_us`), derived from the segment's own media timeline, so they agree with what plays.
-- Sizes are bytes. Later versions of the schema are migrations appended in index.rs; this file
-- is never edited once released.

CREATE TABLE segments (
    camera      TEXT    NOT NULL,
    -- Relative to storage.dir, '/'-separated: <camera>/<YYYY-MM-DD>/<HH-MM-SS.ffffff>.mp4.
    -- Never taken from a request: the API looks segments up by camera and time.
    path        TEXT    NOT NULL,
    -- Presentation time of the segment's first frame (a keyframe).
    start_us    INTEGER NOT NULL,
    -- End of the last fragment known to be on disk (start_us until the first one lands).
    end_us      INTEGER NOT NULL,
    -- File length up to the end of that fragment; anything beyond is a partial tail.
    bytes       INTEGER NOT NULL,
    -- 0: silent video (record_audio = false), 1: with an Opus track.
    has_audio   INTEGER NOT NULL,
    -- 1 while a recorder appends to it; a 1 found at start-up means the last run crashed.
    writing     INTEGER NOT NULL DEFAULT 1,
    -- Why it ended: rollover (the next segment continues it), gap, camera, stopped, crash,
    -- recorder error. Anything but rollover is a gap in the camera's timeline.
    end_reason  TEXT,
    CHECK (end_us >= start_us AND bytes >= 0),
    -- Rows are stored in key order: a camera's day is one contiguous run of pages, so a timeline
    -- query reads a few pages, not one page per segment (cameras record at the same time, and
    -- rows in insertion order would interleave them).
    PRIMARY KEY (camera, start_us, path)
) WITHOUT ROWID;

-- Writers and recovery find a segment by its file.
CREATE UNIQUE INDEX segments_by_path ON segments (path);
-- Retention: oldest first across cameras.
CREATE INDEX segments_by_start ON segments (start_us);
