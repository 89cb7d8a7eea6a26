//! The UI's signalling WebSocket (`/api/ws`): WebRTC set-up over it, the cameras' state pushed on
//! it, and resume — a viewer whose signalling socket drops keeps its media flowing, a client that
//! comes back with its token gets the viewer back, one that does not loses it after the window.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Camera, Server};
use futures::{SinkExt as _, StreamExt as _};
use lockstep_webrtc::whep_client::{ClientEvent, PendingClient, Track};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(server: &Server, query: &str) -> Ws {
    let url = format!("{}/api/ws{query}", server.base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .unwrap()
        .0
}

/// The next message of `kind` (others skipped).
async fn next_of(ws: &mut Ws, kind: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let message = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} message"))
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            if value["type"] == kind {
                return value;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_keeps_playing_while_its_signalling_reconnects() {
    let camera = Camera::start(&[]);
    let (server, _dir) = Server::with_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nws_resume_secs = 4\n\
         [[camera]]\nname = \"cam\"\nurl = \"{}\"\nrecord = \"off\"\n",
        camera.url
    ));
    server.wait_json("/api/cameras/cam", 20, |c| c["state"] == "live");

    let mut ws = open(&server, "").await;
    let welcome = next_of(&mut ws, "welcome").await;
    assert_eq!(welcome["resumed"], false);
    let token = welcome["resume"].as_str().unwrap().to_owned();
    // The cameras' state comes on the socket.
    let cameras = next_of(&mut ws, "cameras").await;
    assert_eq!(cameras["cameras"][0]["name"], "cam", "{cameras}");

    // Watch over the socket; the bad requests get an error, not a closed socket.
    ws.send(Message::Text(
        r#"{"type":"watch","camera":"nobody","sdp":"v=0"}"#.into(),
    ))
    .await
    .unwrap();
    let error = next_of(&mut ws, "error").await;
    assert!(
        error["error"].as_str().unwrap().contains("nobody"),
        "{error}"
    );
    let addr: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let pending = PendingClient::new(addr).await.unwrap();
    let watch = serde_json::json!({"type": "watch", "camera": "cam", "sdp": pending.offer()});
    ws.send(Message::Text(watch.to_string().into()))
        .await
        .unwrap();
    let answer = next_of(&mut ws, "answer").await;
    let viewer = answer["viewer"].as_str().unwrap().to_owned();
    let mut client = pending.accept(answer["sdp"].as_str().unwrap()).unwrap();
    let frames = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = frames.clone();
    let receiving = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Ok(Some(event)) = client.next_event(deadline).await {
            if let ClientEvent::Media {
                track: Track::Video,
                ..
            } = event
            {
                seen.lock().unwrap().push(Instant::now());
            }
        }
    });
    let count_since = |since: Instant| {
        frames
            .lock()
            .unwrap()
            .iter()
            .filter(|t| **t > since)
            .count()
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(count_since(Instant::now() - Duration::from_secs(2)) > 20);

    // The signalling socket drops without a close: the media goes on.
    drop(ws);
    let dropped = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        count_since(dropped) > 30,
        "{} frames after the drop",
        count_since(dropped)
    );

    // Back within the window with the token: the viewer is ours again.
    let mut ws = open(&server, &format!("?resume={token}")).await;
    let welcome = next_of(&mut ws, "welcome").await;
    assert_eq!(welcome["resumed"], true, "{welcome}");
    assert_eq!(welcome["resume"], token.as_str());
    assert_eq!(
        welcome["viewers"][0]["viewer"],
        viewer.as_str(),
        "{welcome}"
    );

    // A second client with the same token takes the session over (the first one's network
    // may have died without a FIN); the first one's end does not detach it.
    let mut takeover = open(&server, &format!("?resume={token}")).await;
    assert_eq!(next_of(&mut takeover, "welcome").await["resumed"], true);
    drop(ws);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let alive = Instant::now() - Duration::from_secs(1);
    assert!(
        count_since(alive) > 10,
        "the taken-over viewer must still play"
    );

    // Gone for longer than the window: the viewer ends.
    let ws = takeover;
    drop(ws);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let quiet = Instant::now() - Duration::from_secs(1);
    assert_eq!(
        count_since(quiet),
        0,
        "the viewer still plays after the resume window"
    );
    let metrics = server.request("GET", "/metrics", "", "").body;
    assert!(
        metrics.contains("lockstep_viewers{camera=\"cam\"} 0"),
        "{metrics}"
    );

    // An unknown token starts afresh; a malformed message closes with 1003.
    let mut ws = open(&server, "?resume=forged").await;
    assert_eq!(next_of(&mut ws, "welcome").await["resumed"], false);
    ws.send(Message::Text("{\"type\":\"dance\"}".into()))
        .await
        .unwrap();
    let close = loop {
        match ws.next().await {
            Some(Ok(Message::Close(Some(frame)))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1003);
    assert!(close.reason.contains("dance"), "{}", close.reason);
    receiving.abort();
}
