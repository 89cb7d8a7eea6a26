//! Cameras added, changed and removed at run time (admin): `POST`, `PUT` and `DELETE
//! /api/cameras/{name}`, and `GET /api/cameras/{name}/config` for the form that changes one.
//!
//! The body is the camera's `[[camera]]` table as JSON (`{"url": "rtsp://…", "record": "off"}`,
//! the config's keys; the name is the path's). Each change is made to the config file first
//! (`config_edit`), checked by the parser the server starts with, saved atomically, and only
//! then applied: that camera's task starts, restarts or stops; no other source is touched.
//! Secrets are never shown back (`***`), and `***` written back keeps them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::api::camera_json;
use super::camera_runtime::{restart_camera, start_camera, stop_source};
use super::state::{ApiError, AppState};
use crate::auth::Principal;
use crate::config::CameraConfig;
use crate::config_edit::{self, EditError};

type Fields = Json<Map<String, Value>>;

/// `POST /api/cameras/{name}`: a new camera, started at once.
pub async fn add(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    Json(fields): Fields,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let _one_at_a_time = state.runtime.edits.lock().await;
    if state.cameras.get(&name).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("a source named {name:?} already exists"),
        ));
    }
    let camera = save(&state, &name, |text| {
        config_edit::add_camera(text, &name, &fields)
    })?;
    start_camera(&state, &camera).map_err(|e| not_started(&camera, &e))?;
    state
        .auth
        .audit(&principal.name, peer.ip(), "camera-add", &name);
    Ok((StatusCode::CREATED, Json(answer(&state, &name))))
}

/// `PUT /api/cameras/{name}`: the camera's table replaced, the camera restarted with it.
pub async fn change(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    Json(fields): Fields,
) -> Result<Json<Value>, ApiError> {
    let _one_at_a_time = state.runtime.edits.lock().await;
    let camera = save(&state, &name, |text| {
        config_edit::replace_camera(text, &name, &fields)
    })?;
    restart_camera(&state, &camera)
        .await
        .map_err(|e| not_started(&camera, &e))?;
    state
        .auth
        .audit(&principal.name, peer.ip(), "camera-change", &name);
    Ok(Json(answer(&state, &name)))
}

/// `DELETE /api/cameras/{name}`: the camera stopped and out of the config; its recordings stay.
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
) -> Result<StatusCode, ApiError> {
    let _one_at_a_time = state.runtime.edits.lock().await;
    let file = &state.runtime.config_file;
    let text = file.read().map_err(|e| refused(&state, &name, e))?;
    let text = config_edit::remove_camera(&text, &name).map_err(|e| refused(&state, &name, e))?;
    file.write(&text).map_err(|e| refused(&state, &name, e))?;
    stop_source(&state, &name).await;
    state
        .auth
        .audit(&principal.name, peer.ip(), "camera-remove", &name);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/cameras/{name}/config`: the camera's table as saved, secrets as `***`.
pub async fn config(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let text = state
        .runtime
        .config_file
        .read()
        .map_err(|e| refused(&state, &name, e))?;
    match config_edit::camera_fields(&text, &name).map_err(|e| refused(&state, &name, e))? {
        Some(fields) => Ok(Json(Value::Object(fields))),
        None => Err(refused(
            &state,
            &name,
            EditError::NotFound(format!("no [[camera]] table named {name:?}")),
        )),
    }
}

/// Edits the configuration with `edit`, checks it as a start would, saves it, and returns
/// camera `name` as the result configures it.
fn save(
    state: &AppState,
    name: &str,
    edit: impl FnOnce(&str) -> Result<String, EditError>,
) -> Result<CameraConfig, ApiError> {
    let file = &state.runtime.config_file;
    let result = file.read().and_then(|text| {
        let text = edit(&text)?;
        let camera = file.check(&text, name)?.ok_or_else(|| {
            EditError::File(format!(
                "camera {name:?} is not in the edited configuration"
            ))
        })?;
        file.write(&text)?;
        Ok(camera)
    });
    result.map_err(|e| refused(state, name, e))
}

fn not_started(camera: &CameraConfig, error: &anyhow::Error) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "camera {} is saved but did not start: {error:#}",
            camera.name.as_str()
        ),
    )
}

/// The camera as the API shows it, and where the change was saved.
fn answer(state: &AppState, name: &str) -> Value {
    let camera = state.cameras.get(name).map(|c| camera_json(state, &c));
    let saved_to = state
        .runtime
        .config_file
        .path()
        .map(|p| p.display().to_string());
    json!({ "camera": camera, "saved_to": saved_to })
}

fn refused(state: &AppState, name: &str, error: EditError) -> ApiError {
    let status = match &error {
        EditError::Invalid(_) => StatusCode::BAD_REQUEST,
        // A source that runs but has no table: a push source or a demo camera.
        EditError::NotFound(_) if state.cameras.get(name).is_some() => StatusCode::CONFLICT,
        EditError::NotFound(_) => StatusCode::NOT_FOUND,
        EditError::Exists(_) => StatusCode::CONFLICT,
        EditError::File(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, error.to_string())
}
