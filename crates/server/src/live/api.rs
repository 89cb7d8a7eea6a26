//! The HTTP API of the contract: health, cameras with their sync state, WHEP, metrics, and the
//! embedded web UI. Errors are `{"error": "..."}` with a 4xx/5xx status, never a credential.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use lockstep_webrtc::{ViewerOptions, WhepError};
use serde_json::{json, Value};

use super::camera::{CameraHandle, CameraStatus};
use super::discover_api;
use super::recordings::{self, recorder_json};
use super::signalling;
use super::state::{ApiError, AppState};
use super::viewer_stream::{choose_stream, StreamRequest};
use super::{camera_admin, media_socket, metrics, origin_policy, push, talk, web, whip};
use crate::auth::Principal;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/cameras", get(list_cameras))
        .route(
            "/api/cameras/{name}",
            get(get_camera)
                .post(camera_admin::add)
                .put(camera_admin::change)
                .delete(camera_admin::remove),
        )
        .route("/api/cameras/{name}/config", get(camera_admin::config))
        .route("/api/whep/{name}", post(whep_offer).options(preflight))
        .route(
            "/api/whep/{name}/{session}",
            axum::routing::delete(whep_delete)
                .patch(whep_patch)
                .options(preflight),
        )
        .route("/api/push/{name}", get(push::upgrade))
        .route("/api/whip/{name}", post(whip::offer).options(preflight))
        .route(
            "/api/whip/{name}/{session}",
            axum::routing::delete(whep_delete)
                .patch(whep_patch)
                .options(preflight),
        )
        .route("/api/talk/{name}", post(talk::offer).options(preflight))
        .route(
            "/api/talk/{name}/{session}",
            axum::routing::delete(talk::delete)
                .patch(talk::patch)
                .options(preflight),
        )
        .route("/api/discover", post(discover_api::discover))
        .route("/api/ws", get(signalling::upgrade))
        .route("/api/media/{name}", get(media_socket::upgrade))
        .route("/api/recordings/{name}", get(recordings::timeline))
        .route("/api/recordings/{name}/export.mp4", get(recordings::export))
        .route("/metrics", get(metrics::handler))
        .merge(crate::auth::router())
        .merge(web::router())
        .fallback(not_found)
        // The origin policy runs first (the outer layer), then who is asking.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::check,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            origin_policy::check,
        ))
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "cameras": state.cameras.len(),
    }))
}

async fn list_cameras(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
) -> Json<Value> {
    Json(cameras_json(&state, &principal))
}

/// Every camera `principal` may see, as the API shows them.
pub fn cameras_json(state: &AppState, principal: &Principal) -> Value {
    Value::Array(
        state
            .cameras
            .all()
            .iter()
            .filter(|c| principal.cameras.covers(&c.settings.name))
            .map(|c| camera_json(state, c))
            .collect(),
    )
}

async fn get_camera(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let camera = state.camera(&name)?;
    Ok(Json(camera_json(&state, &camera)))
}

/// A camera as the API shows it: the contract's `sync` object plus state and codecs.
pub fn camera_json(state: &AppState, camera: &CameraHandle) -> Value {
    let status: CameraStatus = camera.status.borrow().clone();
    let substream = camera.substream.as_ref().map(|sub| {
        let status: CameraStatus = sub.status.borrow().clone();
        json!({
            "url": sub.shown_url,
            "state": status.state,
            "error": status.error,
            "codecs": codecs_json(&status),
            "sync": sync_json(&status),
        })
    });
    json!({
        "name": camera.settings.name,
        "kind": camera.settings.kind,
        "url": camera.settings.shown_url,
        "state": status.state,
        "error": status.error,
        "codecs": codecs_json(&status),
        "substream": substream,
        "audio": camera.settings.audio,
        "latency": camera.settings.profile.to_string(),
        "sync_offset_ms": camera.settings.sync_offset_ms,
        "transport": transport_json(camera, &status),
        "sessions": status.sessions,
        "viewers": state.whep.viewer_totals(&camera.settings.name).viewers,
        "sync": sync_json(&status),
        "whep": format!("/api/whep/{}", camera.settings.name),
        "talkback": talk::talk_json(state, &camera.settings.name),
        "recording": recorder_json(
            state
                .recordings()
                .and_then(|r| r.recorder_status(&camera.settings.name))
                .as_ref()
        ),
    })
}

/// `{configured, active}` for an RTSP camera (`active` is what the playing session uses, `null`
/// when none plays); `null` for a push source.
fn transport_json(camera: &CameraHandle, status: &CameraStatus) -> Value {
    if camera.settings.kind != "camera" {
        return Value::Null;
    }
    json!({
        "configured": camera.settings.transport.as_str(),
        "active": status.transport,
    })
}

fn codecs_json(status: &CameraStatus) -> Value {
    json!({
        "video": status.video_codec,
        "audio": status.audio_codec,
        "audio_refused": status.audio_refused,
    })
}

/// The contract's `sync` object while the stream is live, else `null`.
fn sync_json(status: &CameraStatus) -> Value {
    let Some(s) = status.sync.as_ref() else {
        return Value::Null;
    };
    json!({
        "offset_ms": s.offset_ms.map(round2),
        "audio_drift_ppm": s.audio_drift_ppm.map(round2),
        "video_drift_ppm": s.video_drift_ppm.map(round2),
        "jitter_ms": round2(s.jitter_ms),
        "loss_ratio": (s.loss_ratio * 1e5).round() / 1e5,
        "latency_ms": round2(s.latency_ms),
        "clock_source": s.clock_source,
        "video_frames": s.video_frames,
        "dropped_frames": s.dropped_frames,
        "concealed_ms": round2(s.concealed_ms),
        "corrections": s.corrections,
    })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

async fn whep_offer(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.camera(&name)?;
    let request = StreamRequest::from_query(query.as_deref())?;
    let offer = sdp_offer("WHEP", &headers, &body)?;
    let viewer = open_viewer(&state, &name, client.ip(), offer, request)?;
    let location = format!("/api/whep/{name}/{}", viewer.session);
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, location),
            (STREAM_HEADER, viewer.stream.to_owned()),
        ],
        viewer.answer,
    )
        .into_response())
}

/// The SDP offer of a WHEP or WHIP POST: `Content-Type: application/sdp` (else 415), UTF-8
/// (else 400).
pub fn sdp_offer<'a>(
    protocol: &str,
    headers: &HeaderMap,
    body: &'a Bytes,
) -> Result<&'a str, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // A media type is case-insensitive and may carry parameters (`; charset=utf-8`).
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/sdp") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("a {protocol} offer is Content-Type application/sdp, not {content_type:?}"),
        ));
    }
    std::str::from_utf8(body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the SDP offer is not UTF-8"))
}

/// Which of the camera's streams a WHEP answer carries (`main` | `sub`).
const STREAM_HEADER: header::HeaderName = header::HeaderName::from_static("x-lockstep-stream");

/// A viewer opened: its session id, the SDP answer, and which stream it gets.
#[derive(Debug)]
pub struct OpenedViewer {
    pub session: String,
    pub answer: String,
    pub stream: &'static str,
}

/// A WebRTC viewer of camera `name` for an SDP offer (WHEP or the signalling WebSocket) from
/// `client`.
pub fn open_viewer(
    state: &AppState,
    name: &str,
    client: IpAddr,
    offer: &str,
    request: StreamRequest,
) -> Result<OpenedViewer, ApiError> {
    let camera = state.camera(name)?;
    let (feed, stream) = choose_stream(&camera, offer, request)?;
    let options = ViewerOptions {
        zero_playout_delay: camera.settings.profile.zero_playout_hint(),
        audio: camera.settings.audio,
    };
    let (session, answer) = state
        .whep
        .offer(name, client, offer, feed, options)
        .map_err(refused_peer)?;
    Ok(OpenedViewer {
        session,
        answer,
        stream,
    })
}

/// A WebRTC peer the host would not set up, as the answer to a WHEP, WHIP or talk offer.
pub fn refused_peer(e: WhepError) -> ApiError {
    let status = match e {
        WhepError::MalformedOffer(_) => StatusCode::BAD_REQUEST,
        WhepError::NoCompatibleCodec(_) => StatusCode::NOT_ACCEPTABLE,
        WhepError::TooManyPending(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, e.to_string())
}

/// DELETE on a WHEP viewer's or a WHIP publisher's resource (one session map holds both).
async fn whep_delete(
    State(state): State<Arc<AppState>>,
    Path((name, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if state.whep.camera_of(&session).as_deref() == Some(&name) && state.whep.delete(&session) {
        Ok(StatusCode::OK)
    } else {
        Err(no_session(&session))
    }
}

fn no_session(session: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no WHEP or WHIP session {session:?} of this camera"),
    )
}

/// Trickle ICE: we are ICE-lite with host candidates in the answer, and the browser's own
/// candidates reach us in its connectivity checks, so there is nothing to apply.
async fn whep_patch(
    State(state): State<Arc<AppState>>,
    Path((name, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    // A session is addressed under its own camera only: the URL the answer's Location gave.
    if state.whep.camera_of(&session).as_deref() == Some(&name) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_session(&session))
    }
}

async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such resource")
}
