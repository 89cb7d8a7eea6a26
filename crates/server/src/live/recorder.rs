//! One camera's recorder: subscribes to the camera's synchronized feed (the frames viewers get,
//! with the same stamps) and hands them to a writer thread that owns the segment files and its
//! own index connection. Disk trouble never reaches the camera or its viewers: the recorder
//! goes to `error` with the reason, retries, and resumes at the next keyframe.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep_media::{LiveFrame, LiveMedia};
use lockstep_record::utc::now_us;
use lockstep_record::{FrameKind, Index, RecordFrame, SegmentEvent, SegmentWriter};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::camera::{CameraHandle, CameraState};

/// Frames go to the writer thread in batches at most this far apart: the thread wakes once per
/// batch, not once per frame (with 100 cameras that was 8,000 wake-ups a second and a fifth of
/// the server's CPU; `bench/RESULTS.md`). A crash loses at most this much more than before.
const BATCH_EVERY: Duration = Duration::from_millis(200);
/// Batches queued for the writer thread (about 8 s of video and audio) before it counts as
/// behind and the segment is ended.
const WRITER_QUEUE: usize = 40;
/// After a write error the recorder waits this long before opening a new segment.
const RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecorderState {
    /// Waiting for the camera's first keyframe.
    Waiting,
    Recording,
    /// A write failed (disk full, permissions); retrying.
    Error,
}

/// What the API and metrics show of a recorder.
#[derive(Debug, Clone)]
pub struct RecorderStatus {
    pub state: RecorderState,
    pub error: Option<String>,
    pub audio: bool,
    pub segments: u64,
    pub bytes: u64,
    pub write_errors: u64,
    /// Segments ended early because the writer fell behind the feed.
    pub overruns: u64,
}

/// Where recordings live, shared by every recorder.
#[derive(Debug, Clone)]
pub struct Storage {
    pub root: PathBuf,
    /// Segment length in 90 kHz ticks (a minute; shorter in tests).
    pub segment_ticks: i64,
}

#[derive(Debug)]
pub struct RecorderHandle {
    pub status: watch::Receiver<RecorderStatus>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RecorderHandle {
    /// Waits for the writer thread to close its segment (after shutdown was signalled).
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

enum ToWriter {
    Frame {
        kind: FrameKind,
        pts: i64,
        utc_us: i64,
        data: Arc<[u8]>,
    },
    /// End the open segment (the camera went away, the feed skipped frames).
    Close(String),
}

/// Starts recording `camera` (with audio as its settings say). `shutdown` turning true closes
/// the segment and ends the thread.
pub fn spawn_recorder(
    camera: &CameraHandle,
    storage: &Storage,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<RecorderHandle> {
    let record_audio = camera.settings.record_audio;
    let (status_tx, status) = watch::channel(RecorderStatus {
        state: RecorderState::Waiting,
        error: None,
        audio: record_audio,
        segments: 0,
        bytes: 0,
        write_errors: 0,
        overruns: 0,
    });
    let (tx, rx) = sync_channel(WRITER_QUEUE);
    let name = camera.settings.name.clone();
    let writer = SegmentWriter::new(&storage.root, &name, record_audio)
        .with_segment_ticks(storage.segment_ticks);
    let root = storage.root.clone();
    let status_for_thread = status_tx.clone();
    let thread = std::thread::Builder::new()
        .name(format!("record-{name}"))
        .spawn(move || write_loop(&root, &name, writer, rx, status_for_thread))?;
    tokio::spawn(feed_loop(
        camera.clone(),
        record_audio,
        tx,
        status_tx,
        shutdown,
    ));
    Ok(RecorderHandle {
        status,
        thread: Some(thread),
    })
}

/// Moves frames from the feed to the writer thread, stamping them in UTC.
async fn feed_loop(
    camera: CameraHandle,
    record_audio: bool,
    tx: SyncSender<Vec<ToWriter>>,
    status: watch::Sender<RecorderStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    // One mapping from the monotonic output instants to UTC for this run: times within a
    // segment come from its media timeline, so only segment starts use it.
    let (anchor_instant, anchor_us) = (Instant::now(), now_us());
    let utc_us = |at: Instant| match at.checked_duration_since(anchor_instant) {
        Some(after) => anchor_us + after.as_micros() as i64,
        None => anchor_us - anchor_instant.duration_since(at).as_micros() as i64,
    };
    let subscription = if record_audio {
        camera.feed.subscribe()
    } else {
        camera.feed.subscribe_video_only()
    };
    let mut live = subscription.live;
    let mut camera_status = camera.status.clone();
    let mut batch: Vec<ToWriter> = subscription
        .cached
        .iter()
        .map(|frame| to_writer(frame, utc_us(frame.due)))
        .collect();
    let mut flush = tokio::time::interval(BATCH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The writer had no room for the last batch: it was dropped, so the next one starts by
    // closing the segment (the writer resumes at the next keyframe).
    let mut behind = false;
    loop {
        tokio::select! {
            frame = live.recv() => match frame {
                Ok(frame) => batch.push(to_writer(&frame, utc_us(frame.due))),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(camera = %camera.settings.name, "recorder skipped {n} frames");
                    batch.push(ToWriter::Close(format!("recorder fell {n} frames behind")));
                    status.send_modify(|s| s.overruns += 1);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            changed = camera_status.changed() => {
                if changed.is_err() {
                    break;
                }
                let (state, reason) = {
                    let s = camera_status.borrow_and_update();
                    (s.state, s.error.clone())
                };
                if state != CameraState::Live {
                    let reason = reason.unwrap_or_else(|| "camera disconnected".into());
                    batch.push(ToWriter::Close(format!("camera: {reason}")));
                }
            }
            _ = flush.tick() => {
                if batch.is_empty() {
                    continue;
                }
                if behind {
                    batch.insert(0, ToWriter::Close("recorder fell behind the disk".into()));
                }
                match tx.try_send(std::mem::take(&mut batch)) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => behind = false,
                    Err(TrySendError::Full(_)) => {
                        if !behind {
                            status.send_modify(|s| s.overruns += 1);
                        }
                        behind = true;
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    if !batch.is_empty() && !behind {
        let _ = tx.try_send(batch);
    }
    // Dropping the sender ends the writer thread, which closes its segment.
}

fn to_writer(frame: &LiveFrame, utc_us: i64) -> ToWriter {
    ToWriter::Frame {
        kind: match frame.media {
            LiveMedia::Video { codec, keyframe } => FrameKind::Video { codec, keyframe },
            LiveMedia::Opus => FrameKind::Audio,
        },
        pts: frame.pts,
        utc_us,
        data: frame.data.clone(),
    }
}

/// The writer thread: segment files and the index.
fn write_loop(
    root: &std::path::Path,
    camera: &str,
    mut writer: SegmentWriter,
    rx: Receiver<Vec<ToWriter>>,
    status: watch::Sender<RecorderStatus>,
) {
    let index = match Index::open(root) {
        Ok(index) => index,
        Err(e) => {
            tracing::error!(camera, "{e}");
            status.send_modify(|s| {
                s.state = RecorderState::Error;
                s.error = Some(e.to_string());
            });
            return;
        }
    };
    let mut events = Vec::new();
    let mut segment_bytes = 0u64;
    let mut paused_until: Option<Instant> = None;
    for message in rx.iter().flatten() {
        let result = match message {
            ToWriter::Frame {
                kind,
                pts,
                utc_us,
                data,
            } => {
                if paused_until.is_some_and(|until| Instant::now() < until) {
                    continue;
                }
                let frame = RecordFrame {
                    kind,
                    pts,
                    utc_us,
                    data: &data,
                };
                writer.push(&frame, &mut events)
            }
            ToWriter::Close(reason) => writer.close(&reason, &mut events),
        };
        if let Err(e) = result {
            let reason = e.to_string();
            tracing::warn!(camera, "recording: {reason}; retrying in {RETRY_AFTER:?}");
            writer.abandon("recorder error", &mut events);
            paused_until = Some(Instant::now() + RETRY_AFTER);
            status.send_modify(|s| {
                s.state = RecorderState::Error;
                s.error = Some(reason);
                s.write_errors += 1;
            });
        }
        apply(&index, camera, &mut events, &mut segment_bytes, &status);
    }
    if let Err(e) = writer.close("stopped", &mut events) {
        tracing::warn!(camera, "closing the recording: {e}");
        writer.abandon("recorder error", &mut events);
    }
    apply(&index, camera, &mut events, &mut segment_bytes, &status);
}

/// Tells the index (and the status) what the writer did.
fn apply(
    index: &Index,
    camera: &str,
    events: &mut Vec<SegmentEvent>,
    segment_bytes: &mut u64,
    status: &watch::Sender<RecorderStatus>,
) {
    for event in events.drain(..) {
        if let Err(e) = index.apply(camera, &event) {
            // The file is written; start-up reconciliation will index it.
            tracing::warn!(camera, "{e}");
        }
        match event {
            SegmentEvent::Opened { .. } => {
                *segment_bytes = 0;
                status.send_modify(|s| {
                    s.segments += 1;
                    s.state = RecorderState::Recording;
                    s.error = None;
                });
            }
            SegmentEvent::Extended { bytes, .. } => {
                let written = bytes.saturating_sub(*segment_bytes);
                *segment_bytes = bytes;
                status.send_modify(|s| {
                    s.bytes += written;
                    s.state = RecorderState::Recording;
                    s.error = None;
                });
            }
            SegmentEvent::Closed { .. } => {
                status.send_if_modified(|s| {
                    let recording = s.state == RecorderState::Recording;
                    if recording {
                        s.state = RecorderState::Waiting;
                    }
                    recording
                });
            }
        }
    }
}
