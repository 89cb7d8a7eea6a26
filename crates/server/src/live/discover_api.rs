//! `POST /api/discover` (admin): what `lockstep discover` finds, asked from the server (which is
//! on the cameras' LAN when the browser may not be), for the UI's "Add camera".
//!
//! Body: `{"user": …, "password": …, "timeout_secs": 3, "addresses": [], "probe": false}`,
//! every key optional (`user` and `password` together). Answer: `{"devices": [report…],
//! "unreadable": ["from: reason"…]}` with the CLI's `--json` reports. The password is used for
//! this search only: never stored, never logged (the audit log says who searched and what was
//! found); the `[[camera]]` blocks carry it back to the admin who typed it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use lockstep_rtsp::auth::Credentials;
use serde::Deserialize;
use serde_json::{json, Value};

use super::state::{ApiError, AppState};
use crate::auth::Principal;
use crate::discover::{search, Search};

/// The longest probe the API waits for (a request should not hang a page for long).
const MAX_TIMEOUT_SECS: f64 = 10.0;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    user: Option<String>,
    password: Option<String>,
    timeout_secs: Option<f64>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    probe: bool,
}

pub async fn discover(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(principal): Extension<Principal>,
    Json(request): Json<DiscoverRequest>,
) -> Result<Json<Value>, ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    let timeout_secs = request.timeout_secs.unwrap_or(3.0);
    if !(0.2..=MAX_TIMEOUT_SECS).contains(&timeout_secs) {
        return Err(bad(format!(
            "timeout_secs {timeout_secs} is outside 0.2–{MAX_TIMEOUT_SECS}"
        )));
    }
    let login = match (request.user, request.password) {
        (Some(user), Some(password)) => Some(Credentials { user, password }),
        (None, None) => None,
        _ => return Err(bad("give user and password together".into())),
    };
    let found = search(&Search {
        timeout: Duration::from_secs_f64(timeout_secs),
        login,
        addresses: request.addresses,
        probe: request.probe,
    })
    .await
    .map_err(bad)?;
    state.auth.audit(
        &principal.name,
        peer.ip(),
        "discover",
        &format!(
            "{} devices, {} read whole",
            found.devices.len(),
            found.devices.iter().filter(|d| d.camera.is_some()).count()
        ),
    );
    Ok(Json(json!(found)))
}
