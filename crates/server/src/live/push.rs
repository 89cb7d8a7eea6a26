//! Push sources: a producer (a talking avatar, a TTS engine) connects to `GET /api/push/{name}`
//! and sends PCM and frames; lockstep puts them on one timeline and serves the source like a
//! camera (listed, watched over WHEP, recorded). One producer at a time per source; between
//! producers the source is `waiting`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lockstep_media::SourceFeed;
use lockstep_rtsp::ingest::LocalClock;
use tokio::sync::watch;

use super::camera::{CameraHandle, CameraSettings, CameraState, CameraStatus};
use super::pacer::Pacer;
use super::push_session;
use super::state::{ApiError, AppState};
use crate::config::{PushConfig, RecordMode};

/// What a WebSocket upgrade may carry before the hello says more (a 4096×4096 RGB frame).
pub const MAX_PUSH_MESSAGE: usize = 4096 * 4096 * 3 + 9;

/// A push source as the server holds it: the camera-like handle every sink uses, and the
/// producer slot.
#[derive(Debug)]
pub struct PushSource {
    pub handle: CameraHandle,
    pub(super) status: watch::Sender<CameraStatus>,
    pub(super) clock: LocalClock,
    /// Releases the source's media when due, whichever producer or publisher sends it.
    pub(super) pacer: Arc<Pacer>,
    producer: AtomicBool,
}

/// A connected producer's hold on its source, let go when the session ends.
#[derive(Debug)]
pub struct ProducerSlot(Arc<PushSource>);

impl Drop for ProducerSlot {
    fn drop(&mut self) {
        self.0.producer.store(false, Ordering::SeqCst);
    }
}

impl std::ops::Deref for ProducerSlot {
    type Target = PushSource;
    fn deref(&self) -> &PushSource {
        &self.0
    }
}

impl PushSource {
    pub fn new(config: &PushConfig, clock: LocalClock) -> std::io::Result<Arc<Self>> {
        let feed = Arc::new(SourceFeed::new());
        let pacer = Arc::new(Pacer::new(feed.clone())?);
        let (status, status_rx) = watch::channel(CameraStatus::new(CameraState::Waiting));
        Ok(Arc::new(PushSource {
            handle: CameraHandle {
                settings: Arc::new(CameraSettings {
                    name: config.name.to_string(),
                    kind: "push",
                    url: String::new(),
                    shown_url: format!("push:/api/push/{}", config.name),
                    audio: config.audio,
                    record_audio: config.record == RecordMode::Continuous && config.record_audio,
                    profile: config.latency,
                    sync_offset_ms: 0,
                    transport: lockstep_rtsp::ingest::RtpTransport::Tcp,
                    echo: None,
                }),
                feed,
                status: status_rx,
                substream: None,
            },
            status,
            clock,
            pacer,
            producer: AtomicBool::new(false),
        }))
    }

    /// The producer slot, if no other producer holds it.
    pub fn claim(self: &Arc<Self>) -> Option<ProducerSlot> {
        self.producer
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| ProducerSlot(self.clone()))
    }

    pub fn name(&self) -> &str {
        &self.handle.settings.name
    }
}

/// `GET /api/push/{name}`: the producer's WebSocket.
pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(source) = state.pushes.iter().find(|p| p.name() == name) else {
        let message = if state.cameras.get(&name).is_some() {
            format!("{name:?} is a camera, not a push source")
        } else {
            format!("no push source named {name:?} (declare it as [[push]] in the config)")
        };
        return ApiError::new(StatusCode::NOT_FOUND, message).into_response();
    };
    let permit = match state.ws_limits.admit(peer.ip()) {
        Ok(permit) => permit,
        Err(refused) => return refused.into_response(),
    };
    let Some(slot) = source.claim() else {
        return ApiError::new(
            StatusCode::CONFLICT,
            format!("push source {name:?} already has a producer connected"),
        )
        .into_response();
    };
    let policy = state.ws_policy;
    ws.max_message_size(MAX_PUSH_MESSAGE)
        .max_frame_size(MAX_PUSH_MESSAGE)
        .on_upgrade(move |socket| async move {
            push_session::run(socket, slot, policy).await;
            drop(permit);
        })
}
