//! The RTSP restream, against the tools people point at a relay: ffmpeg (`-c copy`, over TCP
//! and UDP at once) and GStreamer's `rtspsrc` record a camera whose audio clock runs 300 ppm
//! slow, and what they wrote measures in sync; and a raw client sees the protocol's edges
//! (credentials, refusals, a silent client dropped at the session timeout).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{add_user, Server};
use common::{assert_viewer_in_sync, measure, one_at_a_time, settled_offsets, tempdir, Camera};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn config(dir: &tempdir::Dir, camera_url: &str, rtsp_port: u16, extra_server: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nrtsp_listen = \"127.0.0.1:{rtsp_port}\"\n\
         {extra_server}\n[storage]\ndir = '{}'\n\n\
         [[camera]]\nname = \"cam\"\nurl = \"{camera_url}\"\nrecord = \"off\"\n\n\
         [[camera]]\nname = \"other\"\nurl = \"{camera_url}\"\nrecord = \"off\"\n",
        dir.path().join("data").display()
    )
}

fn wait_live(server: &Server) {
    server.wait_json("/api/cameras/cam", 30, |c| {
        c["state"] == "live" && c["codecs"]["audio"].is_string()
    });
}

fn ffmpeg_record(url: &str, transport: &str, secs: u32, file: &std::path::Path) -> Command {
    let mut command = Command::new("ffmpeg");
    command
        .args(["-v", "error", "-y", "-rtsp_transport", transport, "-i", url])
        .args(["-t", &secs.to_string(), "-c", "copy"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn finished(mut command: Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two ffmpeg clients (TCP and UDP) and a GStreamer one record the restream at the same time;
/// each recording measures in sync from its own timestamps, which only the sender reports
/// could have aligned (audio and video are separate RTP streams with random offsets).
#[test]
fn ffmpeg_and_gstreamer_record_the_restream_in_sync() {
    let _serial = one_at_a_time();
    let source = Camera::start(&["--audio-clock-ppm", "-300"]);
    let dir = tempdir::Dir::new();
    let port = free_port();
    let server = Server::with_config_in(&dir, &config(&dir, &source.url, port, ""));
    wait_live(&server);
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let tcp_file = dir.path().join("tcp.mp4");
    let udp_file = dir.path().join("udp.mp4");
    let gst_file = dir.path().join("gst.mkv");
    let tcp = std::thread::spawn({
        let command = ffmpeg_record(&url, "tcp", 16, &tcp_file);
        move || finished(command, "ffmpeg over TCP")
    });
    let udp = std::thread::spawn({
        let command = ffmpeg_record(&url, "udp", 16, &udp_file);
        move || finished(command, "ffmpeg over UDP")
    });
    // gst-launch finalizes its file on the end-of-stream that SIGINT (from `timeout`) makes;
    // each argument is one token of its pipeline.
    let mut gst = Command::new("timeout");
    gst.args(["-s", "INT", "20", "gst-launch-1.0", "-e", "-q"])
        .args([
            "rtspsrc",
            &format!("location={url}"),
            "latency=200",
            "name=s",
        ])
        .args([
            "s.",
            "!",
            "rtph264depay",
            "!",
            "h264parse",
            "!",
            "queue",
            "!",
        ])
        .args(["matroskamux", "name=m", "!", "filesink"])
        .arg(format!("location={}", gst_file.display()))
        .args([
            "s.",
            "!",
            "rtpopusdepay",
            "!",
            "opusparse",
            "!",
            "queue",
            "!",
            "m.",
        ]);
    let gst_out = gst.output().expect("gst-launch-1.0 runs");
    tcp.join().expect("ffmpeg TCP");
    udp.join().expect("ffmpeg UDP");
    assert!(
        gst_file.exists(),
        "GStreamer wrote nothing: {}",
        String::from_utf8_lossy(&gst_out.stderr)
    );
    // A client joins at the cached keyframe, up to a second before the live audio it gets:
    // the first beep may be cut. GStreamer's lip sync settles over its first seconds.
    for (file, settle_s) in [(&tcp_file, 2.0), (&udp_file, 2.0), (&gst_file, 8.0)] {
        let report = measure(file.to_str().expect("utf-8"), &[]);
        let offsets = settled_offsets(&report, settle_s);
        assert!(offsets.len() >= 6, "{}: {report}", file.display());
        assert_viewer_in_sync(&file.display().to_string(), &offsets);
    }
}

/// The players people point at a relay play the restream: ffplay (with SDL's dummy drivers)
/// opens both tracks and its audio-mastered clock advances with video held to it (its own
/// `A-V` figure); `gst-play-1.0` (playbin: what GStreamer apps use) prerolls and plays on.
#[test]
fn ffplay_and_gst_play_play_the_restream() {
    let _serial = one_at_a_time();
    let source = Camera::start(&[]);
    let dir = tempdir::Dir::new();
    let port = free_port();
    let server = Server::with_config_in(&dir, &config(&dir, &source.url, port, ""));
    wait_live(&server);
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let ffplay = Command::new("timeout")
        .args(["-s", "INT", "12", "ffplay", "-stats", "-autoexit", &url])
        .env("SDL_AUDIODRIVER", "dummy")
        .env("SDL_VIDEODRIVER", "dummy")
        .output()
        .expect("ffplay runs");
    let said = String::from_utf8_lossy(&ffplay.stderr).replace('\r', "\n");
    assert!(
        said.contains("Video: h264") && said.contains("Audio: opus"),
        "{said}"
    );
    // Status lines: "  12.34 A-V:  0.017 fd=   0 …" once both clocks run.
    let played: Vec<(f64, f64)> = said
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let clock = words.next()?.parse::<f64>().ok()?;
            (words.next()? == "A-V:").then_some(())?;
            Some((clock, words.next()?.parse::<f64>().ok()?))
        })
        .filter(|(clock, offset)| clock.is_finite() && offset.is_finite())
        .collect();
    let (first, last) = (played.first(), played.last());
    let span_s = last.zip(first).map_or(0.0, |(l, f)| l.0 - f.0);
    assert!(span_s >= 8.0, "ffplay played {span_s} s: {said}");
    // It joins at the cached keyframe, up to a GOP before the live audio: video catches up by
    // dropping frames over the first seconds (about half a second per second). Its last 3 s
    // are what a person watches from then on.
    let settled_from = last.map_or(0.0, |l| l.0 - 3.0);
    let worst = played
        .iter()
        .filter(|(clock, _)| *clock >= settled_from)
        .map(|(_, offset)| offset.abs())
        .fold(0.0, f64::max);
    assert!(worst <= 0.1, "ffplay's A-V reached {worst} s: {played:?}");

    let gst = Command::new("timeout")
        .args(["-s", "INT", "8", "gst-play-1.0", "--videosink=fakesink"])
        .args(["--audiosink=fakesink", &url])
        .output()
        .expect("gst-play-1.0 runs");
    let said = String::from_utf8_lossy(&gst.stdout).replace('\r', "\n");
    assert!(said.contains("Prerolled."), "{said}");
    assert!(!said.contains("ERROR"), "{said}");
    let position_s = said
        .lines()
        .filter_map(|line| {
            let (clock, _) = line.trim().split_once(" / ")?;
            let mut parts = clock.split(':');
            let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
            Some(
                h.parse::<f64>().ok()? * 3600.0
                    + m.parse::<f64>().ok()? * 60.0
                    + s.parse::<f64>().ok()?,
            )
        })
        .fold(0.0, f64::max);
    assert!(position_s >= 3.0, "gst-play reached {position_s} s: {said}");
}

/// One RTSP exchange on a raw connection: the request, then the response's head and body.
fn exchange(stream: &mut TcpStream, request: &str) -> (u16, String) {
    stream.write_all(request.as_bytes()).expect("request sent");
    read_response(stream)
}

fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut text = Vec::new();
    let mut byte = [0u8; 1];
    while !text.ends_with(b"\r\n\r\n") {
        // Interleaved media before the response is skipped.
        stream.read_exact(&mut byte).expect("a response");
        if text.is_empty() && byte[0] == b'$' {
            let mut head = [0u8; 3];
            stream.read_exact(&mut head).expect("interleaved header");
            let mut skip = vec![0u8; usize::from(u16::from_be_bytes([head[1], head[2]]))];
            stream.read_exact(&mut skip).expect("interleaved payload");
            continue;
        }
        text.push(byte[0]);
    }
    let mut text = String::from_utf8(text).expect("utf-8 head");
    let length = text
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |n| n.trim().parse::<usize>().expect("a length"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("the body");
    text.push_str(&String::from_utf8_lossy(&body));
    let status = text[9..12].parse().expect("a status");
    (status, text)
}

fn token(dir: &tempdir::Dir, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["token", "add"])
        .args(args)
        .arg("--config")
        .arg(dir.path().join("lockstep.toml"))
        .output()
        .expect("lockstep token add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

fn basic(token: &str) -> String {
    basic_as("frigate", token)
}

fn basic_as(name: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
    format!("Authorization: Basic {encoded}\r\n")
}

/// With authentication on: no credentials get 401 and the scheme, a token scoped to another
/// camera 403, a viewer's token the stream, and so does a user's name and password (a wrong
/// password 401). A client that goes silent while playing is dropped
/// at the session timeout; a malformed request gets 400 with the reason, and the server still
/// serves the next client.
#[test]
fn credentials_refusals_and_a_silent_client_dropped() {
    let _serial = one_at_a_time();
    let source = Camera::start(&[]);
    let dir = tempdir::Dir::new();
    let port = free_port();
    let text = config(
        &dir,
        &source.url,
        port,
        "auth = \"on\"\nrtsp_timeout_secs = 5\n",
    );
    std::fs::write(dir.path().join("lockstep.toml"), &text).expect("config");
    let viewer = token(&dir, &["frigate", "--role", "viewer"]);
    let scoped = token(
        &dir,
        &["yard-only", "--role", "viewer", "--cameras", "other"],
    );
    add_user(
        &dir.path().join("lockstep.toml"),
        "alice",
        &["--role", "viewer"],
        "correct horse battery",
    );
    let _server = Server::with_config_in(&dir, &text);
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let connect = || {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream
    };
    let mut stream = connect();
    // The camera may still be connecting: 503 until it is live.
    let deadline = Instant::now() + Duration::from_secs(30);
    let describe = format!(
        "DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\n{}\r\n",
        basic(&viewer)
    );
    let (status, _) = exchange(
        &mut stream,
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    );
    assert_eq!(status, 401);
    let sdp = loop {
        let (status, text) = exchange(&mut stream, &describe);
        if status == 200 {
            break text;
        }
        assert_eq!(status, 503, "{text}");
        assert!(Instant::now() < deadline, "never live: {text}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        sdp.contains("H264/90000") && sdp.contains("opus/48000/2"),
        "{sdp}"
    );
    let (status, text) = exchange(
        &mut connect(),
        &format!(
            "DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n{}\r\n",
            basic(&scoped)
        ),
    );
    assert_eq!(status, 403, "{text}");
    for (password, expected) in [("correct horse battery", 200), ("wrong horse", 401)] {
        let (status, text) = exchange(
            &mut connect(),
            &format!(
                "DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n{}\r\n",
                basic_as("alice", password)
            ),
        );
        assert_eq!(status, expected, "{password}: {text}");
    }
    let (status, text) = exchange(
        &mut stream,
        &format!(
            "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 3\r\n{}Transport: \
             RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
            basic(&viewer)
        ),
    );
    assert_eq!(status, 200, "{text}");
    let session = text
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|s| s.split(';').next())
        .expect("a session")
        .to_owned();
    let (status, text) = exchange(
        &mut stream,
        &format!(
            "PLAY {url} RTSP/1.0\r\nCSeq: 4\r\n{}Session: {session}\r\n\r\n",
            basic(&viewer)
        ),
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("RTP-Info: url="), "{text}");
    // Silent from now on: media flows until the session times out, then the server hangs up.
    let silent_from = Instant::now();
    let mut media_bytes = 0usize;
    let mut buf = [0u8; 16 << 10];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => media_bytes += n,
            Err(e) => panic!("still connected after {:?}: {e}", silent_from.elapsed()),
        }
    }
    let dropped_after = silent_from.elapsed();
    assert!(media_bytes > 10_000, "{media_bytes} bytes of media");
    assert!(
        dropped_after >= Duration::from_secs(4) && dropped_after < Duration::from_secs(25),
        "dropped after {dropped_after:?}"
    );

    let mut garbage = connect();
    let (status, text) = exchange(&mut garbage, "GARBAGE\r\n\r\n");
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("X-Error:"), "{text}");
    let (status, text) = exchange(&mut connect(), &describe);
    assert_eq!(status, 200, "{text}");
}
