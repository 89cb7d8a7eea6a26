//! `GET /api/media/{name}[?stream=main|sub]`: a source's synchronized output over a WebSocket,
//! for lockstep's own player (WebCodecs in the page) and for networks where WebRTC cannot go.
//! What is sent is `media_stream.rs`; this is the socket: limits, heartbeat, a bounded queue.
//!
//! The player may send text messages (`{"type":"stats",…}`: its measured offset and buffer);
//! they keep the connection from idling and are logged at debug level. Anything else closes
//! the socket with 1003 and the reason.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use lockstep_media::SourceFeed;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::error::TrySendError;

use super::media_stream::{MediaStream, Outgoing};
use super::state::AppState;
use super::viewer_stream::{named_stream, StreamRequest};
use super::ws::{
    await_peer_close, close_code, close_message, received, spawn_writer, Heartbeat, Permit,
    WsPolicy,
};

/// Messages waiting for the socket: about 3 s of 30 fps video with its audio. A viewer whose
/// queue is full loses frames and skips to the next keyframe instead of queueing more.
const QUEUE: usize = 256;
/// What the player may send (its stats).
const MAX_CLIENT_MESSAGE: usize = 16 << 10;

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let camera = match state.camera(&name) {
        Ok(camera) => camera,
        Err(e) => return e.into_response(),
    };
    // The page decodes what it is sent; `auto` is the main stream (the player asks for the
    // substream itself when its browser cannot decode the main one).
    let sub = match StreamRequest::from_query(query.as_deref()) {
        Ok(request) => request == StreamRequest::Sub,
        Err(e) => return e.into_response(),
    };
    let (feed, stream) = match named_stream(&camera, sub) {
        Ok(chosen) => chosen,
        Err(e) => return e.into_response(),
    };
    let permit = match state.ws_limits.admit(peer.ip()) {
        Ok(permit) => permit,
        Err(refused) => return refused.into_response(),
    };
    let session = Session {
        media: MediaStream::new(&name, stream, camera.settings.audio),
        feed,
        policy: state.ws_policy,
        _permit: permit,
    };
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| session.run(socket))
}

struct Session {
    media: MediaStream,
    feed: Arc<SourceFeed>,
    policy: WsPolicy,
    _permit: Permit,
}

impl Session {
    async fn run(mut self, socket: WebSocket) {
        let (sink, mut incoming) = socket.split();
        let (out, writer) = spawn_writer(sink, QUEUE);
        let subscription = if self.media.audio() {
            self.feed.subscribe()
        } else {
            self.feed.subscribe_video_only()
        };
        let mut live = subscription.live;
        for frame in &subscription.cached {
            self.send(&out, frame);
        }
        let mut heartbeat = Heartbeat::new(self.policy, tokio::time::Instant::now());
        let (code, reason) = loop {
            tokio::select! {
                frame = live.recv() => match frame {
                    Ok(frame) => self.send(&out, &frame),
                    Err(RecvError::Lagged(n)) => self.media.skip(n),
                    Err(RecvError::Closed) => break (close_code::GOING_AWAY, "the source is gone".to_owned()),
                },
                message = incoming.next() => {
                    let message = match received(message) {
                        Ok(message) => message,
                        Err(end) => break end,
                    };
                    match message {
                        Message::Text(text) => {
                            heartbeat.message(tokio::time::Instant::now());
                            if let Err(reason) = player_message(&text) {
                                break (close_code::UNSUPPORTED, reason);
                            }
                        }
                        Message::Binary(_) => break (close_code::UNSUPPORTED, "a player sends text (JSON stats), not binary".to_owned()),
                        Message::Ping(_) | Message::Pong(_) => heartbeat.heard(),
                        Message::Close(_) => break (close_code::NORMAL, "closed".to_owned()),
                    }
                }
                beat = heartbeat.next() => if let Some(end) = beat.act(&out) { break end },
            }
        };
        tracing::debug!(
            "media viewer closed ({reason}): {} frames sent, {} skipped",
            self.media.frames_sent,
            self.media.frames_skipped
        );
        // A viewer whose queue is full may not take the close frame at once: give it 2 s.
        let close = out.send_timeout(
            close_message(code, &reason),
            std::time::Duration::from_secs(2),
        );
        let _ = close.await;
        drop(out);
        await_peer_close(&mut incoming).await;
        writer.abort();
    }

    fn send(
        &mut self,
        out: &tokio::sync::mpsc::Sender<Message>,
        frame: &lockstep_media::LiveFrame,
    ) {
        // Only audio before the start asks (a lock): does the source have a picture to wait for?
        let has_video =
            frame.is_video() || self.media.started() || self.feed.video_codec().is_some();
        for message in self.media.frame(frame, has_video) {
            let ws_message = match message {
                Outgoing::Text(text) => Message::Text(text.into()),
                Outgoing::Binary(bytes) => Message::Binary(bytes.into()),
            };
            if let Err(TrySendError::Full(Message::Binary(bytes))) = out.try_send(ws_message) {
                self.media.unsent(bytes.first().copied());
            }
        }
    }
}

/// A message from the player: JSON with a `type` (only `stats` is known).
fn player_message(text: &str) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    match value.get("type").and_then(|t| t.as_str()) {
        Some("stats") => {
            tracing::debug!("media player stats: {value}");
            Ok(())
        }
        Some(other) => Err(format!(
            "unknown message type {other:?} (a player sends \"stats\")"
        )),
        None => Err("a player message is a JSON object with a \"type\"".to_owned()),
    }
}
