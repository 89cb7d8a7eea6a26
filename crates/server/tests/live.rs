//! The live server end to end on loopback: `lockstep sim-camera` → `lockstep serve` → WHEP,
//! received by `lockstep measure`'s str0m peer, which rebuilds each track's timeline from the
//! sender reports as a browser does. Plus the API, metrics, and what bad cameras and bad
//! requests get.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

mod common;
use common::{
    assert_viewer_in_sync, http_with, measure, number, one_at_a_time, settled_offsets, worst,
    Camera, Server, H264_ONLY_OFFER,
};

fn camera_config(cameras: &[(&str, &str)]) -> String {
    let mut toml = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
    for (name, url) in cameras {
        toml.push_str(&format!(
            "\n[[camera]]\nname = \"{name}\"\nurl = \"{url}\"\nrecord = \"off\"\n"
        ));
    }
    toml
}

fn wait_live(server: &Server, name: &str) -> serde_json::Value {
    server.wait_json(&format!("/api/cameras/{name}"), 30, |c| {
        c["state"] == "live" && !c["sync"].is_null()
    })
}

/// The acceptance test of the live path: a camera whose audio clock is 300 ppm slow, behind
/// 40 ms of jitter, watched over WebRTC for a minute: every flash/beep pair after the first
/// seconds is within ±5 ms on the sender-report timeline the viewer gets.
#[test]
fn a_whep_viewer_sees_a_drifting_jittery_camera_in_sync() {
    let _serial = one_at_a_time();
    let camera = Camera::start(&["--audio-clock-ppm", "-300", "--jitter-ms", "40"]);
    let (server, _dir) = Server::with_config(&camera_config(&[("cam", &camera.url)]));
    wait_live(&server, "cam");
    let endpoint = format!("{}/api/whep/cam", server.base);
    let report = measure(&endpoint, &["--duration", "60"]);
    assert_eq!(report["timing"], "WebRTC sender reports", "{report}");
    let events = report["events"].as_array().expect("events");
    assert!(events.len() >= 50, "{} events in 60 s", events.len());
    let settled = settled_offsets(&report, 5.0);
    let worst = worst(&settled);
    assert!(worst <= 5.0, "worst offset {worst} ms: {settled:?}");
    assert!(
        number(&report, "dropped_frames") <= 3.0,
        "frames lost on the way: {report}"
    );

    // What the API says about the same camera.
    let cam = server.get_json("/api/cameras/cam");
    assert_eq!(cam["codecs"]["video"], "h264");
    assert_eq!(cam["codecs"]["audio"], "pcma");
    let sync = &cam["sync"];
    assert_eq!(sync["clock_source"], "rtcp", "{cam}");
    let drift = number(sync, "audio_drift_ppm");
    assert!((drift + 300.0).abs() < 30.0, "audio drift {drift} ppm");
    assert!(number(sync, "offset_ms").abs() <= 5.0, "{cam}");
    assert!(number(sync, "latency_ms") > 0.0, "{cam}");
    assert!(
        number(sync, "jitter_ms") > 1.0,
        "40 ms of jitter shows: {cam}"
    );
    let list = server.get_json("/api/cameras");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let metrics = server.request("GET", "/metrics", "", "");
    assert_eq!(metrics.status, 200);
    for family in [
        "lockstep_camera_up{camera=\"cam\"} 1",
        "lockstep_audio_drift_ppm{camera=\"cam\"}",
        "lockstep_av_offset_ms{camera=\"cam\"}",
        "lockstep_latency_ms{camera=\"cam\"}",
        "lockstep_viewers{camera=\"cam\"}",
        "lockstep_viewer_frames_skipped_total{camera=\"cam\"}",
    ] {
        assert!(
            metrics.body.contains(family),
            "{family} missing:\n{}",
            metrics.body
        );
    }
    assert_eq!(server.get_json("/api/health")["status"], "ok");
}

/// The same camera over RTSP/UDP behind 40 ms of jitter, 1 % loss and 2 % reordering: the
/// loss reaches the jitter buffer (and shows in `loss_ratio`), and the viewer still gets every
/// flash/beep pair it can within ±5 ms.
#[test]
fn a_camera_over_udp_with_loss_stays_in_sync_at_the_viewer() {
    let _serial = one_at_a_time();
    let camera = Camera::start(&[
        "--audio-clock-ppm",
        "-300",
        "--jitter-ms",
        "40",
        "--loss",
        "0.01",
        "--reorder",
        "0.02",
    ]);
    let config = camera_config(&[("cam", &camera.url)]) + "transport = \"udp\"\n";
    let (server, _dir) = Server::with_config(&config);
    let cam = wait_live(&server, "cam");
    assert_eq!(cam["transport"]["configured"], "udp", "{cam}");
    assert_eq!(cam["transport"]["active"], "udp", "{cam}");
    let endpoint = format!("{}/api/whep/cam", server.base);
    let report = measure(&endpoint, &["--duration", "30"]);
    let events = report["events"].as_array().expect("events");
    // A lost video packet costs its frame and the rest of the GOP (1 s here): about a third of
    // the flashes have no picture (bench: 17 of 25 came out; runs here have had fewer than 20).
    assert!(events.len() >= 10, "{} events in 30 s", events.len());
    assert_viewer_in_sync("udp", &settled_offsets(&report, 5.0));
    let cam = server.get_json("/api/cameras/cam");
    let loss = number(&cam["sync"], "loss_ratio");
    assert!(loss > 0.001 && loss < 0.05, "1 % loss shows: {cam}");
}

/// A VP8-only browser offer (a minimal but valid SDP).
const VP8_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n";

#[test]
fn bad_requests_get_clear_errors_and_credentials_never_show() {
    let _serial = one_at_a_time();
    // Nothing listens on port 1: the camera stays unreachable, the API still answers.
    let (server, _dir) = Server::with_config(&camera_config(&[(
        "door",
        "rtsp://admin:s3cret@127.0.0.1:1/stream1",
    )]));
    let error_of = |r: &common::Response| -> String {
        let v: serde_json::Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|_| panic!("error bodies are JSON: {:?}", r.body));
        v["error"].as_str().expect("an error message").to_owned()
    };
    let unknown = server.request("GET", "/api/cameras/nope", "", "");
    assert_eq!(unknown.status, 404);
    assert!(error_of(&unknown).contains("nope"));
    let whep_unknown = server.request("POST", "/api/whep/nope", "application/sdp", VP8_OFFER);
    assert_eq!(whep_unknown.status, 404);
    let malformed = server.request("POST", "/api/whep/door", "application/sdp", "hello");
    assert_eq!(malformed.status, 400);
    assert!(error_of(&malformed).contains("SDP"), "{}", malformed.body);
    let vp8 = server.request("POST", "/api/whep/door", "application/sdp", VP8_OFFER);
    assert_eq!(vp8.status, 406, "{}", vp8.body);
    assert!(error_of(&vp8).contains("VP8"), "{}", vp8.body);
    let wrong_type = server.request("POST", "/api/whep/door", "text/plain", VP8_OFFER);
    assert_eq!(wrong_type.status, 415);
    // A media type is case-insensitive, takes parameters, and is not a prefix.
    let upper = "APPLICATION/SDP; charset=utf-8";
    assert_eq!(
        server
            .request("POST", "/api/whep/door", upper, VP8_OFFER)
            .status,
        406
    );
    let longer = server.request("POST", "/api/whep/door", "application/sdpXYZ", VP8_OFFER);
    assert_eq!(longer.status, 415, "{}", longer.body);
    // A 1-byte or NUL body: what and where, not the parser's internals.
    for body in ["x", "\0"] {
        let r = server.request("POST", "/api/whep/door", "application/sdp", body);
        assert_eq!(r.status, 400);
        assert!(error_of(&r).contains("line 1"), "{}", r.body);
        assert!(
            !r.body.contains("0x") && !r.body.contains("Pointer"),
            "{}",
            r.body
        );
    }
    let gone = server.request("DELETE", "/api/whep/door/nosuchsession", "", "");
    assert_eq!(gone.status, 404);
    assert_eq!(server.request("GET", "/no/such/page", "", "").status, 404);
    // The UI runs the server's own scripts only and cannot be framed by another site.
    let ui = server.request("GET", "/", "", "");
    let csp = ui.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("script-src 'self';") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(ui.header("x-content-type-options"), Some("nosniff"));
    // CORS only for server.allowed_origins (none here), never `*` (origin_policy.rs).
    let preflight = server.request("OPTIONS", "/api/whep/door", "", "");
    assert!(preflight.status < 300, "{preflight:?}");
    assert_eq!(preflight.header("access-control-allow-origin"), None);

    // The unreachable camera reports why, without its password, everywhere.
    let cam = server.wait_json("/api/cameras/door", 20, |c| !c["error"].is_null());
    assert!(
        ["error", "reconnecting"].contains(&cam["state"].as_str().unwrap_or("")),
        "{cam}"
    );
    for body in [
        server.request("GET", "/api/cameras", "", "").body,
        server.request("GET", "/metrics", "", "").body,
    ] {
        assert!(!body.contains("s3cret"), "a password leaked: {body}");
    }
    assert!(cam["url"].as_str().unwrap_or("").contains("***"), "{cam}");
}

/// WHEP offers whose peer never connects (no ICE ever comes) are given up after the connect
/// timeout, and only so many may wait at once, per client and per camera: 3,000 of them once
/// held 220 MB for 10 minutes. The clients are told apart behind a trusted proxy by the address
/// its `X-Forwarded-For` names.
#[test]
fn offers_that_never_connect_are_capped_and_given_up() {
    let _serial = one_at_a_time();
    let config = camera_config(&[("door", "rtsp://127.0.0.1:1/x")]).replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    let (server, _dir) = Server::with_config(&config);
    let post = |client: &str| {
        let from = [format!("X-Forwarded-For: {client}")];
        http_with(
            &server.base,
            &from,
            "POST",
            "/api/whep/door",
            "application/sdp",
            H264_ONLY_OFFER,
        )
    };
    for _ in 0..8 {
        let r = post("203.0.113.1");
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // One client may not hold every slot of the camera …
    let refused = post("203.0.113.1");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("8 from 203.0.113.1"),
        "{}",
        refused.body
    );
    // … another may, up to the camera's cap.
    for _ in 0..8 {
        let r = post("203.0.113.2");
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let refused = post("203.0.113.3");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("still connecting"),
        "{}",
        refused.body
    );
    let cam = server.request("GET", "/api/cameras/door", "", "");
    assert!(cam.body.contains("\"viewers\":16"), "{}", cam.body);
    // The connect timeout is 10 s: all are gone well within 30, and offers are taken again.
    server.wait_json("/api/cameras/door", 30, |c| c["viewers"] == 0);
    assert_eq!(post("203.0.113.1").status, 201);
}

/// Connections are capped in all and per address, with the reason; a request header that does
/// not complete within 10 s (half a header, an idle keep-alive) closes its connection.
#[test]
fn http_connections_are_capped_and_slow_headers_closed() {
    let _serial = one_at_a_time();
    let (server, _dir, addr) = capped_server(2, 40);
    // Half a header: closed within the 10 s header timeout (well within 30), with no answer.
    let mut half = std::net::TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Per address: the WebSocket quota (2) plus 32 HTTP connections; the next is refused.
    let (held, text) = refused_after(&addr, 33);
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.contains("max_connections_per_ip"), "{text}");
    let started = std::time::Instant::now();
    assert_eq!(read_all(&mut half), "", "half a header gets no answer");
    assert!(started.elapsed() < Duration::from_secs(25));
    // The idle ones close too; then the address is served again.
    drop(held);
    let served = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        server.request("GET", "/api/health", "", "").status == 200
    });
    assert!(
        served,
        "the address is not served again once its connections closed"
    );
    // In all: with the per-address cap above it, the server-wide cap is what refuses.
    drop(server);
    let (_server, _dir, addr) = capped_server(100, 16);
    let (_held, text) = refused_after(&addr, 16);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("max_connections"), "{text}");
}

/// A server with these connection caps, and its `host:port`.
fn capped_server(per_ip: u32, all: u32) -> (Server, common::tempdir::Dir, String) {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_connections_per_ip = {per_ip}\n\
         max_connections = {all}\n"
    );
    let (server, dir) = Server::with_config(&config);
    let addr = server.base.trim_start_matches("http://").to_owned();
    (server, dir, addr)
}

/// Everything a connection is sent until it closes (30 s at most).
fn read_all(stream: &mut std::net::TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout set");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

/// `held` connections to `addr` left open, then what one more is answered.
fn refused_after(addr: &str, held: usize) -> (Vec<std::net::TcpStream>, String) {
    let connect = || std::net::TcpStream::connect(addr).expect("server reachable");
    let open: Vec<_> = (0..held).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut one_more = connect();
    (open, read_all(&mut one_more))
}

/// Camera passwords never show, wherever the camera's URL carries them (userinfo, an XMEye-style
/// path, a query token): not in any API answer, the metrics, the UI or the server's log.
#[test]
fn camera_credentials_never_show_in_any_answer_or_log() {
    let _serial = one_at_a_time();
    let dir = common::tempdir::Dir::new();
    let secrets = ["S3cretUserinfo", "S3cretPath", "S3cretQuery"];
    let config = camera_config(&[
        (
            "userinfo",
            &format!("rtsp://admin:{}@127.0.0.1:1/stream1", secrets[0]),
        ),
        (
            "xmeye",
            &format!(
                "rtsp://127.0.0.1:1/user=admin&password={}&channel=1&stream=0.sdp",
                secrets[1]
            ),
        ),
        (
            "token",
            &format!("rtsp://127.0.0.1:1/live?token={}", secrets[2]),
        ),
    ]);
    let config_path = dir.path().join("lockstep.toml");
    std::fs::write(&config_path, common::without_auth(&config)).unwrap();
    let log = dir.path().join("serve.log");
    let server = Server::spawn_command(std::process::Command::new("sh").args([
        "-c",
        &format!(
            "exec '{}' serve --config '{}' 2> '{}'",
            env!("CARGO_BIN_EXE_lockstep"),
            config_path.display(),
            log.display()
        ),
    ]));
    for name in ["userinfo", "xmeye", "token"] {
        server.wait_json(&format!("/api/cameras/{name}"), 20, |c| {
            !c["error"].is_null()
        });
    }
    let mut emitted = vec![std::fs::read_to_string(&log).unwrap()];
    for path in [
        "/api/cameras",
        "/api/cameras/userinfo",
        "/api/cameras/xmeye",
        "/api/cameras/token",
        "/metrics",
        "/",
    ] {
        emitted.push(server.request("GET", path, "", "").body);
    }
    assert!(
        emitted[0].contains("127.0.0.1:1"),
        "the log has the cameras' errors"
    );
    assert!(emitted[1].contains("password=***"), "{}", emitted[1]);
    for text in &emitted {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}

/// A "camera" that answers every request with garbage must end in `error` with a reason; a good
/// camera on the same server is not disturbed.
#[test]
fn a_garbage_camera_goes_to_error_and_the_good_one_stays_live() {
    let _serial = one_at_a_time();
    let garbage = TcpListener::bind("127.0.0.1:0").expect("bind");
    let garbage_addr = garbage.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in garbage.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"\x00\xffNOT RTSP AT ALL\r\n\r\n\x13\x37garbage");
        }
    });
    let good = Camera::start(&[]);
    let (server, _dir) = Server::with_config(&camera_config(&[
        ("good", &good.url),
        ("bad", &format!("rtsp://{garbage_addr}/cam")),
    ]));
    let bad = server.wait_json("/api/cameras/bad", 30, |c| c["state"] == "error");
    assert!(
        bad["error"].as_str().is_some_and(|e| !e.is_empty()),
        "an error says why: {bad}"
    );
    let good_state = wait_live(&server, "good");
    let frames = number(&good_state["sync"], "video_frames");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let later = server.get_json("/api/cameras/good");
    assert_eq!(later["state"], "live");
    assert!(
        number(&later["sync"], "video_frames") > frames + 30.0,
        "the good camera keeps flowing: {later}"
    );
}

/// A camera whose server goes away is `reconnecting` with the reason (not `error`) for as long
/// as it is down, and live again within seconds of coming back: its address is probed while it
/// refuses TCP, so the reconnect does not wait out an exponential backoff draw (up to 16 s
/// after a 12 s outage).
#[test]
fn a_camera_that_comes_back_is_live_again_within_seconds() {
    let _serial = one_at_a_time();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let camera = Camera::start_at(&listen, &[]);
    let (server, _dir) = Server::with_config(&camera_config(&[("porch", &camera.url)]));
    wait_live(&server, "porch");
    drop(camera);
    let down = server.wait_json("/api/cameras/porch", 20, |c| c["state"] != "live");
    let outage = std::time::Instant::now();
    // Down for 12 s: every state seen meanwhile says it is coming back, with why.
    while outage.elapsed() < std::time::Duration::from_secs(12) {
        let cam = server.get_json("/api/cameras/porch");
        assert!(
            ["reconnecting", "connecting"].contains(&cam["state"].as_str().unwrap_or("")),
            "{cam} (first seen down: {down})"
        );
        if cam["state"] == "reconnecting" {
            assert!(
                cam["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{cam}"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let camera = Camera::start_at(&listen, &[]);
    let back_at = std::time::Instant::now();
    let back = server.wait_json("/api/cameras/porch", 30, |c| {
        c["state"] == "live" && c["sessions"].as_u64().unwrap_or(0) >= 2
    });
    let took = back_at.elapsed();
    println!("live again {took:?} after the camera came back");
    // 3 s is the aim (a probe, a session set-up, the first keyframe); the margin is for a slow
    // machine, far below a backoff draw after 12 s down.
    assert!(took < std::time::Duration::from_secs(8), "{took:?}: {back}");
    drop(camera);
}

/// A camera that drops its connection comes back by itself (reconnect with backoff).
#[test]
fn a_camera_that_vanishes_mid_stream_is_reconnected() {
    let _serial = one_at_a_time();
    let camera = Camera::start(&["--drop-after", "3"]);
    let (server, _dir) = Server::with_config(&camera_config(&[("flaky", &camera.url)]));
    wait_live(&server, "flaky");
    let back = server.wait_json("/api/cameras/flaky", 40, |c| {
        c["state"] == "live" && c["sessions"].as_u64().unwrap_or(0) >= 2
    });
    assert_eq!(back["error"], serde_json::Value::Null, "{back}");
}

/// `/api/media/{name}`, the WebSocket the lockstep player reads: a header naming the decoders,
/// then a keyframe first, both tracks stamped on one timeline — a drifting, jittery camera
/// measures in sync on those stamps; and what a bad request or a bad message gets. The
/// server's idle timeout is its shortest (5 s): `measure` keeps its 20 s socket alive.
#[test]
fn the_media_socket_carries_a_drifting_camera_in_sync() {
    use tungstenite::Message;
    let _serial = one_at_a_time();
    let camera = Camera::start(&["--audio-clock-ppm", "-300", "--jitter-ms", "40"]);
    let config = camera_config(&[("cam", &camera.url)])
        .replace("[server]\n", "[server]\nws_idle_timeout_secs = 5\n");
    let (server, _dir) = Server::with_config(&config);
    wait_live(&server, "cam");
    let ws_base = server.base.replace("http://", "ws://");

    let (mut socket, _) = tungstenite::connect(format!("{ws_base}/api/media/cam")).expect("ws");
    let Message::Text(header) = socket.read().expect("header") else {
        panic!("the first message is the header");
    };
    let header: serde_json::Value = serde_json::from_str(&header).unwrap();
    assert_eq!(header["type"], "header", "{header}");
    assert!(
        header["video"]["codec"]
            .as_str()
            .unwrap()
            .starts_with("avc1."),
        "{header}"
    );
    assert_eq!(header["audio"]["codec"], "opus");
    let mut frames = Vec::new();
    while frames.len() < 60 {
        match socket.read().expect("frame") {
            Message::Binary(b) => {
                let ts_us = i64::from_be_bytes(b[2..10].try_into().unwrap());
                // An Opus packet says how long it plays (48 kHz samples → µs).
                let length_us = if b[0] == 2 {
                    lockstep_opus::packet_samples_48k(&b[10..])
                        .map_or(0, |n| i64::from(n) * 1_000 / 48)
                } else {
                    0
                };
                frames.push((b[0], b[1], ts_us, length_us));
            }
            Message::Text(t) => panic!("unexpected {t}"),
            _ => {}
        }
    }
    assert_eq!(frames[0].0, 1, "video first");
    assert_eq!(frames[0].1 & 1, 1, "and a keyframe");
    let audio: Vec<(i64, i64)> = frames
        .iter()
        .filter(|f| f.0 == 2)
        .map(|f| (f.2, f.3))
        .collect();
    assert!(audio.len() > 5, "{frames:?}");
    // Opus packets in order, each where the one before ended (the camera's 300 ppm is taken
    // out before this point); 20 ms but where the camera's packets slid against them.
    for pair in audio.windows(2) {
        assert!(
            (pair[1].0 - pair[0].0 - pair[0].1).abs() <= 100,
            "{audio:?}"
        );
    }
    let whole = audio.iter().filter(|a| a.1 == 20_000).count();
    assert!(whole * 10 >= audio.len() * 8, "{audio:?}");
    // The player may send stats; anything else is refused with the reason.
    socket
        .send(Message::Text(r#"{"type":"stats","offset_ms":1}"#.into()))
        .unwrap();
    socket.send(Message::Binary(vec![1, 2, 3].into())).unwrap();
    let close = loop {
        match socket.read() {
            Ok(Message::Close(frame)) => break frame.expect("a close reason"),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(u16::from(close.code), 1003);
    assert!(close.reason.contains("text"), "{close:?}");

    for (path, status) in [("/api/media/nope", 404), ("/api/media/cam?stream=sub", 404)] {
        let err = tungstenite::connect(format!("{ws_base}{path}")).unwrap_err();
        let tungstenite::Error::Http(response) = err else {
            panic!("{path}: {err}");
        };
        assert_eq!(response.status(), status, "{path}");
    }

    let report = measure(&format!("{ws_base}/api/media/cam"), &["--duration", "20"]);
    assert_eq!(report["timing"], "media socket stamps", "{report}");
    let settled = settled_offsets(&report, 3.0);
    assert!(settled.len() >= 12, "{report}");
    assert_viewer_in_sync("media socket", &settled);
}

/// Cameras added, changed and removed through the API while another camera plays: each change
/// is in the config file (comments kept, secrets never shown back), the added camera plays in
/// sync through the same pipeline, its recorder starts and stops with it, bad tables are
/// refused with the parser's words and change nothing, and the camera that was there before
/// is never disturbed (one session from start to end).
#[test]
fn cameras_are_added_changed_and_removed_at_run_time() {
    let _serial = one_at_a_time();
    let porch = Camera::start(&[]);
    let yard = Camera::start(&["--audio-clock-ppm", "-300"]);
    let dir = common::tempdir::Dir::new();
    let storage = dir.path().join("recordings");
    let path = dir.path().join("lockstep.toml");
    let original = format!(
        "# Written by hand.\n[server]\nlisten = \"127.0.0.1:0\"\nauth = \"off\"\n\n\
         [storage]\ndir = '{}'\nsegment_secs = 2\n\n\
         # The porch camera: keep it as it is.\n[[camera]]\nname = \"porch\"\n\
         url = \"{}\" # main stream\nrecord = \"off\"\n",
        storage.display(),
        porch.url
    );
    std::fs::write(&path, &original).unwrap();
    let serve = ["serve", "--config", path.to_str().unwrap()];
    let server = Server::start(&serve);
    wait_live(&server, "porch");
    let request = |method: &str, name: &str, body: serde_json::Value| {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        server.request(
            method,
            &format!("/api/cameras/{name}"),
            "application/json",
            &body,
        )
    };

    // Refused: each with what is wrong, and the file as it was.
    let yard_url = yard.url.replacen("rtsp://", "rtsp://admin:s3cret@", 1);
    for (name, body, status, words) in [
        (
            "porch",
            serde_json::json!({"url": yard_url}),
            409,
            "already exists",
        ),
        (
            "Yard",
            serde_json::json!({"url": yard_url}),
            400,
            "camera name",
        ),
        (
            "yard",
            serde_json::json!({"url": "http://x/"}),
            400,
            "is not supported (rtsp://",
        ),
        (
            "yard",
            serde_json::json!({"url": yard_url, "latency": "warp"}),
            400,
            "latency",
        ),
        (
            "yard",
            serde_json::json!({"url": yard_url, "colour": 1}),
            400,
            "unknown field `colour`",
        ),
        ("yard", serde_json::json!({}), 400, "missing field `url`"),
    ] {
        let answer = request("POST", name, body);
        assert_eq!(answer.status, status, "{name}: {}", answer.body);
        assert!(answer.body.contains(words), "{name}: {}", answer.body);
        assert!(!answer.body.contains("s3cret"), "{}", answer.body);
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);

    // Added: saved after the hand-written text, playing, recording, in sync.
    let added = request(
        "POST",
        "yard",
        serde_json::json!({"url": yard_url, "record": "continuous"}),
    );
    assert_eq!(added.status, 201, "{}", added.body);
    assert!(!added.body.contains("s3cret"), "{}", added.body);
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.starts_with(&original), "{saved}");
    assert!(
        saved.contains("name = \"yard\"") && saved.contains("s3cret"),
        "{saved}"
    );
    wait_live(&server, "yard");
    server.wait_json("/api/cameras/yard", 30, |c| {
        c["recording"]["state"] == "recording"
    });
    let report = measure(
        &format!("{}/api/whep/yard", server.base),
        &["--duration", "12"],
    );
    let settled = settled_offsets(&report, 3.0);
    assert!(settled.len() >= 5, "{report}");
    assert_viewer_in_sync("added camera", &settled);
    let shown = server.get_json("/api/cameras/yard/config");
    assert_eq!(
        shown["url"],
        yard.url.replacen("rtsp://", "rtsp://***:***@", 1)
    );
    assert_eq!(shown["record"], "continuous");

    // Changed: the URL written back as shown keeps its password; recording switched off
    // closes the open segment as stopped.
    let changed = request(
        "PUT",
        "yard",
        serde_json::json!({"url": shown["url"], "record": "off", "latency": "low"}),
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.contains(&format!("url = \"{yard_url}\"")), "{saved}");
    assert!(
        saved.contains("latency = \"low\"") && !saved.contains("continuous"),
        "{saved}"
    );
    let cam = wait_live(&server, "yard");
    assert_eq!(cam["latency"], "low", "{cam}");
    assert_eq!(cam["recording"]["state"], "off", "{cam}");
    let timeline = server.get_json("/api/recordings/yard");
    let segments = timeline["segments"].as_array().expect("segments");
    let last = segments.last().expect("a segment was recorded");
    assert_eq!(last["end_reason"], "stopped", "{timeline}");
    assert_eq!(last["writing"], false, "{timeline}");

    let porch_then = server.get_json("/api/cameras/porch");
    assert_eq!(
        porch_then["sessions"], 1,
        "the porch was never restarted: {porch_then}"
    );

    // What was saved is what the next start reads.
    drop(server);
    let server = Server::start(&serve);
    wait_live(&server, "porch");
    wait_live(&server, "yard");
    let request = |method: &str, name: &str| {
        server.request(
            method,
            &format!("/api/cameras/{name}"),
            "application/json",
            "",
        )
    };

    // Removed: gone from the API and the file; the porch is what it was.
    assert_eq!(request("DELETE", "yard").status, 204);
    assert_eq!(request("GET", "yard").status, 404);
    assert_eq!(request("DELETE", "yard").status, 404);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    let porch_now = server.get_json("/api/cameras/porch");
    assert_eq!(porch_now["state"], "live", "{porch_now}");
    assert_eq!(
        porch_now["sessions"], 1,
        "the porch was never restarted: {porch_now}"
    );
    let list = server.get_json("/api/cameras");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}
