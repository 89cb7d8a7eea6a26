//! Vendor quirks as data: DESCRIBE answers recorded from real cameras (`testdata/`, with their
//! origin and licence in each file's header) replayed to the camera front end by a tiny RTSP
//! server that answers SETUP and PLAY as such a camera does (absolute control URLs with the
//! camera's own address, no `RTP-Info`, parameter sets only in the SDP) and then sends a first
//! RTP packet. Each must connect with the right tracks, or be refused with the reason.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use lockstep_media::Codec;
use lockstep_rtsp::ingest::{CameraSession, IngestError, LocalClock, RtpTransport};
use lockstep_sync::{SourceInput, TrackKind};

/// A golden file: the recorded answer, or only its SDP, without our `#` header lines.
fn golden(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/{name}.txt"));
    let text = std::fs::read_to_string(&path).expect("golden file");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.trim_end_matches('\r'))
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// The SDP of a golden answer and the answer's headers we replay (Content-Base).
fn split_answer(answer: &str) -> (Vec<String>, String) {
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("RTSP/1.0") => {
            let headers = head
                .lines()
                .filter(|l| l.to_ascii_lowercase().starts_with("content-base"))
                .map(str::to_owned)
                .collect();
            (headers, body.trim_end().to_owned() + "\r\n")
        }
        _ => (Vec::new(), answer.trim_end().to_owned() + "\r\n"),
    }
}

/// The payload type of the first video section.
fn video_payload_type(sdp: &str) -> u8 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=video "))
        .and_then(|m| m.split_whitespace().nth(2)?.parse().ok())
        .expect("a video section")
}

/// Serves the golden camera on `listener`, one connection after another.
fn replay(listener: TcpListener, answer: String) {
    while let Ok((stream, _)) = listener.accept() {
        serve(stream, &answer);
    }
}

/// One session of the golden camera. Every SETUP is answered with TCP interleaving, as
/// cameras that do not serve UDP answer an offer of it.
fn serve(stream: std::net::TcpStream, answer: &str) {
    let (headers, sdp) = split_answer(answer);
    let video_pt = video_payload_type(&sdp);
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut channels: Vec<u8> = Vec::new();
    loop {
        let mut request = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.trim().is_empty() {
                break;
            }
            request.push(line.trim().to_owned());
        }
        let method = request[0].split(' ').next().unwrap_or("").to_owned();
        let header = |name: &str| {
            request
                .iter()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
                .unwrap_or_default()
        };
        let cseq = header("CSeq");
        let mut out = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n");
        match method.as_str() {
            "OPTIONS" => out.push_str("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n"),
            "DESCRIBE" => {
                for h in &headers {
                    out.push_str(h);
                    out.push_str("\r\n");
                }
                out.push_str(&format!(
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                    sdp.len()
                ));
            }
            "SETUP" => {
                let transport = header("Transport");
                let first = transport
                    .split(';')
                    .find_map(|p| p.strip_prefix("interleaved="))
                    .and_then(|c| c.split('-').next()?.parse::<u8>().ok())
                    .unwrap_or(channels.len() as u8 * 2);
                channels.push(first);
                out.push_str(&format!(
                    "Session: 4242;timeout=60\r\nTransport: RTP/AVP/TCP;unicast;interleaved={}-{}\r\n\r\n",
                    first,
                    first + 1
                ));
            }
            // No RTP-Info, as several cameras answer; then the first packet of the first
            // track set up (the video): an IDR slice whose SPS/PPS are only in the SDP.
            "PLAY" => {
                out.push_str("Session: 4242\r\n\r\n");
                let mut rtp = vec![0x80, 0x80 | video_pt, 0x12, 0x34];
                rtp.extend(0x0055_0000u32.to_be_bytes());
                rtp.extend(0xcafe_f00du32.to_be_bytes());
                rtp.extend([0x65, 0x88, 0x84, 0x00]);
                let mut frame = vec![b'$', channels[0]];
                frame.extend((rtp.len() as u16).to_be_bytes());
                frame.extend(rtp);
                writer.write_all(out.as_bytes()).expect("write");
                writer.write_all(&frame).expect("write");
                continue;
            }
            _ => out.push_str("Session: 4242\r\n\r\n"),
        }
        if writer.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

/// What the front end makes of a golden camera.
struct Connected {
    audio: Option<(Codec, u32)>,
    refused: Option<String>,
    video: Codec,
    has_sdp_parameter_sets: bool,
}

async fn connect(name: &str) -> Result<Connected, IngestError> {
    connect_with(name, RtpTransport::Tcp).await
}

async fn connect_with(name: &str, transport: RtpTransport) -> Result<Connected, IngestError> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let answer = golden(name);
    std::thread::spawn(move || replay(listener, answer));
    let url = format!("rtsp://127.0.0.1:{port}/stream");
    let (mut session, tracks) = CameraSession::connect_with(&url, transport, "lockstep").await?;
    assert_eq!(session.transport(), RtpTransport::Tcp, "{name}");
    let clock = LocalClock::new();
    let (_, input) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        session.next_input(&clock),
    )
    .await
    .expect("the first packet in time")?;
    match input {
        SourceInput::Rtp {
            kind,
            seq,
            ts,
            ssrc,
            ..
        } => {
            assert_eq!(
                (kind, seq, ts, ssrc),
                (TrackKind::Video, 0x1234, 0x0055_0000, 0xcafe_f00d)
            );
        }
        other => panic!("{name}: first input {other:?}"),
    }
    Ok(Connected {
        audio: tracks.audio.as_ref().map(|a| (a.codec, a.rate_hz)),
        refused: tracks.audio_refused.clone(),
        video: tracks.video.codec,
        has_sdp_parameter_sets: !tracks.video.parameter_sets.is_empty(),
    })
}

#[tokio::test]
async fn vendor_answers_connect_with_the_right_tracks() {
    // (file, audio codec and rate, SPS/PPS in the SDP)
    let cases = [
        ("reolink_describe", Some((Codec::Aac, 16_000)), true),
        (
            "dahua_describe_h264_aac_onvif",
            Some((Codec::Aac, 48_000)),
            true,
        ),
        ("hikvision_describe", None, true),
        // Two audio sections with one payload type: the AAC one is chosen, its own fmtp read.
        ("ubiquiti_sdp", Some((Codec::Aac, 48_000)), true),
        // MPEG4-GENERIC on payload type 0 with only `config=`.
        ("anpviz_sdp", Some((Codec::Aac, 16_000)), true),
        ("bunny_describe", Some((Codec::Aac, 12_000)), true),
        ("vstarcam_describe", Some((Codec::Pcma, 8_000)), true),
        ("gw_main_describe", Some((Codec::Pcmu, 8_000)), true),
    ];
    for (name, audio, parameter_sets) in cases {
        let connected = connect(name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(connected.video, Codec::H264, "{name}");
        assert_eq!(connected.audio, audio, "{name}: {:?}", connected.refused);
        assert_eq!(connected.refused, None, "{name}");
        assert_eq!(connected.has_sdp_parameter_sets, parameter_sets, "{name}");
    }
}

#[tokio::test]
async fn h265_main_streams_connect_with_their_sdp_parameter_sets() {
    // (file, audio): a Dahua main stream and a TP-Link one, both H.265 with PCMA.
    for (name, audio) in [
        ("dahua_describe_h265_pcma", Some((Codec::Pcma, 8_000))),
        ("tplink_sdp", Some((Codec::Pcma, 8_000))),
    ] {
        let connected = connect(name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(connected.video, Codec::H265, "{name}");
        assert_eq!(connected.audio, audio, "{name}");
        assert!(connected.has_sdp_parameter_sets, "{name}: VPS, SPS, PPS");
    }
}

/// A camera that answers an offer of UDP with TCP interleaving: `udp` is refused with what to
/// do (a retry would get the same answer), `auto` starts again over TCP and plays.
#[tokio::test]
async fn a_camera_without_udp_is_read_over_tcp_by_auto() {
    let connected = connect_with("hikvision_describe", RtpTransport::Auto)
        .await
        .expect("auto plays over TCP");
    assert_eq!(connected.video, Codec::H264);
    match connect_with("hikvision_describe", RtpTransport::Udp).await {
        Err(IngestError::Setup { reason, .. }) => {
            assert!(reason.contains("refused RTP over UDP"), "{reason}");
            assert!(reason.contains("transport = \"tcp\""), "{reason}");
        }
        other => panic!("udp: {:?}", other.map(|c| c.video)),
    }
}
