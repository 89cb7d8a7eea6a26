//! Push sources end to end: a producer on `/api/push/NAME` (our avatar simulator, or a producer
//! written here), `lockstep serve`, and a WebRTC viewer (str0m) — lip sync, a clock that never
//! stalls through underruns and barge-ins, and clear refusals of bad producers.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{measure, number, Server};
use futures::{SinkExt as _, StreamExt as _};
use lockstep_opus::OpusDecoder;
use lockstep_webrtc::whep_client::{ClientEvent, Track, WhepClient};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn ws_url(server: &Server, name: &str) -> String {
    format!(
        "{}/api/push/{name}",
        server.base.replace("http://", "ws://")
    )
}

fn push_config(extra_server: &str, sources: &[&str]) -> String {
    let mut config = format!("[server]\nlisten = \"127.0.0.1:0\"\n{extra_server}\n");
    for name in sources {
        config.push_str(&format!("[[push]]\nname = \"{name}\"\n"));
    }
    config
}

/// `lockstep push-sim URL …`, killed on drop.
struct PushSim(Child);

impl PushSim {
    fn start(url: &str, extra: &[&str]) -> PushSim {
        PushSim(
            Command::new(env!("CARGO_BIN_EXE_lockstep"))
                .args(["push-sim", url])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for PushSim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_state(server: &Server, name: &str, state: &str) -> serde_json::Value {
    server.wait_json(&format!("/api/cameras/{name}"), 20, |c| c["state"] == state)
}

/// The offsets of the events from 2 s after the first (a new viewer's first event may pair a
/// flash from the cached GOP with a later beep, and its report clock settles), and the worst.
fn settled_offsets(events: &[serde_json::Value]) -> (f64, Vec<f64>) {
    let first = number(&events[0], "flash_s");
    let offsets: Vec<f64> = events
        .iter()
        .filter(|e| number(e, "flash_s") >= first + 2.0)
        .map(|e| number(e, "offset_ms"))
        .collect();
    let worst = offsets.iter().fold(0.0f64, |w, o| w.max(o.abs()));
    (worst, offsets)
}

/// The avatar simulator's beeps and flashes (stamped at the same instants) reach a viewer
/// within 2 ms of each other, every one of them.
#[test]
fn a_pushed_avatar_reaches_a_whep_viewer_in_sync() {
    let (server, _dir) = Server::with_config(&push_config("", &["avatar"]));
    let waiting = server.get_json("/api/cameras/avatar");
    assert_eq!(waiting["state"], "waiting", "{waiting}");
    let _sim = PushSim::start(
        &ws_url(&server, "avatar"),
        &["--size", "320x240", "--duration", "60"],
    );
    let live = wait_state(&server, "avatar", "live");
    assert_eq!(live["codecs"]["video"], "h264", "{live}");
    let report = measure(
        &format!("{}/api/whep/avatar", server.base),
        &["--duration", "20"],
    );
    let events = report["events"].as_array().unwrap();
    assert!(
        events.len() >= 15,
        "{} events in 20 s: {report}",
        events.len()
    );
    let (worst, offsets) = settled_offsets(events);
    assert!(worst <= 2.0, "worst offset {worst} ms: {offsets:?}");
    assert_eq!(number(&report, "dropped_frames"), 0.0, "{report}");
}

/// A producer of our own: hello, then what the test sends.
async fn connect(url: &str, hello: serde_json::Value) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .unwrap();
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    ws
}

fn media(kind: u8, capture_us: Option<i64>, payload: &[u8]) -> Message {
    let mut out = vec![kind];
    out.extend_from_slice(&capture_us.unwrap_or(i64::MIN).to_be_bytes());
    out.extend_from_slice(payload);
    Message::Binary(out.into())
}

/// 20 ms of 24 kHz mono: a 440 Hz tone or silence.
fn chunk(loud: bool) -> Vec<u8> {
    (0..480)
        .flat_map(|i| {
            let v = if loud {
                ((f64::from(i) / 24_000.0 * 440.0 * std::f64::consts::TAU).sin() * 12_000.0) as i16
            } else {
                0
            };
            v.to_le_bytes()
        })
        .collect()
}

/// The producer's events so far (text messages), without waiting.
fn drain_events(ws: &mut Ws, into: &mut Vec<serde_json::Value>) {
    while let Some(Some(Ok(message))) = futures::FutureExt::now_or_never(ws.next()) {
        if let Message::Text(text) = message {
            into.push(serde_json::from_str(&text).unwrap());
        }
    }
}

/// The producer stops for 1.5 s, then queues 5 s of speech at once and interrupts it: the
/// viewer's audio keeps one packet every 960 ticks throughout, the picture is repeated through
/// the gap, and speech stops within a few packets of the flush.
#[tokio::test(flavor = "multi_thread")]
async fn underruns_and_barge_in_never_stall_the_clock() {
    let (server, _dir) = Server::with_config(&push_config("", &["avatar"]));
    let mut viewer = WhepClient::connect(&format!("{}/api/whep/avatar", server.base))
        .await
        .unwrap();
    let hello = serde_json::json!({
        "type": "hello", "clock_us": 0,
        "audio": {"rate": 24000, "channels": 1, "format": "s16le"},
        "video": {"width": 64, "height": 64, "format": "i420", "fps": 10},
    });
    let mut producer = connect(&ws_url(&server, "avatar"), hello).await;
    let viewing = tokio::spawn(async move {
        let mut audio = Vec::new();
        let mut video = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(7);
        while let Some(event) = viewer.next_event(deadline).await.unwrap() {
            if let ClientEvent::Media {
                track,
                rtp_time,
                received,
                data,
                ..
            } = event
            {
                match track {
                    Track::Audio => audio.push((rtp_time, received, data)),
                    Track::Video => video.push(received),
                }
            }
        }
        (audio, video)
    });
    let anchor = Instant::now();
    let frame = vec![128u8; 64 * 64 * 3 / 2];
    let mut events = Vec::new();
    // Two seconds of speech and pictures, paced and stamped.
    for n in 0..100i64 {
        tokio::time::sleep_until((anchor + Duration::from_millis(n as u64 * 20)).into()).await;
        producer
            .send(media(1, Some(n * 20_000), &chunk(true)))
            .await
            .unwrap();
        if n % 5 == 0 {
            producer
                .send(media(2, Some(n * 20_000), &frame))
                .await
                .unwrap();
        }
        drain_events(&mut producer, &mut events);
    }
    // Silence from the producer: an underrun.
    let gap = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let gap_end = Instant::now();
    // A whole answer queued at once, then interrupted.
    for _ in 0..250 {
        producer.send(media(1, None, &chunk(true))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    producer
        .send(Message::Text(r#"{"type":"flush"}"#.into()))
        .await
        .unwrap();
    let flushed_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        drain_events(&mut producer, &mut events);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (audio, video) = viewing.await.unwrap();

    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"ready"), "{kinds:?}");
    for kind in [
        "speaking_started",
        "underrun",
        "speaking_ended",
        "stats",
        "flushed",
    ] {
        assert!(kinds.contains(&kind), "no {kind} event: {kinds:?}");
    }
    let flushed = events.iter().find(|e| e["type"] == "flushed").unwrap();
    assert!(number(flushed, "audio_ms") >= 4_000.0, "{flushed}");

    // One packet every 960 ticks, from the first to the last: no stall, no jump.
    assert!(audio.len() >= 250, "{} audio packets", audio.len());
    for pair in audio.windows(2) {
        assert_eq!(
            pair[1].0.wrapping_sub(pair[0].0),
            960,
            "the audio clock stalled or jumped"
        );
    }
    // Pictures kept coming through the gap (the last one repeated at 10 fps).
    let in_gap = video
        .iter()
        .filter(|t| **t > gap + Duration::from_millis(300) && **t < gap_end)
        .count();
    assert!(in_gap >= 8, "{in_gap} pictures during the 1.2 s gap");
    // Speech after the flush: at most the playout delay and a few packets, not the 4.5 s queued.
    let mut decoder = OpusDecoder::new(48_000, 1).unwrap();
    let last_loud = audio
        .iter()
        .filter(|(_, _, data)| {
            let pcm = decoder.decode(Some(data)).unwrap();
            pcm.iter().any(|s| s.unsigned_abs() > 3_000)
        })
        .map(|(_, received, _)| *received)
        .max()
        .unwrap();
    let after = last_loud.saturating_duration_since(flushed_at);
    assert!(
        after < Duration::from_millis(400),
        "speech went on {after:?} after the flush"
    );
}

/// The close frame the server ends a producer's session with.
async fn close_of(ws: &mut Ws) -> (CloseCode, String) {
    let deadline = Duration::from_secs(20);
    loop {
        match tokio::time::timeout(deadline, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(frame)))) => {
                // Our close reply goes out, then the server drops TCP first.
                let _ = ws.flush().await;
                while let Some(Ok(_)) = ws.next().await {}
                return (frame.code, frame.reason.to_string());
            }
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    }
}

fn http_status(error: tungstenite::Error) -> (u16, Option<String>, String) {
    match error {
        tungstenite::Error::Http(response) => (
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        other => panic!("not an HTTP refusal: {other}"),
    }
}

/// A WebSocket to `url` from the local address `from` (another loopback address is another
/// client IP).
async fn connect_from(from: [u8; 4], url: &str) -> Result<Ws, tungstenite::Error> {
    let server: SocketAddr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    let stream = socket.connect(server).await.unwrap();
    tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .map(|(ws, _)| ws)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_producers_are_refused_with_the_reason() {
    let (server, _dir) = Server::with_config(&push_config(
        "max_connections_per_ip = 2\nws_ping_secs = 1\nws_idle_timeout_secs = 5",
        &["a", "b", "c"],
    ));
    let url = |name| ws_url(&server, name);

    // Unknown source: 404 before any upgrade.
    let refused = tokio_tungstenite::connect_async(url("nobody"))
        .await
        .unwrap_err();
    let (status, _, body) = http_status(refused);
    assert_eq!(status, 404);
    assert!(body.contains("[[push]]"), "{body}");

    // A hello that does not check out, and media before any hello: 1003 with the reason.
    let mut ws = connect(
        &url("a"),
        serde_json::json!({"type": "hello", "audio": {"rate": 7}}),
    )
    .await;
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(u16::from(code), 1003);
    assert!(reason.contains("audio.rate 7"), "{reason}");
    let (mut ws, _) = tokio_tungstenite::connect_async(url("a")).await.unwrap();
    ws.send(media(1, None, &chunk(false))).await.unwrap();
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(u16::from(code), 1003);
    assert!(reason.contains("hello"), "{reason}");

    // A message beyond what the hello allows: 1009.
    let mut ws = connect(
        &url("a"),
        serde_json::json!({"type": "hello", "audio": {"rate": 8000}}),
    )
    .await;
    ws.send(media(1, None, &vec![0; 200_000])).await.unwrap();
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(u16::from(code), 1009, "{reason}");

    // A malformed control: 1003.
    let mut ws = connect(
        &url("a"),
        serde_json::json!({"type": "hello", "audio": {"rate": 8000}}),
    )
    .await;
    ws.send(Message::Text("{\"type\":\"dance\"}".into()))
        .await
        .unwrap();
    let (code, reason) = close_of(&mut ws).await;
    assert_eq!(u16::from(code), 1003);
    assert!(reason.contains("dance"), "{reason}");

    // Refused sessions let go of their connection count.
    wait_connections(&server, 0);

    // One producer per source: a second gets 409.
    let mut first = connect(
        &url("a"),
        serde_json::json!({"type": "hello", "audio": {"rate": 8000}}),
    )
    .await;
    wait_state(&server, "a", "live");
    let (status, _, body) = http_status(
        tokio_tungstenite::connect_async(url("a"))
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 409, "{body}");

    // Two connections from 127.0.0.1 is its limit: a third is told to come back later; another
    // address is not starved.
    let _second = connect_from([127, 0, 0, 1], &url("b")).await.unwrap();
    let (status, retry, body) =
        http_status(connect_from([127, 0, 0, 1], &url("c")).await.unwrap_err());
    assert_eq!((status, retry.as_deref()), (429, Some("5")), "{body}");
    let _other = connect_from([127, 0, 0, 2], &url("c"))
        .await
        .expect("another address gets in");

    // The first producer answers pings (it reads) but sends nothing: idle after 5 s.
    let (code, reason) = close_of(&mut first).await;
    assert_eq!(u16::from(code), 1008);
    assert!(reason.contains("idle"), "{reason}");
    let state = wait_state(&server, "a", "waiting");
    assert!(state["error"].as_str().unwrap().contains("idle"), "{state}");
}

/// Waits until the server counts `n` open WebSocket connections.
fn wait_connections(server: &Server, n: u32) {
    let line = format!("lockstep_websocket_connections {n}\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = server.request("GET", "/metrics", "", "").body;
        if metrics.contains(&line) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never {n} connections:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A producer that stops reading (so never answers a ping) is dropped after two pings.
#[tokio::test(flavor = "multi_thread")]
async fn a_producer_that_never_answers_pings_is_dropped() {
    let (server, _dir) = Server::with_config(&push_config("ws_ping_secs = 1", &["a"]));
    let mut ws = connect(
        &ws_url(&server, "a"),
        serde_json::json!({"type": "hello", "audio": {"rate": 8000}}),
    )
    .await;
    wait_state(&server, "a", "live");
    // Keep sending (so it is not idle) but never read: pings go unanswered.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        if ws.send(media(1, None, &chunk(false)[..320])).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let state = wait_state(&server, "a", "waiting");
    assert!(state["error"].as_str().unwrap().contains("pong"), "{state}");
}

/// A WebRTC publisher (our simulator through WHIP, stamping its frames as a browser or OBS
/// does) is re-served in sync; its DELETE frees the source; bad offers are refused clearly.
#[test]
fn a_whip_publisher_is_re_served_in_sync() {
    let (server, _dir) = Server::with_config(&push_config("", &["avatar"]));
    let whip = format!("{}/api/whip/avatar", server.base);
    for (path, content_type, body, status, says) in [
        (
            "/api/whip/nobody",
            "application/sdp",
            "v=0",
            404,
            "[[push]]",
        ),
        (
            "/api/whip/avatar",
            "text/plain",
            "v=0",
            415,
            "application/sdp",
        ),
        ("/api/whip/avatar", "application/sdp", "not sdp", 400, "SDP"),
    ] {
        let r = server.request("POST", path, content_type, body);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert!(r.body.contains(says), "{path}: {}", r.body);
    }
    let sim = PushSim::start(&whip, &["--whip", "--size", "320x240", "--duration", "22"]);
    wait_state(&server, "avatar", "live");
    // One producer at a time: a second publisher is refused.
    let refused = server.request("POST", "/api/whip/avatar", "application/sdp", "v=0");
    assert_eq!(refused.status, 409, "{}", refused.body);
    let report = measure(
        &format!("{}/api/whep/avatar", server.base),
        &["--duration", "15"],
    );
    let events = report["events"].as_array().unwrap();
    assert!(events.len() >= 10, "{report}");
    let (worst, offsets) = settled_offsets(events);
    // Every event within ±2 ms but one, and that one within ±25 ms: a single event at 12 ms was
    // seen in about one full-suite run in ten on the 2-core machine (a debug server, the
    // publisher and the meter encoding and decoding in real time), never alone. A sync fault
    // (a wrong clock mapping, the encoder's delay) moves every event, not one.
    let beyond = offsets.iter().filter(|o| o.abs() > 2.0).count();
    assert!(
        beyond <= 1 && worst <= 25.0,
        "{beyond} events beyond ±2 ms, worst {worst} ms: {offsets:?}"
    );
    // The simulator ends with a WHIP DELETE: the source waits for a producer again at once.
    let mut sim = sim;
    let _ = sim.0.wait();
    let state = server.wait_json("/api/cameras/avatar", 5, |c| c["state"] == "waiting");
    assert!(state["error"].as_str().unwrap().contains("WHIP"), "{state}");
}

/// A push source with `record = "continuous"` is recorded like a camera, and its recording plays
/// back with the voice on the picture.
#[test]
fn a_recorded_avatar_plays_back_in_sync() {
    let dir = common::tempdir::Dir::new();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\ndir = '{}'\nsegment_secs = 4\n\
         [[push]]\nname = \"avatar\"\nrecord = \"continuous\"\n",
        dir.path().join("recordings").display()
    );
    let server = Server::with_config_in(&dir, &config);
    let _sim = PushSim::start(
        &ws_url(&server, "avatar"),
        &["--size", "320x240", "--duration", "40"],
    );
    server.wait_json("/api/cameras/avatar", 30, |c| {
        c["recording"]["state"] == "recording"
    });
    std::thread::sleep(Duration::from_secs(14));
    let timeline = server.get_json("/api/recordings/avatar");
    let segments = timeline["segments"].as_array().unwrap();
    assert!(segments.len() >= 3, "{timeline}");
    assert!(segments.iter().all(|s| s["audio"] == true), "{timeline}");
    let from = segments[0]["start"].as_str().unwrap();
    let to = segments[segments.len() - 2]["end"].as_str().unwrap();
    let (status, headers, body) = common::download(
        &server.base,
        &format!("/api/recordings/avatar/export.mp4?from={from}&to={to}"),
    );
    assert_eq!(status, 200, "{headers}");
    let file = dir.path().join("avatar.mp4");
    std::fs::write(&file, body).unwrap();
    let report = measure(file.to_str().unwrap(), &[]);
    let events = report["events"].as_array().unwrap();
    assert!(events.len() >= 6, "{report}");
    let worst = events
        .iter()
        .map(|e| number(e, "offset_ms").abs())
        .fold(0.0f64, f64::max);
    assert!(worst <= 2.0, "worst recorded offset {worst} ms: {report}");
}
