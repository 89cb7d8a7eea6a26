//! Talk's HTTP face (WHIP-shaped, RFC 9725): `POST /api/talk/{name}` with an SDP offer that
//! sends audio → 201, the answer and a `Location`; `PATCH` that resource with
//! `{"talking": true|false}` to press and release; `DELETE` to end. A session holds the
//! camera's floor while it talks: a second talker gets 409 naming the holder's session.
//!
//! A page sets its peer up when it opens (`?talking=false`: connected, silent, holding
//! nothing), so that pressing the button only claims the floor: the first syllable never waits
//! for ICE. A plain WHIP client (OBS, `push-sim --whip`) talks from its first packet.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use lockstep_webrtc::whep_client::Track;
use lockstep_webrtc::Received;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::api::{refused_peer, sdp_offer};
use super::state::{ApiError, AppState};
use crate::auth::Principal;
use crate::talk::speaker::Speech;
use crate::talk::CameraTalk;

/// The WebRTC session map's key for `camera`'s talkers (apart from its viewers and from a
/// push source's publisher).
fn session_key(camera: &str) -> String {
    format!("talk/{camera}")
}

/// `POST /api/talk/{name}[?talking=false]`.
pub async fn offer(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let talk = camera_talk(&state, &name)?;
    let talking = match query.as_deref() {
        None | Some("") | Some("talking=true") => true,
        Some("talking=false") => false,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown query {other:?}: the talk offer takes talking=true|false"),
            ))
        }
    };
    if let Some(reason) = talk.refusal() {
        return Err(cannot_talk(&name, &reason));
    }
    if talking {
        if let Some(holder) = talk.floor.holder() {
            return Err(taken(&holder));
        }
    }
    let offer = sdp_offer("talk", &headers, &body)?;
    if !sends_opus(offer) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "a talk offer sends audio: an m=audio section with Opus that is sendonly or sendrecv",
        ));
    }
    let (session, answer, frames) = state
        .whep
        .publish(&session_key(&name), client.ip(), offer)
        .map_err(refused_peer)?;
    if talking {
        if let Err(holder) = talk.press(&session) {
            // Another talker took it in between.
            state.whep.delete(&session);
            return Err(taken(&holder));
        }
    }
    // Who may speak through which camera, and when: the session's start is audited (its
    // presses are not: push-to-talk makes dozens).
    let actor = principal.map_or_else(|| "-".to_owned(), |Extension(p)| p.name);
    state.auth.audit(
        &actor,
        client.ip(),
        "talk",
        &format!("{name} (talk session {session})"),
    );
    tokio::spawn(relay(state.clone(), name.clone(), session.clone(), frames));
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, format!("/api/talk/{name}/{session}")),
        ],
        answer,
    )
        .into_response())
}

/// `PATCH /api/talk/{name}/{session}`: `{"talking": bool}` presses or releases; a trickle-ICE
/// fragment (`application/trickle-ice-sdpfrag`) has nothing to apply (we are ICE-lite).
pub async fn patch(
    State(state): State<Arc<AppState>>,
    Path((name, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let talk = camera_talk(&state, &name)?;
    if state.whep.camera_of(&session) != Some(session_key(&name)) {
        return Err(no_session(&session));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.trim().starts_with("application/json") {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let talking = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("talking").and_then(Value::as_bool))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "a talk PATCH is {\"talking\": true} or {\"talking\": false}",
            )
        })?;
    if talking {
        if let Some(reason) = talk.refusal() {
            return Err(cannot_talk(&name, &reason));
        }
        talk.press(&session).map_err(|holder| taken(&holder))?;
    } else {
        talk.floor.release(&session);
    }
    Ok(Json(talk.json()).into_response())
}

/// `DELETE /api/talk/{name}/{session}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((name, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let talk = camera_talk(&state, &name)?;
    if state.whep.camera_of(&session) != Some(session_key(&name)) || !state.whep.delete(&session) {
        return Err(no_session(&session));
    }
    talk.floor.release(&session);
    Ok(StatusCode::OK)
}

/// The talker's audio to the camera's speaker while it holds the floor; the floor is let go
/// when the peer ends (DELETE, ICE failure, the page closed).
async fn relay(
    state: Arc<AppState>,
    name: String,
    session: String,
    mut frames: mpsc::Receiver<Received>,
) {
    let Some(talk) = state.talk.camera(&name) else {
        return;
    };
    let talker: Arc<str> = Arc::from(session.as_str());
    while let Some(frame) = frames.recv().await {
        if frame.track == Track::Audio && talk.floor.holds(&session) {
            talk.say(Speech {
                talker: talker.clone(),
                opus: frame.data,
            });
        }
    }
    talk.floor.release(&session);
}

/// Whether `offer` has an audio section that sends Opus (a talk session without one would hold
/// the camera and say nothing).
fn sends_opus(offer: &str) -> bool {
    let mut in_audio = false;
    let (mut opus, mut receives_only) = (false, false);
    for line in offer.lines().map(str::trim) {
        if let Some(media) = line.strip_prefix("m=") {
            if in_audio && opus && !receives_only {
                return true;
            }
            in_audio = media.starts_with("audio ");
            opus = false;
            receives_only = false;
        } else if in_audio {
            let lower = line.to_ascii_lowercase();
            opus |= lower.starts_with("a=rtpmap:") && lower.contains(" opus/48000");
            receives_only |= lower == "a=recvonly" || lower == "a=inactive";
        }
    }
    in_audio && opus && !receives_only
}

fn camera_talk(state: &AppState, name: &str) -> Result<Arc<CameraTalk>, ApiError> {
    state.camera(name)?;
    state.talk.camera(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{name:?} is a push source: only cameras have speakers"),
        )
    })
}

fn cannot_talk(name: &str, reason: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("camera {name:?} cannot talk: {reason}"),
    )
}

fn taken(holder: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        format!("another talker holds this camera (talk session {holder}); try when it lets go"),
    )
}

fn no_session(session: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no talk session {session:?} of this camera"),
    )
}

/// For the camera JSON: `talkback`.
pub fn talk_json(state: &AppState, name: &str) -> Value {
    state
        .talk
        .camera(name)
        .map_or_else(|| json!(null), |talk| talk.json())
}

#[cfg(test)]
mod tests {
    use super::sends_opus;

    #[test]
    fn only_an_offer_that_sends_opus_can_talk() {
        let audio = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert!(sends_opus(audio));
        assert!(sends_opus(&format!(
            "{audio}a=sendonly\r\nm=video 9 UDP 96\r\n"
        )));
        assert!(!sends_opus(&format!("{audio}a=recvonly\r\n")));
        assert!(!sends_opus(
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n"
        ));
        assert!(!sends_opus(
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n"
        ));
    }
}
