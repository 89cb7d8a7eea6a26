//! Starting and stopping one source with everything that hangs on it — its stream tasks, its
//! echo path and talk, its recorder — the same way at start-up and when the camera API adds,
//! changes or removes a camera, so that nothing else running is disturbed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use lockstep_media::EchoReference;
use lockstep_rtsp::ingest::LocalClock;
use tokio::sync::watch;

use super::camera::{spawn_camera, CameraHandle, CameraSettings, CameraTasks};
use super::echo_stage::EchoPath;
use super::push::PushSource;
use super::recorder::{spawn_recorder, RecorderHandle, Storage};
use super::recordings::{Recordings, RetentionThread};
use super::state::AppState;
use crate::config::{CameraConfig, EchoMode, RecordMode, StorageConfig, Talkback};
use crate::config_edit::ConfigFile;

/// What starting a source needs beyond its own table, and what stopping one must find.
#[derive(Debug)]
pub struct SourceRuntime {
    pub clock: LocalClock,
    storage: Storage,
    storage_config: StorageConfig,
    recorders: Mutex<HashMap<String, RunningRecorder>>,
    /// Retention runs once recordings are open (at start, or when the first recording camera
    /// is added); this lock also makes that opening happen once.
    retention: Mutex<Option<RetentionThread>>,
    /// Where camera changes are saved.
    pub config_file: ConfigFile,
    /// One camera change at a time: read, edit, check, save, apply.
    pub edits: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct RunningRecorder {
    handle: RecorderHandle,
    stop: watch::Sender<bool>,
}

impl SourceRuntime {
    pub fn new(clock: LocalClock, storage: &StorageConfig, config_file: ConfigFile) -> Self {
        SourceRuntime {
            clock,
            storage: Storage {
                root: storage.dir.clone(),
                segment_ticks: i64::from(storage.segment_secs)
                    * i64::from(lockstep_sync::VIDEO_RATE_HZ),
            },
            storage_config: storage.clone(),
            recorders: Mutex::default(),
            retention: Mutex::default(),
            config_file,
            edits: tokio::sync::Mutex::const_new(()),
        }
    }

    fn recorders(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunningRecorder>> {
        self.recorders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts RTSP camera `camera` as configured: its streams, its talk, its recorder.
pub fn start_camera(state: &AppState, camera: &CameraConfig) -> anyhow::Result<()> {
    let clock = state.runtime.clock;
    // What the camera's speaker plays, shared by its talk path and its audio sessions (none
    // where nothing is done with it: no talk, or `echo = "off"`).
    let echo = (camera.talkback != Talkback::Off && camera.echo != EchoMode::Off).then(|| {
        EchoPath::new(
            camera.echo,
            Arc::new(EchoReference::new(crate::talk::SPEAKER_RATE_HZ)),
        )
    });
    let (handle, tasks) = spawn_camera(
        CameraSettings {
            name: camera.name.to_string(),
            kind: "camera",
            url: camera.url.for_connecting().to_owned(),
            shown_url: camera.url.to_string(),
            audio: camera.audio,
            record_audio: camera.record == RecordMode::Continuous && camera.record_audio,
            profile: camera.latency,
            sync_offset_ms: camera.sync_offset_ms,
            transport: camera.transport,
            echo: echo.clone(),
        },
        camera
            .substream_url
            .as_ref()
            .map(|u| (u.for_connecting().to_owned(), u.to_string())),
        clock,
    );
    if camera.record == RecordMode::Continuous {
        if let Err(e) = start_recorder(state, &handle) {
            tasks.stop();
            return Err(e);
        }
    }
    state.talk.add(camera, &echo, clock);
    state.cameras.put(handle, tasks);
    Ok(())
}

/// Adds push source `source` (its producer connects later), recording it if `record`.
pub fn start_push(state: &AppState, source: &PushSource, record: bool) -> anyhow::Result<()> {
    if record {
        start_recorder(state, &source.handle)?;
    }
    state
        .cameras
        .put(source.handle.clone(), CameraTasks::default());
    Ok(())
}

fn start_recorder(state: &AppState, camera: &CameraHandle) -> anyhow::Result<()> {
    let runtime = &state.runtime;
    let recordings = open_recordings(state)?;
    let (stop, stopped) = watch::channel(false);
    let recorder = spawn_recorder(camera, &runtime.storage, stopped)
        .context("cannot start a recorder thread")?;
    let name = &camera.settings.name;
    recordings.set_recorder(name, Some(recorder.status.clone()));
    runtime.recorders().insert(
        name.clone(),
        RunningRecorder {
            handle: recorder,
            stop,
        },
    );
    Ok(())
}

/// The recordings, opened (with retention started) by the first source that records.
fn open_recordings(state: &AppState) -> anyhow::Result<&Recordings> {
    let runtime = &state.runtime;
    let mut retention = runtime
        .retention
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(recordings) = state.recordings() {
        return Ok(recordings);
    }
    let recordings = Recordings::open(&runtime.storage.root, &runtime.storage_config)?;
    *retention = Some(recordings.start_retention()?);
    Ok(state.open_recordings(recordings))
}

/// Stops source `name` and what hangs on it; its recorder closes the open segment as `stopped`
/// (what it recorded stays, as retention keeps it). False when no source had that name.
pub async fn stop_source(state: &AppState, name: &str) -> bool {
    let removed = state.cameras.remove(name);
    stop_extras(state, name).await;
    removed
}

/// Restarts camera `camera` with its new table, in its place among the others.
pub async fn restart_camera(state: &AppState, camera: &CameraConfig) -> anyhow::Result<()> {
    stop_extras(state, camera.name.as_str()).await;
    // `put` replaces the running entry and stops its tasks.
    start_camera(state, camera)
}

/// Stops what hangs on source `name` besides its own tasks: talk and recorder.
async fn stop_extras(state: &AppState, name: &str) {
    state.talk.remove(name);
    let recorder = state.runtime.recorders().remove(name);
    if let Some(recorder) = recorder {
        if let Some(recordings) = state.recordings() {
            recordings.set_recorder(name, None);
        }
        let _ = recorder.stop.send(true);
        let _ = tokio::task::spawn_blocking(move || recorder.handle.join()).await;
    }
}

/// Closes every recording cleanly (the open segments end as `stopped`, not `crash`) and stops
/// retention: the server is stopping.
pub async fn stop_recording(state: &AppState) {
    let recorders: Vec<RunningRecorder> = state
        .runtime
        .recorders()
        .drain()
        .map(|(_, recorder)| recorder)
        .collect();
    for recorder in &recorders {
        let _ = recorder.stop.send(true);
    }
    let retention = state
        .runtime
        .retention
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let joined = tokio::task::spawn_blocking(move || {
        for recorder in recorders {
            recorder.handle.join();
        }
        if let Some(retention) = retention {
            retention.stop();
        }
    });
    if tokio::time::timeout(std::time::Duration::from_secs(10), joined)
        .await
        .is_err()
    {
        tracing::warn!("recorders did not stop within 10 s");
    }
}
