//! One camera's recording: synchronized frames in, fragmented MP4 segment files out.
//!
//! A segment starts at a keyframe and holds about a minute; inside it, a fragment (`moof` +
//! `mdat`) is appended and flushed to disk about once a second, so a crash loses at most the
//! fragment being gathered. Frames carry their position on the source's output timeline (the
//! one live viewers get), so the recorded audio-video offset is the live one. A timestamp jump,
//! a reconnect or a parameter-set change ends the segment; nothing is stitched across a gap.
//!
//! The writer reports what it did as [`SegmentEvent`]s; the caller keeps the index.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use lockstep_media::h264::{nal_type, split_annex_b};
use lockstep_media::{h265, Codec};

use crate::mp4_boxes::{
    self, FragmentRun, SampleEntry, VideoConfig, AUDIO_TIMESCALE, AUDIO_TRACK, VIDEO_TIMESCALE,
    VIDEO_TRACK,
};
use crate::parameter_sets::video_config;
use crate::utc::{div_round, segment_relative_path, ticks_to_us};

/// A fragment is cut at the first video frame this far (90 kHz) past its start.
pub const FRAGMENT_TICKS: i64 = 90_000;
/// A segment ends at the first keyframe this far past its start.
pub const SEGMENT_TICKS: i64 = 60 * 90_000;
/// A step in a track's timestamps beyond this (either way) is a discontinuity, not jitter.
const JUMP_TICKS_90K: i64 = 2 * 90_000;
/// Audio gathered without video (the picture stalled) is flushed on its own after this.
const AUDIO_ONLY_FLUSH_48K: i64 = 3 * 48_000 / 2;
/// A 20 ms Opus packet: the duration of a last audio sample whose packet does not say.
const OPUS_PACKET_48K: u32 = 960;
/// Audio kept from before a segment's first picture: a decoder starting on a packet in the
/// middle of a stream needs this much pre-roll to converge (RFC 7845 §4.6), else the first
/// ~80 ms it plays ramp up from near silence. The segment's edit list skips it.
pub const AUDIO_PREROLL_48K: i64 = 3_840;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A video access unit (H.264 or H.265, Annex B); `pts` in 90 kHz ticks.
    Video { codec: Codec, keyframe: bool },
    /// One Opus packet; `pts` in 48 kHz ticks.
    Audio,
}

/// A frame on the source's output timeline.
#[derive(Debug, Clone)]
pub struct RecordFrame<'a> {
    pub kind: FrameKind,
    /// Output-timeline position; video and audio of one source share its origin.
    pub pts: i64,
    /// The same instant in UTC microseconds (only the segment's first frame's is used: the
    /// rest of the segment's times follow from its media timeline).
    pub utc_us: i64,
    pub data: &'a [u8],
}

/// What happened to the files, for the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentEvent {
    Opened {
        path: String,
        start_us: i64,
        has_audio: bool,
    },
    /// A fragment reached the disk: the segment now plays up to `end_us`, `bytes` long.
    Extended {
        path: String,
        end_us: i64,
        bytes: u64,
    },
    Closed {
        path: String,
        end_us: i64,
        bytes: u64,
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Boxes(#[from] mp4_boxes::BoxError),
}

#[derive(Debug)]
struct PendingSample {
    pts: i64,
    sync: bool,
    data: Vec<u8>,
}

#[derive(Debug)]
struct OpenSegment {
    path: String,
    file: File,
    config: VideoConfig,
    start_us: i64,
    /// Output-timeline position of the first frame (90 kHz), and where the audio track's media
    /// time starts at 48 kHz (the pre-roll before that same instant).
    base_90k: i64,
    audio_media_base_48k: i64,
    fragment_start_90k: i64,
    sequence: u32,
    bytes: u64,
    /// Where the last flushed fragment's video ends (segment-relative 90 kHz).
    end_90k: i64,
    video: Vec<PendingSample>,
    audio: Vec<PendingSample>,
    last_video_pts: i64,
    last_audio_pts: Option<i64>,
    /// The last video sample duration written (for a final frame whose successor never came).
    last_video_duration: u32,
}

/// Writes one camera's segments under `root/<camera>/<day>/`.
#[derive(Debug)]
pub struct SegmentWriter {
    root: PathBuf,
    camera: String,
    record_audio: bool,
    open: Option<OpenSegment>,
    /// The last parameter sets seen, for keyframes that come without them (cameras that send
    /// SPS/PPS once, or only every few keyframes).
    last_config: Option<VideoConfig>,
    /// The latest audio: the next segment's pre-roll.
    recent_audio: std::collections::VecDeque<PendingSample>,
    fragment_ticks: i64,
    segment_ticks: i64,
}

impl SegmentWriter {
    pub fn new(root: &Path, camera: &str, record_audio: bool) -> Self {
        SegmentWriter {
            root: root.to_path_buf(),
            camera: camera.to_string(),
            record_audio,
            open: None,
            last_config: None,
            recent_audio: std::collections::VecDeque::new(),
            fragment_ticks: FRAGMENT_TICKS,
            segment_ticks: SEGMENT_TICKS,
        }
    }

    /// Shorter segments (tests and the retention benchmark).
    pub fn with_segment_ticks(mut self, ticks: i64) -> Self {
        self.segment_ticks = ticks.max(self.fragment_ticks);
        self
    }

    /// Takes one frame. Frames before the first keyframe (and audio when the camera records
    /// silent video) are dropped.
    pub fn push(
        &mut self,
        frame: &RecordFrame<'_>,
        events: &mut Vec<SegmentEvent>,
    ) -> Result<(), WriteError> {
        match frame.kind {
            FrameKind::Video { codec, keyframe } => self.push_video(frame, codec, keyframe, events),
            FrameKind::Audio if self.record_audio => self.push_audio(frame, events),
            FrameKind::Audio => Ok(()),
        }
    }

    /// Ends the open segment (camera gone, recorder stopping, a gap): what is gathered is
    /// written, and the next segment waits for a keyframe.
    pub fn close(
        &mut self,
        reason: &str,
        events: &mut Vec<SegmentEvent>,
    ) -> Result<(), WriteError> {
        let Some(mut seg) = self.open.take() else {
            return Ok(());
        };
        let last = seg.last_video_duration;
        flush(&mut seg, None, last, events)?;
        events.push(SegmentEvent::Closed {
            path: seg.path.clone(),
            end_us: seg.end_us(),
            bytes: seg.bytes,
            reason: reason.to_string(),
        });
        Ok(())
    }

    /// Forgets the open segment after a write error: the index keeps what reached the disk,
    /// the file is cut back to its last complete fragment.
    pub fn abandon(&mut self, reason: &str, events: &mut Vec<SegmentEvent>) {
        if let Some(seg) = self.open.take() {
            let _ = seg.file.set_len(seg.bytes);
            events.push(SegmentEvent::Closed {
                path: seg.path.clone(),
                end_us: seg.end_us(),
                bytes: seg.bytes,
                reason: reason.to_string(),
            });
        }
    }

    fn push_video(
        &mut self,
        frame: &RecordFrame<'_>,
        codec: Codec,
        keyframe: bool,
        events: &mut Vec<SegmentEvent>,
    ) -> Result<(), WriteError> {
        let config = if keyframe {
            video_config(codec, frame.data)
        } else {
            None
        };
        if config.is_some() {
            self.last_config.clone_from(&config);
        }
        if let Some(seg) = &mut self.open {
            let step = frame.pts - seg.last_video_pts;
            if step <= 0 {
                return Ok(()); // a repeated or reordered stamp: the scheduler never sends one
            }
            let ending = if step > JUMP_TICKS_90K {
                Some("gap")
            } else if config.as_ref().is_some_and(|c| *c != seg.config) {
                Some("new parameter sets")
            } else if keyframe && frame.pts - seg.base_90k >= self.segment_ticks {
                Some("rollover")
            } else {
                None
            };
            match ending {
                None => {
                    if frame.pts - seg.fragment_start_90k >= self.fragment_ticks {
                        flush(seg, Some(frame.pts), step as u32, events)?;
                        seg.fragment_start_90k = frame.pts;
                    }
                    seg.video.push(PendingSample {
                        pts: frame.pts,
                        sync: keyframe,
                        data: length_prefixed(codec, frame.data),
                    });
                    seg.last_video_pts = frame.pts;
                    return Ok(());
                }
                Some(reason) => {
                    // The frame that starts the next segment gives this one's last frame its
                    // duration, unless a gap lies between them.
                    if reason != "gap" {
                        seg.last_video_duration = step as u32;
                    }
                    self.close(reason, events)?;
                }
            }
        }
        let Some(config) = config.or_else(|| self.last_config.clone().filter(|_| keyframe)) else {
            return Ok(()); // waiting for a keyframe (and parameter sets seen at least once)
        };
        let mut seg = self.open_segment(config, frame)?;
        events.push(SegmentEvent::Opened {
            path: seg.path.clone(),
            start_us: seg.start_us,
            has_audio: self.record_audio,
        });
        // Audio is published when due and video when the scheduler releases it, so packets a
        // little past this picture may have come first: they belong here too.
        for packet in self.recent_audio.drain(..) {
            if packet.pts >= seg.audio_media_base_48k {
                seg.last_audio_pts = Some(packet.pts);
                seg.audio.push(packet);
            }
        }
        seg.video.push(PendingSample {
            pts: frame.pts,
            sync: true,
            data: length_prefixed(codec, frame.data),
        });
        self.open = Some(seg);
        Ok(())
    }

    fn push_audio(
        &mut self,
        frame: &RecordFrame<'_>,
        events: &mut Vec<SegmentEvent>,
    ) -> Result<(), WriteError> {
        // The latest audio is kept for the next segment's pre-roll (after a rollover too, so
        // every segment can be played from its first picture without the one before it); more
        // than 80 ms, since audio may run ahead of the picture that opens the segment.
        self.recent_audio.push_back(PendingSample {
            pts: frame.pts,
            sync: true,
            data: frame.data.to_vec(),
        });
        while self
            .recent_audio
            .front()
            .is_some_and(|p| frame.pts - p.pts > 4 * AUDIO_PREROLL_48K)
        {
            self.recent_audio.pop_front();
        }
        let Some(seg) = &mut self.open else {
            return Ok(());
        };
        if frame.pts < seg.audio_media_base_48k {
            return Ok(()); // before the segment's first picture and its pre-roll
        }
        if let Some(last) = seg.last_audio_pts {
            let step = frame.pts - last;
            if step <= 0 {
                return Ok(()); // overlaps the packet before (an encoder realignment)
            }
        }
        seg.audio.push(PendingSample {
            pts: frame.pts,
            sync: true,
            data: frame.data.to_vec(),
        });
        seg.last_audio_pts = Some(frame.pts);
        // The picture stalled: do not hold a growing pile of audio in memory.
        if seg
            .audio
            .first()
            .is_some_and(|a| frame.pts - a.pts >= AUDIO_ONLY_FLUSH_48K)
        {
            flush_audio_only(seg, events)?;
        }
        Ok(())
    }

    fn open_segment(
        &mut self,
        config: VideoConfig,
        frame: &RecordFrame<'_>,
    ) -> Result<OpenSegment, WriteError> {
        let first_choice = segment_relative_path(&self.camera, frame.utc_us);
        let mut relative = first_choice.clone();
        let mut path = self.root.join(&relative);
        let mut n = 1;
        while path.exists() {
            // Two segments starting in the same microsecond (a clock step back): never overwrite.
            relative = format!("{}-{n}.mp4", first_choice.trim_end_matches(".mp4"));
            path = self.root.join(&relative);
            n += 1;
        }
        let io = |source| WriteError::Io {
            path: relative.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io)?;
        let init = mp4_boxes::init_segment(&config, self.record_audio, AUDIO_PREROLL_48K)?;
        let base_48k = div_round(frame.pts * i64::from(AUDIO_TIMESCALE), 90_000);
        file.write_all(&init).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(OpenSegment {
            path: relative.clone(),
            file,
            config,
            start_us: frame.utc_us,
            base_90k: frame.pts,
            audio_media_base_48k: base_48k - AUDIO_PREROLL_48K,
            fragment_start_90k: frame.pts,
            sequence: 0,
            bytes: init.len() as u64,
            end_90k: 0,
            video: Vec::new(),
            audio: Vec::new(),
            last_video_pts: frame.pts,
            last_audio_pts: None,
            last_video_duration: 3_000,
        })
    }
}

impl OpenSegment {
    fn end_us(&self) -> i64 {
        self.start_us + ticks_to_us(self.end_90k, VIDEO_TIMESCALE)
    }
}

/// Writes the gathered samples as one fragment. `next_video_pts` is where the video that
/// follows starts (its last sample's duration); without it the last sample gets `last_duration`.
fn flush(
    seg: &mut OpenSegment,
    next_video_pts: Option<i64>,
    last_duration: u32,
    events: &mut Vec<SegmentEvent>,
) -> Result<(), WriteError> {
    if seg.video.is_empty() && seg.audio.is_empty() {
        return Ok(());
    }
    let video = std::mem::take(&mut seg.video);
    let audio = std::mem::take(&mut seg.audio);
    let mut runs = Vec::with_capacity(2);
    if let Some(first) = video.first() {
        let samples = entries(&video, next_video_pts, last_duration);
        seg.last_video_duration = samples.last().map_or(3_000, |s| s.duration);
        runs.push(FragmentRun {
            track_id: VIDEO_TRACK,
            base_decode_time: (first.pts - seg.base_90k) as u64,
            samples,
            data: video.iter().map(|s| s.data.as_slice()).collect(),
        });
    }
    if let (Some(first), Some(last)) = (audio.first(), audio.last()) {
        // Packets are 10 or 20 ms (a camera's follow its packets): the last lasts as long as it
        // plays.
        let last_duration =
            lockstep_opus::packet_samples_48k(&last.data).unwrap_or(OPUS_PACKET_48K);
        runs.push(FragmentRun {
            track_id: AUDIO_TRACK,
            base_decode_time: (first.pts - seg.audio_media_base_48k) as u64,
            samples: entries(&audio, None, last_duration),
            data: audio.iter().map(|s| s.data.as_slice()).collect(),
        });
    }
    let bytes = mp4_boxes::fragment(seg.sequence + 1, &runs)?;
    let io = |source| WriteError::Io {
        path: seg.path.clone(),
        source,
    };
    seg.file.write_all(&bytes).map_err(io)?;
    seg.file.sync_data().map_err(io)?;
    seg.sequence += 1;
    seg.bytes += bytes.len() as u64;
    if let Some(run) = runs.first().filter(|r| r.track_id == VIDEO_TRACK) {
        let duration: u64 = run.samples.iter().map(|s| u64::from(s.duration)).sum();
        seg.end_90k = run.base_decode_time as i64 + duration as i64;
    }
    events.push(SegmentEvent::Extended {
        path: seg.path.clone(),
        end_us: seg.end_us(),
        bytes: seg.bytes,
    });
    Ok(())
}

/// Audio gathered while the picture stalled, written alone (the last video frame, if any,
/// stays pending: its duration is not known yet).
fn flush_audio_only(
    seg: &mut OpenSegment,
    events: &mut Vec<SegmentEvent>,
) -> Result<(), WriteError> {
    let video = std::mem::take(&mut seg.video);
    let result = flush(seg, None, OPUS_PACKET_48K, events);
    seg.video = video;
    result
}

/// Table rows: each sample lasts until the next; the last until `next_pts` or `last_duration`.
fn entries(
    samples: &[PendingSample],
    next_pts: Option<i64>,
    last_duration: u32,
) -> Vec<SampleEntry> {
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let next = samples.get(i + 1).map(|n| n.pts).or(next_pts);
            SampleEntry {
                size: s.data.len() as u32,
                duration: next.map_or(last_duration, |n| {
                    (n - s.pts).clamp(1, i64::from(u32::MAX)) as u32
                }),
                sync: s.sync,
            }
        })
        .collect()
}

/// Annex B → 4-byte length prefixes, without the parameter sets (they live in `avcC`) and
/// access unit delimiters.
fn length_prefixed(codec: Codec, annex_b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(annex_b.len() + 16);
    for nal in split_annex_b(annex_b) {
        // Parameter sets live in the sample entry; access unit delimiters say nothing in MP4.
        let out_of_band = match codec {
            Codec::H265 => matches!(h265::nal_type(nal), 32..=35),
            _ => matches!(nal_type(nal), 7..=9),
        };
        if out_of_band {
            continue;
        }
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}
