//! Export: one standard (progressive, `moov` first) MP4 cut from a camera's segments.
//!
//! The cut starts at the last keyframe at or before the requested start (the true start is
//! reported) and ends before the requested end. Segments are indexed from their box headers,
//! never loaded whole; the plan lists where each sample's bytes are, and [`ExportPlan::write_to`]
//! streams them. Across a gap between segments the picture holds and the audio is filled with
//! encoded silence, so both tracks keep real time and stay in sync after the gap.

use std::io::Write;
use std::path::{Path, PathBuf};

use lockstep_media::mp4_reader::{Mp4Index, SampleRef, TrackCodec};
use lockstep_opus::{Application, OpusEncoder};

use crate::file_source::FileSource;
use crate::index::{Index, IndexError, SegmentRow};
use crate::mp4_boxes::{
    self, SampleEntry, TrackTable, VideoConfig, AUDIO_TIMESCALE, AUDIO_TRACK, VIDEO_TIMESCALE,
    VIDEO_TRACK,
};
use crate::parameter_sets::{config_from, h265_config_from};
use crate::segment_path::segment_path;
use crate::utc::{div_round, samples_end_us, ticks_to_us};

/// The longest range one export may cover: the plan holds every sample's table row (about
/// 100 bytes per sample, 30 video + 50 audio samples a second: ~170 MB for 6 hours).
pub const MAX_EXPORT_US: i64 = 6 * 3_600 * 1_000_000;
const OPUS_PACKET: i64 = 960;
/// Opus pre-roll when starting to decode mid-stream (RFC 7845 §4.6 asks for at least 80 ms).
const OPUS_PREROLL_US: i64 = 80_000;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    BadRange(String),
    #[error("no recording of {camera} between {from} and {to}")]
    NothingRecorded {
        camera: String,
        from: String,
        to: String,
    },
    #[error("{0}")]
    Index(#[from] IndexError),
    #[error("building the export: {0}")]
    Build(String),
}

/// Where one output sample's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    File { file: usize, offset: u64, size: u32 },
    Silence,
}

/// A planned export: the header, then the samples' bytes in order.
#[derive(Debug)]
pub struct ExportPlan {
    /// UTC µs of the first frame (a keyframe at or before the requested start).
    pub start_us: i64,
    /// UTC µs where the exported video ends.
    pub end_us: i64,
    pub has_audio: bool,
    /// Gaps between segments crossed (held picture, silent audio).
    pub gaps: usize,
    /// Total bytes of the file.
    pub len: u64,
    header: Vec<u8>,
    pieces: Vec<Piece>,
    files: Vec<PathBuf>,
    silence: Vec<u8>,
}

struct Sample {
    /// Ticks since the export start in the track's timescale.
    tick: i64,
    duration: u32,
    sync: bool,
    piece: Piece,
    size: u32,
}

/// Plans the export of `camera` over `[from_us, to_us)`.
pub fn plan(
    root: &Path,
    index: &Index,
    camera: &str,
    from_us: i64,
    to_us: i64,
) -> Result<ExportPlan, ExportError> {
    if to_us <= from_us {
        return Err(ExportError::BadRange("`to` must be after `from`".into()));
    }
    if to_us - from_us > MAX_EXPORT_US {
        return Err(ExportError::BadRange(
            "an export covers at most 6 hours".into(),
        ));
    }
    let nothing = || ExportError::NothingRecorded {
        camera: camera.to_string(),
        from: crate::utc::rfc3339(from_us),
        to: crate::utc::rfc3339(to_us),
    };
    let rows = index.segments(camera, from_us, to_us)?;
    let mut segments = Vec::new();
    for row in rows {
        match read_segment(root, &row) {
            Ok(segment) => segments.push(segment),
            // One unreadable segment becomes a gap, not a failed export.
            Err(e) => tracing::warn!("export of {camera}: skipping {}: {e}", row.path),
        }
    }
    // Start at the last keyframe at or before `from` (else the first after it).
    let keyframes: Vec<i64> = segments
        .iter()
        .flat_map(|s| {
            s.video
                .iter()
                .filter(|v| v.sync)
                .map(move |v| s.row.start_us + ticks_to_us(v.pts, VIDEO_TIMESCALE))
        })
        .collect();
    let start_us = keyframes
        .iter()
        .rev()
        .find(|&&t| t <= from_us)
        .or_else(|| keyframes.iter().find(|&&t| t < to_us))
        .copied()
        .ok_or_else(nothing)?;
    let first = segments
        .iter()
        .position(|s| s.row.start_us + s.end_us() > start_us)
        .ok_or_else(nothing)?;
    let config = segments[first].config.clone();
    let has_audio = segments[first].has_audio;

    let mut files = Vec::new();
    let mut video: Vec<Sample> = Vec::new();
    let mut audio: Vec<Sample> = Vec::new();
    let mut gaps = 0;
    let mut previous_end_us: Option<i64> = None;
    for segment in &segments[first..] {
        if segment.config != config || segment.has_audio != has_audio {
            break; // a new picture size or audio switch: the export ends where it changed
        }
        if previous_end_us.is_some_and(|end| segment.row.start_us - end > GAP_TOLERANCE_US) {
            gaps += 1;
        }
        previous_end_us = Some(segment.row.start_us + segment.end_us());
        let file = files.len();
        files.push(segment.path.clone());
        let offset_us = segment.row.start_us - start_us;
        for (samples, out, timescale) in [
            (&segment.video, &mut video, VIDEO_TIMESCALE),
            (&segment.audio, &mut audio, AUDIO_TIMESCALE),
        ] {
            let base = div_round(offset_us * i64::from(timescale), 1_000_000);
            // Audio starts a little early: a decoder starting mid-stream needs pre-roll to
            // converge; the edit list skips it, so the first sound heard is already clean.
            let earliest_us = if timescale == AUDIO_TIMESCALE {
                start_us - OPUS_PREROLL_US
            } else {
                start_us
            };
            for s in samples {
                let at_us = segment.row.start_us + ticks_to_us(s.pts, timescale);
                if at_us < earliest_us || at_us >= to_us {
                    continue;
                }
                out.push(Sample {
                    tick: base + s.pts,
                    duration: s.duration,
                    sync: s.sync,
                    piece: Piece::File {
                        file,
                        offset: s.offset as u64,
                        size: s.size as u32,
                    },
                    size: s.size as u32,
                });
            }
        }
    }
    if video.is_empty() {
        return Err(nothing());
    }
    // Video: each frame lasts until the next (a gap holds the picture).
    for i in 0..video.len().saturating_sub(1) {
        video[i].duration =
            (video[i + 1].tick - video[i].tick).clamp(1, i64::from(u32::MAX)) as u32;
    }
    let silence = if has_audio {
        silence_packet()?
    } else {
        Vec::new()
    };
    let audio = fill_audio_gaps(audio, silence.len() as u32);
    let end_us = start_us
        + video.last().map_or(0, |v| {
            ticks_to_us(v.tick + i64::from(v.duration), VIDEO_TIMESCALE)
        });

    // Interleave by time; offsets follow from the header's length, which depends (stco or
    // co64) on the offsets: settle it in a few rounds.
    let order = interleave(&video, &audio);
    let mut header_len = 0u64;
    let (header, pieces) = loop {
        let mut at = header_len + 16;
        let mut video_table = TrackTable::default();
        let mut audio_table = TrackTable {
            start_tick: audio.first().map_or(0, |a| a.tick),
            ..Default::default()
        };
        let mut pieces = Vec::with_capacity(order.len());
        for &(is_video, i) in &order {
            let (sample, table) = if is_video {
                (&video[i], &mut video_table)
            } else {
                (&audio[i], &mut audio_table)
            };
            table.samples.push(SampleEntry {
                size: sample.size,
                duration: sample.duration,
                sync: sample.sync,
            });
            table.offsets.push(at);
            at += u64::from(sample.size);
            pieces.push(sample.piece);
        }
        let mut header =
            mp4_boxes::progressive_header(&config, &video_table, has_audio.then_some(&audio_table))
                .map_err(|e| ExportError::Build(e.to_string()))?;
        if header.len() as u64 == header_len {
            header.extend_from_slice(&mp4_boxes::mdat_header(at - header_len - 16));
            break (header, pieces);
        }
        header_len = header.len() as u64;
    };
    let len = header.len() as u64
        + pieces
            .iter()
            .map(|p| match p {
                Piece::File { size, .. } => u64::from(*size),
                Piece::Silence => silence.len() as u64,
            })
            .sum::<u64>();
    Ok(ExportPlan {
        start_us,
        end_us,
        has_audio,
        gaps,
        len,
        header,
        pieces,
        files,
        silence,
    })
}

/// Segments further apart than this (µs) have a gap between them.
pub const GAP_TOLERANCE_US: i64 = 250_000;

impl ExportPlan {
    /// Writes the file: header, then every sample's bytes (adjacent reads merged).
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(&self.header)?;
        let mut sources: Vec<Option<FileSource>> = (0..self.files.len()).map(|_| None).collect();
        let mut buf = Vec::new();
        let mut i = 0;
        while i < self.pieces.len() {
            match self.pieces[i] {
                Piece::Silence => {
                    out.write_all(&self.silence)?;
                    i += 1;
                }
                Piece::File { file, offset, size } => {
                    // Merge the run of pieces that continue this one in the same file.
                    let mut end = offset + u64::from(size);
                    let mut j = i + 1;
                    while let Some(Piece::File {
                        file: f,
                        offset: o,
                        size: s,
                    }) = self.pieces.get(j)
                    {
                        if *f != file || *o != end || end - offset > 1 << 20 {
                            break;
                        }
                        end += u64::from(*s);
                        j += 1;
                    }
                    let source = match &mut sources[file] {
                        Some(source) => source,
                        slot => slot.insert(FileSource::open(&self.files[file], None)?),
                    };
                    buf.resize((end - offset) as usize, 0);
                    source.read_exact_at(&mut buf, offset)?;
                    out.write_all(&buf)?;
                    i = j;
                }
            }
        }
        out.flush()
    }
}

struct Segment {
    row: SegmentRow,
    /// The row's file, its path checked ([`segment_path`]).
    path: PathBuf,
    config: VideoConfig,
    has_audio: bool,
    video: Vec<SampleRef>,
    audio: Vec<SampleRef>,
}

impl Segment {
    fn end_us(&self) -> i64 {
        samples_end_us(&self.video, VIDEO_TIMESCALE)
    }
}

fn read_segment(root: &Path, row: &SegmentRow) -> Result<Segment, String> {
    let path = segment_path(root, &row.path).map_err(|e| e.to_string())?;
    let source = FileSource::open(&path, Some(row.bytes)).map_err(|e| e.to_string())?;
    let index = Mp4Index::read(&source).map_err(|e| e.to_string())?;
    let samples = |id: u32| -> Vec<SampleRef> {
        index
            .tracks
            .iter()
            .find(|t| t.track_id == id)
            .map(|t| t.samples.clone())
            .unwrap_or_default()
    };
    let video_track = index
        .tracks
        .iter()
        .find(|t| t.track_id == VIDEO_TRACK)
        .ok_or("no video track")?;
    let config = match &video_track.codec {
        TrackCodec::H264 { sps, pps, .. } => sps
            .first()
            .zip(pps.first())
            .and_then(|(sps, pps)| config_from(sps, pps))
            .ok_or("unreadable parameter sets")?,
        TrackCodec::H265 { vps, sps, pps, .. } => match (vps.first(), sps.first(), pps.first()) {
            (Some(vps), Some(sps), Some(pps)) => h265_config_from(vps, sps, pps),
            _ => None,
        }
        .ok_or("unreadable parameter sets")?,
        other => return Err(format!("video is {other:?}, not H.264 or H.265")),
    };
    let has_audio = index.tracks.iter().any(|t| t.track_id == AUDIO_TRACK);
    Ok(Segment {
        path,
        row: row.clone(),
        config,
        has_audio,
        video: samples(VIDEO_TRACK),
        audio: samples(AUDIO_TRACK),
    })
}

/// Audio packets with silence where the recording has none (between segments, a stalled
/// encoder): each packet lasts until the next, at most one packet; holes are filled.
fn fill_audio_gaps(audio: Vec<Sample>, silence_size: u32) -> Vec<Sample> {
    let mut out: Vec<Sample> = Vec::with_capacity(audio.len());
    for sample in audio {
        if let Some(last_tick) = out.last().map(|l| l.tick) {
            let step = sample.tick - last_tick;
            if step <= 0 {
                continue;
            }
            let last_real = out.len() - 1;
            if step > OPUS_PACKET * 3 / 2 {
                let mut at = last_tick + OPUS_PACKET;
                while sample.tick - at > OPUS_PACKET / 2 {
                    out.push(Sample {
                        tick: at,
                        duration: OPUS_PACKET as u32,
                        sync: true,
                        piece: Piece::Silence,
                        size: silence_size,
                    });
                    at += OPUS_PACKET;
                }
            }
            // Each packet lasts until the next: the filled ones and the last real one.
            for i in last_real..out.len() {
                let next = out.get(i + 1).map_or(sample.tick, |s| s.tick);
                out[i].duration = (next - out[i].tick) as u32;
            }
        }
        out.push(sample);
    }
    out
}

/// Sample order in the file: by presentation time, video first on ties.
fn interleave(video: &[Sample], audio: &[Sample]) -> Vec<(bool, usize)> {
    let mut order = Vec::with_capacity(video.len() + audio.len());
    let (mut v, mut a) = (0, 0);
    while v < video.len() || a < audio.len() {
        let video_first = match (video.get(v), audio.get(a)) {
            (Some(vs), Some(as_)) => {
                vs.tick * i64::from(AUDIO_TIMESCALE) <= as_.tick * i64::from(VIDEO_TIMESCALE)
            }
            (Some(_), None) => true,
            _ => false,
        };
        if video_first {
            order.push((true, v));
            v += 1;
        } else {
            order.push((false, a));
            a += 1;
        }
    }
    order
}

/// 20 ms of encoded silence (48 kHz mono), for holes in the audio.
fn silence_packet() -> Result<Vec<u8>, ExportError> {
    let build = |e: lockstep_opus::OpusError| ExportError::Build(format!("silence: {e}"));
    let mut encoder = OpusEncoder::new(48_000, 1, Application::Audio).map_err(build)?;
    encoder.encode(&[0i16; OPUS_PACKET as usize]).map_err(build)
}
