//! One camera's task: its RTSP session as the front end of the shared source driver, reconnect
//! with backoff (cut short as soon as an unreachable camera answers again). Its state is
//! published on a watch channel that the API reads; nothing else shares it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep_media::SourceFeed;
use lockstep_rtsp::client::socket_address;
use lockstep_rtsp::ingest::{
    split_credentials, CameraSession, IngestError, LocalClock, RtpTransport,
};
use lockstep_sync::{LatencyProfile, SourceConfig, SourceStats};
use serde::Serialize;
use tokio::sync::watch;

use super::backoff::Backoff;
use super::echo_stage::EchoPath;
use super::pacer::Pacer;
use super::source_driver::{drive, SourceSinks};

/// A session that stayed live this long resets the reconnect backoff.
const STABLE_SESSION: Duration = Duration::from_secs(30);
/// How often an unreachable camera's address is tried between reconnect attempts.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraState {
    /// A push source with no producer connected.
    Waiting,
    Connecting,
    Live,
    Reconnecting,
    Error,
}

/// What the API shows of a camera.
#[derive(Debug, Clone)]
pub struct CameraStatus {
    pub state: CameraState,
    /// Why the camera is not live (no credentials in it).
    pub error: Option<String>,
    pub video_codec: Option<&'static str>,
    pub audio_codec: Option<String>,
    /// Why the camera's audio track is not played (an encoding lockstep cannot decode).
    pub audio_refused: Option<String>,
    pub sessions: u64,
    pub sync: Option<SourceStats>,
    /// How the playing session's media travels (`"tcp"`, `"udp"`); none when not playing
    /// an RTSP session.
    pub transport: Option<&'static str>,
}

impl CameraStatus {
    /// A camera in `state` that has told nothing yet.
    pub fn new(state: CameraState) -> Self {
        CameraStatus {
            state,
            error: None,
            video_codec: None,
            audio_codec: None,
            audio_refused: None,
            sessions: 0,
            sync: None,
            transport: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CameraSettings {
    pub name: String,
    /// `"camera"` (RTSP) or `"push"` (a producer pushes to it).
    pub kind: &'static str,
    /// The URL with credentials, for the RTSP client only.
    pub url: String,
    /// The URL as shown (credentials redacted).
    pub shown_url: String,
    /// Live audio to viewers.
    pub audio: bool,
    /// Audio into recordings.
    pub record_audio: bool,
    pub profile: LatencyProfile,
    pub sync_offset_ms: i64,
    /// How an RTSP camera's media is asked to travel.
    pub transport: RtpTransport,
    /// A camera that can talk: what its speaker plays, to take out of its microphone.
    pub echo: Option<EchoPath>,
}

/// A camera as the rest of the server sees it.
#[derive(Debug, Clone)]
pub struct CameraHandle {
    pub settings: Arc<CameraSettings>,
    pub feed: Arc<SourceFeed>,
    pub status: watch::Receiver<CameraStatus>,
    pub substream: Option<Substream>,
}

/// A camera's substream: its own RTSP session and sync, watched, never recorded.
#[derive(Debug, Clone)]
pub struct Substream {
    /// The URL as shown (credentials redacted).
    pub shown_url: String,
    pub feed: Arc<SourceFeed>,
    pub status: watch::Receiver<CameraStatus>,
}

/// The tasks reading a camera's streams. Stopping them ends its sessions and its pacers (a
/// camera removed at run time); handles that viewers still hold see no more frames.
#[derive(Debug, Default)]
pub struct CameraTasks(Vec<tokio::task::AbortHandle>);

impl CameraTasks {
    pub fn stop(&self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Starts the camera's task, and its substream's when it has one (`(url, shown_url)`).
pub fn spawn_camera(
    settings: CameraSettings,
    substream: Option<(String, String)>,
    clock: LocalClock,
) -> (CameraHandle, CameraTasks) {
    let settings = Arc::new(settings);
    let mut tasks = Vec::new();
    let substream = substream.map(|(url, shown_url)| {
        let (feed, status, task) = spawn_stream(
            CameraSettings {
                name: format!("{}/sub", settings.name),
                url,
                shown_url: shown_url.clone(),
                record_audio: false,
                ..(*settings).clone()
            },
            clock,
        );
        tasks.push(task);
        Substream {
            shown_url,
            feed,
            status,
        }
    });
    let (feed, status, task) = spawn_stream(settings.as_ref().clone(), clock);
    tasks.push(task);
    let handle = CameraHandle {
        settings,
        feed,
        status,
        substream,
    };
    (handle, CameraTasks(tasks))
}

/// One RTSP stream's task: its feed, its status and the task.
fn spawn_stream(
    settings: CameraSettings,
    clock: LocalClock,
) -> (
    Arc<SourceFeed>,
    watch::Receiver<CameraStatus>,
    tokio::task::AbortHandle,
) {
    let feed = Arc::new(SourceFeed::new());
    let (status_tx, status) = watch::channel(CameraStatus::new(CameraState::Connecting));
    let task = tokio::spawn(run_camera(
        Arc::new(settings),
        feed.clone(),
        status_tx,
        clock,
    ));
    (feed, status, task.abort_handle())
}

async fn run_camera(
    settings: Arc<CameraSettings>,
    feed: Arc<SourceFeed>,
    status: watch::Sender<CameraStatus>,
    clock: LocalClock,
) {
    let seed = settings
        .name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
        ^ clock.now().as_nanos() as u64;
    let mut backoff = Backoff::new(seed);
    let pacer = match Pacer::new(feed.clone()) {
        Ok(pacer) => Arc::new(pacer),
        Err(e) => {
            status.send_modify(|s| {
                s.state = CameraState::Error;
                s.error = Some(format!("cannot start the pacer thread: {e}"));
            });
            return;
        }
    };
    let sinks = SourceSinks {
        feed: feed.clone(),
        pacer,
        status: status.clone(),
        clock,
        audio: settings.audio || settings.record_audio,
        echo: settings.echo.clone(),
    };
    let probe_addr = probe_address(&settings.url);
    loop {
        let started = Instant::now();
        let result = session(&settings, &sinks).await;
        feed.clear_cache();
        // One probe decides both what the camera is and how to wait for it.
        let answers = match probe_addr.as_deref() {
            Some(addr) => reachable(addr).await,
            None => false,
        };
        let (state, reason) = match result {
            Err(e @ IngestError::Setup { .. }) => (CameraState::Error, e.to_string()),
            // Refused before playing: a camera that is down is coming back; one that answers,
            // but not as a camera should (a wrong path, a password, not RTSP), needs a person.
            Err(e @ IngestError::Unreachable { .. }) if answers => {
                (CameraState::Error, e.to_string())
            }
            Err(e) => (CameraState::Reconnecting, e.to_string()),
            // The camera ended cleanly: still a camera that should be there.
            Ok(()) => (CameraState::Reconnecting, "the session ended".to_owned()),
        };
        tracing::warn!(camera = %settings.name, "{reason}");
        if started.elapsed() >= STABLE_SESSION {
            backoff.reset();
        }
        status.send_modify(|s| {
            s.state = state;
            s.error = Some(reason);
            s.sync = None;
            s.transport = None;
        });
        let probe_while_down = probe_addr.as_deref().filter(|_| !answers);
        wait_to_retry(backoff.next_delay(), probe_while_down).await;
    }
}

/// One RTSP session: connect, then the shared driver until it ends.
async fn session(settings: &CameraSettings, sinks: &SourceSinks) -> Result<(), IngestError> {
    let (mut camera, tracks) =
        CameraSession::connect_with(&settings.url, settings.transport, "lockstep").await?;
    let mut config = SourceConfig::new(settings.profile);
    config.audio_trim_nanos = settings.sync_offset_ms * 1_000_000;
    let video_codec = tracks.video.codec;
    let audio_codec = tracks.audio.as_ref().map(|a| a.codec.as_str().to_owned());
    let audio_refused = tracks.audio_refused.clone();
    let source = tracks.into_source(config);
    let transport = camera.transport();
    sinks.status.send_modify(|s| {
        s.video_codec = Some(video_codec.as_str());
        s.audio_codec = audio_codec;
        s.audio_refused = audio_refused;
        s.transport = Some(transport.as_str());
    });
    let ended = drive(&mut camera, source, sinks).await;
    // Over UDP the camera would keep sending to ports nobody reads until its session times out.
    if transport == RtpTransport::Udp {
        camera.close().await;
    }
    ended
}

/// Waits `delay` before the next attempt, but no longer than it takes the camera to become
/// reachable again: while its address refuses TCP, it is probed every
/// [`PROBE_INTERVAL`], and the first accepted connection ends the wait. A camera that accepts
/// TCP but fails later (a wrong path, a password) is given no address: it waits the whole delay.
async fn wait_to_retry(delay: Duration, probe_addr: Option<&str>) {
    let deadline = tokio::time::Instant::now() + delay;
    let Some(addr) = probe_addr else {
        tokio::time::sleep_until(deadline).await;
        return;
    };
    while tokio::time::Instant::now() < deadline {
        let next = (tokio::time::Instant::now() + PROBE_INTERVAL).min(deadline);
        tokio::time::sleep_until(next).await;
        if reachable(addr).await {
            return;
        }
    }
}

async fn reachable(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(PROBE_INTERVAL, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// `host:port` of an RTSP URL, for the reachability probe.
fn probe_address(url: &str) -> Option<String> {
    let (url, _) = split_credentials(url).ok()?;
    socket_address(&url)
}
