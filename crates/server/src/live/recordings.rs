//! Recordings as the server offers them: start-up recovery, the retention thread, and the
//! HTTP API (`/api/recordings/{name}` timeline and `…/export.mp4`). Paths never come from a
//! request: segments are found by camera name (checked against the configuration) and time.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use lockstep_record::export::GAP_TOLERANCE_US;
use lockstep_record::utc::{now_us, parse_rfc3339, rfc3339};
use lockstep_record::{
    enforce_retention, plan_export, reconcile, ExportError, Index, RetentionPolicy, SegmentRow,
    StorageLock,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::export_slots::ExportSlots;
use super::recorder::RecorderStatus;
use super::state::{ApiError, AppState};
use crate::auth::Principal;
use crate::config::StorageConfig;

/// How often retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(10);
/// The longest timeline one request may ask for.
const MAX_TIMELINE_US: i64 = 31 * 86_400 * 1_000_000;
/// The default timeline: the last day.
const DEFAULT_TIMELINE_US: i64 = 86_400 * 1_000_000;
/// Counters the retention thread keeps for the metrics.
#[derive(Debug, Default)]
pub struct RetentionCounters {
    pub deleted_segments: AtomicU64,
    pub freed_bytes: AtomicU64,
    pub used_bytes: AtomicU64,
    pub free_bytes: AtomicU64,
}

#[derive(Debug)]
pub struct Recordings {
    pub root: PathBuf,
    pub policy: RetentionPolicy,
    /// What each recording camera's recorder says; cameras come and go at run time.
    recorders: std::sync::RwLock<HashMap<String, watch::Receiver<RecorderStatus>>>,
    pub retention: Arc<RetentionCounters>,
    /// Exports running at once.
    exports: ExportSlots,
    _lock: StorageLock,
}

impl Recordings {
    /// Creates the storage folder, opens (migrates) the index and recovers from a crash.
    pub fn open(root: &FsPath, config: &StorageConfig) -> anyhow::Result<Recordings> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create the storage folder {}", root.display()))?;
        let lock = StorageLock::acquire(root)
            .with_context(|| format!("cannot lock the storage folder {}", root.display()))?
            .with_context(|| {
                format!(
                    "the storage folder {} is in use by another lockstep (one server per folder)",
                    root.display()
                )
            })?;
        let index = Index::open(root)
            .with_context(|| format!("cannot open the recording index in {}", root.display()))?;
        let report = reconcile(root, &index).context("recovering recordings")?;
        if report != Default::default() {
            tracing::info!(
                "recordings recovered: {} segments closed after a crash ({} bytes of partial \
                 fragments cut), {} adopted, {} removed",
                report.recovered,
                report.truncated_bytes,
                report.adopted,
                report.removed
            );
        }
        let total = fs4::total_space(root).unwrap_or(0);
        Ok(Recordings {
            root: root.to_path_buf(),
            policy: RetentionPolicy {
                retain_days: config.retain_days,
                max_disk_bytes: config.max_disk.0,
                min_free_bytes: RetentionPolicy::floor_for(total),
            },
            recorders: Default::default(),
            retention: Arc::default(),
            exports: ExportSlots::default(),
            _lock: lock,
        })
    }

    /// Camera `name`'s recorder from now on (`None`: it records no more).
    pub fn set_recorder(&self, name: &str, status: Option<watch::Receiver<RecorderStatus>>) {
        let mut recorders = self
            .recorders
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match status {
            Some(status) => recorders.insert(name.to_owned(), status),
            None => recorders.remove(name),
        };
    }

    /// What camera `name`'s recorder says now (`None`: it does not record).
    pub fn recorder_status(&self, name: &str) -> Option<RecorderStatus> {
        let recorders = self
            .recorders
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        recorders.get(name).map(|status| status.borrow().clone())
    }

    /// Runs retention now and every [`RETENTION_INTERVAL`] on its own thread.
    pub fn start_retention(&self) -> anyhow::Result<RetentionThread> {
        let (stop, stopped) = channel::<()>();
        let root = self.root.clone();
        let policy = self.policy;
        let counters = self.retention.clone();
        let thread = std::thread::Builder::new()
            .name("retention".into())
            .spawn(move || {
                let index = match Index::open(&root) {
                    Ok(index) => index,
                    Err(e) => {
                        tracing::error!("retention: {e}");
                        return;
                    }
                };
                loop {
                    match enforce_retention(&root, &index, &policy, now_us()) {
                        Ok(report) => {
                            if report.deleted() > 0 {
                                tracing::info!(
                                    "retention deleted {} segments ({} expired, {} over \
                                     budget, {} for free space), {} bytes",
                                    report.deleted(),
                                    report.expired,
                                    report.over_budget,
                                    report.low_space,
                                    report.bytes_freed
                                );
                            }
                            counters
                                .deleted_segments
                                .fetch_add(report.deleted() as u64, Ordering::Relaxed);
                            counters
                                .freed_bytes
                                .fetch_add(report.bytes_freed, Ordering::Relaxed);
                        }
                        Err(e) => tracing::warn!("retention: {e}"),
                    }
                    if let Ok(used) = index.total_bytes() {
                        counters.used_bytes.store(used, Ordering::Relaxed);
                    }
                    if let Some(free) = lockstep_record::retention::free_space(&root) {
                        counters.free_bytes.store(free, Ordering::Relaxed);
                    }
                    match stopped.recv_timeout(RETENTION_INTERVAL) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        _ => break,
                    }
                }
            })
            .context("cannot start the retention thread")?;
        Ok(RetentionThread { stop, thread })
    }
}

#[derive(Debug)]
pub struct RetentionThread {
    stop: Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl RetentionThread {
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// `?from=…&to=…` (RFC 3339).
#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    /// Export: `Content-Disposition: attachment` (a download rather than inline playback).
    download: Option<String>,
}

impl RangeQuery {
    /// The range in UTC µs; `to` defaults to now and `from` to a day before `to` when
    /// `defaults` allows, else both are required.
    fn range(&self, defaults: bool, max_us: i64) -> Result<(i64, i64), ApiError> {
        let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
        let parse = |name: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
            v.as_deref()
                .map(|t| parse_rfc3339(t).map_err(|e| bad(format!("`{name}`: {e}"))))
                .transpose()
        };
        let (from, to) = (parse("from", &self.from)?, parse("to", &self.to)?);
        let (from, to) = match (from, to, defaults) {
            (Some(f), Some(t), _) => (f, t),
            (f, t, true) => {
                let to = t.unwrap_or_else(now_us);
                (f.unwrap_or(to - DEFAULT_TIMELINE_US), to)
            }
            _ => return Err(bad("`from` and `to` (RFC 3339 times) are required".into())),
        };
        if to <= from {
            return Err(bad(format!(
                "`to` ({}) must be after `from` ({})",
                rfc3339(to),
                rfc3339(from)
            )));
        }
        if to - from > max_us {
            return Err(bad(format!(
                "the range is {} hours; at most {} hours per request",
                (to - from) / 3_600_000_000,
                max_us / 3_600_000_000
            )));
        }
        Ok((from, to))
    }
}

fn recordings_of<'a>(state: &'a AppState, name: &str) -> Result<&'a Recordings, ApiError> {
    state.camera(name)?;
    state.recordings().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "recording is off for every camera (record = \"off\")",
        )
    })
}

fn index_error(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!("recordings: {e}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the recording index could not be read",
    )
}

/// `GET /api/recordings/{name}`: segments and gaps in a time range.
pub async fn timeline(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<RangeQuery>,
) -> Result<Json<Value>, ApiError> {
    let recordings = recordings_of(&state, &name)?;
    let (from, to) = query.range(true, MAX_TIMELINE_US)?;
    let root = recordings.root.clone();
    let camera = name.clone();
    let rows = tokio::task::spawn_blocking(move || {
        Index::open(&root).and_then(|index| index.segments(&camera, from, to))
    })
    .await
    .map_err(index_error)?
    .map_err(index_error)?;
    let recorder = recordings.recorder_status(&name);
    Ok(Json(json!({
        "camera": name,
        "from": rfc3339(from),
        "to": rfc3339(to),
        "recording": recorder_json(recorder.as_ref()),
        "segments": rows.iter().map(segment_json).collect::<Vec<_>>(),
        "gaps": gaps(&rows),
    })))
}

pub fn recorder_json(status: Option<&RecorderStatus>) -> Value {
    match status {
        None => json!({ "state": "off" }),
        Some(s) => json!({
            "state": s.state,
            "error": s.error,
            "audio": s.audio,
            "segments": s.segments,
            "bytes": s.bytes,
            "write_errors": s.write_errors,
            "overruns": s.overruns,
        }),
    }
}

fn segment_json(row: &SegmentRow) -> Value {
    json!({
        "start": rfc3339(row.start_us),
        "end": rfc3339(row.end_us),
        "start_us": row.start_us,
        "end_us": row.end_us,
        "bytes": row.bytes,
        "audio": row.has_audio,
        "writing": row.writing,
        "end_reason": row.end_reason,
    })
}

/// Holes between consecutive segments, with why the earlier one ended.
fn gaps(rows: &[SegmentRow]) -> Vec<Value> {
    rows.windows(2)
        .filter(|pair| pair[1].start_us - pair[0].end_us > GAP_TOLERANCE_US)
        .map(|pair| {
            json!({
                "start": rfc3339(pair[0].end_us),
                "end": rfc3339(pair[1].start_us),
                "start_us": pair[0].end_us,
                "end_us": pair[1].start_us,
                "reason": pair[0].end_reason,
            })
        })
        .collect()
}

/// `GET /api/recordings/{name}/export.mp4`: one MP4 of the range, streamed.
pub async fn export(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<RangeQuery>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let recordings = recordings_of(&state, &name)?;
    let (from, to) = query.range(false, lockstep_record::export::MAX_EXPORT_US)?;
    // Held until the export's last byte is written (or its client went away).
    let permit = match recordings.exports.take(&principal.name) {
        Ok(slot) => slot,
        Err(why) => return Ok(exports_busy(&why)),
    };
    // Audited once it runs (not a request refused for want of a slot).
    let span = format!("{name} {} to {}", rfc3339(from), rfc3339(to));
    state
        .auth
        .audit(&principal.name, peer.ip(), "export", &span);
    let root = recordings.root.clone();
    let camera = name.clone();
    let plan = tokio::task::spawn_blocking(move || {
        let index = Index::open(&root).map_err(ExportError::from)?;
        plan_export(&root, &index, &camera, from, to)
    })
    .await
    .map_err(index_error)?
    .map_err(|e| match e {
        ExportError::BadRange(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
        e @ ExportError::NothingRecorded { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, e.to_string())
        }
        e => index_error(e),
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let len = plan.len;
    let (start, end, gaps) = (rfc3339(plan.start_us), rfc3339(plan.end_us), plan.gaps);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut out = std::io::BufWriter::with_capacity(256 << 10, ChannelWriter(tx.clone()));
        if let Err(e) = plan.write_to(&mut out) {
            // The client sees a cut response (the length was promised).
            tracing::warn!("export: {e}");
            let _ = tx.blocking_send(Err(e));
        }
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    let file_name = format!("{name}-{}.mp4", start.replace(':', "-"));
    let disposition = if query.download.is_some() {
        format!("attachment; filename=\"{file_name}\"")
    } else {
        format!("inline; filename=\"{file_name}\"")
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "video/mp4".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::HeaderName::from_static("x-lockstep-start"), start),
            (header::HeaderName::from_static("x-lockstep-end"), end),
            (
                header::HeaderName::from_static("x-lockstep-gaps"),
                gaps.to_string(),
            ),
        ],
        body,
    )
        .into_response())
}

/// The answer while every export slot is taken: come back in a few seconds.
fn exports_busy(message: &str) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, "5")],
        Json(json!({ "error": message })),
    )
        .into_response()
}

/// Blocking writes into the response body's channel.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
