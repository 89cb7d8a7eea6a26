//! What every handler reads: the server's sources, WebRTC host, recordings and socket policy,
//! and the error answer they all give. Its own room, so that the router (`api.rs`) and the
//! handlers beside what they serve (`whip.rs`, `push.rs`, `recordings.rs`, …) import it and not
//! each other.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lockstep_webrtc::WhepHost;
use serde_json::json;

use super::camera::CameraHandle;
use super::camera_runtime::SourceRuntime;
use super::camera_set::CameraSet;
use super::origin_policy::OriginPolicy;
use super::push::PushSource;
use super::recordings::Recordings;
use super::signalling::Signalling;
use super::ws::{ConnectionLimits, WsPolicy};

/// Everything the handlers read. Cameras come and go at run time (`camera_runtime.rs`).
#[derive(Debug)]
pub struct AppState {
    /// Every source: RTSP cameras and push sources.
    pub cameras: CameraSet,
    pub whep: WhepHost,
    /// Opened by the first source that records.
    pub(super) recordings: std::sync::OnceLock<Recordings>,
    /// What starting and stopping a source needs.
    pub runtime: SourceRuntime,
    /// Push sources (their handles are also in `cameras`).
    pub pushes: Vec<Arc<PushSource>>,
    pub ws_policy: WsPolicy,
    pub ws_limits: Arc<ConnectionLimits>,
    pub signalling: Arc<Signalling>,
    /// Which browser pages may use the server.
    pub origins: OriginPolicy,
    /// Who may use it.
    pub auth: crate::auth::Auth,
    /// Two-way talk, per camera.
    pub talk: crate::talk::Talk,
}

impl AppState {
    pub fn camera(&self, name: &str) -> Result<CameraHandle, ApiError> {
        self.cameras.get(name).ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("no camera named {name:?}"))
        })
    }

    /// `None` until a source records.
    pub fn recordings(&self) -> Option<&Recordings> {
        self.recordings.get()
    }

    /// Keeps `recordings` (the first source that records opened them) and returns them.
    pub fn open_recordings(&self, recordings: Recordings) -> &Recordings {
        self.recordings.get_or_init(|| recordings)
    }
}

/// An error answer: status and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}
