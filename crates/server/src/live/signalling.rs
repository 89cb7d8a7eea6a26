//! `GET /api/ws`: the web UI's signalling channel. One WebSocket carries the cameras' state
//! (`{"type":"cameras",…}` every second, what `GET /api/cameras` says) and WebRTC set-up
//! (`{"type":"watch","camera":NAME,"sdp":OFFER}` → `{"type":"answer",…,"viewer":ID}`,
//! `{"type":"stop","viewer":ID}`).
//!
//! Resume: the welcome carries a token. When the socket drops, the viewers it opened keep
//! playing (WebRTC media does not ride on it) for `ws_resume_secs` (60); a client that comes back
//! with `/api/ws?resume=TOKEN` within that time gets them back (`"resumed": true` and the list);
//! otherwise they are ended, as a WHEP DELETE would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::api::{cameras_json, open_viewer};
use super::state::AppState;
use super::viewer_stream::StreamRequest;
use super::ws::{
    await_peer_close, close_code, close_message, received, spawn_writer, Heartbeat, Permit,
};
use crate::auth::permission::CameraScope;
use crate::auth::Principal;

/// Signalling messages are small: SDP offers are a few kB.
const MAX_MESSAGE: usize = 64 << 10;
const QUEUE: usize = 32;
const CAMERAS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Entry {
    /// (camera, viewer id) of the viewers this session opened.
    viewers: Vec<(String, String)>,
    /// Bumped at every attach: the reaper of an older detach, or an older socket's end, leaves a
    /// resumed session alone.
    generation: u64,
    attached: bool,
}

/// Every signalling session, attached or waiting to be resumed, and the cameras message they
/// all send (rendered once a second, not once per connection).
#[derive(Debug)]
pub struct Signalling {
    resume_window: Duration,
    sessions: Mutex<HashMap<String, Entry>>,
    cameras: watch::Receiver<Arc<String>>,
    cameras_tx: watch::Sender<Arc<String>>,
}

impl Signalling {
    pub fn new(resume_window: Duration) -> Arc<Self> {
        let (cameras_tx, cameras) = watch::channel(Arc::new(String::new()));
        Arc::new(Signalling {
            resume_window,
            sessions: Mutex::new(HashMap::new()),
            cameras,
            cameras_tx,
        })
    }

    /// Renders the cameras message once a second for every connection, while the state lives.
    pub fn publish_cameras(state: &Arc<AppState>) {
        let weak = Arc::downgrade(state);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(CAMERAS_EVERY);
            loop {
                every.tick().await;
                let Some(state) = weak.upgrade() else { return };
                // Signalling holds one receiver itself: render only for connected sockets.
                // (What was rendered last goes, so a socket that connects gets no stale state.)
                if state.signalling.cameras_tx.receiver_count() <= 1 {
                    state
                        .signalling
                        .cameras_tx
                        .send_replace(Arc::new(String::new()));
                    continue;
                }
                let text = cameras_message(&state, &Principal::anyone());
                state.signalling.cameras_tx.send_replace(Arc::new(text));
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resumes the session of `token` if it exists, else starts a new one. Returns the token,
    /// its generation, whether it was resumed, and its viewers still alive. A session whose old
    /// socket the server has not yet found dead (a network drop sends no FIN) is taken over.
    fn attach(
        &self,
        token: Option<&str>,
        alive: impl Fn(&str) -> bool,
    ) -> (String, u64, bool, Vec<(String, String)>) {
        let mut sessions = self.lock();
        if let Some((token, entry)) = token.and_then(|t| sessions.get_mut(t).map(|e| (t, e))) {
            entry.attached = true;
            entry.generation += 1;
            entry.viewers.retain(|(_, viewer)| alive(viewer));
            return (
                token.to_owned(),
                entry.generation,
                true,
                entry.viewers.clone(),
            );
        }
        let token = lockstep_webrtc::random_token();
        sessions.insert(
            token.clone(),
            Entry {
                viewers: Vec::new(),
                generation: 0,
                attached: true,
            },
        );
        (token, 0, false, Vec::new())
    }

    /// A socket ended: unless a newer one took its session over, the viewers wait
    /// `resume_window` for a resume, then end.
    fn detach(self: &Arc<Self>, token: String, generation: u64, state: Arc<AppState>) {
        match self.lock().get_mut(&token) {
            Some(entry) if entry.generation == generation => entry.attached = false,
            _ => return,
        }
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(this.resume_window).await;
            let expired = {
                let mut sessions = this.lock();
                match sessions.get(&token) {
                    Some(e) if !e.attached && e.generation == generation => sessions.remove(&token),
                    _ => None,
                }
            };
            if let Some(entry) = expired {
                for (_, viewer) in entry.viewers {
                    state.whep.delete(&viewer);
                }
            }
        });
    }

    fn add_viewer(&self, token: &str, camera: &str, viewer: &str) {
        if let Some(entry) = self.lock().get_mut(token) {
            entry.viewers.push((camera.to_owned(), viewer.to_owned()));
        }
    }

    fn remove_viewer(&self, token: &str, viewer: &str) -> bool {
        self.lock().get_mut(token).is_some_and(|entry| {
            let before = entry.viewers.len();
            entry.viewers.retain(|(_, v)| v != viewer);
            entry.viewers.len() < before
        })
    }

    /// Sessions waiting to be resumed (for metrics).
    pub fn detached(&self) -> usize {
        self.lock().values().filter(|e| !e.attached).count()
    }
}

#[derive(Debug, Deserialize)]
pub struct ResumeQuery {
    resume: Option<String>,
}

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<ResumeQuery>,
    Extension(principal): Extension<Principal>,
    ws: WebSocketUpgrade,
) -> Response {
    let permit = match state.ws_limits.admit(peer.ip()) {
        Ok(permit) => permit,
        Err(refused) => return refused.into_response(),
    };
    // Small buffers: thousands of mostly idle sockets must not hold 256 KiB each (tungstenite's
    // defaults); sink.send flushes every message anyway.
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| run(socket, state, principal, peer, query.resume, permit))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Request {
    Watch {
        camera: String,
        sdp: String,
        /// `main` | `sub` | `auto` (the default): which of the camera's streams.
        stream: Option<String>,
    },
    Stop {
        viewer: String,
    },
}

async fn run(
    socket: WebSocket,
    state: Arc<AppState>,
    principal: Principal,
    peer: SocketAddr,
    resume: Option<String>,
    _permit: Permit,
) {
    let signalling = state.signalling.clone();
    let (token, generation, resumed, viewers) =
        signalling.attach(resume.as_deref(), |v| state.whep.has_session(v));
    let (sink, mut stream) = socket.split();
    let (out, writer) = spawn_writer(sink, QUEUE);
    let send = |value: Value| {
        let _ = out.try_send(Message::Text(value.to_string().into()));
    };
    send(json!({
        "type": "welcome",
        "resume": token,
        "resumed": resumed,
        "resume_secs": signalling.resume_window.as_secs(),
        "viewers": viewers.iter().map(|(camera, viewer)| json!({"camera": camera, "viewer": viewer})).collect::<Vec<_>>(),
    }));
    let mut heartbeat = Heartbeat::new(state.ws_policy, tokio::time::Instant::now());
    let mut cameras = state.signalling.cameras.clone();
    cameras.mark_changed();
    let (code, reason) = loop {
        tokio::select! {
            message = stream.next() => {
                let message = match received(message) {
                    Ok(message) => message,
                    Err(end) => break end,
                };
                match message {
                    Message::Text(text) => {
                        heartbeat.message(tokio::time::Instant::now());
                        let request = match serde_json::from_str::<Request>(&text) {
                            Ok(request) => request,
                            Err(e) => break (close_code::UNSUPPORTED, format!("not a signalling message: {e}")),
                        };
                        send(answer(&state, &principal, peer, &token, request));
                    }
                    Message::Binary(_) => break (close_code::UNSUPPORTED, "signalling is text (JSON)".to_owned()),
                    Message::Ping(_) | Message::Pong(_) => heartbeat.heard(),
                    Message::Close(_) => break (close_code::NORMAL, "closed".to_owned()),
                }
            }
            beat = heartbeat.next() => if let Some(end) = beat.act(&out) { break end },
            changed = cameras.changed() => {
                if changed.is_err() {
                    break (close_code::GOING_AWAY, "the server is stopping".to_owned());
                }
                let text = cameras.borrow_and_update().clone();
                if text.is_empty() {
                    continue;
                }
                // One rendering serves every socket that may see all cameras; a caller limited to
                // some gets their own.
                let text = match principal.cameras {
                    CameraScope::All => text.as_str().into(),
                    CameraScope::Only(_) => cameras_message(&state, &principal).into(),
                };
                let _ = out.try_send(Message::Text(text));
            }
        }
    };
    signalling.detach(token, generation, state.clone());
    let _ = out.send(close_message(code, &reason)).await;
    drop(out);
    await_peer_close(&mut stream).await;
    let _ = writer.await;
}

/// The cameras message: every camera `principal` may see, as `GET /api/cameras` shows it.
fn cameras_message(state: &AppState, principal: &Principal) -> String {
    json!({"type": "cameras", "cameras": cameras_json(state, principal)}).to_string()
}

fn answer(
    state: &AppState,
    principal: &Principal,
    peer: SocketAddr,
    token: &str,
    request: Request,
) -> Value {
    match request {
        Request::Watch { camera, .. } if !principal.cameras.covers(&camera) => {
            json!({"type": "error", "camera": camera,
                   "error": format!("camera {camera:?} is not among {}'s cameras", principal.name)})
        }
        Request::Watch {
            camera,
            sdp,
            stream,
        } => match StreamRequest::parse(stream.as_deref())
            .and_then(|request| open_viewer(state, &camera, peer.ip(), &sdp, request))
        {
            Ok(viewer) => {
                state.signalling.add_viewer(token, &camera, &viewer.session);
                json!({"type": "answer", "camera": camera, "viewer": viewer.session,
                       "sdp": viewer.answer, "stream": viewer.stream})
            }
            Err(e) => json!({"type": "error", "camera": camera, "error": e.message()}),
        },
        Request::Stop { viewer } => {
            if state.signalling.remove_viewer(token, &viewer) {
                state.whep.delete(&viewer);
                json!({"type": "stopped", "viewer": viewer})
            } else {
                json!({"type": "error", "viewer": viewer, "error": "no such viewer in this session"})
            }
        }
    }
}
